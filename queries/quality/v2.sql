-- quality v2: quality@v1's counts, with attribution that follows a
-- conversion window (unit_metrics@v3): an event counts as attributed when
-- exposure <= ts < min(window end, exposure + attribution window), where
-- the window is the widest among the experiment's metrics that use the
-- event; events after it but inside the analysis window are counted in
-- event_after_attribution instead of silently as attributed. With no
-- conversion window (the caller passes the analysis window's length) the
-- counts equal quality@v1's, plus a zero column.
-- Parameters: exp_ids, exp_end_us, m_exp, m_event, used_attr_us (parallel
-- to m_exp/m_event: the (experiment, event) pairs in use).
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, unnest($exp_end_us) AS end_us
),
used AS (
    SELECT experiment_id, event, max(attr_us) AS attr_us
    FROM (SELECT unnest($m_exp) AS experiment_id, unnest($m_event) AS event, unnest($used_attr_us) AS attr_us)
    GROUP BY experiment_id, event
),
null_exp AS (
    SELECT count(*) AS n FROM trace_rows WHERE reason = 'null_experiment'
),
tr AS (
    SELECT
        experiment_id,
        count(*) AS trace_rows,
        count(*) FILTER (WHERE reason = 'null_keys') AS trace_null_keys,
        count(*) FILTER (WHERE reason = 'duplicate') AS trace_duplicates,
        count(*) FILTER (WHERE reason = 'out_of_window') AS trace_out_of_window,
        count(*) FILTER (WHERE reason = 'version_mismatch') AS trace_version_mismatch,
        count(*) FILTER (WHERE reason = 'unknown_variant') AS trace_unknown_variant
    FROM trace_rows
    WHERE experiment_id IS NOT NULL
    GROUP BY experiment_id
),
un AS (
    SELECT
        experiment_id,
        count(*) AS units_exposed,
        count(*) FILTER (WHERE n_variants > 1) AS units_multi_variant,
        count(*) FILTER (WHERE n_variants = 1) AS units_assigned,
        count(*) FILTER (WHERE n_variants = 1 AND cohort = '*') AS units_unclassified
    FROM assignment
    GROUP BY experiment_id
),
ev AS (
    SELECT
        u.experiment_id,
        count(*) AS event_rows,
        count(*) FILTER (WHERE e.reason = 'null_keys') AS event_null_keys,
        count(*) FILTER (WHERE e.reason = 'duplicate') AS event_duplicates,
        count(*) FILTER (WHERE e.reason = 'invalid_value') AS event_invalid_value,
        count(*) FILTER (WHERE e.reason IS NULL AND a.unit_id IS NULL) AS event_unassigned,
        count(*) FILTER (WHERE e.reason IS NULL AND e.ts_us < a.exposure_us) AS event_before_exposure,
        count(*) FILTER (WHERE e.reason IS NULL AND e.ts_us >= a.exposure_us AND e.ts_us >= x.end_us) AS event_after_window,
        count(*) FILTER (WHERE e.reason IS NULL AND e.ts_us >= a.exposure_us AND e.ts_us < x.end_us
            AND e.ts_us >= a.exposure_us + u.attr_us) AS event_after_attribution,
        count(*) FILTER (WHERE e.reason IS NULL AND e.ts_us >= a.exposure_us AND e.ts_us < x.end_us
            AND e.ts_us < a.exposure_us + u.attr_us) AS event_attributed
    FROM event_rows AS e
    JOIN used AS u ON u.event = e.metric
    JOIN exps AS x ON x.experiment_id = u.experiment_id
    LEFT JOIN assignment AS a ON a.experiment_id = u.experiment_id AND a.unit_id = e.unit_id AND a.n_variants = 1
    GROUP BY u.experiment_id
)
SELECT
    x.experiment_id,
    CAST((SELECT n FROM null_exp) AS BIGINT) AS trace_null_experiment,
    CAST(coalesce(tr.trace_rows, 0) AS BIGINT) AS trace_rows,
    CAST(coalesce(tr.trace_null_keys, 0) AS BIGINT) AS trace_null_keys,
    CAST(coalesce(tr.trace_duplicates, 0) AS BIGINT) AS trace_duplicates,
    CAST(coalesce(tr.trace_out_of_window, 0) AS BIGINT) AS trace_out_of_window,
    CAST(coalesce(tr.trace_version_mismatch, 0) AS BIGINT) AS trace_version_mismatch,
    CAST(coalesce(tr.trace_unknown_variant, 0) AS BIGINT) AS trace_unknown_variant,
    CAST(coalesce(un.units_exposed, 0) AS BIGINT) AS units_exposed,
    CAST(coalesce(un.units_multi_variant, 0) AS BIGINT) AS units_multi_variant,
    CAST(coalesce(un.units_assigned, 0) AS BIGINT) AS units_assigned,
    CAST(coalesce(un.units_unclassified, 0) AS BIGINT) AS units_unclassified,
    CAST(coalesce(ev.event_rows, 0) AS BIGINT) AS event_rows,
    CAST(coalesce(ev.event_null_keys, 0) AS BIGINT) AS event_null_keys,
    CAST(coalesce(ev.event_duplicates, 0) AS BIGINT) AS event_duplicates,
    CAST(coalesce(ev.event_invalid_value, 0) AS BIGINT) AS event_invalid_value,
    CAST(coalesce(ev.event_unassigned, 0) AS BIGINT) AS event_unassigned,
    CAST(coalesce(ev.event_before_exposure, 0) AS BIGINT) AS event_before_exposure,
    CAST(coalesce(ev.event_after_window, 0) AS BIGINT) AS event_after_window,
    CAST(coalesce(ev.event_after_attribution, 0) AS BIGINT) AS event_after_attribution,
    CAST(coalesce(ev.event_attributed, 0) AS BIGINT) AS event_attributed
FROM exps AS x
LEFT JOIN tr ON tr.experiment_id = x.experiment_id
LEFT JOIN un ON un.experiment_id = x.experiment_id
LEFT JOIN ev ON ev.experiment_id = x.experiment_id
ORDER BY x.experiment_id

-- PROTOTYPE (a candidate for quality@v2): quality@v1's row per experiment,
-- with the event counts summed from event_units instead of a second join of
-- every event with the assignment.
-- Parameters: exp_ids.
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id
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
        experiment_id,
        sum(event_rows) AS event_rows,
        sum(event_null_keys) AS event_null_keys,
        sum(event_duplicates) AS event_duplicates,
        sum(event_invalid_value) AS event_invalid_value,
        sum(event_unassigned) AS event_unassigned,
        sum(event_before_exposure) AS event_before_exposure,
        sum(event_after_window) AS event_after_window,
        sum(event_attributed) AS event_attributed
    FROM event_units
    GROUP BY experiment_id
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
    CAST(coalesce(ev.event_attributed, 0) AS BIGINT) AS event_attributed
FROM exps AS x
LEFT JOIN tr ON tr.experiment_id = x.experiment_id
LEFT JOIN un ON un.experiment_id = x.experiment_id
LEFT JOIN ev ON ev.experiment_id = x.experiment_id
ORDER BY x.experiment_id

-- quality v4: quality@v3's counts for the unit-keyed templates (traces@v6,
-- assignment@v5, events@v5), plus:
--  * rows that belong to no unit (NULL, empty or blank unit_id):
--    trace_no_unit and event_no_unit, also counted in trace_null_keys and
--    event_null_keys as before;
--  * event_null_metric: events whose metric is NULL, empty or blank. They
--    cannot belong to any metric, so every experiment of the pass reports
--    the same count;
--  * the per-unit gate counts a private run releases (each unit counts at
--    most once per trace reason, and once per event name per event
--    reason): units_trace_null_keys, units_trace_duplicate,
--    units_trace_version_mismatch, units_trace_unknown_variant,
--    units_event_null_keys, units_event_duplicate,
--    units_event_invalid_value (summed over the experiment's event names)
--    and units_event_null_metric.
-- Parameters: exp_ids, win_exp_no, win_event, win_qual.
WITH exps AS (
    SELECT generate_subscripts($exp_ids, 1) AS exp_no, unnest($exp_ids) AS experiment_id
),
windows AS (
    SELECT
        generate_subscripts($win_event, 1) AS win_no,
        unnest($win_exp_no) AS exp_no,
        unnest($win_event) AS event,
        unnest($win_qual) AS qual
),
null_exp AS (
    SELECT coalesce(sum(n), 0) AS n FROM trace_counts WHERE reason = 'null_experiment'
),
tr AS (
    SELECT
        x.experiment_id,
        sum(n) AS trace_rows,
        sum(n) FILTER (WHERE reason IN ('null_keys', 'no_unit')) AS trace_null_keys,
        sum(n) FILTER (WHERE reason = 'no_unit') AS trace_no_unit,
        sum(units) FILTER (WHERE reason = 'null_keys') AS units_trace_null_keys,
        sum(units) FILTER (WHERE reason = 'duplicate') AS units_trace_duplicate,
        sum(units) FILTER (WHERE reason = 'version_mismatch') AS units_trace_version_mismatch,
        sum(units) FILTER (WHERE reason = 'unknown_variant') AS units_trace_unknown_variant,
        sum(n) FILTER (WHERE reason = 'duplicate') AS trace_duplicates,
        sum(n) FILTER (WHERE reason = 'out_of_window') AS trace_out_of_window,
        sum(n) FILTER (WHERE reason = 'version_mismatch') AS trace_version_mismatch,
        sum(n) FILTER (WHERE reason = 'unknown_variant') AS trace_unknown_variant
    FROM trace_counts AS t
    JOIN exps AS x ON x.exp_no = t.exp_no
    GROUP BY x.experiment_id
),
un AS (
    SELECT
        x.experiment_id,
        count(*) AS units_exposed,
        count(*) FILTER (WHERE a.n_variants > 1) AS units_multi_variant,
        count(*) FILTER (WHERE a.n_variants = 1) AS units_assigned,
        count(*) FILTER (WHERE a.n_variants = 1 AND a.cohort = '*') AS units_unclassified
    FROM assignment AS a
    JOIN exps AS x ON x.exp_no = a.exp_no
    GROUP BY x.experiment_id
),
names AS (
    SELECT
        metric AS event,
        sum(n) AS event_rows,
        sum(n) FILTER (WHERE reason IN ('null_keys', 'no_unit')) AS event_null_keys,
        sum(n) FILTER (WHERE reason = 'no_unit') AS event_no_unit,
        sum(n) FILTER (WHERE reason = 'duplicate') AS event_duplicates,
        sum(n) FILTER (WHERE reason = 'invalid_value') AS event_invalid_value,
        sum(n) FILTER (WHERE reason IS NULL) AS event_valid,
        sum(units) FILTER (WHERE reason = 'null_keys') AS units_event_null_keys,
        sum(units) FILTER (WHERE reason = 'duplicate') AS units_event_duplicate,
        sum(units) FILTER (WHERE reason = 'invalid_value') AS units_event_invalid_value
    FROM event_names
    WHERE metric IS NOT NULL
    GROUP BY metric
),
null_metric AS (
    SELECT
        coalesce(sum(n), 0) AS event_null_metric,
        coalesce(sum(units) FILTER (WHERE reason = 'null_metric'), 0) AS units_event_null_metric
    FROM event_names
    WHERE metric IS NULL
),
buckets AS (
    SELECT
        win_no,
        sum(n) FILTER (WHERE bucket = 1) AS event_before_exposure,
        sum(n) FILTER (WHERE bucket = 2) AS event_after_window,
        sum(n) FILTER (WHERE bucket = 3) AS event_after_attribution,
        sum(n) FILTER (WHERE bucket = 4) AS event_attributed
    FROM event_units
    WHERE kind = 1
    GROUP BY win_no
),
pairs AS (
    SELECT
        x.experiment_id,
        w.event,
        coalesce(m.event_rows, 0) AS event_rows,
        coalesce(m.event_null_keys, 0) AS event_null_keys,
        coalesce(m.event_no_unit, 0) AS event_no_unit,
        coalesce(m.units_event_null_keys, 0) AS units_event_null_keys,
        coalesce(m.units_event_duplicate, 0) AS units_event_duplicate,
        coalesce(m.units_event_invalid_value, 0) AS units_event_invalid_value,
        coalesce(m.event_duplicates, 0) AS event_duplicates,
        coalesce(m.event_invalid_value, 0) AS event_invalid_value,
        coalesce(m.event_valid, 0) AS event_valid,
        coalesce(b.event_before_exposure, 0) AS event_before_exposure,
        coalesce(b.event_after_window, 0) AS event_after_window,
        coalesce(b.event_after_attribution, 0) AS event_after_attribution,
        coalesce(b.event_attributed, 0) AS event_attributed
    FROM windows AS w
    JOIN exps AS x ON x.exp_no = w.exp_no
    LEFT JOIN names AS m ON m.event = w.event
    LEFT JOIN buckets AS b ON b.win_no = w.win_no
    WHERE w.qual
),
ev AS (
    SELECT
        experiment_id,
        sum(event_rows) AS event_rows,
        sum(event_null_keys) AS event_null_keys,
        sum(event_no_unit) AS event_no_unit,
        sum(units_event_null_keys) AS units_event_null_keys,
        sum(units_event_duplicate) AS units_event_duplicate,
        sum(units_event_invalid_value) AS units_event_invalid_value,
        sum(event_duplicates) AS event_duplicates,
        sum(event_invalid_value) AS event_invalid_value,
        sum(event_valid - event_before_exposure - event_after_window - event_after_attribution - event_attributed) AS event_unassigned,
        sum(event_before_exposure) AS event_before_exposure,
        sum(event_after_window) AS event_after_window,
        sum(event_after_attribution) AS event_after_attribution,
        sum(event_attributed) AS event_attributed
    FROM pairs
    GROUP BY experiment_id
)
SELECT
    x.experiment_id,
    CAST((SELECT n FROM null_exp) AS BIGINT) AS trace_null_experiment,
    CAST(coalesce(tr.trace_rows, 0) AS BIGINT) AS trace_rows,
    CAST(coalesce(tr.trace_null_keys, 0) AS BIGINT) AS trace_null_keys,
    CAST(coalesce(tr.trace_no_unit, 0) AS BIGINT) AS trace_no_unit,
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
    CAST(coalesce(ev.event_no_unit, 0) AS BIGINT) AS event_no_unit,
    CAST((SELECT event_null_metric FROM null_metric) AS BIGINT) AS event_null_metric,
    CAST(coalesce(ev.event_duplicates, 0) AS BIGINT) AS event_duplicates,
    CAST(coalesce(ev.event_invalid_value, 0) AS BIGINT) AS event_invalid_value,
    CAST(coalesce(ev.event_unassigned, 0) AS BIGINT) AS event_unassigned,
    CAST(coalesce(ev.event_before_exposure, 0) AS BIGINT) AS event_before_exposure,
    CAST(coalesce(ev.event_after_window, 0) AS BIGINT) AS event_after_window,
    CAST(coalesce(ev.event_after_attribution, 0) AS BIGINT) AS event_after_attribution,
    CAST(coalesce(ev.event_attributed, 0) AS BIGINT) AS event_attributed,
    CAST(coalesce(tr.units_trace_null_keys, 0) AS BIGINT) AS units_trace_null_keys,
    CAST(coalesce(tr.units_trace_duplicate, 0) AS BIGINT) AS units_trace_duplicate,
    CAST(coalesce(tr.units_trace_version_mismatch, 0) AS BIGINT) AS units_trace_version_mismatch,
    CAST(coalesce(tr.units_trace_unknown_variant, 0) AS BIGINT) AS units_trace_unknown_variant,
    CAST(coalesce(ev.units_event_null_keys, 0) AS BIGINT) AS units_event_null_keys,
    CAST(coalesce(ev.units_event_duplicate, 0) AS BIGINT) AS units_event_duplicate,
    CAST(coalesce(ev.units_event_invalid_value, 0) AS BIGINT) AS units_event_invalid_value,
    CAST((SELECT units_event_null_metric FROM null_metric) AS BIGINT) AS units_event_null_metric
FROM exps AS x
LEFT JOIN tr ON tr.experiment_id = x.experiment_id
LEFT JOIN un ON un.experiment_id = x.experiment_id
LEFT JOIN ev ON ev.experiment_id = x.experiment_id
ORDER BY x.experiment_id

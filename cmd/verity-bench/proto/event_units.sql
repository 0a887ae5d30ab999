-- PROTOTYPE (a candidate for events@v3, replacing the event_rows table): the
-- classification of events_cand.sql (or, in the three-scan variant,
-- event_dups.sql and event_cand.sql), joined at once to the assignment and
-- aggregated per experiment × event name × unit, carrying the unit's cohort
-- and variant. It holds every count quality@v1 reports for events and the
-- attributed count and sum that unit_metrics@v1 derives x from, so neither
-- needs the per-event table nor a second join of every event with the
-- assignment. unit_id is NULL for the events of units that are not assigned.
-- Parameters: event_files, m_exp/m_event (the (experiment, event) pairs in
-- use), exp_ids, exp_end_us, scale.
CREATE TEMP TABLE event_units AS
WITH used AS (
    SELECT DISTINCT experiment_id, event
    FROM (SELECT unnest($m_exp) AS experiment_id, unnest($m_event) AS event)
),
wanted AS (
    SELECT DISTINCT event AS metric FROM used
),
exps AS (
    SELECT unnest($exp_ids) AS experiment_id, unnest($exp_end_us) AS end_us
),
src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        {{col .Events "event_id"}} AS event_id,
        hash({{col .Events "event_id"}}) AS h,
        ({{col .Events "ts"}} IS NULL OR {{col .Events "unit_id"}} IS NULL) AS null_keys
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT metric FROM wanted)
),
dup AS (
    SELECT h, null_keys
    FROM src
    WHERE event_id IS NOT NULL
    GROUP BY h, null_keys
    HAVING count(*) > 1
),
classified AS (
    SELECT
        s.metric, s.unit_id, s.ts_us, s.value,
        CASE
            WHEN null_keys THEN 'null_keys'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src AS s
    ANTI JOIN dup AS d ON d.h = s.h AND d.null_keys = s.null_keys
    UNION ALL
    SELECT
        s.metric, s.unit_id, s.ts_us, s.value,
        CASE
            WHEN null_keys THEN 'null_keys'
            WHEN event_id IS NOT NULL AND row_number() OVER (
                PARTITION BY event_id, null_keys
                ORDER BY ts_us, unit_id, metric, value NULLS FIRST
            ) > 1 THEN 'duplicate'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src AS s
    SEMI JOIN dup AS d ON d.h = s.h AND d.null_keys = s.null_keys
),
joined AS (
    SELECT
        u.experiment_id,
        u.event,
        a.unit_id,
        a.cohort,
        a.variant,
        e.reason,
        CASE WHEN e.reason IS NULL THEN CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT) END AS v,
        e.ts_us,
        a.exposure_us,
        x.end_us
    FROM classified AS e
    JOIN used AS u ON u.event = e.metric
    JOIN exps AS x ON x.experiment_id = u.experiment_id
    LEFT JOIN assignment AS a ON a.experiment_id = u.experiment_id AND a.unit_id = e.unit_id AND a.n_variants = 1
)
SELECT
    experiment_id,
    event,
    unit_id,
    any_value(cohort) AS cohort,
    any_value(variant) AS variant,
    count(*) AS event_rows,
    count(*) FILTER (WHERE reason = 'null_keys') AS event_null_keys,
    count(*) FILTER (WHERE reason = 'duplicate') AS event_duplicates,
    count(*) FILTER (WHERE reason = 'invalid_value') AS event_invalid_value,
    count(*) FILTER (WHERE reason IS NULL AND unit_id IS NULL) AS event_unassigned,
    count(*) FILTER (WHERE reason IS NULL AND ts_us < exposure_us) AS event_before_exposure,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us >= end_us) AS event_after_window,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS event_attributed,
    sum(v) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS attributed_total
FROM joined
GROUP BY experiment_id, event, unit_id

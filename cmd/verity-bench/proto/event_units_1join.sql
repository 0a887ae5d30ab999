-- PROTOTYPE (a candidate for events@v3 when a run analyses many
-- experiments): one join of the events with the assignment on unit_id alone,
-- instead of one copy of every event per experiment that uses its name. An
-- event meets the assignment rows of the experiments its unit is assigned
-- to; it is counted once (slot 1, or no match) in the per-event-name counts,
-- and per (experiment, event) pair and unit for attribution. Grouping sets
-- give both in one aggregation. Third statement after event_dups.sql and
-- event_cand.sql; event_units_from_g.sql turns the result into event_units.
-- Parameters: event_files, m_exp, m_event, exp_ids, exp_end_us, scale.
CREATE TEMP TABLE event_units_g AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, unnest($exp_end_us) AS end_us, generate_subscripts($exp_ids, 1) AS exp_no
),
used AS (
    SELECT row_number() OVER (ORDER BY x.exp_no, p.event) AS pair_no, x.exp_no, x.end_us, p.event
    FROM (SELECT DISTINCT experiment_id, event FROM (SELECT unnest($m_exp) AS experiment_id, unnest($m_event) AS event)) AS p
    JOIN exps AS x ON x.experiment_id = p.experiment_id
),
wanted AS (
    SELECT DISTINCT event AS metric FROM used
),
src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        hash({{col .Events "event_id"}}) AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT metric FROM wanted)
),
classified AS (
    SELECT
        metric, unit_id, ts_us, value,
        CASE
            WHEN ts_us IS NULL OR unit_id IS NULL THEN 'null_keys'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src
    ANTI JOIN event_dups AS d ON d.h = src.h
    UNION ALL
    SELECT metric, unit_id, ts_us, value, reason FROM event_cand
),
joined AS (
    SELECT
        e.metric,
        u.pair_no,
        a.uid,
        a.slot,
        e.reason,
        CASE WHEN e.reason IS NULL THEN CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT) END AS v,
        e.ts_us,
        a.exposure_us,
        u.end_us
    FROM classified AS e
    LEFT JOIN assignment AS a ON a.unit_id = e.unit_id AND a.n_variants = 1
    LEFT JOIN used AS u ON u.exp_no = a.exp_no AND u.event = e.metric
)
SELECT
    grouping(metric) AS per_pair,
    metric,
    pair_no,
    uid,
    count(*) FILTER (WHERE slot IS NULL OR slot = 1) AS event_rows,
    count(*) FILTER (WHERE (slot IS NULL OR slot = 1) AND reason = 'null_keys') AS event_null_keys,
    count(*) FILTER (WHERE (slot IS NULL OR slot = 1) AND reason = 'duplicate') AS event_duplicates,
    count(*) FILTER (WHERE (slot IS NULL OR slot = 1) AND reason = 'invalid_value') AS event_invalid_value,
    count(*) FILTER (WHERE (slot IS NULL OR slot = 1) AND reason IS NULL) AS event_valid,
    count(*) FILTER (WHERE reason IS NULL AND ts_us < exposure_us) AS event_before_exposure,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us >= end_us) AS event_after_window,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS event_attributed,
    sum(v) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS attributed_total
FROM joined
GROUP BY GROUPING SETS ((metric), (pair_no, uid))

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
-- This file: event_units_3scan.sql with compact keys (assignment_keys.sql):
-- events join the assignment on (exp_no, unit_id) and are aggregated per
-- (used pair number, uid), two integers, with no string payload; the
-- cohort and variant are looked up by uid afterwards. The third statement of
-- the three-scan variant, after
-- event_dups.sql and event_cand.sql: event_id is only hashed, and the
-- candidate rows come from event_cand instead of a window over this scan.
CREATE TEMP TABLE event_units_k AS
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
        u.pair_no,
        a.uid,
        e.reason,
        CASE WHEN e.reason IS NULL THEN CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT) END AS v,
        e.ts_us,
        a.exposure_us,
        u.end_us
    FROM classified AS e
    JOIN used AS u ON u.event = e.metric
    LEFT JOIN assignment AS a ON a.exp_no = u.exp_no AND a.unit_id = e.unit_id AND a.n_variants = 1
)
SELECT
    pair_no,
    uid,
    count(*) AS event_rows,
    count(*) FILTER (WHERE reason = 'null_keys') AS event_null_keys,
    count(*) FILTER (WHERE reason = 'duplicate') AS event_duplicates,
    count(*) FILTER (WHERE reason = 'invalid_value') AS event_invalid_value,
    count(*) FILTER (WHERE reason IS NULL AND uid IS NULL) AS event_unassigned,
    count(*) FILTER (WHERE reason IS NULL AND ts_us < exposure_us) AS event_before_exposure,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us >= end_us) AS event_after_window,
    count(*) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS event_attributed,
    sum(v) FILTER (WHERE reason IS NULL AND ts_us >= exposure_us AND ts_us < end_us) AS attributed_total
FROM joined
GROUP BY pair_no, uid

-- events v11: events@v4 (the single-join set) with event_units grouped
-- once, as events@v10 does for the unit-keyed set (issue 18, many
-- experiments in one pass): every joined (event, experiment-unit) row goes
-- into the (win_no, uid) hash table only, which also counts the rows of
-- each bucket; the per-(window, bucket) rows (kind 1) are sums of those
-- counts, the per-unit rows (kind 2) the units with an attributed or a
-- pre-period event. A pre-period event is always in bucket 1, so bucket 1
-- carries the pre-period sums and the others 0 and NULL, as their groups
-- did in events@v4. The fixed-point value v is computed once per valid
-- event, before the join (valid events are finite and below 9.2e18 after
-- scaling, so the cast cannot fail). Same tables, rows and column types as
-- events@v4; its other statements follow unchanged, with its header.
-- events v4: events@v3 with two changes, the same tables and results.
--  * The attribution windows are joined with a LEFT JOIN after the join
--    with the assignment. events@v3's inner joins left DuckDB free to join
--    the events with the windows first, on the event name alone: with 20
--    experiments each event met 20 windows before the assignment reduced
--    them (156M rows for 7.8M events, 28 s instead of 2). A LEFT JOIN is
--    not reordered; rows of experiments that do not use the event keep a
--    NULL window and are left out of both grouping sets.
--  * event_pre counts with one aggregate: h is NULL for a NULL event_id
--    (such rows cannot be duplicates), so count(*) > 1 finds the repeated
--    hashes and also gives the per-name counts.
-- The rest is events@v3:
--
-- Rules (events@v2's): a row is null_keys when ts or unit_id is NULL;
-- otherwise duplicate when another row with the same event_id sorts before
-- it by (ts, unit_id, metric, value NULLS FIRST) among the rows that are
-- not null_keys; otherwise invalid_value when its value is NaN, infinite or
-- too large for fixed point; otherwise valid, with v = round(coalesce(value,
-- 1) * scale) as BIGINT.
--
-- Four statements:
--  1. event_pre, one scan of the events in use, two grouping sets: the
--     hashes of event_ids that occur more than once (is_dup; every copy of
--     a duplicated event_id has such a hash, a collision only adds a
--     candidate), and the row counts per (metric, null_keys, invalid value)
--     as if no row were a duplicate.
--  2. event_cand: the candidate rows (their hash is a duplicate's),
--     classified by the duplicate window over (event_id, null_keys).
--     Empty, and not scanned, when there are no duplicates.
--  3. event_names: the counts per (metric, reason): statement 1's, with each
--     candidate's reason without duplicates replaced by its real one.
--  4. event_units: the valid rows (candidates with their real reason) joined
--     to the assigned units (n_variants = 1) on unit_id, then to the
--     attribution windows in use: a window is an (experiment, event,
--     attribution length) numbered by the caller. Two grouping sets:
--       kind 1, per (window, bucket): where the unit's valid events fall:
--         1 before exposure, 2 at or after the window end, 3 after the
--         attribution window, 4 attributed;
--       kind 2, per (window, uid): the attributed count and sum, and the
--         count and sum over [exposure - lookback, exposure) for CUPED;
--         units with none of these events are left out (they have the
--         values of a unit without events).
-- Parameters: event_files, used_event (the event names in use), scale,
-- exp_end_us, exp_lookback_us, win_exp_no, win_event, win_attr_us.
CREATE TEMP TABLE event_pre AS
WITH src AS (
    SELECT
        {{col .Events "metric"}} AS metric,
        CASE WHEN {{col .Events "event_id"}} IS NOT NULL THEN hash({{col .Events "event_id"}}) END AS h,
        ({{col .Events "ts"}} IS NULL OR {{col .Events "unit_id"}} IS NULL) AS null_keys,
        coalesce(NOT isfinite(CAST({{col .Events "value"}} AS DOUBLE)) OR abs(CAST({{col .Events "value"}} AS DOUBLE) * $scale) >= 9.2e18, false) AS invalid
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
)
SELECT
    grouping(h) = 0 AS is_dup,
    h,
    metric,
    null_keys,
    invalid,
    count(*) AS n
FROM src
GROUP BY GROUPING SETS ((h), (metric, null_keys, invalid))
HAVING grouping(h) = 1 OR (h IS NOT NULL AND count(*) > 1);

CREATE TEMP TABLE event_cand AS
WITH src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        {{col .Events "event_id"}} AS event_id,
        hash({{col .Events "event_id"}}) AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
)
SELECT
    metric,
    unit_id,
    ts_us,
    value,
    ts_us IS NULL OR unit_id IS NULL AS null_keys,
    coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false) AS invalid,
    CASE
        WHEN ts_us IS NULL OR unit_id IS NULL THEN 'null_keys'
        WHEN event_id IS NOT NULL AND row_number() OVER (
            PARTITION BY event_id, (ts_us IS NULL OR unit_id IS NULL)
            ORDER BY ts_us, unit_id, metric, value NULLS FIRST
        ) > 1 THEN 'duplicate'
        WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
    END AS reason
FROM src
SEMI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h;

CREATE TEMP TABLE event_names AS
WITH counted AS (
    SELECT metric, null_keys, invalid, n FROM event_pre WHERE NOT is_dup
    UNION ALL
    SELECT metric, null_keys, invalid, -1 FROM event_cand
),
naive AS (
    SELECT
        metric,
        CASE WHEN null_keys THEN 'null_keys' WHEN invalid THEN 'invalid_value' END AS reason,
        n
    FROM counted
    UNION ALL
    SELECT metric, reason, 1 FROM event_cand
)
SELECT metric, reason, sum(n) AS n
FROM naive
GROUP BY metric, reason;

CREATE TEMP TABLE event_units AS
WITH exps AS (
    SELECT
        generate_subscripts($exp_end_us, 1) AS exp_no,
        unnest($exp_end_us) AS end_us,
        unnest($exp_lookback_us) AS lookback_us
),
windows AS (
    SELECT w.*, x.end_us, x.lookback_us
    FROM (
        SELECT
            generate_subscripts($win_event, 1) AS win_no,
            unnest($win_exp_no) AS exp_no,
            unnest($win_event) AS event,
            unnest($win_attr_us) AS attr_us
    ) AS w
    JOIN exps AS x ON x.exp_no = w.exp_no
),
src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        hash({{col .Events "event_id"}}) AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
valid AS (
    SELECT metric, unit_id, ts_us, CAST(round(coalesce(value, 1.0) * $scale) AS BIGINT) AS v
    FROM src
    ANTI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
    WHERE ts_us IS NOT NULL AND unit_id IS NOT NULL
      AND NOT coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false)
    UNION ALL
    SELECT metric, unit_id, ts_us, CAST(round(coalesce(value, 1.0) * $scale) AS BIGINT) FROM event_cand WHERE reason IS NULL
),
joined AS (
    SELECT
        w.win_no,
        a.uid,
        CASE
            WHEN w.win_no IS NULL THEN NULL
            WHEN e.ts_us < a.exposure_us THEN 1
            WHEN e.ts_us >= w.end_us THEN 2
            WHEN e.ts_us >= a.exposure_us + w.attr_us THEN 3
            ELSE 4
        END AS bucket,
        coalesce(e.ts_us < a.exposure_us AND e.ts_us >= a.exposure_us - w.lookback_us, false) AS pre,
        e.v
    FROM valid AS e
    JOIN assignment AS a ON a.unit_id = e.unit_id AND a.n_variants = 1
    LEFT JOIN windows AS w ON w.exp_no = a.exp_no AND w.event = e.metric
),
pairs AS MATERIALIZED (
    SELECT
        win_no,
        uid,
        count(*) AS n,
        count(*) FILTER (WHERE bucket = 1) AS n1,
        count(*) FILTER (WHERE bucket = 2) AS n2,
        count(*) FILTER (WHERE bucket = 3) AS n3,
        count(*) FILTER (WHERE bucket = 4) AS cnt,
        sum(v) FILTER (WHERE bucket = 4) AS total,
        count(*) FILTER (WHERE pre) AS pre_cnt,
        sum(v) FILTER (WHERE pre) AS pre_total
    FROM joined
    GROUP BY win_no, uid
),
windows_total AS (
    SELECT
        win_no,
        CAST(sum(n1) AS BIGINT) AS n1,
        CAST(sum(n2) AS BIGINT) AS n2,
        CAST(sum(n3) AS BIGINT) AS n3,
        CAST(sum(cnt) AS BIGINT) AS n4,
        sum(total) AS total,
        CAST(sum(pre_cnt) AS BIGINT) AS pre_cnt,
        sum(pre_total) AS pre_total
    FROM pairs
    WHERE win_no IS NOT NULL
    GROUP BY win_no
),
buckets AS (
    SELECT 1 AS kind, win_no, 1 AS bucket, CAST(NULL AS BIGINT) AS uid, n1 AS n, CAST(0 AS BIGINT) AS cnt, CAST(NULL AS HUGEINT) AS total, pre_cnt, pre_total FROM windows_total WHERE n1 > 0
    UNION ALL
    SELECT 1, win_no, 2, NULL, n2, 0, NULL, 0, NULL FROM windows_total WHERE n2 > 0
    UNION ALL
    SELECT 1, win_no, 3, NULL, n3, 0, NULL, 0, NULL FROM windows_total WHERE n3 > 0
    UNION ALL
    SELECT 1, win_no, 4, NULL, n4, n4, total, 0, NULL FROM windows_total WHERE n4 > 0
)
SELECT * FROM buckets
UNION ALL
SELECT 2 AS kind, win_no, CAST(NULL AS INTEGER) AS bucket, uid, n, cnt, total, pre_cnt, pre_total
FROM pairs
WHERE win_no IS NOT NULL AND (cnt > 0 OR pre_cnt > 0);

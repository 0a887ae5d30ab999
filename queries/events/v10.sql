-- events v10: events@v7 with the per-window, per-unit aggregate of
-- event_units grouped once (issue 18, many experiments in one pass). Its
-- input rows are (event, experiment-unit) pairs: in a nightly pass of 20
-- experiments each valid event meets about two assigned units, and
-- events@v7 put every such row into two hash tables (GROUPING SETS
-- ((win_no, bucket), (win_no, uid))). Here every joined row goes into the
-- (win_no, uid) table only, which also counts the rows of each bucket; the
-- per-(window, bucket) rows (kind 1) are sums of those counts over the
-- units, and the per-unit rows (kind 2) are the units with an attributed
-- or a pre-period event, as before. A pre-period event is always in bucket
-- 1 (before exposure), so bucket 1 carries the pre-period sums and the
-- others 0 and NULL, as their groups did. The fixed-point value v is
-- computed once per valid event, before the join (it depends on the event
-- only; valid events are finite and below 9.2e18 after scaling, so the cast
-- cannot fail). Same tables, rows and column types as events@v7; the other
-- statements are events@v7's, whose text follows up to event_units.
SET disabled_optimizers = 'build_side_probe_side';
-- events v6: events@v5, with the blank-key test made cheap, as in traces@v7:
--   CASE WHEN x >= '!' THEN false ELSE trim(x, ...) = '' END
-- instead of trim(x, ...) = '' for unit_id and metric, the same value for
-- every x (NULL included) with trim run only on strings that sort before
-- '!'. events@v5 ran trim twice per event row in event_pre and once more
-- in event_units (about 0.1-0.3 us each; 3 x 100M at 10M units). Same
-- statements, tables, rows and counts as events@v5, whose text follows.
-- events v5: events@v4 with unit-keyed rules, for private releases (no unit's
-- rows can remove or change another unit's rows) and for honest keys:
--  * duplicates are copies of an event_id WITHIN one unit: the duplicate
--    hash is hash(unit_id, event_id) and the duplicate window partitions by
--    (unit_id, event_id), where events@v4 used event_id alone, so that one
--    unit reusing another's event_ids removed that unit's events;
--  * a row whose unit_id is NULL, empty or only whitespace belongs to no
--    unit: reason 'no_unit' (events@v4 made an empty unit_id a pseudo-unit);
--  * a row whose metric is NULL, empty or only whitespace cannot belong to
--    any metric: reason 'null_metric', counted under metric NULL (events@v4
--    never read such rows, so they vanished without a count);
--  * event_names also gives, per (metric, reason), the number of distinct
--    units with at least one such row (units), the per-unit form of each
--    quality gate that a private run releases with a sensitivity of one
--    unit per event name. For null_keys, invalid_value and null_metric the
--    rows are counted by their class before duplicates are resolved (a
--    unit whose invalid row is a copy still has an invalid row); for
--    duplicate, by the resolved class.
-- Classes, first rule that applies: no_unit, null_keys (NULL ts),
-- null_metric, duplicate (another copy of the (unit_id, event_id) sorts
-- before it by (ts, metric, value NULLS FIRST)), invalid_value (NaN,
-- infinite or too large for fixed point); otherwise valid with
-- v = round(coalesce(value, 1) * scale) as BIGINT.
-- The four statements are events@v4's (event_pre, event_cand, event_names,
-- event_units), with these keys.
-- Parameters: event_files, used_event (the event names in use), scale,
-- exp_end_us, exp_lookback_us, win_exp_no, win_event, win_attr_us.
CREATE TEMP TABLE event_pre AS
WITH raw AS (
    SELECT
        {{col .Events "metric"}} AS metric,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "event_id"}} AS event_id,
        {{col .Events "ts"}} IS NULL AS null_ts,
        ({{col .Events "unit_id"}} IS NULL OR CASE WHEN {{col .Events "unit_id"}} >= '!' THEN false ELSE trim({{col .Events "unit_id"}}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS no_unit,
        ({{col .Events "metric"}} IS NULL OR CASE WHEN {{col .Events "metric"}} >= '!' THEN false ELSE trim({{col .Events "metric"}}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS null_metric,
        coalesce(NOT isfinite(CAST({{col .Events "value"}} AS DOUBLE)) OR abs(CAST({{col .Events "value"}} AS DOUBLE) * $scale) >= 9.2e18, false) AS invalid
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
       OR {{col .Events "metric"}} IS NULL OR CASE WHEN {{col .Events "metric"}} >= '!' THEN false ELSE trim({{col .Events "metric"}}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
),
src AS (
    SELECT
        CASE WHEN null_metric THEN NULL ELSE metric END AS metric,
        unit_id,
        no_unit,
        CASE WHEN event_id IS NOT NULL AND NOT no_unit AND NOT null_metric THEN hash(unit_id, event_id) END AS h,
        CASE
            WHEN no_unit THEN 'no_unit'
            WHEN null_ts THEN 'null_keys'
            WHEN null_metric THEN 'null_metric'
            WHEN invalid THEN 'invalid_value'
        END AS naive
    FROM raw
)
SELECT
    grouping(h) = 0 AS is_dup,
    h,
    metric,
    naive,
    count(*) AS n,
    count(DISTINCT unit_id) FILTER (WHERE naive IN ('null_keys', 'null_metric', 'invalid_value')) AS units
FROM src
GROUP BY GROUPING SETS ((h), (metric, naive))
HAVING grouping(h) = 1 OR (h IS NOT NULL AND count(*) > 1);

CREATE TEMP TABLE event_cand AS
WITH src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        {{col .Events "event_id"}} AS event_id,
        hash({{col .Events "unit_id"}}, {{col .Events "event_id"}}) AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
      AND {{col .Events "event_id"}} IS NOT NULL
      AND {{col .Events "unit_id"}} IS NOT NULL AND NOT CASE WHEN {{col .Events "unit_id"}} >= '!' THEN false ELSE trim({{col .Events "unit_id"}}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
),
classed AS (
    SELECT
        src.*,
        coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false) AS invalid
    FROM src
    SEMI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
)
SELECT
    metric,
    unit_id,
    ts_us,
    value,
    CASE WHEN ts_us IS NULL THEN 'null_keys' WHEN invalid THEN 'invalid_value' END AS naive,
    CASE
        WHEN ts_us IS NULL THEN 'null_keys'
        WHEN row_number() OVER (
            PARTITION BY unit_id, event_id, ts_us IS NULL
            ORDER BY ts_us, metric, value NULLS FIRST
        ) > 1 THEN 'duplicate'
        WHEN invalid THEN 'invalid_value'
    END AS reason
FROM classed;

CREATE TEMP TABLE event_names AS
WITH counted AS (
    SELECT metric, naive AS reason, n FROM event_pre WHERE NOT is_dup
    UNION ALL
    SELECT metric, naive, -1 FROM event_cand
    UNION ALL
    SELECT metric, reason, 1 FROM event_cand
),
units AS (
    SELECT metric, naive AS reason, units FROM event_pre WHERE NOT is_dup AND naive IN ('null_keys', 'null_metric', 'invalid_value')
    UNION ALL
    SELECT metric, 'duplicate', count(DISTINCT unit_id) FROM event_cand WHERE reason = 'duplicate' GROUP BY metric
),
rows AS (
    SELECT metric, reason, sum(n) AS n FROM counted GROUP BY metric, reason
)
SELECT r.metric, r.reason, r.n, u.units
FROM rows AS r
LEFT JOIN units AS u ON u.metric IS NOT DISTINCT FROM r.metric AND u.reason IS NOT DISTINCT FROM r.reason;

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
        CASE WHEN {{col .Events "event_id"}} IS NOT NULL THEN hash({{col .Events "unit_id"}}, {{col .Events "event_id"}}) END AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
valid AS (
    SELECT metric, unit_id, ts_us, CAST(round(coalesce(value, 1.0) * $scale) AS BIGINT) AS v
    FROM src
    ANTI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
    WHERE ts_us IS NOT NULL AND unit_id IS NOT NULL AND NOT CASE WHEN unit_id >= '!' THEN false ELSE trim(unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
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
RESET disabled_optimizers;

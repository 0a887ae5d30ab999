-- events v12: events@v7 with DuckDB's join order optimizer disabled as well
-- as its build/probe side swap (SET disabled_optimizers =
-- 'build_side_probe_side,join_order' ... RESET), so that every join runs in
-- the order the text gives (issue 18, part 5). In event_units the text
-- joins the valid events to the assignment, then LEFT JOINs the attribution
-- windows; the filter win_no IS NOT NULL (in HAVING) lets DuckDB turn that
-- LEFT JOIN into an inner join, and with many experiments its join order
-- optimizer then sometimes joined the windows first: at 20 experiments,
-- 7.8M events times their 20 experiments' windows, 156M rows, before the
-- join to the assignment (measured in two of four profiles of events@v7;
-- 3-7 times the statement's time). Without the optimizer the events meet
-- the assignment first (15.6M rows), always. Every join in this template
-- is written JOIN ... ON in the order it should run. The setting chooses
-- plans, never results. Same statements, tables, rows and counts as
-- events@v7, whose text follows, with its SET line replaced by this one.
SET disabled_optimizers = 'build_side_probe_side,join_order';
-- events v7: events@v6 between SET disabled_optimizers = 'build_side_probe_side'
-- and RESET disabled_optimizers (issue 18). DuckDB's build/probe side
-- optimizer swaps a hash join's children so that the side it estimates to
-- be smaller is built; on these statements its estimates put the hash table
-- on the large side (measured at 1M and 10M units: with it disabled the
-- unit-keyed set took about two thirds of the CPU). With it disabled the
-- joins keep the sides the text gives. The setting chooses plans, never
-- results. It is a statement of its own (the pipeline runs a template
-- statement by statement on one connection), and the RESET at the end
-- restores DuckDB's default, so the templates that follow are planned as
-- before. Same statements, tables, rows and counts as events@v6, whose text
-- follows unchanged.
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
    SELECT metric, unit_id, ts_us, value
    FROM src
    ANTI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
    WHERE ts_us IS NOT NULL AND unit_id IS NOT NULL AND NOT CASE WHEN unit_id >= '!' THEN false ELSE trim(unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
      AND NOT coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false)
    UNION ALL
    SELECT metric, unit_id, ts_us, value FROM event_cand WHERE reason IS NULL
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
        CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT) AS v
    FROM valid AS e
    JOIN assignment AS a ON a.unit_id = e.unit_id AND a.n_variants = 1
    LEFT JOIN windows AS w ON w.exp_no = a.exp_no AND w.event = e.metric
)
SELECT
    CASE WHEN grouping(uid) = 0 THEN 2 ELSE 1 END AS kind,
    win_no,
    bucket,
    uid,
    count(*) AS n,
    count(*) FILTER (WHERE bucket = 4) AS cnt,
    sum(v) FILTER (WHERE bucket = 4) AS total,
    count(*) FILTER (WHERE pre) AS pre_cnt,
    sum(v) FILTER (WHERE pre) AS pre_total
FROM joined
GROUP BY GROUPING SETS ((win_no, bucket), (win_no, uid))
HAVING win_no IS NOT NULL AND (grouping(uid) = 1 OR count(*) FILTER (WHERE bucket = 4 OR pre) > 0);
RESET disabled_optimizers;

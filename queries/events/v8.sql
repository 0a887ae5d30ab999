-- events v8: events@v7 for events files that declare, in the spec,
-- inputs.sorted_by.events: [unit_id, event_id] (issue 18). Before any SQL
-- Verity checks that guarantee exactly (intake.CheckSorted: every file's
-- rows, those with a NULL unit_id or event_id aside, in non-decreasing
-- (unit_id, event_id) byte order, and no two files' key ranges
-- overlapping), so every copy of a (unit_id, event_id) lies next to another
-- in one file, and the check's streaming comparison of neighbouring rows
-- finds every key that has more than one row. Those keys are bound as
-- $dup_unit and $dup_event (a superset of what events@v7's duplicate
-- hashes find: the check also sees rows of unused or blank metrics, whose
-- extra candidates the duplicate window classifies as events@v7 would).
-- So events@v8 drops events@v7's hash aggregate over every event id
-- (event_pre keeps only the per-(metric, class) counts) and joins the
-- candidates and the anti-join on the real keys instead of their hashes.
-- Same tables, rows and counts as events@v7 on any input that passes the
-- check; the check fails the run on any other. Classes, rules and the
-- build/probe setting are events@v7's.
-- Parameters: event_files, used_event, scale, exp_end_us, exp_lookback_us,
-- win_exp_no, win_event, win_attr_us, dup_unit, dup_event (the checked
-- duplicate keys, in pairs).
SET disabled_optimizers = 'build_side_probe_side';
CREATE TEMP TABLE event_dupkeys AS
SELECT CAST(unnest($dup_unit) AS VARCHAR) AS unit_id, CAST(unnest($dup_event) AS VARCHAR) AS event_id;
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
        CASE
            WHEN no_unit THEN 'no_unit'
            WHEN null_ts THEN 'null_keys'
            WHEN null_metric THEN 'null_metric'
            WHEN invalid THEN 'invalid_value'
        END AS naive
    FROM raw
)
SELECT
    false AS is_dup,
    metric,
    naive,
    count(*) AS n,
    count(DISTINCT unit_id) FILTER (WHERE naive IN ('null_keys', 'null_metric', 'invalid_value')) AS units
FROM src
GROUP BY metric, naive;

CREATE TEMP TABLE event_cand AS
WITH src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        {{col .Events "event_id"}} AS event_id
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
    SEMI JOIN event_dupkeys AS d ON d.unit_id = src.unit_id AND d.event_id = src.event_id
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
        {{col .Events "event_id"}} AS event_id
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
valid AS (
    SELECT metric, unit_id, ts_us, value
    FROM src
    ANTI JOIN event_dupkeys AS d ON d.unit_id = src.unit_id AND d.event_id = src.event_id
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

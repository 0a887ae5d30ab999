-- events v9: events@v7 with metric filters on declared event property
-- columns (issue 20 item 3). The same statements, tables, rows and counts as
-- events@v7 (whose text follows, with these changes) for a spec without
-- filters; events@v7 stays as it was for the specs that pin it.
--  * The spec's inputs.event_properties, VARCHAR columns of the events files
--    checked before any SQL, are rendered in declared order as p0, p1, ...
--    (.Props: validated identifiers only) and carried by event_cand and
--    event_units' valid rows.
--  * A window is now an (experiment, event, attribution length, filter),
--    numbered by the caller. $flt_win, $flt_prop and $flt_value list its
--    filter as rows (window, property position from 0, value); a window
--    with no row for a property does not constrain it. An event passes a
--    window's filter (keep) when, for every constrained property, its value
--    is one of the listed values: list_contains, exact equality of the
--    strings; a NULL property never passes.
--  * event_units' kind 1 rows (where the unit's events fall, which quality
--    reports per (experiment, event)) still count every valid event of the
--    event name, filtered or not: quality's counts are of event names. Kind
--    2 rows (the per-unit attributed and pre-period count and sum) count the
--    events that pass the filter only, and a unit appears when it has such
--    an event.
-- Parameters: event_files, used_event, scale, exp_end_us, exp_lookback_us,
-- win_exp_no, win_event, win_attr_us, flt_win, flt_prop, flt_value.
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
        hash({{col .Events "unit_id"}}, {{col .Events "event_id"}}) AS h{{range $i, $p := .Props}},
        {{ident $p}} AS p{{$i}}{{end}}
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
    value,{{range $i, $p := .Props}}
    p{{$i}},{{end}}
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
filter_rows AS (
    SELECT unnest(CAST($flt_win AS BIGINT[])) AS win_no, unnest(CAST($flt_prop AS BIGINT[])) AS prop_no, unnest(CAST($flt_value AS VARCHAR[])) AS value
),
filters AS (
    SELECT
        win_no{{range $i, $p := .Props}},
        list(value) FILTER (WHERE prop_no = {{$i}}) AS f{{$i}}{{end}}
    FROM filter_rows
    GROUP BY win_no
),
fwindows AS (
    SELECT w.*{{range $i, $p := .Props}}, f.f{{$i}}{{end}}
    FROM windows AS w
    LEFT JOIN filters AS f ON f.win_no = w.win_no
),
src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        CASE WHEN {{col .Events "event_id"}} IS NOT NULL THEN hash({{col .Events "unit_id"}}, {{col .Events "event_id"}}) END AS h{{range $i, $p := .Props}},
        {{ident $p}} AS p{{$i}}{{end}}
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
valid AS (
    SELECT metric, unit_id, ts_us, value{{range $i, $p := .Props}}, p{{$i}}{{end}}
    FROM src
    ANTI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
    WHERE ts_us IS NOT NULL AND unit_id IS NOT NULL AND NOT CASE WHEN unit_id >= '!' THEN false ELSE trim(unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
      AND NOT coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false)
    UNION ALL
    SELECT metric, unit_id, ts_us, value{{range $i, $p := .Props}}, p{{$i}}{{end}} FROM event_cand WHERE reason IS NULL
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
        (w.win_no IS NOT NULL{{range $i, $p := .Props}}
            AND (w.f{{$i}} IS NULL OR coalesce(list_contains(w.f{{$i}}, e.p{{$i}}), false)){{end}}) AS keep,
        CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT) AS v
    FROM valid AS e
    JOIN assignment AS a ON a.unit_id = e.unit_id AND a.n_variants = 1
    LEFT JOIN fwindows AS w ON w.exp_no = a.exp_no AND w.event = e.metric
)
SELECT
    CASE WHEN grouping(uid) = 0 THEN 2 ELSE 1 END AS kind,
    win_no,
    bucket,
    uid,
    count(*) AS n,
    count(*) FILTER (WHERE bucket = 4 AND keep) AS cnt,
    sum(v) FILTER (WHERE bucket = 4 AND keep) AS total,
    count(*) FILTER (WHERE pre AND keep) AS pre_cnt,
    sum(v) FILTER (WHERE pre AND keep) AS pre_total
FROM joined
GROUP BY GROUPING SETS ((win_no, bucket), (win_no, uid))
HAVING win_no IS NOT NULL AND (grouping(uid) = 1 OR count(*) FILTER (WHERE (bucket = 4 OR pre) AND keep) > 0);
RESET disabled_optimizers;

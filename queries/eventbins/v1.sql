-- eventbins v1: the one-pass, mergeable inputs of event-level quantile
-- metrics (over: events; issue 20 item 1; stats/quantileeventbins.go). Per
-- experiment, cohort, variant and marked metric ($m_evq, one boolean per
-- metric in $m_name's order, as unit_metric_defs numbers them), one row per
-- distinct event value v with:
--   events       the attributed events of the arm with value v;
--   firsts       of them, those first in their unit's value order (pos = 1);
--   pos_sum      the sum of 2*pos - 1 over them;
--   unit_events  the sum, over them, of their unit's number of attributed
--                events n_i;
-- where pos = 1..n_i is an event's position in its unit's events ordered by
-- value (ties in any order: every sum above is the same for any order of
-- equal values). The events are exactly those the metric's per-unit count
-- in event_units (kind 2 rows of its window) counts: the rows of the events
-- template's valid set (events@v5, v6, v7 or v9: the same NULL-key, blank
-- unit, invalid-value and unit-keyed duplicate rules, reusing its tables
-- event_pre and event_cand), of an assigned unit (n_variants = 1) of the
-- metric's experiment, with exposure <= ts < min(end, exposure + the
-- window's attribution length) (bucket 4), passing the window's property
-- filter (events@v9's rule; no filter without .Props). v =
-- round(coalesce(value, 1) * scale) as BIGINT, then clamped event by event
-- to the metric's bounds $m_evq_lo, $m_evq_hi (fixed point). The caller
-- checks each cell's bins against sufstats@v3's cell of the same metric,
-- which the caller makes the unclamped per-unit event count: sum(events) *
-- scale = sum x and sum(unit_events) * scale^2 = sum x^2.
-- Bins add value by value over disjoint sets of units (leaves into parent
-- cohorts, shards into a merged run). Only marked metrics have rows; a cell
-- without events has none.
-- Parameters: m_evq, m_evq_lo, m_evq_hi, event_files, scale, exp_end_us,
-- win_exp_no, win_event, win_attr_us, flt_win, flt_prop, flt_value.
WITH marks AS (
    SELECT
        generate_subscripts($m_evq, 1) AS metric_no,
        unnest($m_evq) AS evq,
        unnest($m_evq_lo) AS lo,
        unnest($m_evq_hi) AS hi
),
qdefs AS (
    SELECT d.metric_no, d.exp_no, d.experiment_id, d.metric, d.win_x, CAST(k.lo AS BIGINT) AS lo, CAST(k.hi AS BIGINT) AS hi
    FROM unit_metric_defs AS d
    JOIN marks AS k ON k.metric_no = d.metric_no
    WHERE k.evq
),
exps AS (
    SELECT generate_subscripts($exp_end_us, 1) AS exp_no, unnest($exp_end_us) AS end_us
),
windows AS (
    SELECT w.*, x.end_us
    FROM (
        SELECT
            generate_subscripts($win_event, 1) AS win_no,
            unnest($win_exp_no) AS exp_no,
            unnest($win_event) AS event,
            unnest($win_attr_us) AS attr_us
    ) AS w
    JOIN exps AS x ON x.exp_no = w.exp_no
    WHERE w.win_no IN (SELECT win_x FROM qdefs)
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
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT event FROM windows)
),
valid AS (
    SELECT metric, unit_id, ts_us, value{{range $i, $p := .Props}}, p{{$i}}{{end}}
    FROM src
    ANTI JOIN (SELECT h FROM event_pre WHERE is_dup) AS d ON d.h = src.h
    WHERE ts_us IS NOT NULL AND unit_id IS NOT NULL AND NOT CASE WHEN unit_id >= '!' THEN false ELSE trim(unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END
      AND NOT coalesce(NOT isfinite(value) OR abs(value * $scale) >= 9.2e18, false)
    UNION ALL
    SELECT metric, unit_id, ts_us, value{{range $i, $p := .Props}}, p{{$i}}{{end}} FROM event_cand
    WHERE reason IS NULL AND metric IN (SELECT DISTINCT event FROM windows)
),
attributed AS (
    SELECT
        d.metric_no,
        a.uid,
        a.cohort,
        a.variant,
        greatest(least(CAST(round(coalesce(e.value, 1.0) * $scale) AS BIGINT), d.hi), d.lo) AS v
    FROM valid AS e
    JOIN assignment AS a ON a.unit_id = e.unit_id AND a.n_variants = 1
    JOIN fwindows AS w ON w.exp_no = a.exp_no AND w.event = e.metric
    JOIN qdefs AS d ON d.win_x = w.win_no
    WHERE e.ts_us >= a.exposure_us AND e.ts_us < w.end_us AND e.ts_us < a.exposure_us + w.attr_us{{range $i, $p := .Props}}
      AND (w.f{{$i}} IS NULL OR coalesce(list_contains(w.f{{$i}}, e.p{{$i}}), false)){{end}}
),
ranked AS (
    SELECT
        metric_no,
        cohort,
        variant,
        v,
        row_number() OVER (PARTITION BY metric_no, uid ORDER BY v) AS pos,
        count(*) OVER (PARTITION BY metric_no, uid) AS n_i
    FROM attributed
)
SELECT
    d.experiment_id,
    r.cohort,
    r.variant,
    d.metric,
    r.v AS value,
    CAST(count(*) AS BIGINT) AS events,
    CAST(count(*) FILTER (WHERE r.pos = 1) AS BIGINT) AS firsts,
    CAST(sum(2 * r.pos - 1) AS BIGINT) AS pos_sum,
    CAST(sum(r.n_i) AS BIGINT) AS unit_events
FROM ranked AS r
JOIN qdefs AS d ON d.metric_no = r.metric_no
GROUP BY d.experiment_id, r.cohort, r.variant, d.metric, r.v
ORDER BY experiment_id, cohort, variant, metric, value

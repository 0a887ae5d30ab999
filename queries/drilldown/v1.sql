-- drilldown v1: per-slice sufficient statistics for drill-downs on trace
-- dimensions (issue 21 item 2). A unit's slice of a dimension is the value
-- of that column on its first-exposure row: among the unit's trace rows of
-- the experiment at its exposure instant (ts = exposure_us of assignment@v4
-- or v5) with its variant and, when the spec pins one, the pinned
-- persona-algorithm version, the smallest value as text (byte order), NULL
-- only when every such row has NULL. A unit whose rows at that instant
-- disagree (two values, or a value and NULL) is tied: it is counted
-- (n_tied) and kept in the smallest value's slice. Only units assigned to
-- exactly one variant are sliced, as sufstats counts them. The dimension
-- columns are rendered as identifiers (validated by the spec and checked
-- against every trace file's schema) and cast to VARCHAR.
-- Output, per experiment and dimension (dim_no: the position in the
-- spec's list, from 0), ordered:
--   kind 0  one row: the dimension's distinct values over its units
--           (n_values, NULL counted as one value), tied units, units;
--   kind 1  only when n_values <= the experiment's drill_max: per value
--           (value_null marks the NULL slice; value is then ''), variant
--           and metric, n, n_tied and sufstats@v3's sums and maxima
--           (units without events at x0, y0, c = x0), so that summing a
--           dimension's cells over its values gives the (all) cells.
-- A term (n - n_with_events) * a0 * b0 that would not fit in 2^126 is left
-- out: the caller's overflow proof then rejects the cell.
-- Parameters: trace_files, exp_ids, exp_persona_version, drill_exp,
-- drill_max (parallel: the experiments that drill down and their caps).
CREATE TEMP TABLE drill_units AS
WITH exps AS (
    SELECT
        generate_subscripts($exp_ids, 1) AS exp_no,
        unnest($exp_ids) AS experiment_id,
        unnest($exp_persona_version) AS persona_version
),
wanted AS (
    SELECT exp_no, experiment_id, persona_version
    FROM exps
    WHERE list_contains($drill_exp, experiment_id)
),
src AS (
    SELECT
        epoch_us({{col .Traces "ts"}}) AS ts_us,
        {{col .Traces "unit_id"}} AS unit_id,
        {{col .Traces "experiment_id"}} AS experiment_id,
        {{col .Traces "variant"}} AS variant,
        {{col .Traces "persona_algo_version"}} AS persona_algo_version
{{- range $i, $c := .Drill}},
        CAST({{ident $c}} AS VARCHAR) AS d{{$i}}
{{- end}}
    FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)
),
first_rows AS (
    SELECT a.exp_no, a.uid, a.variant
{{- range $i, $c := .Drill}}, s.d{{$i}}{{end}}
    FROM src AS s
    JOIN wanted AS w ON w.experiment_id = s.experiment_id
    JOIN assignment AS a ON a.exp_no = w.exp_no AND a.unit_id = s.unit_id AND a.n_variants = 1
        AND a.exposure_us = s.ts_us AND a.variant = s.variant
    WHERE w.persona_version = '' OR s.persona_algo_version = w.persona_version
)
SELECT
    exp_no,
    uid,
    variant
{{- range $i, $c := .Drill}},
    min(d{{$i}}) AS v{{$i}},
    count(DISTINCT d{{$i}}) + CASE WHEN count(d{{$i}}) > 0 AND count(d{{$i}}) < count(*) THEN 1 ELSE 0 END > 1 AS t{{$i}}
{{- end}}
FROM first_rows
GROUP BY exp_no, uid, variant;

CREATE TEMP TABLE drill_long AS
{{- range $i, $c := .Drill}}
{{- if $i}}
UNION ALL{{end}}
SELECT exp_no, uid, variant, {{$i}} AS dim_no, v{{$i}} AS value, t{{$i}} AS tied FROM drill_units
{{- end}};

WITH caps AS (
    SELECT x.exp_no, c.experiment_id, c.max_values
    FROM (SELECT unnest($drill_exp) AS experiment_id, unnest($drill_max) AS max_values) AS c
    JOIN (SELECT generate_subscripts($exp_ids, 1) AS exp_no, unnest($exp_ids) AS experiment_id) AS x
        ON x.experiment_id = c.experiment_id
),
dims AS (
    SELECT
        l.exp_no,
        l.dim_no,
        count(DISTINCT l.value) + max(CASE WHEN l.value IS NULL THEN 1 ELSE 0 END) AS n_values,
        count(*) FILTER (WHERE l.tied) AS n_tied,
        count(*) AS n
    FROM drill_long AS l
    GROUP BY l.exp_no, l.dim_no
),
ok_dims AS (
    SELECT d.exp_no, d.dim_no
    FROM dims AS d
    JOIN caps AS c ON c.exp_no = d.exp_no
    WHERE d.n_values <= c.max_values
),
units AS (
    SELECT l.*
    FROM drill_long AS l
    SEMI JOIN ok_dims AS o ON o.exp_no = l.exp_no AND o.dim_no = l.dim_no
),
unit_cells AS (
    SELECT exp_no, dim_no, value, variant, count(*) AS n, count(*) FILTER (WHERE tied) AS n_tied
    FROM units
    GROUP BY exp_no, dim_no, value, variant
),
ev_cells AS (
    SELECT
        l.exp_no, l.dim_no, l.value, l.variant, u.metric_no,
        count(*) AS n_e,
        sum(u.x) AS s_x,
        sum(u.x * u.x) AS s_x2,
        sum(u.y) AS s_y,
        sum(u.y * u.y) AS s_y2,
        sum(u.x * u.y) AS s_xy,
        sum(u.c) AS s_c,
        sum(u.c * u.c) AS s_c2,
        sum(u.x * u.c) AS s_xc,
        sum(u.y * u.c) AS s_yc,
        max(abs(u.x)) AS m_x,
        max(abs(u.y)) AS m_y,
        max(abs(u.c)) AS m_c
    FROM units AS l
    JOIN unit_values AS u ON u.uid = l.uid
    GROUP BY l.exp_no, l.dim_no, l.value, l.variant, u.metric_no
),
cells AS (
    SELECT
        d.experiment_id, c.dim_no, c.value, c.variant, d.metric, c.n, c.n_tied,
        CAST(c.n - coalesce(e.n_e, 0) AS HUGEINT) AS k,
        d.x0, d.y0,
        e.n_e, e.s_x, e.s_x2, e.s_y, e.s_y2, e.s_xy, e.s_c, e.s_c2, e.s_xc, e.s_yc, e.m_x, e.m_y, e.m_c
    FROM unit_cells AS c
    JOIN unit_metric_defs AS d ON d.exp_no = c.exp_no
    LEFT JOIN ev_cells AS e ON e.exp_no = c.exp_no AND e.dim_no = c.dim_no AND e.value IS NOT DISTINCT FROM c.value
        AND e.variant = c.variant AND e.metric_no = d.metric_no
),
out AS (
    SELECT
        c.experiment_id, d.dim_no, 0 AS kind, false AS value_null, '' AS value, '' AS variant, '' AS metric,
        CAST(d.n AS BIGINT) AS n, CAST(d.n_tied AS BIGINT) AS n_tied, CAST(d.n_values AS BIGINT) AS n_values,
        CAST(0 AS HUGEINT) AS sum_x, CAST(0 AS HUGEINT) AS sum_x2, CAST(0 AS HUGEINT) AS sum_y,
        CAST(0 AS HUGEINT) AS sum_y2, CAST(0 AS HUGEINT) AS sum_xy, CAST(0 AS HUGEINT) AS sum_c,
        CAST(0 AS HUGEINT) AS sum_c2, CAST(0 AS HUGEINT) AS sum_xc, CAST(0 AS HUGEINT) AS sum_yc,
        CAST(0 AS HUGEINT) AS max_abs_x, CAST(0 AS HUGEINT) AS max_abs_y, CAST(0 AS HUGEINT) AS max_abs_c
    FROM dims AS d
    JOIN caps AS c ON c.exp_no = d.exp_no
    UNION ALL
    SELECT
        experiment_id, dim_no, 1 AS kind, value IS NULL AS value_null, coalesce(value, '') AS value, variant, metric,
        CAST(n AS BIGINT) AS n, CAST(n_tied AS BIGINT) AS n_tied, CAST(0 AS BIGINT) AS n_values,
        coalesce(s_x, 0) + k * x0,
        coalesce(s_x2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END,
        coalesce(s_y, 0) + k * y0,
        coalesce(s_y2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(y0 AS DOUBLE)) * abs(CAST(y0 AS DOUBLE)) < 8.6e37 THEN k * y0 * y0 ELSE 0 END,
        coalesce(s_xy, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(y0 AS DOUBLE)) < 8.6e37 THEN k * x0 * y0 ELSE 0 END,
        coalesce(s_c, 0) + k * x0,
        coalesce(s_c2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END,
        coalesce(s_xc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END,
        coalesce(s_yc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(y0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * y0 * x0 ELSE 0 END,
        CASE WHEN k = 0 THEN m_x WHEN n_e IS NULL THEN abs(x0) ELSE greatest(m_x, abs(x0)) END,
        CASE WHEN k = 0 THEN m_y WHEN n_e IS NULL THEN abs(y0) ELSE greatest(m_y, abs(y0)) END,
        CASE WHEN k = 0 THEN m_c WHEN n_e IS NULL THEN abs(x0) ELSE greatest(m_c, abs(x0)) END
    FROM cells
)
SELECT *
FROM out
ORDER BY experiment_id, dim_no, kind, value_null, value, variant, metric

-- sufstats v3: sufstats@v2's result, exactly, from unit_metrics@v4: the
-- units with events come from the view unit_values (cohort and variant
-- looked up in the assignment by uid); every other assigned unit of a cell
-- has x = x0, y = y0, c = x0 and adds (n - n_with_events) times those
-- values, their squares and cross products, in exact integer arithmetic.
-- Output: per experiment, cohort, variant and metric, n and the HUGEINT
-- sums of x, x², y, y², xy, c, c², xc, yc, and max|x|, max|y|, max|c|, so
-- that the caller can prove no sum overflowed (n * max² < 2^126). A term
-- (n - n_with_events) * a0 * b0 that would not fit in 2^126 is left out:
-- the same proof then rejects the cell, as it would reject a wrapped sum.
-- No parameters: unit_metric_defs holds the metrics.
WITH ev_cells AS (
    SELECT
        u.metric_no,
        a.cohort,
        a.variant,
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
    FROM unit_values AS u
    JOIN assignment AS a ON a.uid = u.uid
    GROUP BY u.metric_no, a.cohort, a.variant
),
unit_cells AS (
    SELECT exp_no, cohort, variant, count(*) AS n
    FROM assignment
    WHERE n_variants = 1
    GROUP BY exp_no, cohort, variant
),
cells AS (
    SELECT
        d.experiment_id,
        c.cohort,
        c.variant,
        d.metric,
        c.n,
        CAST(c.n - coalesce(e.n_e, 0) AS HUGEINT) AS k,
        d.x0,
        d.y0,
        e.n_e, e.s_x, e.s_x2, e.s_y, e.s_y2, e.s_xy, e.s_c, e.s_c2, e.s_xc, e.s_yc, e.m_x, e.m_y, e.m_c
    FROM unit_cells AS c
    JOIN unit_metric_defs AS d ON d.exp_no = c.exp_no
    LEFT JOIN ev_cells AS e ON e.metric_no = d.metric_no AND e.cohort = c.cohort AND e.variant = c.variant
)
SELECT
    experiment_id,
    cohort,
    variant,
    metric,
    CAST(n AS BIGINT) AS n,
    coalesce(s_x, 0) + k * x0 AS sum_x,
    coalesce(s_x2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END AS sum_x2,
    coalesce(s_y, 0) + k * y0 AS sum_y,
    coalesce(s_y2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(y0 AS DOUBLE)) * abs(CAST(y0 AS DOUBLE)) < 8.6e37 THEN k * y0 * y0 ELSE 0 END AS sum_y2,
    coalesce(s_xy, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(y0 AS DOUBLE)) < 8.6e37 THEN k * x0 * y0 ELSE 0 END AS sum_xy,
    coalesce(s_c, 0) + k * x0 AS sum_c,
    coalesce(s_c2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END AS sum_c2,
    coalesce(s_xc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END AS sum_xc,
    coalesce(s_yc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(y0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * y0 * x0 ELSE 0 END AS sum_yc,
    CASE WHEN k = 0 THEN m_x WHEN n_e IS NULL THEN abs(x0) ELSE greatest(m_x, abs(x0)) END AS max_abs_x,
    CASE WHEN k = 0 THEN m_y WHEN n_e IS NULL THEN abs(y0) ELSE greatest(m_y, abs(y0)) END AS max_abs_y,
    CASE WHEN k = 0 THEN m_c WHEN n_e IS NULL THEN abs(x0) ELSE greatest(m_c, abs(x0)) END AS max_abs_c
FROM cells
ORDER BY experiment_id, cohort, variant, metric

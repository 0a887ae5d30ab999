-- crossmoments v1: cross-products between two metrics of one experiment,
-- per cohort and variant, for regression adjustment on another metric's
-- pre-period value (issue 21 item 3: variance_reduction covariates
-- pre_period:<metric>). For each requested (experiment, metric a, metric
-- b), over the units assigned to exactly one variant, the exact HUGEINT
-- sums of x_a·c_b, y_a·c_b and c_a·c_b, where a unit's x, y and c of a
-- metric are its row in the view unit_values (unit_metrics@v4/v5) or,
-- without one, the values of a unit without events (x0, y0, and c = x0:
-- sufstats@v3's rule), so that these sums and the two metrics' sufstats
-- cells describe the same units. Metric a's own moments and metric b's
-- Σc, Σc² are in their sufstats cells; only the cross-products are here.
-- Output: experiment, cohort, variant, metric_a, metric_b, n, sum_xc,
-- sum_yc, sum_cc, and the largest |x_a|, |y_a|, |c_a|, |c_b| of a unit
-- in the cell for the caller's overflow proof (n · max_a · max_b < 2^126).
-- A term (n - n_with_rows) · a0 · b0 that would not fit in 2^126 is left
-- out: the same proof then rejects the cell.
-- Parameters: cm_exp, cm_a, cm_b (parallel lists: experiment id and the
-- two metric names, as unit_metric_defs names them).
WITH req AS (
    SELECT generate_subscripts($cm_exp, 1) AS pair_no, unnest($cm_exp) AS experiment_id, unnest($cm_a) AS metric_a, unnest($cm_b) AS metric_b
),
pairs AS (
    SELECT
        r.pair_no, r.experiment_id, r.metric_a, r.metric_b, da.exp_no,
        da.metric_no AS no_a, db.metric_no AS no_b,
        da.x0 AS xa0, da.y0 AS ya0, db.x0 AS xb0
    FROM req AS r
    JOIN unit_metric_defs AS da ON da.experiment_id = r.experiment_id AND da.metric = r.metric_a
    JOIN unit_metric_defs AS db ON db.experiment_id = r.experiment_id AND db.metric = r.metric_b
),
va AS (
    SELECT p.pair_no, v.uid, v.x, v.y, v.c
    FROM pairs AS p
    JOIN unit_values AS v ON v.metric_no = p.no_a
),
vb AS (
    SELECT p.pair_no, v.uid, v.c
    FROM pairs AS p
    JOIN unit_values AS v ON v.metric_no = p.no_b
),
ab AS (
    SELECT
        coalesce(va.pair_no, vb.pair_no) AS pair_no,
        coalesce(va.uid, vb.uid) AS uid,
        va.x, va.y, va.c AS ca, vb.c AS cb
    FROM va
    FULL OUTER JOIN vb ON vb.pair_no = va.pair_no AND vb.uid = va.uid
),
ev_cells AS (
    SELECT
        ab.pair_no,
        a.cohort,
        a.variant,
        count(*) AS n_e,
        sum(coalesce(ab.x, p.xa0) * coalesce(ab.cb, p.xb0)) AS s_xc,
        sum(coalesce(ab.y, p.ya0) * coalesce(ab.cb, p.xb0)) AS s_yc,
        sum(coalesce(ab.ca, p.xa0) * coalesce(ab.cb, p.xb0)) AS s_cc,
        max(abs(coalesce(ab.x, p.xa0))) AS m_xa,
        max(abs(coalesce(ab.y, p.ya0))) AS m_ya,
        max(abs(coalesce(ab.ca, p.xa0))) AS m_ca,
        max(abs(coalesce(ab.cb, p.xb0))) AS m_cb
    FROM ab
    JOIN pairs AS p ON p.pair_no = ab.pair_no
    JOIN assignment AS a ON a.uid = ab.uid
    GROUP BY ab.pair_no, a.cohort, a.variant
),
unit_cells AS (
    SELECT exp_no, cohort, variant, count(*) AS n
    FROM assignment
    WHERE n_variants = 1
    GROUP BY exp_no, cohort, variant
),
cells AS (
    SELECT
        p.experiment_id, c.cohort, c.variant, p.metric_a, p.metric_b, c.n,
        CAST(c.n - coalesce(e.n_e, 0) AS HUGEINT) AS k,
        p.xa0, p.ya0, p.xb0,
        e.n_e, e.s_xc, e.s_yc, e.s_cc, e.m_xa, e.m_ya, e.m_ca, e.m_cb
    FROM pairs AS p
    JOIN unit_cells AS c ON c.exp_no = p.exp_no
    LEFT JOIN ev_cells AS e ON e.pair_no = p.pair_no AND e.cohort = c.cohort AND e.variant = c.variant
)
SELECT
    experiment_id,
    cohort,
    variant,
    metric_a,
    metric_b,
    CAST(n AS BIGINT) AS n,
    coalesce(s_xc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(xa0 AS DOUBLE)) * abs(CAST(xb0 AS DOUBLE)) < 8.6e37 THEN k * xa0 * xb0 ELSE 0 END AS sum_xc,
    coalesce(s_yc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(ya0 AS DOUBLE)) * abs(CAST(xb0 AS DOUBLE)) < 8.6e37 THEN k * ya0 * xb0 ELSE 0 END AS sum_yc,
    coalesce(s_cc, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(xa0 AS DOUBLE)) * abs(CAST(xb0 AS DOUBLE)) < 8.6e37 THEN k * xa0 * xb0 ELSE 0 END AS sum_cc,
    CASE WHEN k = 0 THEN m_xa WHEN n_e IS NULL THEN abs(xa0) ELSE greatest(m_xa, abs(xa0)) END AS max_abs_xa,
    CASE WHEN k = 0 THEN m_ya WHEN n_e IS NULL THEN abs(ya0) ELSE greatest(m_ya, abs(ya0)) END AS max_abs_ya,
    CASE WHEN k = 0 THEN m_ca WHEN n_e IS NULL THEN abs(xa0) ELSE greatest(m_ca, abs(xa0)) END AS max_abs_ca,
    CASE WHEN k = 0 THEN m_cb WHEN n_e IS NULL THEN abs(xb0) ELSE greatest(m_cb, abs(xb0)) END AS max_abs_cb
FROM cells
ORDER BY experiment_id, cohort, variant, metric_a, metric_b

-- interactions v1: per pair (experiment A, partner experiment B) of the
-- pass, per metric of A and per (A's variant, B's variant), the exact
-- sufficient statistics of A's metric over the units assigned to exactly
-- one variant in both experiments (issue 21 item 4). Units are matched by
-- unit_id between A's and B's rows of the assignment table (assignment@v4/
-- v5: one row per experiment and unit, uid unique); every cohort of A
-- counts (cohort (all)). A unit's x is its row in the view unit_values
-- (unit_metrics@v4/v5) or, without one, the metric's value of a unit
-- without events x0 - sufstats@v3's rule, so that summing a pair's cells
-- over B's variants gives A's (all) cells restricted to units also in B.
-- Output: experiment, partner, metric, variant, partner_variant, n, the
-- HUGEINT sums of x and x², and max|x| for the caller's overflow proof
-- (n * max² < 2^126). A term (n - n_with_events) * x0² that would not
-- fit in 2^126 is left out: the same proof then rejects the cell.
-- Parameters: exp_ids (the pass's experiments, numbered as the assignment
-- numbers them), ix_exp, ix_partner (parallel lists of experiment ids).
WITH exps AS (
    SELECT generate_subscripts($exp_ids, 1) AS exp_no, unnest($exp_ids) AS experiment_id
),
all_exps AS (
    SELECT unnest($ix_exp) AS experiment_id, unnest($ix_partner) AS partner_id
),
pairs AS (
    SELECT p.experiment_id, p.partner_id, a.exp_no AS exp_a, b.exp_no AS exp_b
    FROM all_exps AS p
    JOIN exps AS a ON a.experiment_id = p.experiment_id
    JOIN exps AS b ON b.experiment_id = p.partner_id
),
both_units AS (
    SELECT p.experiment_id, p.partner_id, p.exp_a, a.uid, a.variant, b.variant AS partner_variant
    FROM pairs AS p
    JOIN assignment AS a ON a.exp_no = p.exp_a AND a.n_variants = 1
    JOIN assignment AS b ON b.exp_no = p.exp_b AND b.n_variants = 1 AND b.unit_id = a.unit_id
),
unit_cells AS (
    SELECT experiment_id, partner_id, exp_a, variant, partner_variant, count(*) AS n
    FROM both_units
    GROUP BY ALL
),
ev_cells AS (
    SELECT
        u.experiment_id, u.partner_id, v.metric_no, u.variant, u.partner_variant,
        count(*) AS n_e,
        sum(v.x) AS s_x,
        sum(v.x * v.x) AS s_x2,
        max(abs(v.x)) AS m_x
    FROM both_units AS u
    JOIN unit_values AS v ON v.uid = u.uid
    GROUP BY ALL
),
cells AS (
    SELECT
        c.experiment_id, c.partner_id, d.metric, c.variant, c.partner_variant, c.n,
        CAST(c.n - coalesce(e.n_e, 0) AS HUGEINT) AS k,
        d.x0, e.n_e, e.s_x, e.s_x2, e.m_x
    FROM unit_cells AS c
    JOIN unit_metric_defs AS d ON d.exp_no = c.exp_a
    LEFT JOIN ev_cells AS e ON e.experiment_id = c.experiment_id AND e.partner_id = c.partner_id
        AND e.metric_no = d.metric_no AND e.variant = c.variant AND e.partner_variant = c.partner_variant
)
SELECT
    experiment_id,
    partner_id,
    metric,
    variant,
    partner_variant,
    CAST(n AS BIGINT) AS n,
    coalesce(s_x, 0) + k * x0 AS sum_x,
    coalesce(s_x2, 0) + CASE WHEN CAST(k AS DOUBLE) * abs(CAST(x0 AS DOUBLE)) * abs(CAST(x0 AS DOUBLE)) < 8.6e37 THEN k * x0 * x0 ELSE 0 END AS sum_x2,
    CASE WHEN k = 0 THEN m_x WHEN n_e IS NULL THEN abs(x0) ELSE greatest(m_x, abs(x0)) END AS max_abs_x
FROM cells
ORDER BY experiment_id, partner_id, metric, variant, partner_variant

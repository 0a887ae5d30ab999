-- PROTOTYPE (a candidate for assignment@v3): assignment_agg.sql plus two
-- compact keys for the joins and aggregations downstream: exp_no, the
-- experiment's position in $exp_ids, and uid, a BIGINT unique per row. uid's
-- values depend on execution order, but only identify rows within the
-- session: no result depends on them.
-- Parameters: leaf_exp, leaf, exp_ids.
CREATE TEMP TABLE assignment AS
WITH leaves AS (
    SELECT unnest($leaf_exp) AS experiment_id, unnest($leaf) AS persona
),
exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
units AS (
    SELECT
        experiment_id,
        unit_id,
        CASE WHEN min(variant) = max(variant) THEN 1 ELSE 2 END AS n_variants,
        min(variant) AS variant,
        min(ts_us) AS exposure_us,
        min(struct_pack(t := ts_us, n := persona IS NULL, p := persona)).p AS persona
    FROM trace_rows
    WHERE reason IS NULL
    GROUP BY experiment_id, unit_id
)
SELECT
    u.experiment_id,
    x.exp_no,
    row_number() OVER () AS uid,
    u.unit_id,
    u.n_variants,
    u.variant,
    u.exposure_us,
    u.persona,
    coalesce(l.persona, '*') AS cohort
FROM units AS u
JOIN exps AS x ON x.experiment_id = u.experiment_id
LEFT JOIN leaves AS l ON l.experiment_id = u.experiment_id AND l.persona = u.persona

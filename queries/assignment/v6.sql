-- assignment v6: assignment@v5 for traces@v9, whose trace_units has one
-- row per (experiment, reason, unit) (reason 0 kept; see traces@v9). The
-- assignment is assignment@v5's, from the reason-0 rows (the pairs that
-- have kept rows). trace_counts has assignment@v5's rows: per (experiment,
-- reason) the rows n, and for the reasons a private run gates on per unit
-- (null_keys, duplicate, version_mismatch, unknown_variant) the number of
-- units with at least one row of that reason, which is the number of
-- trace_units rows of that reason; NULL for the others.
-- Parameters: leaf_exp, leaf (the taxonomy leaves of each experiment),
-- exp_ids, var_exp, var_name.
CREATE TEMP TABLE assignment AS
WITH leaves AS (
    SELECT unnest($leaf_exp) AS experiment_id, unnest($leaf) AS persona
),
exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
declared AS (
    SELECT unnest($var_exp) AS experiment_id, unnest($var_name) AS variant
),
variants AS (
    SELECT x.exp_no, d.variant, row_number() OVER (PARTITION BY d.experiment_id ORDER BY d.variant) AS var_no
    FROM declared AS d
    JOIN exps AS x ON x.experiment_id = d.experiment_id
),
cohorts AS (
    SELECT x.exp_no, l.persona
    FROM leaves AS l
    JOIN exps AS x ON x.experiment_id = l.experiment_id
)
SELECT
    row_number() OVER () AS uid,
    u.exp_no,
    u.unit_id,
    CASE WHEN u.min_var = u.max_var THEN 1 ELSE 2 END AS n_variants,
    v.variant,
    u.exposure_us,
    coalesce(c.persona, '*') AS cohort
FROM trace_units AS u
JOIN variants AS v ON v.exp_no = u.exp_no AND v.var_no = u.min_var
LEFT JOIN trace_personas AS p ON p.persona_rank = u.persona_rank
LEFT JOIN cohorts AS c ON c.exp_no = u.exp_no AND c.persona = p.persona
WHERE u.reason_no = 0;

CREATE TEMP TABLE trace_counts AS
SELECT
    exp_no,
    CASE reason_no
        WHEN 1 THEN 'null_experiment'
        WHEN 2 THEN 'no_unit'
        WHEN 3 THEN 'null_keys'
        WHEN 4 THEN 'duplicate'
        WHEN 5 THEN 'out_of_window'
        WHEN 6 THEN 'version_mismatch'
        WHEN 7 THEN 'unknown_variant'
    END AS reason,
    CAST(sum(n) AS BIGINT) AS n,
    CASE WHEN reason_no IN (3, 4, 6, 7) THEN count(*) END AS units
FROM trace_units
GROUP BY exp_no, reason_no;

DROP TABLE trace_units;

DROP TABLE trace_personas;

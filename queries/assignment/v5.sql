-- assignment v5: assignment@v4 for traces@v6. The assignment is
-- assignment@v4's (traces@v6 also keeps, per unit, units whose rows were
-- all excluded; they have no variant, and the join with the declared
-- variants leaves them out as before). trace_counts gains the per-unit
-- gate counts: for each (experiment, reason), units is the number of units
-- with at least one row of that reason (traces@v6's flags), for the
-- reasons a private run gates on per unit; NULL for the others.
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
WHERE u.kind = 1;

CREATE TEMP TABLE trace_counts AS
WITH flagged AS (
    SELECT
        exp_no,
        count(*) FILTER (WHERE flags & 1 <> 0) AS null_keys,
        count(*) FILTER (WHERE flags & 2 <> 0) AS duplicate,
        count(*) FILTER (WHERE flags & 4 <> 0) AS version_mismatch,
        count(*) FILTER (WHERE flags & 8 <> 0) AS unknown_variant
    FROM trace_units
    WHERE kind = 1
    GROUP BY exp_no
)
SELECT
    t.exp_no,
    t.reason,
    t.n,
    CASE t.reason
        WHEN 'null_keys' THEN f.null_keys
        WHEN 'duplicate' THEN f.duplicate
        WHEN 'version_mismatch' THEN f.version_mismatch
        WHEN 'unknown_variant' THEN f.unknown_variant
    END AS units
FROM trace_units AS t
LEFT JOIN flagged AS f ON f.exp_no = t.exp_no
WHERE t.kind = 0;

DROP TABLE trace_units;

DROP TABLE trace_personas;

-- assignment v4: assignment@v3 for traces@v4, which gives each unit's
-- exposure and the rank in trace_personas of its earliest row's persona
-- (0: NULL) instead of the struct of traces@v3. The rest is assignment@v3:
-- assignment@v2's units from trace_units, with
-- integer keys for the single-join event stage (events@v3) and without the
-- columns no later stage reads (experiment_id and persona are replaced by
-- exp_no and cohort):
--   exp_no  the experiment's position in $exp_ids (1-based);
--   uid     a BIGINT unique per row, so that events are aggregated per
--           (window, uid) instead of per string keys; its values depend on
--           execution order and identify rows within the session only: no
--           result depends on them.
-- n_variants is 1 when the unit's kept rows show one variant, else 2 (later
-- stages only test n_variants = 1), and variant the smallest name (var_no
-- is traces@v3's rank of the declared names); the exposure is the earliest
-- kept row,
-- the persona that row's (ties: non-NULL first, then the smallest); the
-- cohort is the persona when it is one of the experiment's taxonomy leaves,
-- else '*'. These are assignment@v2's rules.
-- Three more statements keep the trace counts (kind 0 of trace_units) in
-- trace_counts for quality@v3 and drop trace_units and trace_personas,
-- which are not needed any more.
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
SELECT exp_no, reason, n FROM trace_units WHERE kind = 0;

DROP TABLE trace_units;

DROP TABLE trace_personas;

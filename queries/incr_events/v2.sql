-- incr_events v2 (internal, issue 18 item 2): incr_events@v1 over the
-- units touched tonight (incr_traces@v3), and last night's tables of those
-- units beside tonight's, so that the cells are updated by a delta:
--   incr_other_assignment  the touched units as last night's assignment
--            held them (assignment@v4's columns, from their latest stored
--            row: n_variants 1 when min_var = max_var, the variant whose
--            traces@v5 number is min_var, the cohort persona or '*');
--   incr_other_units  last night's kind-2 rows of event_units for them
--            (every stored row of the unit's latest generation, whole:
--            the values last night's cells counted).
-- The caller runs the pinned sufstats@v3 and quality@v3 once over tonight's
-- tables and once over these (incr_swap exchanges them) and updates the
-- stored cells and unit counts by (tonight − last night) of the touched
-- units. Tonight's merge is v1's, with the stored rows of the touched
-- units' latest generation minus their carried share (carried_*, which
-- tonight reads again from the carry); a row wholly carried (an open
-- pair's) is left out.
-- Parameters: st_unitev (the generations' unitev files), exp_ids,
-- var_exp, var_name.
-- incr_events v1's comment follows.
-- incr_events v1 (internal, issue 18 item 2): after events@v4 has read the
-- carried rows (st_carry) and the new event partitions against the merged
-- assignment, add the settled partial aggregates of the state to its
-- event_units and event_names, so that unit_metrics@v5, sufstats@v3 and
-- quality@v3 run unchanged on the same tables a full run would build:
--   kind 2 (per window and unit): tonight's row + the stored row (integer
--   sums; a total is NULL only when both are);
--   kind 1 (per window and bucket): tonight's counts + the stored ones;
--   event_names (per event and reason): tonight's + the stored counts.
-- A stored row belongs to a unit exposed in one variant (else incr_traces
-- fell back), so it joins the assignment by (experiment, unit). Stored
-- rows without a row tonight pass through unaggregated (the semi and anti
-- joins are built on tonight's rows, the small side).
-- Parameters: st_unitev (the stored kind-2 rows, read once, here).
ALTER TABLE event_units RENAME TO incr_tonight_units;

ALTER TABLE event_names RENAME TO incr_tonight_names;

CREATE TEMP TABLE event_names AS
WITH rows AS (
    SELECT metric, reason, n FROM incr_tonight_names
    UNION ALL
    SELECT metric, reason, n FROM st_names
)
SELECT metric, reason, CAST(sum(n) AS HUGEINT) AS n
FROM rows
GROUP BY metric, reason;

SET disabled_optimizers = 'build_side_probe_side';

CREATE TEMP TABLE incr_other_assignment AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
declared AS (
    SELECT unnest($var_exp) AS experiment_id, unnest($var_name) AS variant
),
variants AS (
    SELECT x.exp_no, d.variant, row_number() OVER (PARTITION BY d.experiment_id ORDER BY d.variant) AS var_no
    FROM declared AS d
    JOIN exps AS x ON x.experiment_id = d.experiment_id
)
SELECT
    row_number() OVER () AS uid,
    s.exp_no,
    s.unit_id,
    CASE WHEN s.min_var = s.max_var THEN 1 ELSE 2 END AS n_variants,
    v.variant,
    s.exposure_us,
    coalesce(s.persona, '*') AS cohort
FROM st_units AS s
JOIN variants AS v ON v.exp_no = s.exp_no AND v.var_no = s.min_var;

CREATE TEMP TABLE incr_stored_rows AS
SELECT
    e.win_no, e.exp_no, e.unit_id, e.n, e.cnt, CAST(e.total AS HUGEINT) AS total, e.pre_cnt, CAST(e.pre_total AS HUGEINT) AS pre_total,
    e.carried_n, e.carried_cnt, CAST(e.carried_total AS HUGEINT) AS carried_total, e.carried_pre_cnt, CAST(e.carried_pre_total AS HUGEINT) AS carried_pre_total
FROM read_parquet($st_unitev) AS e
JOIN st_units AS s ON s.exp_no = e.exp_no AND s.unit_id = e.unit_id AND s.gen_no = e.gen_no;

CREATE TEMP TABLE incr_other_units AS
SELECT
    2 AS kind, r.win_no, CAST(NULL AS BIGINT) AS bucket, a.uid, r.n, r.cnt, r.total, r.pre_cnt, r.pre_total
FROM incr_stored_rows AS r
JOIN incr_other_assignment AS a ON a.exp_no = r.exp_no AND a.unit_id = r.unit_id AND a.n_variants = 1;

CREATE TEMP TABLE incr_stored_units AS
SELECT
    r.win_no, a.uid, r.n - r.carried_n AS n, r.cnt - r.carried_cnt AS cnt, r.total - r.carried_total AS total,
    r.pre_cnt - r.carried_pre_cnt AS pre_cnt, r.pre_total - r.carried_pre_total AS pre_total
FROM incr_stored_rows AS r
JOIN assignment AS a ON a.exp_no = r.exp_no AND a.unit_id = r.unit_id AND a.n_variants = 1
WHERE r.n <> r.carried_n OR r.cnt <> r.carried_cnt OR r.pre_cnt <> r.carried_pre_cnt;

DROP TABLE incr_stored_rows;

CREATE TEMP TABLE event_units AS
WITH tonight AS (
    SELECT win_no, uid, n, cnt, total, pre_cnt, pre_total FROM incr_tonight_units WHERE kind = 2
),
per_unit AS (
    SELECT * FROM tonight
    UNION ALL
    SELECT s.* FROM incr_stored_units AS s SEMI JOIN tonight AS t ON t.win_no = s.win_no AND t.uid = s.uid
),
per_bucket AS (
    SELECT win_no, bucket, n FROM incr_tonight_units WHERE kind = 1
    UNION ALL
    SELECT win_no, bucket, n FROM st_buckets
)
SELECT
    1 AS kind, win_no, bucket, CAST(NULL AS BIGINT) AS uid, CAST(sum(n) AS BIGINT) AS n,
    CAST(NULL AS BIGINT) AS cnt, CAST(NULL AS HUGEINT) AS total, CAST(NULL AS BIGINT) AS pre_cnt, CAST(NULL AS HUGEINT) AS pre_total
FROM per_bucket
GROUP BY win_no, bucket
UNION ALL
SELECT
    2, win_no, NULL, uid, CAST(sum(n) AS BIGINT), CAST(sum(cnt) AS BIGINT), sum(total), CAST(sum(pre_cnt) AS BIGINT), sum(pre_total)
FROM per_unit
GROUP BY win_no, uid
UNION ALL
SELECT 2, s.win_no, NULL, s.uid, s.n, s.cnt, s.total, s.pre_cnt, s.pre_total
FROM incr_stored_units AS s
ANTI JOIN tonight AS t ON t.win_no = s.win_no AND t.uid = s.uid;

DROP TABLE incr_stored_units;

RESET disabled_optimizers;

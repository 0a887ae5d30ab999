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

CREATE TEMP TABLE incr_stored_units AS
SELECT e.win_no, a.uid, e.n, e.cnt, CAST(e.total AS HUGEINT) AS total, e.pre_cnt, CAST(e.pre_total AS HUGEINT) AS pre_total
FROM read_parquet($st_unitev) AS e
JOIN assignment AS a ON a.exp_no = e.exp_no AND a.unit_id = e.unit_id AND a.n_variants = 1;

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

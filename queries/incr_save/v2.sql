-- incr_save v2 (internal, issue 18 item 2): incr_save@v1 for state
-- format v3, whose per-unit tables are generations: the units and unitev
-- written are those of tonight's assignment, which after an incremental
-- pass holds the touched units only (a delta: the caller appends it to the
-- stored generations) and after a full pass every unit (a base). Each row
-- has $gen_no. unitev keeps every kind-2 row of tonight's event_units
-- whole (the next night reads them as last night's values of the unit,
-- which the cells' delta subtracts) and beside it the carried rows' share
-- of it (carried_*: the kind-2 row of events@v4 run once more over the
-- carry alone, which is event_units here; 0 when none): the next night's
-- merge adds the row minus that share, since the carried rows are read
-- again. An open pair's row is wholly carried (its share is the row). v1
-- left the open pairs out and kept the rest whole, which counted twice a
-- carried row at or after the earliest window end that lies inside a
-- later-ending experiment's window (pipeline TestIncrementalTwoWindowEnds).
-- The other tables are v1's.
-- Parameters: v1's and gen_no.
-- incr_save v1's comment follows.
-- incr_save v1 (internal, issue 18 item 2): write the next night's state
-- after events@v4 has run once more over the carried rows alone (its
-- event_units and event_names are then exactly the carried rows' share of
-- tonight's, incr_final_*): every stored figure is tonight's minus the
-- carried share, so that the next night adds the carried rows back by
-- reading them again.
--   units    the assignment: (experiment, unit) with min_var/max_var in
--            traces@v5's variant numbers (a unit in several variants
--            keeps max_var = min_var + 1000000), exposure, the cohort's
--            persona (NULL for '*');
--   tcounts  trace_counts minus the carried trace rows (out_of_window);
--   unitev   the settled kind-2 rows of tonight's event_units (the pair's
--            unit and window event not in incr_open as open), sums as
--            DECIMAL(38,0): Parquet has no 128-bit integer, and a DOUBLE
--            would round;
--   buckets  tonight's kind-1 counts minus the carried rows';
--   names    tonight's event_names minus the carried rows';
--   tkeys, ekeys  the hashed duplicate keys of the partitions read tonight
--            (new_trace_files, new_event_files), appended to the stored
--            ones by the caller.
-- incr_checks receives the facts the caller keeps in state.json: trace
-- rows at or after the window's end (carried), settled event rows after the window (bucket 2),
-- carried rows, stored units.
-- Parameters: exp_ids, exp_end_us, var_exp, var_name, win_event,
-- new_trace_files, new_event_files, used_event, out_units, out_tcounts,
-- out_unitev, out_buckets, out_names, out_tkeys, out_ekeys.
COPY (
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
        a.exp_no,
        a.unit_id,
        v.var_no AS min_var,
        CASE WHEN a.n_variants = 1 THEN v.var_no ELSE v.var_no + 1000000 END AS max_var,
        a.exposure_us,
        CASE WHEN a.cohort = '*' THEN NULL ELSE a.cohort END AS persona,
        CAST($gen_no AS BIGINT) AS gen_no
    FROM assignment AS a
    JOIN variants AS v ON v.exp_no = a.exp_no AND v.variant = a.variant
    ORDER BY a.exp_no, a.unit_id
) TO $out_units (FORMAT parquet);

COPY (
    WITH rows AS (
        SELECT exp_no, reason, n FROM trace_counts
        UNION ALL
        SELECT exp_no, 'out_of_window', -count(*) FROM incr_tcarry GROUP BY exp_no
    )
    SELECT exp_no, reason, CAST(sum(n) AS BIGINT) AS n FROM rows GROUP BY exp_no, reason ORDER BY exp_no, reason
) TO $out_tcounts (FORMAT parquet);

COPY (
    SELECT
        g.win_no,
        a.exp_no,
        a.unit_id,
        g.n,
        g.cnt,
        CAST(g.total AS DECIMAL(38, 0)) AS total,
        g.pre_cnt,
        CAST(g.pre_total AS DECIMAL(38, 0)) AS pre_total,
        coalesce(c.n, 0) AS carried_n,
        coalesce(c.cnt, 0) AS carried_cnt,
        CAST(coalesce(c.total, 0) AS DECIMAL(38, 0)) AS carried_total,
        coalesce(c.pre_cnt, 0) AS carried_pre_cnt,
        CAST(coalesce(c.pre_total, 0) AS DECIMAL(38, 0)) AS carried_pre_total,
        CAST($gen_no AS BIGINT) AS gen_no
    FROM incr_final_units AS g
    JOIN assignment AS a ON a.uid = g.uid
    LEFT JOIN event_units AS c ON c.kind = 2 AND c.win_no = g.win_no AND c.uid = g.uid
    WHERE g.kind = 2
    ORDER BY g.win_no, a.exp_no, a.unit_id
) TO $out_unitev (FORMAT parquet);

COPY (
    WITH rows AS (
        SELECT win_no, bucket, n FROM incr_final_units WHERE kind = 1
        UNION ALL
        SELECT win_no, bucket, -n FROM event_units WHERE kind = 1
    )
    SELECT win_no, bucket, CAST(sum(n) AS BIGINT) AS n FROM rows GROUP BY win_no, bucket ORDER BY win_no, bucket
) TO $out_buckets (FORMAT parquet);

COPY (
    WITH rows AS (
        SELECT metric, reason, n FROM incr_final_names
        UNION ALL
        SELECT metric, reason, -n FROM event_names
    )
    SELECT metric, reason, CAST(sum(n) AS HUGEINT) AS n FROM rows GROUP BY metric, reason ORDER BY metric, reason
) TO $out_names (FORMAT parquet);

COPY (
    WITH exps AS (
        SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
    )
    SELECT x.exp_no, hash(s.{{col .Traces "event_id"}}) AS h
    FROM read_parquet($new_trace_files, union_by_name = true, hive_partitioning = false) AS s
    JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
    WHERE s.{{col .Traces "event_id"}} IS NOT NULL
) TO $out_tkeys (FORMAT parquet);

COPY (
    SELECT hash({{col .Events "event_id"}}) AS h
    FROM read_parquet($new_event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
      AND {{col .Events "event_id"}} IS NOT NULL
) TO $out_ekeys (FORMAT parquet);

CREATE OR REPLACE TEMP TABLE incr_checks AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, unnest($exp_end_us) AS end_us
)
SELECT 'fact: trace rows at or after the window end' AS name, count(*) AS n
FROM read_parquet($new_trace_files, union_by_name = true, hive_partitioning = false) AS s
JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
WHERE epoch_us(s.{{col .Traces "ts"}}) >= x.end_us
UNION ALL
SELECT 'fact: settled event rows after the window end', coalesce(sum(n), 0)
FROM (
    SELECT n FROM incr_final_units WHERE kind = 1 AND bucket = 2
    UNION ALL
    SELECT -n FROM event_units WHERE kind = 1 AND bucket = 2
)
UNION ALL
SELECT 'fact: carried event rows', count(*) FROM incr_carry
UNION ALL
SELECT 'fact: units written', count(*) FROM assignment;

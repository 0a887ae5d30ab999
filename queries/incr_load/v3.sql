-- incr_load v3 (internal, issue 18 item 2): incr_load@v2 with the new
-- keys' table holding the 64-bit hashes only. v2 kept every new key's
-- event_id string, made DISTINCT (0.6 s of a 10 s night at 1M units, for
-- 0.33M event rows), only to name the few keys whose hash is stored; v3
-- builds the probe on the hashes alone and reads the event_id strings of
-- the hits only (a second scan of the new partitions, restricted to the
-- hit hashes, which are none on most nights). The set of new event_ids
-- whose hash is stored, and so every check, is v2's.
-- incr_load v2's comment follows.
-- incr_load v2 (internal, issue 18 item 2): incr_load@v1 without
-- st_units. The state's per-unit tables are generations (a base and the
-- deltas appended since, incremental format v3): incr_traces@v3 reads the
-- latest row of the units touched tonight only, instead of v1's copy of
-- every stored unit into a table (1M rows a night at 1M units). The rest
-- is v1:
-- incr_load v1 (internal, issue 18 item 2): the incremental state of a
-- nightly pass of the single-join set (traces@v5, assignment@v4, events@v4,
-- unit_metrics@v5, sufstats@v3, quality@v3), read back from the host's
-- state folder, and the first fallback checks. The state holds, for the
-- partitions already counted:
--   st_units   per (experiment, unit): first exposure, the variants seen
--              (min_var, max_var as traces@v5 numbers them; a unit seen in
--              several variants keeps max_var > min_var) and its cohort's
--              persona (NULL for the '*' cohort): assignment@v4's input;
--   st_tcounts the trace rows per (experiment, reason) (trace_counts);
--   st_unitev  per (window, experiment, unit) the exact integer partial
--              aggregates of event_units (n, cnt, total, pre_cnt,
--              pre_total; sums as DECIMAL(38,0), read back as HUGEINT) of
--              the (unit, event) pairs that are settled: the unit is
--              exposed in every experiment of the pass with a window on
--              the event, so no later partition can add a window for it;
--   st_buckets the settled rows per (window, bucket) (event_units kind 1);
--   st_names   the settled event rows per (event, reason) (event_names);
--   st_tcarry  the trace rows at or after the window's end (incr_carry),
--              read again with the new partitions by traces@v5;
--   st_carry   the valid event rows of the pairs that are not settled, in
--              the input's own columns: they are read again every night
--              with the new partitions, by the pinned events template;
--   st_tkeys, st_ekeys  the duplicate keys of every row already read, as
--              DuckDB's 64-bit hash of the event_id (with the experiment's
--              number for traces): 8 bytes a row instead of the string.
-- incr_checks counts what makes the night fall back to a full run: a new
-- row whose key's hash is among the stored hashes, unless its event_id
-- (the real string) is a carried row's, which the events template ranks
-- again exactly. A stored copy of the same event_id always has the same
-- hash, so no real repeat is missed; a collision of two different ids can
-- only cause a needless full run, never a wrong number. The joins are
-- built on the new partitions' keys (the small side, kept as the build
-- side by disabling the build/probe swap) and stream the stored hashes.
-- (st_unitev is read where it is used, by incr_events.)
-- Parameters: st_tcounts, st_buckets, st_names,
-- st_carry, st_tcarry, st_tkeys, st_ekeys, new_trace_files, new_event_files, exp_ids,
-- used_event.
SET disabled_optimizers = 'build_side_probe_side';

CREATE TEMP TABLE st_tcounts AS SELECT * FROM read_parquet($st_tcounts);

CREATE TEMP TABLE st_buckets AS SELECT * FROM read_parquet($st_buckets);

CREATE TEMP TABLE st_names AS SELECT * FROM read_parquet($st_names);

CREATE TEMP TABLE incr_new_tkeys AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
)
SELECT x.exp_no, hash(s.{{col .Traces "event_id"}}) AS h
FROM read_parquet($new_trace_files, union_by_name = true, hive_partitioning = false) AS s
JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
WHERE s.{{col .Traces "event_id"}} IS NOT NULL;

CREATE TEMP TABLE incr_new_ekeys AS
SELECT hash({{col .Events "event_id"}}) AS h
FROM read_parquet($new_event_files, union_by_name = true, hive_partitioning = false)
WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
  AND {{col .Events "event_id"}} IS NOT NULL;

CREATE TEMP TABLE incr_hit_tkeys AS
SELECT DISTINCT k.exp_no, k.h
FROM read_parquet($st_tkeys) AS k
SEMI JOIN incr_new_tkeys AS t ON t.exp_no = k.exp_no AND t.h = k.h;

CREATE TEMP TABLE incr_hit_ekeys AS
SELECT DISTINCT k.h
FROM read_parquet($st_ekeys) AS k
SEMI JOIN incr_new_ekeys AS e ON e.h = k.h;

CREATE TEMP TABLE incr_checks AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
t_hits AS (
    SELECT DISTINCT x.exp_no, s.{{col .Traces "event_id"}} AS event_id
    FROM read_parquet($new_trace_files, union_by_name = true, hive_partitioning = false) AS s
    JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
    SEMI JOIN incr_hit_tkeys AS k ON k.exp_no = x.exp_no AND k.h = hash(s.{{col .Traces "event_id"}})
    WHERE s.{{col .Traces "event_id"}} IS NOT NULL
),
e_hits AS (
    SELECT DISTINCT {{col .Events "event_id"}} AS event_id
    FROM read_parquet($new_event_files, union_by_name = true, hive_partitioning = false) AS s
    SEMI JOIN incr_hit_ekeys AS k ON k.h = hash(s.{{col .Events "event_id"}})
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
      AND {{col .Events "event_id"}} IS NOT NULL
)
SELECT 'fallback: a trace event_id of a new partition was already read' AS name, count(*) AS n
FROM t_hits AS k
ANTI JOIN (
    SELECT x.exp_no, c.event_id
    FROM read_parquet($st_tcarry) AS c
    JOIN exps AS x ON x.experiment_id = c.experiment_id
    WHERE c.event_id IS NOT NULL
) AS c ON c.exp_no = k.exp_no AND c.event_id = k.event_id
UNION ALL
SELECT 'fallback: an event event_id of a new partition was already read', count(*)
FROM e_hits AS k
ANTI JOIN (SELECT event_id FROM read_parquet($st_carry) WHERE event_id IS NOT NULL) AS c ON c.event_id = k.event_id;

RESET disabled_optimizers;

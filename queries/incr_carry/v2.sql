-- incr_carry v2 (internal, issue 18 item 2). v2 selects the same rows as
-- v1 with one join instead of three: a row has a window when its event is
-- in $win_event (a list test, where v1 semi-joined a table of those
-- events), and the open rows are the valid rows without a closed pair or at
-- or after the earliest window end, found by one left join built on the
-- closed pairs (v1 ran an anti and a semi join, each built on the valid
-- rows with all their columns: 8 s of a 33 s incremental night at 1M
-- units, 81 s of a 128 s night that builds the state, both at load 9).
-- After a pass (full or
-- incremental) has built event_units and event_names, choose the event
-- rows to carry to the next night and write them in the input's own
-- columns ($out_carry). A (unit, event) pair is open while the unit is not
-- exposed (in any variant) in every experiment of the pass with a window
-- on the event: a later trace can still add a window for its rows, with a
-- pre-period and buckets relative to an exposure not known yet. The valid
-- rows of open pairs are carried: not NULL-keyed, a finite value in range,
-- and the first copy of their event_id (events@v4's rule, ranked again
-- here over every non-NULL-keyed copy tonight's rows hold; identical twins
-- are both carried and the events template ranks them again). Valid rows
-- at or after the earliest window end are carried too, whatever their
-- pair: a later end can move them into the window. They add only to a
-- kind-2 row's n (bucket 2), which no template after events@v4 reads, so
-- the stored kind-2 rows keep it and only the kind-1 counts and
-- event_names take the carried share out (incr_save). Every row
-- of an open pair that contributes to an aggregate is carried, so each
-- (window, unit) aggregate is either wholly carried or wholly settled.
-- incr_open lists, per event with a window, the units of tonight's rows
-- and in how many of the event's experiments each is exposed: every row of
-- an open pair is among tonight's rows (carried rows are read again), so
-- no other unit's pairs need looking at.
-- Tonight's event tables are renamed (incr_final_*) so that the events
-- template can run once more, over the carried rows alone, for incr_save.
-- Trace rows are carried too when they lie at or after their experiment's
-- window end (out_of_window tonight, possibly inside a later night's
-- window): rows of the pass's experiments with their keys, the first copy
-- of their (experiment, event_id) as traces@v5 ranks it (from its
-- trace_dups and trace_cand), one row per set of identical copies (the
-- others stay counted as duplicates); rows without event_id all. They are
-- written to $out_tcarry and read again by the next night's traces pass;
-- incr_save takes them out of the stored out_of_window counts.
-- Parameters: save_event_files, save_trace_files, used_event, scale,
-- exp_ids, exp_end_us, win_exp_no, win_event, out_carry, out_tcarry.
CREATE TEMP TABLE incr_tcarry AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no, unnest($exp_end_us) AS end_us
),
src AS (
    SELECT
        s.{{col .Traces "ts"}} AS ts,
        s.{{col .Traces "unit_id"}} AS unit_id,
        s.{{col .Traces "experiment_id"}} AS experiment_id,
        s.{{col .Traces "variant"}} AS variant,
        s.{{col .Traces "persona"}} AS persona,
        s.{{col .Traces "persona_algo_version"}} AS persona_algo_version,
        s.{{col .Traces "event_id"}} AS event_id,
        x.exp_no,
        epoch_us(s.{{col .Traces "ts"}}) AS ts_us,
        hash(s.{{col .Traces "event_id"}}) AS h
    FROM read_parquet($save_trace_files, union_by_name = true, hive_partitioning = false) AS s
    JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
    WHERE epoch_us(s.{{col .Traces "ts"}}) >= x.end_us
      AND s.{{col .Traces "unit_id"}} IS NOT NULL AND s.{{col .Traces "variant"}} IS NOT NULL
),
dups AS (
    SELECT exp_no, h FROM trace_dups WHERE NOT null_keys
),
firsts AS (
    SELECT exp_no, event_id, ts_us, unit_id, variant, persona, persona_algo_version
    FROM trace_cand
    WHERE copy_no = 1 AND NOT null_keys
)
SELECT ts, unit_id, experiment_id, variant, persona, persona_algo_version, event_id, exp_no
FROM src AS s
ANTI JOIN dups AS d ON d.exp_no = s.exp_no AND d.h = s.h
WHERE s.event_id IS NOT NULL
UNION ALL
SELECT ts, unit_id, experiment_id, variant, persona, persona_algo_version, event_id, exp_no
FROM src AS s
WHERE s.event_id IS NULL
UNION ALL
SELECT DISTINCT ts, unit_id, experiment_id, variant, persona, persona_algo_version, event_id, exp_no
FROM src AS s
SEMI JOIN dups AS d ON d.exp_no = s.exp_no AND d.h = s.h
SEMI JOIN firsts AS f ON f.exp_no = s.exp_no AND f.event_id = s.event_id AND f.ts_us = s.ts_us AND f.unit_id = s.unit_id
    AND f.variant = s.variant AND f.persona IS NOT DISTINCT FROM s.persona AND f.persona_algo_version IS NOT DISTINCT FROM s.persona_algo_version
WHERE s.event_id IS NOT NULL;

COPY (
    SELECT ts, unit_id, experiment_id, variant, persona, persona_algo_version, event_id
    FROM incr_tcarry
    ORDER BY experiment_id, unit_id, ts, event_id
) TO $out_tcarry (FORMAT parquet);

CREATE TEMP TABLE incr_open AS
WITH win_exps AS (
    SELECT DISTINCT event AS metric, exp_no
    FROM (SELECT unnest($win_event) AS event, unnest($win_exp_no) AS exp_no)
),
need AS (
    SELECT metric, count(*) AS k FROM win_exps GROUP BY metric
),
read_units AS (
    SELECT DISTINCT {{col .Events "unit_id"}} AS unit_id
    FROM read_parquet($save_event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
covered AS (
    SELECT a.unit_id, w.metric, count(*) AS k
    FROM assignment AS a
    SEMI JOIN read_units AS r ON r.unit_id = a.unit_id
    JOIN win_exps AS w ON w.exp_no = a.exp_no
    GROUP BY a.unit_id, w.metric
)
SELECT n.metric, n.k, c.unit_id, c.k AS covered
FROM need AS n
LEFT JOIN covered AS c ON c.metric = n.metric;

SET disabled_optimizers = 'build_side_probe_side';

CREATE TEMP TABLE incr_carry AS
WITH closed AS (
    SELECT unit_id, metric FROM incr_open WHERE covered = k
),
src AS (
    SELECT
        {{col .Events "ts"}} AS ts,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        {{col .Events "value"}} AS value,
        {{col .Events "event_id"}} AS event_id,
        epoch_us({{col .Events "ts"}}) AS ts_us,
        CAST({{col .Events "value"}} AS DOUBLE) AS dv,
        CASE WHEN {{col .Events "event_id"}} IS NOT NULL THEN hash({{col .Events "event_id"}}) END AS h
    FROM read_parquet($save_event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
),
valid AS (
    SELECT s.*
    FROM src AS s
    WHERE list_contains($win_event, s.metric)
      AND s.ts_us IS NOT NULL AND s.unit_id IS NOT NULL
      AND NOT coalesce(NOT isfinite(s.dv) OR abs(s.dv * $scale) >= 9.2e18, false)
),
open_rows AS (
    -- closed holds one row per (unit, event): the join adds no row.
    SELECT v.ts, v.unit_id, v.metric, v.value, v.event_id, v.ts_us, v.dv, v.h
    FROM valid AS v
    LEFT JOIN closed AS c ON c.unit_id = v.unit_id AND c.metric = v.metric
    WHERE c.unit_id IS NULL
       OR v.ts_us >= (SELECT min(e) FROM (SELECT unnest($exp_end_us) AS e))
),
dup_groups AS (
    SELECT h FROM event_pre WHERE is_dup
),
ranked AS (
    SELECT
        s.event_id, s.ts_us, s.unit_id, s.metric, s.dv,
        row_number() OVER (PARTITION BY s.event_id ORDER BY s.ts_us, s.unit_id, s.metric, s.dv NULLS FIRST) AS copy_no
    FROM src AS s
    SEMI JOIN dup_groups AS d ON d.h = s.h
    WHERE s.ts_us IS NOT NULL AND s.unit_id IS NOT NULL AND s.event_id IS NOT NULL
)
SELECT o.ts, o.unit_id, o.metric, o.value, o.event_id
FROM open_rows AS o
ANTI JOIN dup_groups AS d ON d.h = o.h
UNION ALL
SELECT o.ts, o.unit_id, o.metric, o.value, o.event_id
FROM open_rows AS o
SEMI JOIN dup_groups AS d ON d.h = o.h
SEMI JOIN (SELECT * FROM ranked WHERE copy_no = 1) AS r
    ON r.event_id = o.event_id AND r.ts_us = o.ts_us AND r.unit_id = o.unit_id AND r.metric = o.metric
   AND r.dv IS NOT DISTINCT FROM o.dv;

RESET disabled_optimizers;

COPY (SELECT * FROM incr_carry ORDER BY unit_id, metric, ts, event_id) TO $out_carry (FORMAT parquet);

ALTER TABLE event_units RENAME TO incr_final_units;

ALTER TABLE event_names RENAME TO incr_final_names;

ALTER TABLE event_pre RENAME TO incr_final_pre;

ALTER TABLE event_cand RENAME TO incr_final_cand;

-- incr_traces v3 (internal, issue 18 item 2): incr_traces@v2 over the
-- units touched tonight only. The state's units table is a list of
-- generations ($st_units: a base and the deltas appended since, each row
-- with its generation's gen_no); a unit's row is the one of the newest
-- generation that holds it. v2 merged every stored unit into trace_units
-- (and so into the assignment and every later table); v3 first lists the
-- touched unit_ids (incr_touched): those of tonight's trace rows (new
-- partitions and the carried trace rows, i.e. traces@v5's kind-1 rows),
-- of tonight's event rows of the events in use (new partitions) and of the
-- carried event rows ($st_carry). Every row tonight's pinned templates read
-- belongs to a touched unit, and every other unit's tables are as the
-- state holds them. st_units then holds the latest stored row of each
-- touched unit (every experiment) with its gen_no, and the rest is v2's
-- merge over it, so that trace_units (kind 1) and hence the assignment hold
-- the touched units only, with their merged values. The caller adds
-- the untouched units' share from the stored cells (cells by delta).
-- Parameters: st_units (the generations' units files), st_carry,
-- new_event_files, used_event.
-- incr_traces v2's comment follows.
-- incr_traces v2 (internal, issue 18 item 2): incr_traces@v1 with the
-- merged persona taken from the unit's earliest row even when that
-- persona is NULL (stored for a first-exposure persona outside the
-- taxonomy). v1 merged with arg_min(persona, exposure_us), which skips
-- NULL values, so a stored unclassified unit whose later row carried a
-- leaf persona moved into that leaf's cohort, unlike a full run (found by
-- an outside review; pipeline/incremental_test.go holds it). The persona
-- travels in a struct, which arg_min never skips; a new row at or before
-- a stored exposure falls back (below), so the stored row is the earliest.
-- incr_traces v1 (internal, issue 18 item 2): after traces@v5 has read
-- only the new trace partitions, merge its per-unit rows with the state's
-- (incr_load) into the trace_units and trace_personas that assignment@v4
-- reads, so that the pinned assignment template runs unchanged:
--   kind 0 (trace counts per experiment and reason): state + new rows;
--   kind 1 (per unit): min of min_var, max of max_var, min exposure, and
--   the persona of the earliest row; units without a new row pass through
--   unaggregated (the joins are built on the new units, the small side). The state keeps a unit's cohort
--   persona (a declared leaf, else NULL: both give the same cohort).
-- Checks (incr_checks): a new row at or before a stored unit's first
-- exposure (its events' buckets, pre-period and persona tie-break would
-- change), and a stored single-variant unit seen in another variant (its
-- counted events would leave the attributed buckets): both fall back.
-- No parameters.
CREATE TEMP TABLE incr_touched AS
SELECT DISTINCT unit_id
FROM (
    SELECT unit_id FROM trace_units WHERE kind = 1
    UNION ALL
    SELECT {{col .Events "unit_id"}} AS unit_id
    FROM read_parquet($new_event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($used_event))
    UNION ALL
    SELECT unit_id FROM read_parquet($st_carry)
)
WHERE unit_id IS NOT NULL;

CREATE TEMP TABLE st_units AS
SELECT exp_no, unit_id, min_var, max_var, exposure_us, persona, gen_no
FROM (
    SELECT s.*, row_number() OVER (PARTITION BY s.exp_no, s.unit_id ORDER BY s.gen_no DESC) AS latest
    FROM read_parquet($st_units) AS s
    SEMI JOIN incr_touched AS t ON t.unit_id = s.unit_id
)
WHERE latest = 1;

CREATE TEMP TABLE incr_new_units AS
SELECT u.exp_no, u.unit_id, u.min_var, u.max_var, u.exposure_us, p.persona
FROM trace_units AS u
LEFT JOIN trace_personas AS p ON p.persona_rank = u.persona_rank
WHERE u.kind = 1;

INSERT INTO incr_checks
SELECT 'fallback: a new trace moves a unit''s first exposure to or before the stored one', count(*)
FROM incr_new_units AS n
JOIN st_units AS s ON s.exp_no = n.exp_no AND s.unit_id = n.unit_id
WHERE n.exposure_us <= s.exposure_us;

INSERT INTO incr_checks
SELECT 'fallback: a stored single-variant unit is seen in another variant', count(*)
FROM incr_new_units AS n
JOIN st_units AS s ON s.exp_no = n.exp_no AND s.unit_id = n.unit_id
WHERE s.min_var = s.max_var AND (n.min_var <> s.min_var OR n.max_var <> s.max_var);

CREATE TEMP TABLE incr_personas AS
SELECT persona, row_number() OVER (ORDER BY persona) AS persona_rank
FROM (
    SELECT persona FROM trace_personas
    UNION
    SELECT persona FROM st_units WHERE persona IS NOT NULL
);

SET disabled_optimizers = 'build_side_probe_side';

CREATE TEMP TABLE incr_trace_units AS
WITH counts AS (
    SELECT exp_no, reason, n FROM trace_units WHERE kind = 0
    UNION ALL
    SELECT exp_no, reason, n FROM st_tcounts
),
touched AS (
    SELECT exp_no, unit_id, min_var, max_var, exposure_us, persona FROM incr_new_units
    UNION ALL
    SELECT s.exp_no, s.unit_id, s.min_var, s.max_var, s.exposure_us, s.persona
    FROM st_units AS s
    SEMI JOIN incr_new_units AS n ON n.exp_no = s.exp_no AND n.unit_id = s.unit_id
),
merged AS (
    SELECT s.exp_no, s.unit_id, s.min_var, s.max_var, s.exposure_us, s.persona
    FROM st_units AS s
    ANTI JOIN incr_new_units AS n ON n.exp_no = s.exp_no AND n.unit_id = s.unit_id
    UNION ALL
    SELECT
        exp_no,
        unit_id,
        min(min_var) AS min_var,
        max(max_var) AS max_var,
        min(exposure_us) AS exposure_us,
        struct_extract(arg_min({'p': persona}, exposure_us), 'p') AS persona
    FROM touched
    GROUP BY exp_no, unit_id
)
SELECT 0 AS kind, exp_no, reason, CAST(NULL AS VARCHAR) AS unit_id, CAST(sum(n) AS BIGINT) AS n,
       CAST(NULL AS BIGINT) AS min_var, CAST(NULL AS BIGINT) AS max_var, CAST(NULL AS BIGINT) AS exposure_us,
       CAST(NULL AS BIGINT) AS persona_rank
FROM counts
GROUP BY exp_no, reason
UNION ALL
SELECT 1, m.exp_no, NULL, m.unit_id, NULL, m.min_var, m.max_var, m.exposure_us, coalesce(p.persona_rank, 0)
FROM merged AS m
LEFT JOIN incr_personas AS p ON p.persona = m.persona;

DROP TABLE trace_units;

DROP TABLE trace_personas;

ALTER TABLE incr_trace_units RENAME TO trace_units;

ALTER TABLE incr_personas RENAME TO trace_personas;

RESET disabled_optimizers;

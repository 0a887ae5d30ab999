-- traces v4: traces@v3 with the earliest row's persona chosen by an integer
-- minimum instead of the minimum of a struct. DuckDB compares structs
-- through sort keys built row by row, which made traces@v3's per-unit
-- aggregate the slowest step of a run and spill under a small memory
-- limit (15 s against 4 s for the same groups at 10M units).
--
-- Two statements:
--  1. trace_personas: every distinct non-NULL persona in the trace files,
--     ranked from 1 in byte order (the order of min(persona)).
--  2. trace_units: traces@v3's classification and grouping sets, with the
--     struct (ts, persona IS NULL, persona) replaced by the HUGEINT
--        (ts + 2^63) * 2^33 + (persona IS NULL) * 2^32 + rank
--     which orders rows exactly as the struct did (earliest ts, then a
--     non-NULL persona, then the smallest): persona_rank is the rank at its
--     minimum (0 for a NULL persona; rows with equal keys have the same
--     persona, so ties cannot matter), exposure_us the earliest ts.
-- Rules, counts and kept rows are traces@v2's and v3's; with assignment@v4
-- the outputs are the single-join set's (golden/singlejoin_test.go).
-- Parameters: trace_files, exp_ids, exp_start_us, exp_end_us,
-- exp_persona_version ('' = not pinned), var_exp, var_name.
CREATE TEMP TABLE trace_personas AS
SELECT persona, row_number() OVER (ORDER BY persona) AS persona_rank
FROM (
    SELECT DISTINCT {{col .Traces "persona"}} AS persona
    FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Traces "persona"}} IS NOT NULL
);

CREATE TEMP TABLE trace_units AS
WITH exps AS (
    SELECT
        unnest($exp_ids) AS experiment_id,
        generate_subscripts($exp_ids, 1) AS exp_no,
        unnest($exp_start_us) AS start_us,
        unnest($exp_end_us) AS end_us,
        unnest($exp_persona_version) AS persona_version
),
declared AS (
    SELECT unnest($var_exp) AS experiment_id, unnest($var_name) AS variant
),
variants AS (
    SELECT experiment_id, variant, row_number() OVER (PARTITION BY experiment_id ORDER BY variant) AS var_no
    FROM declared
),
src AS (
    SELECT
        epoch_us({{col .Traces "ts"}}) AS ts_us,
        {{col .Traces "unit_id"}} AS unit_id,
        {{col .Traces "experiment_id"}} AS experiment_id,
        {{col .Traces "variant"}} AS variant,
        {{col .Traces "persona"}} AS persona,
        {{col .Traces "persona_algo_version"}} AS persona_algo_version,
        {{col .Traces "event_id"}} AS event_id
    FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)
),
scoped AS (
    SELECT
        s.*,
        x.exp_no,
        v.var_no,
        x.start_us,
        x.end_us,
        x.persona_version,
        (s.ts_us IS NULL OR s.unit_id IS NULL OR s.variant IS NULL) AS null_keys,
        v.variant IS NOT NULL AS known_variant,
        hash(s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR x.experiment_id IS NOT NULL
),
dup AS (
    SELECT exp_no, null_keys, h
    FROM scoped
    WHERE event_id IS NOT NULL AND experiment_id IS NOT NULL
    GROUP BY exp_no, null_keys, h
    HAVING count(*) > 1
),
ranked AS (
    SELECT s.*, 1 AS copy_no
    FROM scoped AS s
    ANTI JOIN dup AS d ON d.exp_no = s.exp_no AND d.null_keys = s.null_keys AND d.h = s.h
    UNION ALL
    SELECT
        s.*,
        row_number() OVER (
            PARTITION BY s.exp_no, s.event_id, s.null_keys
            ORDER BY s.ts_us, s.unit_id, s.variant, s.persona NULLS FIRST, s.persona_algo_version NULLS FIRST
        ) AS copy_no
    FROM scoped AS s
    SEMI JOIN dup AS d ON d.exp_no = s.exp_no AND d.null_keys = s.null_keys AND d.h = s.h
),
classified AS (
    SELECT
        exp_no,
        unit_id,
        var_no,
        persona,
        ts_us,
        CASE
            WHEN experiment_id IS NULL THEN 'null_experiment'
            WHEN null_keys THEN 'null_keys'
            WHEN event_id IS NOT NULL AND copy_no > 1 THEN 'duplicate'
            WHEN ts_us < start_us OR ts_us >= end_us THEN 'out_of_window'
            WHEN persona_version <> '' AND persona_algo_version IS DISTINCT FROM persona_version THEN 'version_mismatch'
            WHEN NOT known_variant THEN 'unknown_variant'
        END AS reason
    FROM ranked
)
SELECT
    CASE WHEN grouping(unit_id) = 0 THEN 1 ELSE 0 END AS kind,
    exp_no,
    reason,
    unit_id,
    count(*) AS n,
    min(var_no) FILTER (WHERE reason IS NULL) AS min_var,
    max(var_no) FILTER (WHERE reason IS NULL) AS max_var,
    min(c.ts_us) FILTER (WHERE reason IS NULL) AS exposure_us,
    arg_min(
        coalesce(p.persona_rank, 0),
        (CAST(c.ts_us AS HUGEINT) + 9223372036854775808) * 8589934592
            + CASE WHEN c.persona IS NULL THEN 4294967296 ELSE 0 END
            + coalesce(p.persona_rank, 0)
    ) FILTER (WHERE reason IS NULL) AS persona_rank
FROM classified AS c
LEFT JOIN trace_personas AS p ON p.persona = c.persona
GROUP BY GROUPING SETS ((exp_no, reason), (exp_no, unit_id))
HAVING grouping(unit_id) = 1 OR count(*) FILTER (WHERE reason IS NULL) > 0;

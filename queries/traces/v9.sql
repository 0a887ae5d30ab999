-- traces v9: traces@v8 with the per-unit aggregate keyed by (experiment,
-- unit_id, reason) instead of GROUPING SETS ((experiment, reason),
-- (experiment, unit_id)) (issue 18, many experiments in one pass). Its rows
-- are (experiment, unit) pairs, so in a nightly pass of 20 experiments it
-- was the statement that grew most with traces (every row went into two
-- hash tables and carried a VARCHAR reason and five filtered aggregates).
-- Here every trace row goes into one hash table, its reason a small
-- integer (0 kept; 1 null_experiment, 2 no_unit, 3 null_keys, 4 duplicate,
-- 5 out_of_window, 6 version_mismatch, 7 unknown_variant: the same rules
-- in the same order as traces@v8), and the unit key is NULL for the rows
-- that belong to no unit (reasons 1 and 2). trace_units therefore has one
-- row per (experiment, reason, unit) that has rows, with n and, for
-- reason 0, the kept rows' variant range, exposure and persona rank. What
-- traces@v8 wrote per unit follows from it: a unit is assigned from its
-- reason-0 row; the number of units with at least one row of a gate reason
-- (traces@v8's flags) is the number of that reason's rows; the row counts
-- per (experiment, reason) are sums. Only assignment@v6 reads this layout
-- (expspec holds the pair together); it writes assignment and trace_counts
-- with the same rows as assignment@v5 after traces@v8. Statements 1-4 are
-- traces@v8's, unchanged.
-- Parameters: trace_files, exp_ids, exp_start_us, exp_end_us,
-- exp_persona_version ('' = not pinned), var_exp, var_name.
SET disabled_optimizers = 'build_side_probe_side';
-- traces v7: traces@v6, with the blank-key test made cheap. traces@v6
-- tests every row's unit_id and experiment_id with
-- trim(x, <space, \t, \n, \v, \f, \r>) = '', and DuckDB's trim with a
-- character set costs about 0.1-0.3 us a row. A string that trims to ''
-- is empty or starts with one of those bytes (all <= 0x20), so it sorts
-- before '!' (VARCHAR comparison is bytewise): v7 writes
--   CASE WHEN x >= '!' THEN false ELSE trim(x, ...) = '' END
-- which runs trim only on the rare strings that sort before '!' and has
-- the same value for every x, NULL included (x >= '!' is NULL, so the
-- ELSE branch gives trim(NULL, ...) = '', NULL, as before). Same
-- statements, tables, rows and counts as traces@v6, whose text follows.
-- traces v6: traces@v5 with unit-keyed rules, for private releases (a unit's
-- rows can never remove or change another unit's rows) and for honest keys:
--  * duplicates are copies of an event_id WITHIN one unit: the duplicate
--    hash and window partition by (experiment, unit_id, event_id), where
--    traces@v5 partitioned by (experiment, event_id) across units;
--  * a row whose unit_id is NULL, empty or only whitespace belongs to no
--    unit: reason 'no_unit' (counted, never a pseudo-unit); an empty or
--    blank experiment_id is counted with the NULL ones ('null_experiment');
--  * per unit (kind 1), flags marks the reasons the unit has at least one
--    row of (1 null_keys, 2 duplicate, 4 version_mismatch, 8
--    unknown_variant), and units whose rows were all excluded for one of
--    those reasons are kept too (min_var is NULL for them): the per-unit
--    form of each quality gate, which a private run releases with a
--    sensitivity of one unit.
-- Reasons, first rule that applies: null_experiment, no_unit, null_keys
-- (NULL ts or variant), duplicate, out_of_window, version_mismatch,
-- unknown_variant. Statements as in traces@v5.
-- Parameters: trace_files, exp_ids, exp_start_us, exp_end_us,
-- exp_persona_version ('' = not pinned), var_exp, var_name.
CREATE TEMP TABLE trace_personas AS
SELECT persona, row_number() OVER (ORDER BY persona) AS persona_rank
FROM (
    SELECT DISTINCT {{col .Traces "persona"}} AS persona
    FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Traces "persona"}} IS NOT NULL
);

CREATE TEMP TABLE trace_dups AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
)
SELECT
    x.exp_no,
    (epoch_us({{col .Traces "ts"}}) IS NULL OR {{col .Traces "variant"}} IS NULL OR {{col .Traces "unit_id"}} IS NULL
        OR CASE WHEN {{col .Traces "unit_id"}} >= '!' THEN false ELSE trim({{col .Traces "unit_id"}}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS null_keys,
    hash({{col .Traces "unit_id"}}, {{col .Traces "event_id"}}) AS h
FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false) AS s
JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
WHERE s.{{col .Traces "event_id"}} IS NOT NULL AND s.{{col .Traces "unit_id"}} IS NOT NULL
GROUP BY ALL
HAVING count(*) > 1;

CREATE TEMP TABLE trace_cand AS
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
        (s.unit_id IS NULL OR CASE WHEN s.unit_id >= '!' THEN false ELSE trim(s.unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS no_unit,
        (s.ts_us IS NULL OR s.variant IS NULL OR s.unit_id IS NULL OR CASE WHEN s.unit_id >= '!' THEN false ELSE trim(s.unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS null_keys,
        v.variant IS NOT NULL AS known_variant,
        hash(s.unit_id, s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR CASE WHEN s.experiment_id >= '!' THEN false ELSE trim(s.experiment_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END OR x.experiment_id IS NOT NULL
)
SELECT
    s.*,
    row_number() OVER (
        PARTITION BY s.exp_no, s.unit_id, s.event_id, s.null_keys
        ORDER BY s.ts_us, s.unit_id, s.variant, s.persona NULLS FIRST, s.persona_algo_version NULLS FIRST
    ) AS copy_no
FROM scoped AS s
SEMI JOIN trace_dups AS d ON d.exp_no = s.exp_no AND d.null_keys = s.null_keys AND d.h = s.h;

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
        (s.unit_id IS NULL OR CASE WHEN s.unit_id >= '!' THEN false ELSE trim(s.unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS no_unit,
        (s.ts_us IS NULL OR s.variant IS NULL OR s.unit_id IS NULL OR CASE WHEN s.unit_id >= '!' THEN false ELSE trim(s.unit_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END) AS null_keys,
        v.variant IS NOT NULL AS known_variant,
        hash(s.unit_id, s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR CASE WHEN s.experiment_id >= '!' THEN false ELSE trim(s.experiment_id, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '' END OR x.experiment_id IS NOT NULL
),
ranked AS (
    SELECT s.*, 1 AS copy_no
    FROM scoped AS s
    ANTI JOIN trace_dups AS d ON d.exp_no = s.exp_no AND d.null_keys = s.null_keys AND d.h = s.h
    UNION ALL
    SELECT * FROM trace_cand
),
classified AS (
    SELECT
        exp_no,
        unit_id,
        var_no,
        persona,
        ts_us,
        CASE
            WHEN exp_no IS NULL THEN 1
            WHEN no_unit THEN 2
            WHEN null_keys THEN 3
            WHEN event_id IS NOT NULL AND copy_no > 1 THEN 4
            WHEN ts_us < start_us OR ts_us >= end_us THEN 5
            WHEN persona_version <> '' AND persona_algo_version IS DISTINCT FROM persona_version THEN 6
            WHEN NOT known_variant THEN 7
            ELSE 0
        END AS reason_no
    FROM ranked
)
SELECT
    exp_no,
    reason_no,
    CASE WHEN reason_no IN (1, 2) THEN NULL ELSE unit_id END AS unit_id,
    count(*) AS n,
    min(var_no) AS min_var,
    max(var_no) AS max_var,
    min(c.ts_us) AS exposure_us,
    arg_min(
        coalesce(p.persona_rank, 0),
        (CAST(c.ts_us AS HUGEINT) + 9223372036854775808) * 8589934592
            + CASE WHEN c.persona IS NULL THEN 4294967296 ELSE 0 END
            + coalesce(p.persona_rank, 0)
    ) AS persona_rank
FROM classified AS c
LEFT JOIN trace_personas AS p ON p.persona = c.persona
GROUP BY exp_no, reason_no, CASE WHEN reason_no IN (1, 2) THEN NULL ELSE unit_id END;
RESET disabled_optimizers;

-- traces v5: traces@v4's statements and results, without the CTE that
-- held every trace row. In traces@v4 the classified rows (scoped) feed the
-- duplicate-hash aggregate and both branches of the candidate split, so
-- DuckDB wrote them all to a temporary CTE (2 GB spilled at 10M units under
-- a 4 GB limit). v5 splits the work the way events@v3 does, so that every
-- statement reads the Parquet files once and streams:
--  1. trace_personas: the persona ranks (traces@v4's first statement);
--  2. trace_dups: the (experiment, NULL-keys flag, event_id hash) groups
--     that occur more than once, from a scan of five columns;
--  3. trace_cand: the rows of those groups with traces@v2's duplicate
--     window (copy_no); empty, and not scanned, when no event_id repeats;
--  4. trace_units: every other row with copy_no 1 plus the candidates,
--     classified and aggregated exactly as in traces@v4.
-- assignment@v4 reads trace_units and trace_personas as it does after
-- traces@v4. golden/singlejoin_test.go holds the results to the per-event
-- templates' bytes.
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
    (epoch_us({{col .Traces "ts"}}) IS NULL OR {{col .Traces "unit_id"}} IS NULL OR {{col .Traces "variant"}} IS NULL) AS null_keys,
    hash({{col .Traces "event_id"}}) AS h
FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false) AS s
JOIN exps AS x ON x.experiment_id = s.{{col .Traces "experiment_id"}}
WHERE s.{{col .Traces "event_id"}} IS NOT NULL
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
        (s.ts_us IS NULL OR s.unit_id IS NULL OR s.variant IS NULL) AS null_keys,
        v.variant IS NOT NULL AS known_variant,
        hash(s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR x.experiment_id IS NOT NULL
)
SELECT
    s.*,
    row_number() OVER (
        PARTITION BY s.exp_no, s.event_id, s.null_keys
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
        (s.ts_us IS NULL OR s.unit_id IS NULL OR s.variant IS NULL) AS null_keys,
        v.variant IS NOT NULL AS known_variant,
        hash(s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR x.experiment_id IS NOT NULL
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

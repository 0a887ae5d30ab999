-- traces v1: every trace row of the analysed experiments, classified.
--
-- One output row per input row whose experiment_id is analysed or NULL.
-- reason is NULL for a row kept for assignment, else the first rule that
-- excluded it, in this order:
--   null_experiment   experiment_id is NULL
--   null_keys         ts, unit_id or variant is NULL
--   duplicate         another row of the experiment has the same event_id and
--                     sorts first by (ts, unit_id, variant, persona NULLS FIRST,
--                     persona_algo_version NULLS FIRST)
--   out_of_window     ts outside [start, end)
--   version_mismatch  the experiment pins a persona-algorithm version and the
--                     row's version is NULL or different
--   unknown_variant   the variant is not declared by the experiment's spec
-- Parameters: trace_files, exp_ids, exp_start_us, exp_end_us,
-- exp_persona_version ('' = not pinned), var_exp, var_name.
CREATE TEMP TABLE trace_rows AS
WITH exps AS (
    SELECT
        unnest($exp_ids) AS experiment_id,
        unnest($exp_start_us) AS start_us,
        unnest($exp_end_us) AS end_us,
        unnest($exp_persona_version) AS persona_version
),
variants AS (
    SELECT unnest($var_exp) AS experiment_id, unnest($var_name) AS variant
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
        x.start_us,
        x.end_us,
        x.persona_version,
        (s.ts_us IS NULL OR s.unit_id IS NULL OR s.variant IS NULL) AS null_keys,
        v.variant IS NOT NULL AS known_variant
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR x.experiment_id IS NOT NULL
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY experiment_id, event_id, null_keys
            ORDER BY ts_us, unit_id, variant, persona NULLS FIRST, persona_algo_version NULLS FIRST
        ) AS copy_no
    FROM scoped
)
SELECT
    experiment_id,
    unit_id,
    variant,
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

-- PROTOTYPE (verity-bench only; a candidate for traces@v2): the same
-- trace_rows as traces@v1, row for row, without sorting every row. Only rows
-- whose (experiment, null_keys, hash(event_id)) occurs more than once can be
-- duplicates; they alone go through traces@v1's row_number() window, which
-- partitions by the real event_id, so a hash collision costs a little time
-- and never changes a result. Every other row has copy_no 1.
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
        v.variant IS NOT NULL AS known_variant,
        hash(s.event_id) AS h
    FROM src AS s
    LEFT JOIN exps AS x ON x.experiment_id = s.experiment_id
    LEFT JOIN variants AS v ON v.experiment_id = s.experiment_id AND v.variant = s.variant
    WHERE s.experiment_id IS NULL OR x.experiment_id IS NOT NULL
),
dup AS (
    SELECT experiment_id, null_keys, h
    FROM scoped
    WHERE event_id IS NOT NULL AND experiment_id IS NOT NULL
    GROUP BY experiment_id, null_keys, h
    HAVING count(*) > 1
),
ranked AS (
    SELECT s.*, 1 AS copy_no
    FROM scoped AS s
    ANTI JOIN dup AS d ON d.experiment_id = s.experiment_id AND d.null_keys = s.null_keys AND d.h = s.h
    UNION ALL
    SELECT
        s.*,
        row_number() OVER (
            PARTITION BY s.experiment_id, s.event_id, s.null_keys
            ORDER BY s.ts_us, s.unit_id, s.variant, s.persona NULLS FIRST, s.persona_algo_version NULLS FIRST
        ) AS copy_no
    FROM scoped AS s
    SEMI JOIN dup AS d ON d.experiment_id = s.experiment_id AND d.null_keys = s.null_keys AND d.h = s.h
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

-- PROTOTYPE (a candidate for events@v2): the same event_rows as events@v1,
-- row for row, with the duplicate window restricted to the rows whose
-- (hash(event_id), null_keys) occurs more than once (see traces_cand.sql).
CREATE TEMP TABLE event_rows AS
WITH wanted AS (
    SELECT DISTINCT unnest($m_event) AS metric
),
src AS (
    SELECT
        epoch_us({{col .Events "ts"}}) AS ts_us,
        {{col .Events "unit_id"}} AS unit_id,
        {{col .Events "metric"}} AS metric,
        CAST({{col .Events "value"}} AS DOUBLE) AS value,
        {{col .Events "event_id"}} AS event_id,
        hash({{col .Events "event_id"}}) AS h,
        ({{col .Events "ts"}} IS NULL OR {{col .Events "unit_id"}} IS NULL) AS null_keys
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT metric FROM wanted)
),
dup AS (
    SELECT h, null_keys
    FROM src
    WHERE event_id IS NOT NULL
    GROUP BY h, null_keys
    HAVING count(*) > 1
),
classified AS (
    SELECT
        s.*,
        CASE
            WHEN null_keys THEN 'null_keys'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src AS s
    ANTI JOIN dup AS d ON d.h = s.h AND d.null_keys = s.null_keys
    UNION ALL
    SELECT
        s.*,
        CASE
            WHEN null_keys THEN 'null_keys'
            WHEN event_id IS NOT NULL AND row_number() OVER (
                PARTITION BY event_id, null_keys
                ORDER BY ts_us, unit_id, metric, value NULLS FIRST
            ) > 1 THEN 'duplicate'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src AS s
    SEMI JOIN dup AS d ON d.h = s.h AND d.null_keys = s.null_keys
)
SELECT
    metric,
    unit_id,
    ts_us,
    CASE WHEN reason IS NULL THEN CAST(round(coalesce(value, 1.0) * $scale) AS BIGINT) END AS v,
    reason
FROM classified

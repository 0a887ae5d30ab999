-- PROTOTYPE (second statement of a candidate events@v3): the events whose
-- event_id hash is in event_dups, classified exactly as events@v1 does. Every
-- copy of such an event_id is here, so events@v1's window over
-- (event_id, null_keys) sees complete partitions.
-- Parameters: event_files, m_event, scale.
CREATE TEMP TABLE event_cand AS
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
        hash({{col .Events "event_id"}}) AS h
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT metric FROM wanted)
)
SELECT
    metric,
    unit_id,
    ts_us,
    value,
    CASE
        WHEN ts_us IS NULL OR unit_id IS NULL THEN 'null_keys'
        WHEN event_id IS NOT NULL AND row_number() OVER (
            PARTITION BY event_id, (ts_us IS NULL OR unit_id IS NULL)
            ORDER BY ts_us, unit_id, metric, value NULLS FIRST
        ) > 1 THEN 'duplicate'
        WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
    END AS reason
FROM src
SEMI JOIN event_dups AS d ON d.h = src.h

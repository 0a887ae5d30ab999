-- events v1: every metric event whose name some analysed metric uses,
-- classified and scaled to fixed point.
--
-- reason is NULL for a usable event, else the first rule that excluded it:
--   null_keys      ts or unit_id is NULL
--   duplicate      another event with the same event_id sorts first by
--                  (ts, unit_id, metric, value NULLS FIRST)
--   invalid_value  value is NaN or infinite, or |value * scale| >= 9.2e18
-- v is the value in fixed point: round(coalesce(value, 1) * scale) as BIGINT,
-- rounding half away from zero; NULL for excluded rows.
-- Parameters: event_files, m_event (the event names), scale (10^decimals as
-- DOUBLE).
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
        {{col .Events "event_id"}} AS event_id
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT metric FROM wanted)
),
classified AS (
    SELECT
        *,
        CASE
            WHEN ts_us IS NULL OR unit_id IS NULL THEN 'null_keys'
            WHEN event_id IS NOT NULL AND row_number() OVER (
                PARTITION BY event_id, (ts_us IS NULL OR unit_id IS NULL)
                ORDER BY ts_us, unit_id, metric, value NULLS FIRST
            ) > 1 THEN 'duplicate'
            WHEN value IS NOT NULL AND (NOT isfinite(value) OR abs(value * $scale) >= 9.2e18) THEN 'invalid_value'
        END AS reason
    FROM src
)
SELECT
    metric,
    unit_id,
    ts_us,
    CASE WHEN reason IS NULL THEN CAST(round(coalesce(value, 1.0) * $scale) AS BIGINT) END AS v,
    reason
FROM classified

-- events v2: the same event_rows as events@v1, row for row, faster and
-- able to run within a small memory limit.
--
-- v1 ran the duplicate window (row_number over event_id) over every event
-- used: a sort of the whole input, which also ran out of memory at 10M
-- units under a 4 GB limit. v2 runs it only over the rows whose
-- (hash(event_id), null_keys) occurs more than once; every copy of a
-- duplicated event_id is among them, and a hash collision only adds a
-- candidate, resolved by the real event_id. Rules, order, scaling and
-- rounding are v1's: null_keys, duplicate (the copy sorting first by ts,
-- unit_id, metric, value NULLS FIRST is kept), invalid_value; v is
-- round(coalesce(value, 1) * scale) as BIGINT. golden/versions_test.go
-- requires identical outputs.
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

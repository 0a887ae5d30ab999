-- The scan floor: every column Verity needs, read once and decoded, with the
-- cheapest aggregate that uses each value (a count or a sum of lengths), so
-- that DuckDB cannot answer from Parquet statistics or skip a column. It is
-- the bench's lower bound on any exact pass over the inputs: the traces'
-- seven contract columns and the events' five, every row (Verity classifies
-- every row for quality.json; the events' metric filter needs the metric of
-- every row). Issue 18 asks for Verity within 3 x of it.
-- Parameters: traces, events (globs).
SELECT
    'traces' AS kind,
    count(*) AS n,
    (count(ts) + sum(strlen(unit_id)) + sum(strlen(experiment_id)) + sum(strlen(variant))
        + sum(strlen(persona)) + sum(strlen(persona_algo_version)) + sum(strlen(event_id)))::VARCHAR AS check_sum
FROM read_parquet($traces)
UNION ALL
SELECT
    'events',
    count(*),
    (count(ts) + sum(strlen(unit_id)) + sum(strlen(metric)) + count(value) + sum(strlen(event_id)))::VARCHAR
FROM read_parquet($events)

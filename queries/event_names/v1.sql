-- event_names v1: the event names present in the events files inside an
-- analysis window, with their row counts. Internal, pinned by the code: it
-- runs only when some metric of an experiment has the same value for every
-- unit (no unit had its event), to tell a misspelt event name (no row in
-- the window at all) from an event that did not happen to the
-- experiment's units, and to suggest the names that are there.
-- Parameters: event_files, start_us, end_us.
SELECT
    {{col .Events "metric"}} AS metric,
    count(*) AS n
FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
WHERE {{col .Events "metric"}} IS NOT NULL
    AND epoch_us({{col .Events "ts"}}) >= $start_us
    AND epoch_us({{col .Events "ts"}}) < $end_us
GROUP BY 1
ORDER BY 1

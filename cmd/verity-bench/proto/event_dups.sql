-- PROTOTYPE (first statement of a candidate events@v3): the hashes of the
-- event_ids that occur more than once among the events some metric uses,
-- from a scan of two columns. Rows with these hashes are the only ones that
-- can be duplicates (a collision only adds a candidate). NULL keys are not
-- looked at: such rows are excluded before the duplicate rule applies.
-- Parameters: event_files, m_event (the event names in use).
CREATE TEMP TABLE event_dups AS
SELECT hash({{col .Events "event_id"}}) AS h
FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
WHERE {{col .Events "metric"}} IN (SELECT DISTINCT unnest($m_event)) AND {{col .Events "event_id"}} IS NOT NULL
GROUP BY h
HAVING count(*) > 1

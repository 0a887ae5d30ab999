-- incr_facts v1 (internal, issue 18 item 2): the incremental pass's
-- checks and facts (incr_checks), by name.
-- No parameters.
SELECT name, CAST(sum(n) AS BIGINT) AS n FROM incr_checks GROUP BY name ORDER BY name

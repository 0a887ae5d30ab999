-- filter_counts v1: how many rows each declared filter value matched
-- (issue 20 item 3), so that a filter value that matches nothing (a typo
-- such as DEE, a case or whitespace difference) is reported instead of
-- giving a plausible number. Pinned with events@v9 by specs with filtered
-- metrics; it reads the events files itself and no table of the pass.
-- Counted over every row of the events files whose metric is a filtered
-- metric's event (before de-duplication, NULL keys or windows: a value
-- that occurs only outside the window is "matched" and does not warn), per
-- (event, property, value) declared in some filter ($fc_event, $fc_prop,
-- the property's position in inputs.event_properties from 0, $fc_value):
--   kind 'value': the rows whose property equals the value exactly
--                 (string equality, no trimming or case folding);
--   kind 'null':  one row per (event, property) with the rows whose
--                 property is NULL, which never match a filter.
-- Every declared (event, property, value) has a row, 0 when it matched
-- nothing. Properties are rendered in declared order as p0, p1, ...
-- Parameters: event_files, fc_event, fc_prop, fc_value.
WITH declared AS (
    SELECT DISTINCT event, prop_no, value
    FROM (SELECT unnest(CAST($fc_event AS VARCHAR[])) AS event, unnest(CAST($fc_prop AS BIGINT[])) AS prop_no, unnest(CAST($fc_value AS VARCHAR[])) AS value)
),
src AS (
    SELECT
        {{col .Events "metric"}} AS metric{{range $i, $p := .Props}},
        {{ident $p}} AS p{{$i}}{{end}}
    FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false)
    WHERE {{col .Events "metric"}} IN (SELECT DISTINCT event FROM declared)
),
seen AS (
    SELECT CAST(NULL AS VARCHAR) AS metric, CAST(NULL AS BIGINT) AS prop_no, CAST(NULL AS VARCHAR) AS value, CAST(0 AS BIGINT) AS n
    WHERE false{{range $i, $p := .Props}}
    UNION ALL
    SELECT metric, {{$i}}, p{{$i}}, count(*) FROM src GROUP BY metric, p{{$i}}{{end}}
),
pairs AS (
    SELECT DISTINCT event, prop_no FROM declared
)
SELECT 'value' AS kind, d.event, d.prop_no, d.value, CAST(coalesce(s.n, 0) AS BIGINT) AS n
FROM declared AS d
LEFT JOIN seen AS s ON s.metric = d.event AND s.prop_no = d.prop_no AND s.value = d.value
UNION ALL
SELECT 'null' AS kind, p.event, p.prop_no, CAST(NULL AS VARCHAR) AS value, CAST(coalesce(s.n, 0) AS BIGINT) AS n
FROM pairs AS p
LEFT JOIN seen AS s ON s.metric = p.event AND s.prop_no = p.prop_no AND s.value IS NULL
ORDER BY event, prop_no, kind DESC, value;

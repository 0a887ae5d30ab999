-- PROTOTYPE (a candidate for assignment@v2): assignment@v1's units without
-- count(DISTINCT) and without an ordered aggregate. n_variants is 1 when the
-- unit saw one variant and 2 when it saw more (every later stage only asks
-- "= 1" or "> 1"); the persona of the earliest row, ties broken by the
-- smallest persona and NULL last, is the minimum of the struct
-- (ts, persona IS NULL, persona).
CREATE TEMP TABLE assignment AS
WITH leaves AS (
    SELECT unnest($leaf_exp) AS experiment_id, unnest($leaf) AS persona
),
units AS (
    SELECT
        experiment_id,
        unit_id,
        CASE WHEN min(variant) = max(variant) THEN 1 ELSE 2 END AS n_variants,
        min(variant) AS variant,
        min(ts_us) AS exposure_us,
        min(struct_pack(t := ts_us, n := persona IS NULL, p := persona)).p AS persona
    FROM trace_rows
    WHERE reason IS NULL
    GROUP BY experiment_id, unit_id
)
SELECT
    u.experiment_id,
    u.unit_id,
    u.n_variants,
    u.variant,
    u.exposure_us,
    u.persona,
    coalesce(l.persona, '*') AS cohort
FROM units AS u
LEFT JOIN leaves AS l ON l.experiment_id = u.experiment_id AND l.persona = u.persona

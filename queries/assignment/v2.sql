-- assignment v2: the same assignment as assignment@v1, row for row, with
-- aggregates DuckDB can spill to disk.
--
-- v1's count(DISTINCT variant) and first(persona ORDER BY ...) cannot
-- spill, which set a floor under the memory limit. v2 says a unit has more
-- than one variant when min(variant) <> max(variant) (n_variants is then 2:
-- downstream templates only test n_variants = 1), and takes the persona of
-- the earliest row as the minimum of the struct (ts, persona IS NULL,
-- persona): earliest first, then a non-NULL persona before NULL, then the
-- smallest, exactly v1's tie rule. golden/versions_test.go requires
-- identical outputs.
-- Parameters: leaf_exp, leaf (parallel lists: the taxonomy leaves of each
-- experiment).
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

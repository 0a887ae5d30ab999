-- assignment v1: one row per experiment and exposed unit.
--
-- From the trace rows kept by traces@v1: n_variants counts the unit's
-- distinct variants (a unit with more than one is excluded downstream and
-- counted as multi-variant); exposure_us is its first exposure; persona is the
-- persona of its earliest row (ties on ts broken by the smallest persona,
-- NULL last); cohort is that persona when it is a declared taxonomy leaf of
-- the experiment, else '*'.
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
        count(DISTINCT variant) AS n_variants,
        min(variant) AS variant,
        min(ts_us) AS exposure_us,
        first(persona ORDER BY ts_us, persona NULLS LAST) AS persona
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

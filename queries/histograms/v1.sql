-- histograms v1: per experiment, cohort, variant and quantile metric, the
-- exact distribution of the units' fixed-point values x: one row per
-- distinct value with the number of units that have it (issue 20). Counts
-- add over disjoint sets of units, so shards' histograms merge exactly.
-- Reads what unit_metrics@v4/v5 and sufstats@v3 read, with sufstats@v3's
-- rule for the units without events: the units with a row in the view
-- unit_values (cohort and variant looked up in the assignment by uid) have
-- their own x; every other assigned unit of the cell has x = x0, the
-- metric's value of a unit without events. So a cell's counts sum to its n
-- in sufstats. Values are clamped (the spec's clamp, within int64), cast
-- to BIGINT. Only metrics of kind 'quantile' have rows; a cell with no
-- units has none.
-- No parameters: unit_metric_defs holds the metrics.
WITH qdefs AS (
    SELECT metric_no, exp_no, experiment_id, metric, x0
    FROM unit_metric_defs
    WHERE kind = 'quantile'
),
ev AS (
    SELECT u.metric_no, a.cohort, a.variant, CAST(u.x AS BIGINT) AS x, count(*) AS units
    FROM unit_values AS u
    JOIN qdefs AS d ON d.metric_no = u.metric_no
    JOIN assignment AS a ON a.uid = u.uid
    GROUP BY u.metric_no, a.cohort, a.variant, u.x
),
ev_n AS (
    SELECT metric_no, cohort, variant, sum(units) AS n_e
    FROM ev
    GROUP BY metric_no, cohort, variant
),
unit_cells AS (
    SELECT exp_no, cohort, variant, count(*) AS n
    FROM assignment
    WHERE n_variants = 1
    GROUP BY exp_no, cohort, variant
),
rest AS (
    SELECT d.metric_no, c.cohort, c.variant, CAST(d.x0 AS BIGINT) AS x, c.n - coalesce(e.n_e, 0) AS units
    FROM unit_cells AS c
    JOIN qdefs AS d ON d.exp_no = c.exp_no
    LEFT JOIN ev_n AS e ON e.metric_no = d.metric_no AND e.cohort = c.cohort AND e.variant = c.variant
),
bins AS (
    SELECT metric_no, cohort, variant, x, units FROM ev
    UNION ALL
    SELECT metric_no, cohort, variant, x, units FROM rest WHERE units <> 0
)
SELECT
    d.experiment_id,
    b.cohort,
    b.variant,
    d.metric,
    b.x AS value,
    CAST(sum(b.units) AS BIGINT) AS units
FROM bins AS b
JOIN qdefs AS d ON d.metric_no = b.metric_no
GROUP BY d.experiment_id, b.cohort, b.variant, d.metric, b.x
ORDER BY experiment_id, cohort, variant, metric, value

-- The reference query: what a data scientist would write by hand in DuckDB to
-- get, for one experiment, n, sum(x) and sum(x*x) per cohort x variant x
-- metric. It is the benchmark's yardstick, not a Verity template: it handles
-- none of the data faults Verity classifies (duplicates, NULL keys,
-- multi-variant units, stale persona versions), so it is exact only on clean
-- data, which is what the bench generates.
--
-- First exposure per unit with min(ts) / arg_min; events joined on unit_id
-- at or after exposure and before the window end, summed per unit; every
-- exposed unit gets every metric (0 when it has no event), clamped; then
-- count, sum and sum of squares per cell.
--
-- Parameters: traces, events (globs), experiment, start, end (TIMESTAMPTZ),
-- leaves (the persona taxonomy), m_name, m_kind, m_event, m_agg, m_lo, m_hi
-- (parallel lists, one entry per metric; values in the events' unit).
WITH metrics AS (
    SELECT
        unnest($m_name) AS metric,
        unnest($m_kind) AS kind,
        unnest($m_event) AS event,
        unnest($m_agg) AS agg,
        unnest($m_lo) AS lo,
        unnest($m_hi) AS hi
),
exposures AS (
    SELECT
        unit_id,
        min(ts) AS exposed_at,
        arg_min(variant, ts) AS variant,
        arg_min(persona, ts) AS persona
    FROM read_parquet($traces)
    WHERE experiment_id = $experiment AND ts >= $start AND ts < $end
    GROUP BY unit_id
),
per_unit AS (
    SELECT
        x.unit_id,
        e.metric AS event,
        count(*) AS n_events,
        sum(coalesce(e.value, 1)) AS total
    FROM exposures AS x
    JOIN read_parquet($events) AS e ON e.unit_id = x.unit_id
    WHERE e.metric IN (SELECT event FROM metrics) AND e.ts >= x.exposed_at AND e.ts < $end
    GROUP BY x.unit_id, e.metric
),
unit_values AS (
    SELECT
        CASE WHEN list_contains($leaves, x.persona) THEN x.persona ELSE '*' END AS cohort,
        x.variant,
        m.metric,
        least(greatest(
            CASE
                WHEN m.kind = 'proportion' THEN CASE WHEN p.n_events > 0 THEN 1 ELSE 0 END
                WHEN m.agg = 'count' THEN coalesce(p.n_events, 0)
                ELSE coalesce(p.total, 0)
            END, m.lo), m.hi) AS x
    FROM exposures AS x
    CROSS JOIN metrics AS m
    LEFT JOIN per_unit AS p ON p.unit_id = x.unit_id AND p.event = m.event
)
SELECT
    cohort,
    variant,
    metric,
    count(*) AS n,
    sum(x) AS sum_x,
    sum(x * x) AS sum_x2
FROM unit_values
GROUP BY cohort, variant, metric
ORDER BY cohort, variant, metric

-- PROTOTYPE (a candidate for unit_metrics@v4 + sufstats@v3 as one query,
-- with no per-unit table): sufstats@v1's result, exactly, from event_units
-- and the assignment. A unit with no event of a metric's event name has
-- x = clamp(0); such units are not joined one by one but counted per cell
-- from the assignment, and contribute (n - n_with_events) * clamp(0) to
-- sum_x and its square to sum_x2, in exact integer arithmetic.
-- Parameters: m_exp, m_name, m_event, m_kind, m_agg, m_clamp, m_lo, m_hi,
-- scale_int.
WITH metrics AS (
    SELECT
        unnest($m_exp) AS experiment_id,
        unnest($m_name) AS metric,
        unnest($m_event) AS event,
        unnest($m_kind) AS kind,
        unnest($m_agg) AS agg,
        unnest($m_clamp) AS clamped,
        unnest($m_lo) AS lo,
        unnest($m_hi) AS hi
),
with_events AS (
    SELECT
        t.experiment_id,
        t.cohort,
        t.variant,
        m.metric,
        m.clamped,
        m.lo,
        m.hi,
        CAST(CASE
            WHEN m.kind = 'proportion' THEN CASE WHEN t.event_attributed > 0 THEN $scale_int ELSE 0 END
            WHEN m.agg = 'count' THEN t.event_attributed * $scale_int
            ELSE coalesce(t.attributed_total, 0)
        END AS HUGEINT) AS raw_x
    FROM event_units AS t
    JOIN metrics AS m ON m.experiment_id = t.experiment_id AND m.event = t.event
    WHERE t.unit_id IS NOT NULL
),
clamped AS (
    SELECT
        experiment_id, cohort, variant, metric,
        CASE WHEN clamped THEN greatest(least(raw_x, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE raw_x END AS x
    FROM with_events
),
ev_cells AS (
    SELECT experiment_id, cohort, variant, metric, count(*) AS n_e, sum(x) AS s, sum(x * x) AS s2, max(abs(x)) AS mx
    FROM clamped
    GROUP BY experiment_id, cohort, variant, metric
),
unit_cells AS (
    SELECT a.experiment_id, a.cohort, a.variant, count(*) AS n
    FROM assignment AS a
    WHERE a.n_variants = 1
    GROUP BY a.experiment_id, a.cohort, a.variant
),
cells AS (
    SELECT
        c.experiment_id, c.cohort, c.variant, m.metric, c.n,
        CAST(CASE WHEN m.clamped THEN greatest(least(0, m.hi), m.lo) ELSE 0 END AS HUGEINT) AS x0
    FROM unit_cells AS c
    JOIN metrics AS m ON m.experiment_id = c.experiment_id
)
SELECT
    c.experiment_id,
    c.cohort,
    c.variant,
    c.metric,
    CAST(c.n AS BIGINT) AS n,
    coalesce(e.s, 0) + (c.n - coalesce(e.n_e, 0)) * c.x0 AS sum_x,
    coalesce(e.s2, 0) + (c.n - coalesce(e.n_e, 0)) * c.x0 * c.x0 AS sum_x2,
    CASE
        WHEN coalesce(e.n_e, 0) = 0 THEN abs(c.x0)
        WHEN e.n_e = c.n THEN e.mx
        ELSE greatest(e.mx, abs(c.x0))
    END AS max_abs_x
FROM cells AS c
LEFT JOIN ev_cells AS e
    ON e.experiment_id = c.experiment_id AND e.cohort = c.cohort AND e.variant = c.variant AND e.metric = c.metric
ORDER BY c.experiment_id, c.cohort, c.variant, c.metric

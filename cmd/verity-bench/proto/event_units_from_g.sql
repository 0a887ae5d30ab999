-- PROTOTYPE: event_units (as event_units.sql defines it) from
-- event_units_1join.sql's grouping sets: one row per (experiment, event,
-- assigned unit) with the attribution counts, and one row per (experiment,
-- event) with unit_id NULL carrying the per-event-name counts; the events
-- of units not assigned to the experiment are the valid ones less those
-- of its assigned units.
-- Parameters: exp_ids, m_exp, m_event.
CREATE TEMP TABLE event_units AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
used AS (
    SELECT row_number() OVER (ORDER BY x.exp_no, p.event) AS pair_no, p.experiment_id, p.event
    FROM (SELECT DISTINCT experiment_id, event FROM (SELECT unnest($m_exp) AS experiment_id, unnest($m_event) AS event)) AS p
    JOIN exps AS x ON x.experiment_id = p.experiment_id
),
per_metric AS (
    SELECT metric, event_rows, event_null_keys, event_duplicates, event_invalid_value, event_valid
    FROM event_units_g
    WHERE per_pair = 0
),
assigned AS (
    SELECT pair_no, sum(event_before_exposure + event_after_window + event_attributed) AS n
    FROM event_units_g
    WHERE per_pair = 1 AND pair_no IS NOT NULL
    GROUP BY pair_no
)
SELECT
    u.experiment_id,
    u.event,
    a.unit_id,
    a.cohort,
    a.variant,
    CAST(0 AS BIGINT) AS event_rows,
    CAST(0 AS BIGINT) AS event_null_keys,
    CAST(0 AS BIGINT) AS event_duplicates,
    CAST(0 AS BIGINT) AS event_invalid_value,
    CAST(0 AS BIGINT) AS event_unassigned,
    g.event_before_exposure,
    g.event_after_window,
    g.event_attributed,
    g.attributed_total
FROM event_units_g AS g
JOIN used AS u ON u.pair_no = g.pair_no
JOIN assignment AS a ON a.uid = g.uid
WHERE g.per_pair = 1
UNION ALL
SELECT
    u.experiment_id,
    u.event,
    NULL,
    NULL,
    NULL,
    coalesce(m.event_rows, 0),
    coalesce(m.event_null_keys, 0),
    coalesce(m.event_duplicates, 0),
    coalesce(m.event_invalid_value, 0),
    CAST(coalesce(m.event_valid, 0) - coalesce(s.n, 0) AS BIGINT),
    0,
    0,
    0,
    NULL
FROM used AS u
LEFT JOIN per_metric AS m ON m.metric = u.event
LEFT JOIN assigned AS s ON s.pair_no = u.pair_no

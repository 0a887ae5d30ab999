-- PROTOTYPE: event_units (as event_units.sql defines it) from
-- event_units_keys.sql's compact table, for sufstats_fused.sql and
-- quality_fused.sql: the pair number and uid are turned back into the
-- experiment, event, unit, cohort and variant (a join on integers over the
-- units with events only).
-- Parameters: exp_ids, m_exp, m_event.
CREATE TEMP TABLE event_units AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, generate_subscripts($exp_ids, 1) AS exp_no
),
used AS (
    SELECT row_number() OVER (ORDER BY x.exp_no, p.event) AS pair_no, p.experiment_id, p.event
    FROM (SELECT DISTINCT experiment_id, event FROM (SELECT unnest($m_exp) AS experiment_id, unnest($m_event) AS event)) AS p
    JOIN exps AS x ON x.experiment_id = p.experiment_id
)
SELECT u.experiment_id, u.event, a.unit_id, a.cohort, a.variant, k.* EXCLUDE (pair_no, uid)
FROM event_units_k AS k
JOIN used AS u ON u.pair_no = k.pair_no
LEFT JOIN assignment AS a ON a.uid = k.uid

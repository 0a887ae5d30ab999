-- unit_metrics v1: one fixed-point value x per assigned unit and metric.
--
-- An event is attributed to an assigned unit (n_variants = 1) when
-- exposure <= ts < window end. Per unit:
--   proportion   x = scale if at least one attributed event, else 0
--   mean, sum    x = the sum of the attributed events' v (0 if none)
--   mean, count  x = the number of attributed events * scale
-- then x is clamped to [lo, hi] when the metric declares a clamp; units with
-- no events are clamped too. Sums are exact (HUGEINT).
-- Parameters: exp_ids, exp_end_us, m_exp, m_name, m_event, m_kind, m_agg,
-- m_clamp, m_lo, m_hi, scale_int (10^decimals as BIGINT).
CREATE TEMP TABLE unit_values AS
WITH exps AS (
    SELECT unnest($exp_ids) AS experiment_id, unnest($exp_end_us) AS end_us
),
metrics AS (
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
attributed AS (
    SELECT
        m.experiment_id,
        a.unit_id,
        m.metric,
        count(*) AS cnt,
        sum(e.v) AS total
    FROM event_rows AS e
    JOIN metrics AS m ON m.event = e.metric
    JOIN assignment AS a ON a.experiment_id = m.experiment_id AND a.unit_id = e.unit_id AND a.n_variants = 1
    JOIN exps AS x ON x.experiment_id = m.experiment_id
    WHERE e.reason IS NULL AND e.ts_us >= a.exposure_us AND e.ts_us < x.end_us
    GROUP BY m.experiment_id, a.unit_id, m.metric
),
raw AS (
    SELECT
        a.experiment_id,
        a.cohort,
        a.variant,
        m.metric,
        a.unit_id,
        m.clamped,
        m.lo,
        m.hi,
        CAST(CASE
            WHEN m.kind = 'proportion' THEN CASE WHEN coalesce(t.cnt, 0) > 0 THEN $scale_int ELSE 0 END
            WHEN m.agg = 'count' THEN coalesce(t.cnt, 0) * $scale_int
            ELSE coalesce(t.total, 0)
        END AS HUGEINT) AS x
    FROM assignment AS a
    JOIN metrics AS m ON m.experiment_id = a.experiment_id
    LEFT JOIN attributed AS t ON t.experiment_id = a.experiment_id AND t.unit_id = a.unit_id AND t.metric = m.metric
    WHERE a.n_variants = 1
)
SELECT
    experiment_id,
    cohort,
    variant,
    metric,
    unit_id,
    CASE WHEN clamped THEN greatest(least(x, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE x END AS x
FROM raw

-- unit_metrics v3: as v2, with a conversion window.
--
-- New in v3: a post-exposure event counts only when
--   exposure <= ts < min(window end, exposure + attribution window)
-- where the attribution window is the metric's own (m_attr_us > 0) or, by
-- default, 72 hours, as in GrowthBook's and Eppo's conversion windows: a
-- unit exposed on the first day no longer gets more time to convert than a
-- unit exposed on the last. v1 and v2 attribute until the window end.
-- The rest is v2:
--   y  ratio metrics only: the denominator event aggregated like x over the
--      same post-exposure events, clamped to its own bounds (0 otherwise);
--   c  the pre-exposure covariate: the numerator aggregated over the unit's
--      events with exposure - lookback <= ts < exposure, clamped like x
--      (0 when the experiment's lookback is 0, i.e. CUPED is off).
-- Per part: proportion => scale if any event, else 0; sum => sum of v;
-- count => number of events * scale; then the part's clamp. Exact HUGEINT.
-- Parameters: exp_ids, exp_end_us, exp_lookback_us, m_exp, m_name, m_kind,
-- m_event, m_agg, m_clamp, m_lo, m_hi, m_den_event, m_den_agg, m_den_clamp,
-- m_den_lo, m_den_hi, m_attr_us, scale_int.
CREATE TEMP TABLE unit_values AS
WITH exps AS (
    SELECT
        unnest($exp_ids) AS experiment_id,
        unnest($exp_end_us) AS end_us,
        unnest($exp_lookback_us) AS lookback_us
),
metrics AS (
    SELECT
        unnest($m_exp) AS experiment_id,
        unnest($m_name) AS metric,
        unnest($m_kind) AS kind,
        unnest($m_event) AS event,
        unnest($m_agg) AS agg,
        unnest($m_clamp) AS clamped,
        unnest($m_lo) AS lo,
        unnest($m_hi) AS hi,
        unnest($m_den_event) AS den_event,
        unnest($m_den_agg) AS den_agg,
        unnest($m_den_clamp) AS den_clamped,
        unnest($m_den_lo) AS den_lo,
        unnest($m_den_hi) AS den_hi,
        unnest($m_attr_us) AS attr_raw
),
windowed AS (
    SELECT *, CASE WHEN attr_raw > 0 THEN attr_raw ELSE CAST(259200000000 AS BIGINT) END AS attr_us
    FROM metrics
),
parts AS (
    SELECT experiment_id, metric, 'x' AS part, kind, event, agg, clamped, lo, hi, attr_us FROM windowed
    UNION ALL
    SELECT experiment_id, metric, 'y' AS part, 'mean' AS kind, den_event, den_agg, den_clamped, den_lo, den_hi, attr_us
    FROM windowed
    WHERE kind = 'ratio'
),
per_unit AS (
    SELECT
        p.experiment_id,
        a.unit_id,
        p.metric,
        p.part,
        count(*) FILTER (WHERE e.ts_us >= a.exposure_us AND e.ts_us < a.exposure_us + p.attr_us) AS cnt,
        sum(e.v) FILTER (WHERE e.ts_us >= a.exposure_us AND e.ts_us < a.exposure_us + p.attr_us) AS total,
        count(*) FILTER (WHERE e.ts_us < a.exposure_us) AS pre_cnt,
        sum(e.v) FILTER (WHERE e.ts_us < a.exposure_us) AS pre_total
    FROM event_rows AS e
    JOIN parts AS p ON p.event = e.metric
    JOIN assignment AS a ON a.experiment_id = p.experiment_id AND a.unit_id = e.unit_id AND a.n_variants = 1
    JOIN exps AS x ON x.experiment_id = p.experiment_id
    WHERE e.reason IS NULL
      AND e.ts_us < x.end_us
      AND e.ts_us >= a.exposure_us - x.lookback_us
    GROUP BY p.experiment_id, a.unit_id, p.metric, p.part
),
raw AS (
    SELECT
        a.experiment_id,
        a.cohort,
        a.variant,
        p.metric,
        p.part,
        a.unit_id,
        p.clamped,
        p.lo,
        p.hi,
        CAST(CASE
            WHEN p.kind = 'proportion' THEN CASE WHEN coalesce(u.cnt, 0) > 0 THEN $scale_int ELSE 0 END
            WHEN p.agg = 'count' THEN coalesce(u.cnt, 0) * $scale_int
            ELSE coalesce(u.total, 0)
        END AS HUGEINT) AS post,
        CAST(CASE
            WHEN x.lookback_us = 0 THEN 0
            WHEN p.kind = 'proportion' THEN CASE WHEN coalesce(u.pre_cnt, 0) > 0 THEN $scale_int ELSE 0 END
            WHEN p.agg = 'count' THEN coalesce(u.pre_cnt, 0) * $scale_int
            ELSE coalesce(u.pre_total, 0)
        END AS HUGEINT) AS pre
    FROM assignment AS a
    JOIN parts AS p ON p.experiment_id = a.experiment_id
    JOIN exps AS x ON x.experiment_id = a.experiment_id
    LEFT JOIN per_unit AS u
        ON u.experiment_id = a.experiment_id AND u.unit_id = a.unit_id AND u.metric = p.metric AND u.part = p.part
    WHERE a.n_variants = 1
),
clamped AS (
    SELECT
        experiment_id,
        cohort,
        variant,
        metric,
        part,
        unit_id,
        CASE WHEN clamped THEN greatest(least(post, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE post END AS post,
        CASE WHEN clamped THEN greatest(least(pre, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE pre END AS pre
    FROM raw
)
SELECT
    experiment_id,
    cohort,
    variant,
    metric,
    unit_id,
    max(post) FILTER (WHERE part = 'x') AS x,
    coalesce(max(post) FILTER (WHERE part = 'y'), CAST(0 AS HUGEINT)) AS y,
    max(pre) FILTER (WHERE part = 'x') AS c
FROM clamped
GROUP BY experiment_id, cohort, variant, metric, unit_id

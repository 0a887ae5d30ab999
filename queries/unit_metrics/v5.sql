-- unit_metrics v5: unit_metrics@v4's view, without grouping the rows of
-- metrics that have one part. Only a ratio combines two rows per unit (its
-- numerator's and its denominator's window); every other metric's x and c
-- come from one row of event_units, so v4's GROUP BY (metric, uid) over all
-- of them (12M rows at 10M units, 3.5 s) is spent on ratios alone. Same
-- table, same view columns, same values.
-- The rest is unit_metrics@v4:
-- unit_metrics v4: unit_metrics@v3's per-unit values, from event_units
-- (events@v3) instead of a join of every event with the assignment, and
-- only for the units that have an event counting towards a metric part:
-- every other assigned unit has the values of a unit without events
-- (x0 and y0 below; c0 = x0), which sufstats@v3 adds per cell without a
-- row per unit. Two statements: the table unit_metric_defs holds the
-- metrics' parameters, and unit_values is a view over it and event_units
-- (a view may not hold parameters), which sufstats@v3 reads once.
--
-- Per metric (metric_no, its position in $m_name; unit_metric_defs also
-- holds its experiment, exp_no and name) and unit (uid):
--   x  the metric (or a ratio's numerator) over its attribution window
--      (window $m_win_x): proportion => scale if any event, else 0;
--      sum => sum of v; count => number of events * scale; then its clamp;
--   y  ratio metrics only: the denominator likewise over window $m_win_y,
--      clamped to its own bounds; 0 for other kinds;
--   c  the CUPED covariate: the numerator aggregated over
--      [exposure - lookback, exposure), clamped like x (0 before the clamp
--      when the experiment's lookback is 0).
-- These are unit_metrics@v3's rules; the attribution windows are its
-- conversion windows (the caller numbers them for events@v3).
-- Parameters: exp_ids, m_exp, m_name, m_kind, m_agg, m_clamp, m_lo, m_hi, m_den_agg,
-- m_den_clamp, m_den_lo, m_den_hi, m_win_x, m_win_y, scale_int.
CREATE TEMP TABLE unit_metric_defs AS
WITH exps AS (
    SELECT generate_subscripts($exp_ids, 1) AS exp_no, unnest($exp_ids) AS experiment_id
),
m AS (
    SELECT
        generate_subscripts($m_name, 1) AS metric_no,
        unnest($m_exp) AS experiment_id,
        unnest($m_name) AS metric,
        unnest($m_kind) AS kind,
        unnest($m_agg) AS agg,
        unnest($m_clamp) AS clamped,
        unnest($m_lo) AS lo,
        unnest($m_hi) AS hi,
        unnest($m_den_agg) AS den_agg,
        unnest($m_den_clamp) AS den_clamped,
        unnest($m_den_lo) AS den_lo,
        unnest($m_den_hi) AS den_hi,
        unnest($m_win_x) AS win_x,
        unnest($m_win_y) AS win_y
)
SELECT
    m.*,
    x.exp_no,
    CAST(CASE WHEN clamped THEN greatest(least(0, hi), lo) ELSE 0 END AS HUGEINT) AS x0,
    CAST(CASE WHEN kind = 'ratio' AND den_clamped THEN greatest(least(0, den_hi), den_lo) ELSE 0 END AS HUGEINT) AS y0,
    CAST($scale_int AS BIGINT) AS scale_int
FROM m
JOIN exps AS x ON x.experiment_id = m.experiment_id;

CREATE TEMP VIEW unit_values AS
WITH parts AS (
    SELECT metric_no, 'x' AS part, win_x AS win_no, kind, agg, clamped, lo, hi, scale_int, kind = 'ratio' AS ratio FROM unit_metric_defs
    UNION ALL
    SELECT metric_no, 'y' AS part, win_y, 'mean', den_agg, den_clamped, den_lo, den_hi, scale_int, true FROM unit_metric_defs
    WHERE kind = 'ratio'
),
raw AS (
    SELECT
        p.metric_no,
        g.uid,
        p.part,
        p.ratio,
        p.clamped,
        p.lo,
        p.hi,
        CAST(CASE
            WHEN p.kind = 'proportion' THEN CASE WHEN g.cnt > 0 THEN p.scale_int ELSE 0 END
            WHEN p.agg = 'count' THEN g.cnt * p.scale_int
            ELSE coalesce(g.total, 0)
        END AS HUGEINT) AS post,
        CAST(CASE
            WHEN p.kind = 'proportion' THEN CASE WHEN g.pre_cnt > 0 THEN p.scale_int ELSE 0 END
            WHEN p.agg = 'count' THEN g.pre_cnt * p.scale_int
            ELSE coalesce(g.pre_total, 0)
        END AS HUGEINT) AS pre
    FROM event_units AS g
    JOIN parts AS p ON p.win_no = g.win_no
    WHERE g.kind = 2
),
clamped AS (
    SELECT
        metric_no,
        uid,
        part,
        ratio,
        CASE WHEN clamped THEN greatest(least(post, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE post END AS post,
        CASE WHEN clamped THEN greatest(least(pre, CAST(hi AS HUGEINT)), CAST(lo AS HUGEINT)) ELSE pre END AS pre
    FROM raw
)
SELECT c.metric_no, c.uid, c.post AS x, CAST(0 AS HUGEINT) AS y, c.pre AS c
FROM clamped AS c
WHERE NOT c.ratio
UNION ALL
SELECT
    c.metric_no,
    c.uid,
    coalesce(max(c.post) FILTER (WHERE c.part = 'x'), any_value(z.x0)) AS x,
    coalesce(max(c.post) FILTER (WHERE c.part = 'y'), any_value(z.y0)) AS y,
    coalesce(max(c.pre) FILTER (WHERE c.part = 'x'), any_value(z.x0)) AS c
FROM clamped AS c
JOIN unit_metric_defs AS z ON z.metric_no = c.metric_no
WHERE c.ratio
GROUP BY c.metric_no, c.uid;

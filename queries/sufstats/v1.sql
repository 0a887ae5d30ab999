-- sufstats v1: exact sufficient statistics per experiment, cohort, variant
-- and metric: n, sum(x), sum(x*x) as HUGEINT, and max|x| so that the caller
-- can prove no HUGEINT sum overflowed (n * max|x|^2 < 2^126).
SELECT
    experiment_id,
    cohort,
    variant,
    metric,
    CAST(count(*) AS BIGINT) AS n,
    sum(x) AS sum_x,
    sum(x * x) AS sum_x2,
    max(abs(x)) AS max_abs_x
FROM unit_values
GROUP BY experiment_id, cohort, variant, metric
ORDER BY experiment_id, cohort, variant, metric

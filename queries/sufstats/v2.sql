-- sufstats v2: exact sufficient statistics per experiment, cohort, variant
-- and metric from unit_metrics@v2: n and the HUGEINT sums of x, x², y, y²,
-- xy (ratio metrics), c, c², xc, yc (CUPED), and max|x|, max|y|, max|c| so
-- that the caller can prove no sum overflowed (n * max² < 2^126).
SELECT
    experiment_id,
    cohort,
    variant,
    metric,
    CAST(count(*) AS BIGINT) AS n,
    sum(x) AS sum_x,
    sum(x * x) AS sum_x2,
    sum(y) AS sum_y,
    sum(y * y) AS sum_y2,
    sum(x * y) AS sum_xy,
    sum(c) AS sum_c,
    sum(c * c) AS sum_c2,
    sum(x * c) AS sum_xc,
    sum(y * c) AS sum_yc,
    max(abs(x)) AS max_abs_x,
    max(abs(y)) AS max_abs_y,
    max(abs(c)) AS max_abs_c
FROM unit_values
GROUP BY experiment_id, cohort, variant, metric
ORDER BY experiment_id, cohort, variant, metric

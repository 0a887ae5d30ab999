#!/usr/bin/python3
"""Reference values for the percentile-capped fixture (issue 20 item 2).

Input: capped_units.json beside this script, written by the Go test
TestCapsMatchSciPy (golden/capped_reference_test.go) from the plain-Go
reference of the semantics (fixtures/reference): per leaf cohort x variant x
capped metric, the histogram of the units' fixed-point values x =
round(value * 10^d), clamped. Output: capped_reference.json.

What it computes, with NumPy and SciPy only (no Verity code):

  * the cap c: np.quantile of the per-unit values of every arm of cohort
    (all) (the leaves' units together) at cap.upper_quantile, method
    "inverted_cdf" (Hyndman and Fan's definition 1), checked against the
    ceil(n*q)-th order statistic with q as a decimal; the number of units
    above it;
  * per cohort ((all) and each leaf) and arm: np.minimum(x, c) scaled by
    10^-d, its mean and sample standard deviation (np.std, ddof=1);
  * per capped metric, the mean and sample variance (ddof=1) of the capped
    values of every unit of (all), all arms pooled: the baseline
    `verity plan` reports for it over the same window (Pooled);
  * the Welch comparison: scipy.stats.ttest_ind(t, c, equal_var=False) for
    the p-value, Welch-Satterthwaite df, the interval
    diff -/+ t.ppf(1 - alpha/2, df) * se, and the relative effect
    diff / |mean_control|.

Run from the repository root with Debian's Python (NumPy 1.24, SciPy 1.10):

    /usr/bin/python3 golden/testdata/capped_reference.py
"""
import json
import math
import os
from fractions import Fraction

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    with open(os.path.join(HERE, "capped_units.json")) as f:
        u = json.load(f)
    d, alpha = u["decimals"], u["alpha"]
    arrays = {}
    for c in u["cells"]:
        vals = np.array([b[0] for b in c["hist"]], dtype=np.int64)
        counts = np.array([b[1] for b in c["hist"]], dtype=np.int64)
        arrays[(c["cohort"], c["variant"], c["metric"])] = np.repeat(vals, counts)
    empty = np.array([], dtype=np.int64)

    def arm(cohort, variant, metric):
        if cohort == "(all)":
            return np.sort(np.concatenate([arrays.get((leaf, variant, metric), empty) for leaf in u["leaves"]]))
        return np.sort(arrays.get((cohort, variant, metric), empty))

    out = {"Caps": [], "Rows": []}
    caps = {}
    for m in u["metrics"]:
        q = m["cap"]
        pooled = np.sort(np.concatenate([arm("(all)", v, m["name"]) for v in u["variants"]]))
        c = int(np.quantile(pooled, q, method="inverted_cdf"))
        k = math.ceil(len(pooled) * Fraction(repr(q)))
        assert pooled[k - 1] == c, (m["name"], k, c)
        caps[m["name"]] = c
        out["Caps"].append({"Metric": m["name"], "Cap": float(Fraction(c, 10**d)), "Units": int(len(pooled)),
                            "Capped": int(np.sum(pooled > c))})
        capped_all = np.minimum(pooled, c).astype(np.float64) / 10**d
        out.setdefault("Pooled", []).append({"Metric": m["name"], "Mean": float(np.mean(capped_all)),
                                             "Variance": float(np.var(capped_all, ddof=1))})
    for cohort in ["(all)"] + u["leaves"]:
        for m in u["metrics"]:
            def capped(variant):
                x = np.minimum(arm(cohort, variant, m["name"]), caps[m["name"]])
                return x.astype(np.float64) / 10**d
            xc = capped(u["control"])
            for variant in u["variants"]:
                if variant == u["control"]:
                    continue
                xt = capped(variant)
                if len(xc) < 2 or len(xt) < 2:
                    continue
                mc, mt = float(np.mean(xc)), float(np.mean(xt))
                vc, vt = float(np.var(xc, ddof=1)), float(np.var(xt, ddof=1))
                a, b = vc / len(xc), vt / len(xt)
                se = math.sqrt(a + b)
                df = (a + b) ** 2 / (a * a / (len(xc) - 1) + b * b / (len(xt) - 1))
                diff = mt - mc
                q = stats.t.ppf(1 - alpha / 2, df)
                p = stats.ttest_ind(xt, xc, equal_var=False).pvalue
                out["Rows"].append({"Cohort": cohort, "Metric": m["name"], "Variant": variant, "Values": {
                    "mean_control": mc, "mean_variant": mt, "sd_control": math.sqrt(vc), "sd_variant": math.sqrt(vt),
                    "abs_effect": diff, "abs_ci_low": diff - q * se, "abs_ci_high": diff + q * se,
                    "df": df, "p_value": float(p), "rel_effect": diff / abs(mc)}})
    with open(os.path.join(HERE, "capped_reference.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

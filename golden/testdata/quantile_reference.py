#!/usr/bin/python3
"""Reference values for the quantile fixture's quantiles.csv (issue 20).

Input: quantile_units.json beside this script, written by the Go test
TestQuantilesMatchSciPy (golden/quantile_reference_test.go) from the plain-Go
reference of the semantics (fixtures/reference): for every leaf cohort x
variant x quantile metric, the histogram of the units' fixed-point values
x = round(value * 10^d), clamped. Output: quantile_reference.json, one
entry per row of quantiles.csv, in its order: cohort (all) first (the
leaves' units together), then the leaves in name order; metrics in spec
order; each treatment against the control.

What it computes, with NumPy and SciPy only (no Verity code):

  * the quantile: np.quantile(x, p, method="inverted_cdf") (Hyndman and
    Fan's definition 1) on the fixed-point integers, checked against the
    ceil(n*p)-th order statistic with p read as its decimal (Fraction); a
    disagreement stops the script rather than writing a value;
  * the order-statistic variance GrowthBook documents for quantile metrics
    (Deng, Knoblich and Lu 2018, "Applying the Delta Method in Metric
    Analytics", section on quantile metrics; GrowthBook docs
    statistics/quantile): z = norm.ppf(0.975), delta = z*sqrt(p(1-p)/n),
    lower, upper = np.quantile(x, p -/+ delta, method="inverted_cdf"),
    SE = (upper - lower)/(2z); an arm whose band p +/- delta leaves (0, 1)
    has too few units, an arm with lower == upper a tie (no variance);
  * the difference Delta = q_t - q_c, SE = sqrt(V_c + V_t), the normal
    interval Delta -/+ norm.ppf(1 - alpha/2)*SE and p = 2*norm.sf(|Delta|/SE);
  * the relative difference L = Delta/|q_c|: its delta-method interval
    L -/+ z*sqrt(V_t/q_c^2 + q_t^2*V_c/q_c^4), and Fieller's set for
    R = q_t/q_c, {R : (q_t - R q_c)^2 <= z^2 (V_t + R^2 V_c)}, whose
    endpoints are found by scipy.optimize.brentq on each side of the
    quadratic's vertex (not by its closed form), reported as L = R - 1
    (q_c > 0 here: values are clamped at 0); the set is bounded when
    q_c^2 > z^2 V_c, otherwise the outside of its roots (exclusive) or the
    whole line.

Run from the repository root with Debian's Python (NumPy 1.24, SciPy 1.10):

    /usr/bin/python3 golden/testdata/quantile_reference.py
"""
import json
import math
import os
from fractions import Fraction

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

HERE = os.path.dirname(os.path.abspath(__file__))


def fixed(v, d):
    return float(Fraction(int(v), 10**d))


def quantile(x, p):
    """Definition-1 quantile of the sorted integer array x (NumPy), checked
    against the ceil(n*p)-th order statistic with p as a decimal."""
    q = int(np.quantile(x, p, method="inverted_cdf"))
    k = math.ceil(len(x) * Fraction(repr(p)))
    assert x[k - 1] == q, (len(x), p, k, q)
    return q


def estimate(x, p, d):
    """One arm: (quantile, SE, lower, upper) or a status string."""
    n = len(x)
    z = norm.ppf(0.975)
    delta = z * math.sqrt(p * (1 - p) / n)
    if not (p - delta > 0 and p + delta < 1):
        return "too_few"
    lo = int(np.quantile(x, p - delta, method="inverted_cdf"))
    hi = int(np.quantile(x, p + delta, method="inverted_cdf"))
    if lo == hi:
        return "tie"
    se = fixed(hi - lo, d) / (2 * z)
    return fixed(quantile(x, p), d), se, fixed(lo, d), fixed(hi, d)


def fieller(qc, qt, vc, vt, z):
    """Fieller's set for R = qt/qc by root-finding: (shape, r1, r2)."""
    f = lambda r: (qt - r * qc) ** 2 - z * z * (vt + r * r * vc)
    a = qc * qc - z * z * vc
    vertex = qc * qt / a
    if a < 0 and f(vertex) <= 0:
        return "whole_line", None, None
    roots = []
    for direction in (-1.0, 1.0):
        step = max(1.0, abs(vertex))
        far = vertex + direction * step
        while np.sign(f(far)) == np.sign(f(vertex)):
            step *= 2
            far = vertex + direction * step
        roots.append(brentq(f, min(vertex, far), max(vertex, far), xtol=1e-15, rtol=1e-15, maxiter=500))
    r1, r2 = sorted(roots)
    return ("bounded" if a > 0 else "exclusive"), r1, r2


def compare(xc, xt, p, d, alpha):
    cols = ["quantile_control", "quantile_variant", "se_control", "se_variant", "band_low_control", "band_high_control",
            "band_low_variant", "band_high_variant", "abs_effect", "abs_ci_low", "abs_ci_high", "p_value", "rel_effect",
            "rel_delta_ci_low", "rel_delta_ci_high", "rel_fieller_low", "rel_fieller_high"]
    v = {c: None for c in cols}
    if len(xc) == 0 or len(xt) == 0:
        return "missing_arm", v
    v["quantile_control"] = fixed(quantile(xc, p), d)
    v["quantile_variant"] = fixed(quantile(xt, p), d)
    c = estimate(xc, p, d)
    if isinstance(c, str):
        return c + ":control", v
    t = estimate(xt, p, d)
    if isinstance(t, str):
        return t + ":treatment", v
    qc, sc, v["band_low_control"], v["band_high_control"] = c
    qt, st, v["band_low_variant"], v["band_high_variant"] = t
    v["se_control"], v["se_variant"] = sc, st
    z = norm.ppf(1 - alpha / 2)
    diff, se = qt - qc, math.sqrt(sc * sc + st * st)
    v["abs_effect"], v["abs_ci_low"], v["abs_ci_high"] = diff, diff - z * se, diff + z * se
    v["p_value"] = 2 * norm.sf(abs(diff) / se)
    if qc == 0:
        return "zero_control", v
    rel = diff / abs(qc)
    rse = math.sqrt(st * st / qc**2 + qt**2 * sc * sc / qc**4)
    v["rel_effect"], v["rel_delta_ci_low"], v["rel_delta_ci_high"] = rel, rel - z * rse, rel + z * rse
    shape, r1, r2 = fieller(qc, qt, sc * sc, st * st, z)
    if shape == "whole_line":
        return "unbounded", v
    v["rel_fieller_low"], v["rel_fieller_high"] = r1 - 1, r2 - 1
    return ("ok" if shape == "bounded" else "unbounded"), v


def main():
    with open(os.path.join(HERE, "quantile_units.json")) as f:
        u = json.load(f)
    d = u["decimals"]
    arrays = {}
    for c in u["cells"]:
        vals = np.array([b[0] for b in c["hist"]], dtype=np.int64)
        counts = np.array([b[1] for b in c["hist"]], dtype=np.int64)
        arrays[(c["cohort"], c["variant"], c["metric"])] = np.repeat(vals, counts)
    empty = np.array([], dtype=np.int64)
    out = []
    for cohort in ["(all)"] + u["leaves"]:
        for m in u["metrics"]:
            def arm(variant):
                if cohort == "(all)":
                    parts = [arrays.get((leaf, variant, m["name"]), empty) for leaf in u["leaves"]]
                    return np.sort(np.concatenate(parts))
                return np.sort(arrays.get((cohort, variant, m["name"]), empty))
            xc = arm(u["control"])
            for variant in u["variants"]:
                if variant == u["control"]:
                    continue
                status, values = compare(xc, arm(variant), m["level"], d, u["alpha"])
                out.append({"Cohort": cohort, "Metric": m["name"], "Variant": variant, "Status": status, "Values": values})
    with open(os.path.join(HERE, "quantile_reference.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

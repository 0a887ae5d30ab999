#!/usr/bin/python3
"""Reference values for stats.TestHypothesis: one-sided, margin and
equivalence tests of the absolute and the relative effect.

Absolute effect: statsmodels (0.13) on unit-level arrays, treatment first,

    statsmodels.stats.weightstats.ttest_ind(x_t, x_c, alternative, usevar='unequal', value=δ₀)
    CompareMeans(DescrStatsW(x_t), DescrStatsW(x_c)).tconfint_diff(alpha, alternative, usevar='unequal')
    ttost_ind(x_t, x_c, low, upp, usevar='unequal')                   (equivalence, TOST)
    CompareMeans(...).ztest_ind / zconfint_diff(usevar='unequal')    (normal versions)

which are R's t.test(x_t, x_c, mu = δ₀, alternative = ...) (Welch). Ratio
metrics are tested on per-unit linearised values ℓ_i = R + (x_i − R·y_i)/ȳ
(whose mean is R and whose variance is the delta method's), CUPED on
per-unit adjusted values x_i − θ(c_i − c̄*), so the Go code's moment
formulas are not reproduced here.

Relative effect ℓ = (μ_t − μ_c)/|μ_c|: Fieller's test statistic
t(ℓ₀) = (m_t − (1 + s·ℓ₀)·m_c)/√(v_t + (1 + s·ℓ₀)²·v_c), s = sign(m_c), with
SciPy's t distribution at the absolute test's Welch ν, and its confidence
bounds found by root-finding (brentq) on t(ℓ) = ±q rather than from the
roots of the quadratic the Go code solves; the delta-method Wald test
(ℓ̂ − ℓ₀)/SE_L, SE_L² = v_t/m_c² + m_t²·v_c/m_c⁴.

Run from the repository root with Debian's Python:

    /usr/bin/python3 stats/testdata/hypothesis_reference.py

It rewrites hypothesis_reference.json beside it, deterministically.
"""

import math
import sys

import numpy as np
import scipy
import statsmodels
from scipy import optimize, stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind, ttost_ind


# f and moments are the ones reference.py uses (same folder).
from reference import f, moments, write_reference  # noqa: E402


SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def absolute_want(xt, xc, h):
    cm = CompareMeans(DescrStatsW(xt), DescrStatsW(xc))
    alpha = h["alpha"]
    est = np.mean(xt) - np.mean(xc)
    se = cm.std_meandiff_separatevar
    if h["alternative"] == "equivalent":
        p, lower, upper = ttost_ind(xt, xc, h["null"], h["null_high"], usevar="unequal")
        if h["normal"]:
            z1, p1 = cm.ztest_ind(alternative="larger", usevar="unequal", value=h["null"])
            z2, p2 = cm.ztest_ind(alternative="smaller", usevar="unequal", value=h["null_high"])
            lower, upper, p = (z1, p1, np.inf), (z2, p2, np.inf), max(p1, p2)
            lo, hi = cm.zconfint_diff(alpha=2 * alpha, alternative="two-sided", usevar="unequal")
        else:
            lo, hi = cm.tconfint_diff(alpha=2 * alpha, alternative="two-sided", usevar="unequal")
        return {"Estimate": f(est), "SE": f(se), "Statistic": f(lower[0]), "StatisticHigh": f(upper[0]),
                "DF": f(lower[2]) if not h["normal"] else None, "PValue": f(p), "Low": f(lo), "High": f(hi),
                "HasLow": True, "HasHigh": True, "Reject": bool(p <= alpha)}
    alt = SM_ALT[h["alternative"]]
    if h["normal"]:
        stat, p = cm.ztest_ind(alternative=alt, usevar="unequal", value=h["null"])
        df = None
        lo, hi = cm.zconfint_diff(alpha=alpha, alternative=alt, usevar="unequal")
    else:
        stat, p, df = ttest_ind(xt, xc, alternative=alt, usevar="unequal", value=h["null"])
        lo, hi = cm.tconfint_diff(alpha=alpha, alternative=alt, usevar="unequal")
    w = {"Estimate": f(est), "SE": f(se), "Statistic": f(stat), "StatisticHigh": 0.0,
         "DF": f(df) if df is not None else None, "PValue": f(p), "Reject": bool(p <= alpha),
         "HasLow": bool(np.isfinite(lo)), "HasHigh": bool(np.isfinite(hi))}
    w["Low"] = f(lo) if np.isfinite(lo) else 0.0
    w["High"] = f(hi) if np.isfinite(hi) else 0.0
    return w


def fieller_stat(mc, mt, vc, vt, l0):
    k = 1 + math.copysign(1, mc) * l0
    return (mt - k * mc) / math.sqrt(vt + k * k * vc)


def fieller_bound(mc, mt, vc, vt, q, side):
    """The lower (side -1) or upper (+1) end of {ℓ : |t(ℓ)| ≤ q} by brentq,
    or None when the set is unbounded on that side (t(ℓ) never leaves
    [−q, q] as ℓ → ±∞, since t → ∓m_c/√v_c·sign)."""
    est = (mt - mc) / abs(mc)
    lim = -math.copysign(1, mc) * mc / math.sqrt(vc) * side  # t(ℓ) as ℓ → side·∞
    if abs(lim) <= q:
        return None
    target = -q * side
    g = lambda l: fieller_stat(mc, mt, vc, vt, l) - target
    step = math.sqrt(vt + vc) / abs(mc)
    b = est
    for _ in range(2000):
        b2 = b + side * step
        if g(b2) * g(est) <= 0:
            return optimize.brentq(g, min(b, b2), max(b, b2), xtol=1e-300, rtol=8.9e-16, maxiter=500)
        b, step = b2, step * 2
    raise RuntimeError("no bracket")


def relative_want(mc, vc, nc, mt, vt, nt, df, h):
    alpha = h["alpha"]
    est = (mt - mc) / abs(mc)
    nu = math.inf if h["normal"] else df
    dist = stats.norm if h["normal"] else stats.t(df)
    if h["delta"]:
        se_l = math.sqrt(vt / mc ** 2 + mt ** 2 * vc / mc ** 4)
        stat_at = lambda l0: (est - l0) / se_l
        se_at = lambda l0: se_l
        bounds = lambda q: (est - q * se_l, est + q * se_l)
    else:
        stat_at = lambda l0: fieller_stat(mc, mt, vc, vt, l0)
        se_at = lambda l0: math.sqrt(vt + (1 + math.copysign(1, mc) * l0) ** 2 * vc) / abs(mc)
        bounds = lambda q: (fieller_bound(mc, mt, vc, vt, q, -1), fieller_bound(mc, mt, vc, vt, q, +1))
    ppf = lambda p: dist.ppf(p) if h["normal"] else stats.t.ppf(p, df)
    alt = h["alternative"]
    w = {"Estimate": f(est), "DF": f(df) if not h["normal"] else None, "StatisticHigh": 0.0}
    t0 = stat_at(h["null"])
    w["Statistic"], w["SE"] = f(t0), f(se_at(h["null"]))
    if alt == "two-sided":
        p = 2 * dist.sf(abs(t0))
        lo, hi = bounds(ppf(1 - alpha / 2))
    elif alt == "greater":
        p = dist.sf(t0)
        lo, _ = bounds(ppf(1 - alpha))
        hi = math.inf
    elif alt == "less":
        p = dist.cdf(t0)
        _, hi = bounds(ppf(1 - alpha))
        lo = -math.inf
    else:
        t1 = stat_at(h["null_high"])
        w["StatisticHigh"] = f(t1)
        p = max(dist.sf(t0), dist.cdf(t1))
        lo, hi = bounds(ppf(1 - alpha))
    w["PValue"], w["Reject"] = f(p), bool(p <= alpha)
    w["HasLow"] = lo is not None and math.isfinite(lo)
    w["HasHigh"] = hi is not None and math.isfinite(hi)
    w["Low"] = f(lo) if w["HasLow"] else 0.0
    w["High"] = f(hi) if w["HasHigh"] else 0.0
    if not w["HasLow"] and not w["HasHigh"] and alt in ("two-sided", "equivalent"):
        pass
    return w


def H(alternative="two-sided", null=0.0, null_high=0.0, relative=False, delta=False, normal=False, alpha=0.05):
    return {"alternative": alternative, "null": null, "null_high": null_high, "relative": relative,
            "delta": delta, "normal": normal, "alpha": alpha}


def case(name, kind, control, treatment, xc, xt, h, cuped=None):
    """xc, xt: the per-unit values whose mean and variance are the arm
    estimate (raw, linearised or CUPED-adjusted)."""
    if h["relative"]:
        mc, mt = np.mean(xc), np.mean(xt)
        nc, nt = len(xc), len(xt)
        vc, vt = np.var(xc, ddof=1) / nc, np.var(xt, ddof=1) / nt
        df = ttest_ind(xt, xc, usevar="unequal")[2]
        want = relative_want(mc, vc, nc, mt, vt, nt, df, h)
    else:
        want = absolute_want(xt, xc, h)
    return {"name": name, "kind": kind, "control": control, "treatment": treatment, "cuped": cuped,
            "hypothesis": h, "want": want}


def cases():
    rng = np.random.default_rng(1919)
    out = []
    xc = rng.normal(10.0, 2.0, 400)
    xt = rng.normal(10.35, 2.6, 380)
    c, t = moments(xc), moments(xt)
    for name, h in [
        ("greater zero", H("greater")),
        ("less zero", H("less")),
        ("two-sided margin", H(null=0.2)),
        ("superiority margin 0.1", H("greater", null=0.1)),
        ("non-inferiority margin 0.3", H("greater", null=-0.3)),
        ("less margin alpha 0.01", H("less", null=0.9, alpha=0.01)),
        ("greater alpha 0.2", H("greater", null=0.5, alpha=0.2)),
        ("equivalence", H("equivalent", null=-0.2, null_high=0.8)),
        ("equivalence not shown", H("equivalent", null=-0.1, null_high=0.1)),
        ("normal greater", H("greater", null=0.1, normal=True)),
        ("normal two-sided margin", H(null=-0.05, normal=True, alpha=0.1)),
        ("normal equivalence", H("equivalent", null=-0.2, null_high=0.8, normal=True)),
        ("huge margin", H("greater", null=-1e3)),
        ("huge margin less", H("less", null=-1e3)),
        ("relative greater", H("greater", relative=True)),
        ("relative non-inferiority 2%", H("greater", null=-0.02, relative=True)),
        ("relative superiority 1%", H("greater", null=0.01, relative=True)),
        ("relative two-sided margin", H(null=0.05, relative=True)),
        ("relative less alpha 0.1", H("less", null=0.06, relative=True, alpha=0.1)),
        ("relative equivalence", H("equivalent", null=-0.01, null_high=0.08, relative=True)),
        ("relative delta greater", H("greater", null=-0.02, relative=True, delta=True)),
        ("relative delta two-sided", H(null=0.05, relative=True, delta=True)),
        ("relative normal", H("greater", null=-0.02, relative=True, normal=True)),
        ("relative huge margin", H("greater", null=-5.0, relative=True)),
    ]:
        out.append(case(name, "mean", c, t, xc, xt, h))
    # Tiny arms.
    xc2 = np.array([3.0, 5.0])
    xt2 = np.array([6.0, 9.0, 7.5])
    for name, h in [
        ("tiny n greater", H("greater", null=0.5)),
        ("tiny n less", H("less", null=0.5, alpha=0.1)),
        ("tiny n relative greater", H("greater", null=0.1, relative=True)),
        ("tiny n equivalence", H("equivalent", null=-1.0, null_high=6.0)),
    ]:
        out.append(case(name, "mean", moments(xc2), moments(xt2), xc2, xt2, h))
    # Negative control mean: treatment more negative is a harmful relative move.
    xc3 = rng.normal(-5.0, 3.0, 600)
    xt3 = rng.normal(-5.3, 3.2, 640)
    for name, h in [
        ("negative control relative less", H("less", relative=True)),
        ("negative control relative non-inferiority", H("greater", null=-0.1, relative=True)),
        ("negative control relative two-sided", H(null=-0.05, relative=True)),
        ("negative control relative delta", H("greater", null=-0.1, relative=True, delta=True)),
        ("negative control absolute greater", H("greater", null=-0.5)),
    ]:
        out.append(case(name, "mean", moments(xc3), moments(xt3), xc3, xt3, h))
    # Control mean not distinguishable from zero: Fieller's bounds unbounded.
    xc4 = rng.normal(0.0, 2.0, 30)
    xt4 = rng.normal(0.6, 2.0, 30)
    out.append(case("relative unbounded bounds", "mean", moments(xc4), moments(xt4), xc4, xt4,
                    H("greater", null=-0.5, relative=True)))
    # Proportions.
    pc = (rng.random(3000) < 0.08).astype(float)
    pt = (rng.random(3000) < 0.09).astype(float)
    out.append(case("proportion non-inferiority", "proportion", moments(pc), moments(pt), pc, pt,
                    H("greater", null=-0.005)))
    out.append(case("proportion relative superiority", "proportion", moments(pc), moments(pt), pc, pt,
                    H("greater", null=0.02, relative=True)))
    # Ratio: linearised per-unit values.
    yc = rng.poisson(3.0, 1500) + 1.0
    xr_c = rng.binomial(yc.astype(int), 0.2).astype(float)
    yt = rng.poisson(3.0, 1600) + 1.0
    xr_t = rng.binomial(yt.astype(int), 0.21).astype(float)
    lin = lambda x, y: np.sum(x) / np.sum(y) + (x - np.sum(x) / np.sum(y) * y) / np.mean(y)
    out.append(case("ratio greater margin", "ratio", moments(xr_c, yc), moments(xr_t, yt), lin(xr_c, yc), lin(xr_t, yt),
                    H("greater", null=-0.01)))
    out.append(case("ratio relative non-inferiority", "ratio", moments(xr_c, yc), moments(xr_t, yt), lin(xr_c, yc),
                    lin(xr_t, yt), H("greater", null=-0.03, relative=True)))
    # CUPED: adjusted per-unit values with the pooled within-arm slope.
    cc = rng.gamma(2.0, 5.0, 1000)
    xc5 = 0.8 * cc + rng.normal(2.0, 4.0, 1000)
    ct = rng.gamma(2.0, 5.0, 1100)
    xt5 = 0.8 * ct + rng.normal(2.5, 4.0, 1100)
    sxy = np.dot(xc5 - xc5.mean(), cc - cc.mean()) + np.dot(xt5 - xt5.mean(), ct - ct.mean())
    sxx = np.dot(cc - cc.mean(), cc - cc.mean()) + np.dot(ct - ct.mean(), ct - ct.mean())
    theta = sxy / sxx
    cstar = (np.sum(cc) + np.sum(ct)) / 2100
    ac, at = xc5 - theta * (cc - cstar), xt5 - theta * (ct - cstar)
    cup = {"Theta": f(theta), "CovariateMean": f(cstar)}
    out.append(case("cuped superiority", "mean", moments(xc5, c=cc), moments(xt5, c=ct), ac, at,
                    H("greater", null=0.1), cup))
    out.append(case("cuped relative non-inferiority", "mean", moments(xc5, c=cc), moments(xt5, c=ct), ac, at,
                    H("greater", null=-0.01, relative=True), cup))
    return out


def main():
    ref = {
        "generator": {"script": "stats/testdata/hypothesis_reference.py", "python": sys.version.split()[0],
                      "numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "cases": cases(),
    }
    write_reference("hypothesis_reference.json", ref)


if __name__ == "__main__":
    main()

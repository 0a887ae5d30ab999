#!/usr/bin/python3
"""Reference values for the Go package stats, computed independently.

Run from the repository root with Debian's Python (SciPy 1.10, statsmodels
0.13, NumPy):

    /usr/bin/python3 stats/testdata/reference.py

It rewrites stats/testdata/reference.json next to this file. The output is
deterministic: every random draw comes from numpy.random.default_rng with a
fixed seed, and floats are written with repr (shortest round-trip).

Independence from the Go code: Fieller's relative interval is found by
root-finding on its defining test statistic (brentq), not from the closed
form of the quadratic's roots; the exact SRM test is SciPy's binomtest;
the nearest covariance uses NumPy's eigh; the pivot of a noisy variance
estimate is integrated with scipy.integrate.quad, not the Go node rule;
Fieller's unbounded sets are found by scanning the test statistic on a
grid; a private ratio's linearised variance is a NumPy quadratic form
of the raw moment matrix. Welch tests come from
scipy.stats.ttest_ind_from_stats and scipy.stats.t (quantiles polished, see
t_ppf); χ² from
scipy.stats.chisquare; Holm and BH from statsmodels' multipletests; the MDE
from statsmodels' normal_power solved with brentq. Ratio metrics and CUPED
are computed from unit-level NumPy arrays (linearised per-unit values and an
ordinary least-squares slope), not from the moment formulas the Go code
uses; the Go tests receive only the moments.
"""

import json
import math
import os
import sys

import numpy as np
import scipy
import statsmodels
from scipy import integrate, optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import normal_power


def f(x):
    """A plain Python float (NumPy scalars are not JSON)."""
    return float(x)


def moments(x, y=None, c=None):
    """Arm moments as the pipeline passes them (sample (co)variances)."""
    arm = {"N": f(len(x)), "Mean": f(np.mean(x)), "Var": f(np.var(x, ddof=1))}
    if y is not None:
        arm["DenMean"] = f(np.mean(y))
        arm["DenVar"] = f(np.var(y, ddof=1))
        arm["CovXY"] = f(np.cov(x, y, ddof=1)[0, 1])
    if c is not None:
        arm["HasCovariate"] = True
        arm["CovMean"] = f(np.mean(c))
        arm["CovVar"] = f(np.var(c, ddof=1))
        arm["CovXC"] = f(np.cov(x, c, ddof=1)[0, 1])
        if y is not None:
            arm["CovYC"] = f(np.cov(y, c, ddof=1)[0, 1])
    return arm


def welch_from_estimates(mc, vc_samp, nc, mt, vt_samp, nt, alpha,
                         vc_noise=0.0, vt_noise=0.0, vc_samp_noise=0.0, vt_samp_noise=0.0):
    """Welch comparison of two arm estimates with sampling variances
    vc_samp, vt_samp (of the estimates) and extra known noise variance.

    The degrees of freedom are Satterthwaite's, ν = 2V²/Σ Var(v̂_i), where
    each estimated sampling variance v̂_i = s²/n has variance
    2v_i²/(n_i-1) from sampling plus *_samp_noise (the variance privacy
    noise in the moments adds to v̂_i); the known noise variances have no
    estimation error."""
    vc = vc_samp + vc_noise
    vt = vt_samp + vt_noise
    v = vc + vt
    se = math.sqrt(v)
    var_vhat = 2 * vc_samp ** 2 / (nc - 1) + vc_samp_noise + 2 * vt_samp ** 2 / (nt - 1) + vt_samp_noise
    df = 2 * v ** 2 / var_vhat
    diff = mt - mc
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    q = t_ppf(1 - alpha / 2, df)
    z = stats.norm.ppf(1 - alpha / 2)
    rel = (mt - mc) / abs(mc)
    relse = math.sqrt(vt / mc ** 2 + mt ** 2 * vc / mc ** 4)
    rel_lo, rel_hi = fieller_numeric(mc, mt, vc, vt, q)
    if rel_lo is None:
        rel_lo, rel_hi = 0.0, 0.0
    return {
        "RelUnbounded": bool(mc * mc <= q * q * vc),
        "ControlMean": f(mc), "TreatmentMean": f(mt),
        "ControlVar": f(vc), "TreatmentVar": f(vt),
        "Diff": f(diff), "SE": f(se), "DF": f(df), "Statistic": f(t),
        "PValue": f(p), "DiffLow": f(diff - q * se), "DiffHigh": f(diff + q * se),
        "RelDiff": f(rel), "RelSE": f(relse),
        "RelLow": f(rel_lo), "RelHigh": f(rel_hi),
        "MDE": f(mde(se, alpha, 0.8)),
    }


def fieller_numeric(mc, mt, vc, vt, q):
    """Fieller's interval for the relative effect (μ_t - μ_c)/|μ_c|, found
    by root-finding on its defining test, not from the quadratic's roots:
    the relative effects ℓ whose statistic
    (m_t - (1+sℓ)m_c)/√(v_t + (1+sℓ)²v_c), s = sign(m_c), is at most q in
    absolute value. Returns (None, None) when the set is unbounded
    (m_c² ≤ q²v_c)."""
    if mc * mc <= q * q * vc:
        return None, None
    s = 1.0 if mc > 0 else -1.0

    def g(l):
        k = 1 + s * l
        return (mt - k * mc) ** 2 / (vt + k * k * vc) - q * q

    est = (mt - mc) / abs(mc)
    w = math.sqrt(vt + vc) / abs(mc)
    bounds = []
    for sign in (-1, 1):
        step = w
        while g(est + sign * step) <= 0:
            step *= 2
        a, b = sorted((est, est + sign * step))
        bounds.append(optimize.brentq(g, a, b, xtol=1e-300, rtol=8.9e-16, maxiter=1000))
    return bounds[0], bounds[1]


def t_ppf(p, nu):
    """scipy.stats.t.ppf polished by Newton steps on scipy.stats.t.sf.

    SciPy 1.10's t.ppf (cephes stdtri) is accurate only to about 4e-9
    relative (for example ν = 39, p = 0.975), while its t.sf agrees with
    mpmath to 1e-15; two Newton steps on sf bring the quantile to full
    precision.
    """
    q = stats.t.ppf(p, nu)
    for _ in range(2):
        q = q + (stats.t.sf(q, nu) - (1 - p)) / stats.t.pdf(q, nu)
    return q


def mde(se, alpha, power):
    """Effect at which statsmodels' two-sided normal_power equals power."""
    g = lambda d: normal_power(d, nobs=1, alpha=alpha, alternative="two-sided", sigma=se) - power
    return optimize.brentq(g, 1e-12 * se, 20 * se, xtol=1e-300, rtol=1e-15, maxiter=500)


def welch_case(name, kind, c, t, alpha=0.05):
    """A mean or proportion comparison, cross-checked against SciPy's test."""
    out = welch_from_estimates(c["Mean"], c["Var"] / c["N"], c["N"],
                               t["Mean"], t["Var"] / t["N"], t["N"], alpha)
    res = stats.ttest_ind_from_stats(t["Mean"], math.sqrt(t["Var"]), t["N"],
                                     c["Mean"], math.sqrt(c["Var"]), c["N"],
                                     equal_var=False)
    out["Statistic"] = f(res.statistic)
    out["PValue"] = f(res.pvalue)
    return {"name": name, "kind": kind, "alpha": alpha, "control": c, "treatment": t, "want": out}


def tdist():
    rows = []
    for nu in [1, 1.5, 2, 3.7, 5, 10, 30, 100, 1000, 1e4, 4.99e4, 5e4, 1e5, 1e6, 1e7, 1e9, 1e12]:
        for t in [0.001, 0.5, 1.2, 1.96, 3, 5, 9, 20]:
            p = 2 * stats.t.sf(t, nu)
            if p > 1e-300:
                rows.append({"nu": f(nu), "t": f(t), "p": f(p)})
        for alpha in [0.5, 0.1, 0.05, 0.01, 0.001, 1e-6]:
            rows.append({"nu": f(nu), "alpha": f(alpha), "q": f(t_ppf(1 - alpha / 2, nu))})
    return rows


def welch_cases():
    rng = np.random.default_rng(20261120)
    cases = []
    # Unit-level data.
    xc = rng.exponential(10.0, 800)
    xt = rng.exponential(10.6, 1200)
    cases.append(welch_case("mean exponential unequal n", "mean", moments(xc), moments(xt)))
    xc = rng.normal(3.0, 1.0, 50)
    xt = rng.normal(3.0, 2.5, 7)
    cases.append(welch_case("mean small unequal variances", "mean", moments(xc), moments(xt)))
    xc = rng.poisson(2.0, 20000).astype(float)
    xt = rng.poisson(2.02, 20000).astype(float)
    cases.append(welch_case("mean poisson large", "mean", moments(xc), moments(xt), alpha=0.01))
    pc = (rng.random(5000) < 0.10).astype(float)
    pt = (rng.random(5100) < 0.115).astype(float)
    cases.append(welch_case("proportion", "proportion", moments(pc), moments(pt)))
    pc = (rng.random(300) < 0.5).astype(float)
    pt = (rng.random(280) < 0.45).astype(float)
    cases.append(welch_case("proportion negative effect alpha 0.1", "proportion", moments(pc), moments(pt), alpha=0.1))
    # Moments given directly.
    cases.append(welch_case("two units per arm", "mean",
                            {"N": 2.0, "Mean": 1.5, "Var": 0.5}, {"N": 2.0, "Mean": 4.0, "Var": 2.0}))
    cases.append(welch_case("huge means", "mean",
                            {"N": 1000.0, "Mean": 1e15, "Var": 4e28}, {"N": 1100.0, "Mean": 1.01e15, "Var": 5e28}))
    cases.append(welch_case("tiny means", "mean",
                            {"N": 400.0, "Mean": 3e-12, "Var": 1e-22}, {"N": 450.0, "Mean": 3.3e-12, "Var": 1.2e-22}))
    cases.append(welch_case("ten million units", "proportion",
                            {"N": 1e7, "Mean": 0.0312, "Var": 0.0312 * 0.9688 * 1e7 / (1e7 - 1)},
                            {"N": 1.0001e7, "Mean": 0.0315, "Var": 0.0315 * 0.9685 * 1.0001e7 / (1.0001e7 - 1)}))
    cases.append(welch_case("one arm constant", "mean",
                            {"N": 30.0, "Mean": 2.0, "Var": 0.0}, {"N": 40.0, "Mean": 2.5, "Var": 1.5}))
    cases.append(welch_case("negative control mean", "mean",
                            {"N": 500.0, "Mean": -4.0, "Var": 9.0}, {"N": 500.0, "Mean": -3.5, "Var": 8.0}))
    return cases


def noise_cases():
    """Privacy noise: known variance added to the mean estimators; only the
    sampling parts enter the Satterthwaite denominator."""
    out = []
    for name, c, t, nc_, nt_ in [
        ("noise on both arms", {"N": 900.0, "Mean": 5.0, "Var": 16.0}, {"N": 950.0, "Mean": 5.4, "Var": 18.0}, 0.004, 0.006),
        ("noise dominates", {"N": 50.0, "Mean": 0.2, "Var": 0.16}, {"N": 60.0, "Mean": 0.25, "Var": 0.19}, 0.01, 0.02),
    ]:
        c = dict(c, NoiseVarMean=nc_)
        t = dict(t, NoiseVarMean=nt_)
        want = welch_from_estimates(c["Mean"], c["Var"] / c["N"], c["N"], t["Mean"], t["Var"] / t["N"], t["N"],
                                    0.05, nc_, nt_)
        out.append({"name": name, "kind": "mean", "alpha": 0.05, "control": c, "treatment": t, "want": want})
    return out


def noisy_pivot_tail(q, noise, s, eta, nu):
    """P(|Δ̂−Δ|/√V̂ ≥ q) when V = noise + s and V̂ = noise + max(0, s + e),
    e ~ Normal(0, eta²) independent of Δ̂, Δ̂−Δ ~ √V·T_ν: the atom
    Φ(−s/eta) at the truncation plus the integral over the positive part,
    by adaptive quadrature (scipy.integrate.quad), not by the Go code's
    equal-probability node rule."""
    v = noise + s

    def tail(a):
        return 2 * stats.t.sf(q * math.sqrt((noise + a) / v), nu)

    p0 = stats.norm.cdf(-s / eta)
    body, _ = integrate.quad(lambda a: tail(a) * stats.norm.pdf((a - s) / eta) / eta, 0, s + 12 * eta,
                             points=[s] if s > 0 else None, limit=400, epsabs=1e-13, epsrel=1e-11)
    return p0 * tail(0.0) + body


def noisy_variance_cases():
    """Privacy noise in the variance estimate (Arm.MomentNoise): the critical
    value and p-value are those of the studentised pivot under the fitted
    noise model (the parametric bootstrap, computed by quadrature), with
    the arms pooled: Ŝ = s_c²/n_c + s_t²/n_t, η² = Var_noise(s_c²)/n_c² +
    Var_noise(s_t²)/n_t², ν = Welch's with the known noise on the means.
    The Go code integrates with a 25-node rule, so these are compared at a
    looser tolerance (see the Go test)."""
    out = []
    for name, c, t, mc_, mt_, nzc, nzt in [
        ("noisy variance estimate", {"N": 400.0, "Mean": 3.0, "Var": 9.0}, {"N": 420.0, "Mean": 3.3, "Var": 10.0}, 4.0, 6.0, 1e-4, 2e-4),
        ("noisy variance dominates df", {"N": 3000.0, "Mean": 1.0, "Var": 2.0}, {"N": 3000.0, "Mean": 1.05, "Var": 2.2}, 9.0, 9.0, 1e-4, 2e-4),
        # The calibration suite's regime: noise on the means as large as the
        # noise in the variance estimate, which exceeds the variance itself.
        ("noise dominates mean and variance", {"N": 500.0, "Mean": 5.0, "Var": 600.0}, {"N": 480.0, "Mean": 6.0, "Var": 700.0},
         (8000.0 * 499) ** 2, (8300.0 * 479) ** 2, 16.0, 17.0),
        # Variance estimate truncated at zero by the projection.
        ("variance estimate truncated", {"N": 500.0, "Mean": 5.0, "Var": 0.0}, {"N": 500.0, "Mean": 6.5, "Var": 300.0},
         (8000.0 * 499) ** 2, (8000.0 * 499) ** 2, 16.0, 16.0),
    ]:
        c = dict(c, NoiseVarMean=nzc, MomentNoise={"Var": mc_})
        t = dict(t, NoiseVarMean=nzt, MomentNoise={"Var": mt_})
        alpha = 0.05
        sc, st = c["Var"] / c["N"], t["Var"] / t["N"]
        noise = nzc + nzt
        v = noise + sc + st
        eta = math.sqrt(mc_ / c["N"] ** 2 + mt_ / t["N"] ** 2)
        den = 2 * sc ** 2 / (c["N"] - 1) + 2 * st ** 2 / (t["N"] - 1)
        nu = min(2 * v ** 2 / den, 1e12) if den > 0 else 1e12
        q = optimize.brentq(lambda x: noisy_pivot_tail(x, noise, sc + st, eta, nu) - alpha, 0.1, 50, xtol=1e-14, rtol=1e-14)
        want = welch_from_estimates(c["Mean"], sc, c["N"], t["Mean"], st, t["N"], alpha, nzc, nzt)
        se = math.sqrt(v)
        diff = t["Mean"] - c["Mean"]
        want["DF"] = f(nu)
        want["PValue"] = f(noisy_pivot_tail(abs(diff / se), noise, sc + st, eta, nu))
        want["DiffLow"], want["DiffHigh"] = f(diff - q * se), f(diff + q * se)
        lo, hi = fieller_numeric(c["Mean"], t["Mean"], want["ControlVar"], want["TreatmentVar"], q)
        want["RelUnbounded"] = lo is None
        want["RelLow"], want["RelHigh"] = (0.0, 0.0) if lo is None else (f(lo), f(hi))
        out.append({"name": name, "kind": "mean", "alpha": alpha, "control": c, "treatment": t, "want": want})
    return out


def fieller_set_numeric(mc, mt, vc, vt, q):
    """Fieller's confidence set for (μ_t - μ_c)/|μ_c| of any shape, found by
    scanning its defining test g(ℓ) ≤ 0 (see fieller_numeric) on a wide
    grid and polishing each sign change with brentq — not from the
    quadratic's roots. Returns (shape, lo, hi): "bounded" [lo, hi],
    "exclusive" (the set is outside (lo, hi)), or "whole" (every ℓ)."""
    s = 1.0 if mc > 0 else -1.0

    def g(l):
        k = 1 + s * l
        return (mt - k * mc) ** 2 / (vt + k * k * vc) - q * q

    grid = np.concatenate([-np.logspace(8, -8, 4001), [0.0], np.logspace(-8, 8, 4001)])
    vals = np.array([g(l) for l in grid])
    roots = []
    for i in range(len(grid) - 1):
        if (vals[i] <= 0) != (vals[i + 1] <= 0):
            roots.append(optimize.brentq(g, grid[i], grid[i + 1], xtol=1e-300, rtol=8.9e-16, maxiter=1000))
    if not roots:
        return "whole" if vals[0] <= 0 else "empty", 0.0, 0.0
    assert len(roots) == 2, roots
    lo, hi = roots
    inside = g((lo + hi) / 2) <= 0
    return ("bounded" if inside else "exclusive"), lo, hi


def fieller_set_cases():
    """Fieller's set in each shape: bounded, the outside of an interval (the
    control mean not distinguishable from zero, the treatment mean is), the
    whole line (neither is), for control means of either sign."""
    out = []
    for name, mc, mt, vc, vt, q in [
        ("bounded", 5.0, 6.0, 0.5, 0.6, 1.96),
        ("exclusive", 2.0, 9.0, 2.0, 3.0, 1.96),
        ("exclusive, negative control mean", -2.0, -9.0, 2.0, 3.0, 1.96),
        ("exclusive, treatment of the other sign", 1.5, -7.0, 1.0, 2.0, 2.1),
        ("whole line", 1.0, 1.5, 2.0, 3.0, 1.96),
    ]:
        shape, lo, hi = fieller_set_numeric(mc, mt, vc, vt, q)
        out.append({"name": name, "mc": mc, "mt": mt, "vc": vc, "vt": vt, "q": q, "shape": shape, "lo": f(lo), "hi": f(hi)})
    return out


def noisy_ratio_cases():
    """Private ratios whose moments are the raw noisy ones: a variance may
    be negative. The per-unit variance of the linearised value
    (x - R·y)/ȳ is formed from them and truncated at zero once; its noise
    is propagated from each moment's to first order; the critical value
    and p-value are the pivot's (noisy_pivot_tail, by adaptive
    quadrature)."""
    out = []
    for name, c, t, nzc, nzt, mnc, mnt in [
        ("raw numerator variance negative",
         {"N": 500.0, "Mean": 7.5, "Var": -2500.0, "DenMean": 1.5, "DenVar": 2.5, "CovXY": 30.0},
         {"N": 490.0, "Mean": 8.2, "Var": 1900.0, "DenMean": 1.45, "DenVar": -4.0, "CovXY": -80.0},
         15.0, 16.0,
         {"Var": 7850.0 ** 2, "DenVar": 12.5 ** 2, "CovXY": 314.0 ** 2},
         {"Var": 8000.0 ** 2, "DenVar": 12.8 ** 2, "CovXY": 320.0 ** 2}),
        ("linearised variance truncated",
         {"N": 520.0, "Mean": 6.0, "Var": -9000.0, "DenMean": 1.6, "DenVar": 3.0, "CovXY": 400.0},
         {"N": 505.0, "Mean": 7.0, "Var": 700.0, "DenMean": 1.5, "DenVar": 2.8, "CovXY": 20.0},
         14.0, 15.0,
         {"Var": 7550.0 ** 2, "DenVar": 12.0 ** 2, "CovXY": 300.0 ** 2},
         {"Var": 7770.0 ** 2, "DenVar": 12.3 ** 2, "CovXY": 310.0 ** 2}),
    ]:
        alpha = 0.05
        est = []
        for a, nz, mn in ((c, nzc, mnc), (t, nzt, mnt)):
            r = a["Mean"] / a["DenMean"]
            wx, wy = 1 / a["DenMean"], -r / a["DenMean"]
            lin = np.array([wx, wy])
            cov = np.array([[a["Var"], a["CovXY"]], [a["CovXY"], a["DenVar"]]])
            s2 = max(0.0, float(lin @ cov @ lin))
            # Var_noise(wᵀΣw) with independent noise on each moment: the
            # gradient of the quadratic form in (Σxx, Σyy, Σxy) is
            # (wx², wy², 2·wx·wy).
            grad = np.array([wx * wx, wy * wy, 2 * wx * wy])
            eta2 = float(grad ** 2 @ np.array([mn["Var"], mn["DenVar"], mn["CovXY"]]))
            est.append((r, s2 / a["N"], nz / a["DenMean"] ** 2, eta2 / a["N"] ** 2, a["N"]))
        (rc, sc, noc, ec, nc), (rt, st, not_, et, nt) = est
        noise = noc + not_
        v = noise + sc + st
        eta = math.sqrt(ec + et)
        den = 2 * sc ** 2 / (nc - 1) + 2 * st ** 2 / (nt - 1)
        nu = min(2 * v ** 2 / den, 1e12) if den > 0 else 1e12
        q = optimize.brentq(lambda x: noisy_pivot_tail(x, noise, sc + st, eta, nu) - alpha, 0.1, 50, xtol=1e-14, rtol=1e-14)
        se = math.sqrt(v)
        diff = rt - rc
        want = {"ControlMean": f(rc), "TreatmentMean": f(rt), "ControlVar": f(sc + noc), "TreatmentVar": f(st + not_),
                "Diff": f(diff), "SE": f(se), "DF": f(nu), "Statistic": f(diff / se),
                "PValue": f(noisy_pivot_tail(abs(diff / se), noise, sc + st, eta, nu)),
                "DiffLow": f(diff - q * se), "DiffHigh": f(diff + q * se)}
        cc = dict(c, NoiseVarMean=nzc, NoiseVarDenMean=0.0, MomentNoise=mnc)
        tt = dict(t, NoiseVarMean=nzt, NoiseVarDenMean=0.0, MomentNoise=mnt)
        out.append({"name": name, "kind": "ratio", "alpha": alpha, "control": cc, "treatment": tt, "want": want})
    return out


def relative_cases():
    """Relative effects for control means of either sign (Fieller; the
    point estimate is (m_t - m_c)/|m_c|). gbstats_rel is GrowthBook's
    (m_t - m_c)/m_c (gbstats utils.frequentist_diff), kept to show where the
    two conventions differ."""
    out = []
    for name, c, t in [
        ("negative control mean getting worse", {"N": 800.0, "Mean": -2.0, "Var": 16.0}, {"N": 800.0, "Mean": -2.6, "Var": 18.0}),
        ("negative control mean improving", {"N": 800.0, "Mean": -2.0, "Var": 16.0}, {"N": 800.0, "Mean": -1.5, "Var": 15.0}),
        ("control mean near zero", {"N": 200.0, "Mean": 0.05, "Var": 4.0}, {"N": 210.0, "Mean": 0.4, "Var": 4.0}),
        ("control mean crossing zero", {"N": 500.0, "Mean": -0.1, "Var": 25.0}, {"N": 500.0, "Mean": 0.3, "Var": 25.0}),
        ("skewed small cohort", {"N": 60.0, "Mean": 0.8, "Var": 3.0}, {"N": 55.0, "Mean": 1.1, "Var": 4.0}),
    ]:
        want = welch_from_estimates(c["Mean"], c["Var"] / c["N"], c["N"], t["Mean"], t["Var"] / t["N"], t["N"], 0.05)
        want["GbstatsRel"] = f((t["Mean"] - c["Mean"]) / c["Mean"])
        out.append({"name": name, "kind": "mean", "alpha": 0.05, "control": c, "treatment": t, "want": want})
    return out


def srm_exact_cases():
    """Exact binomial SRM test (SciPy's binomtest, two-sided: the sum of the
    probabilities of outcomes no more likely than the observed one) for
    any expected count below 10, where χ² is unreliable; arm-vs-rest with Bonferroni for more
    than two arms."""
    out = []
    for name, obs, shares in [
        ("tiny declared share, even split", [1500, 1500], [0.002, 0.998]),
        ("tiny declared share, as designed", [7, 2993], [0.002, 0.998]),
        ("tiny declared share, a little high", [14, 2986], [0.002, 0.998]),
        ("tiny declared share, empty arm", [0, 3000], [0.002, 0.998]),
        ("small total", [1, 9], [0.5, 0.5]),
        ("three arms one tiny", [20, 2000, 1980], [0.001, 0.4995, 0.4995]),
    ]:
        n = sum(obs)
        w = np.array(shares, dtype=float) / np.sum(shares)
        small = [i for i in range(len(obs)) if n * w[i] < 10]
        if len(obs) == 2:
            p = stats.binomtest(obs[0], n, w[0]).pvalue
        else:
            p = min(1.0, len(obs) * min(stats.binomtest(obs[i], n, w[i]).pvalue for i in range(len(obs))))
        out.append({"name": name, "observed": [f(o) for o in obs], "shares": [f(x) for x in shares],
                    "p": f(p), "small": small})
    return out


def psd_cases():
    """Nearest covariance: numpy's symmetric eigendecomposition with the
    negative eigenvalues set to zero, then rows and columns scaled down to
    the variance bounds."""
    out = []
    for name, a, maxvar in [
        ("ratio covariance too large", [[4.0, 5.0], [5.0, 3.0]], [100.0, 100.0]),
        ("already a covariance", [[4.0, 1.0], [1.0, 3.0]], [100.0, 100.0]),
        ("negative variance", [[-0.5, 0.2], [0.2, 3.0]], [100.0, 100.0]),
        ("three variables cuped", [[2.0, 1.9, 1.5], [1.9, 1.0, -0.4], [1.5, -0.4, 1.2]], [10.0, 10.0, 10.0]),
        ("variance above its bound", [[30.0, 20.0], [20.0, 10.0]], [25.0, 25.0]),
    ]:
        m = np.array(a, dtype=float)
        m = (m + m.T) / 2
        for i in range(len(maxvar)):
            m[i, i] = min(max(m[i, i], 0.0), maxvar[i])
        lam, q = np.linalg.eigh(m)
        p = q @ np.diag(np.maximum(lam, 0)) @ q.T
        d = np.array([math.sqrt(maxvar[i] / p[i, i]) if p[i, i] > maxvar[i] else 1.0 for i in range(len(maxvar))])
        p = p * np.outer(d, d)
        out.append({"name": name, "a": [f(x) for x in np.array(a).ravel()], "max_var": [f(x) for x in maxvar],
                    "want": [f(x) for x in p.ravel()], "min_eig": f(min(np.linalg.eigvalsh(p)))})
    return out


def ratio_arm(rng, n, sessions, ctr, cov=False, noise=None):
    y = rng.poisson(sessions, n) + 1.0
    x = rng.binomial(y.astype(int), ctr).astype(float)
    c = None
    if cov:
        c = 0.7 * x + rng.poisson(1.0, n)
    return x, y, c


def ratio_estimate(x, y, theta=0.0, c=None, cstar=0.0):
    """Unit-level linearisation: ℓ = (x - R·y)/ȳ - θ·c; the estimate is
    R - θ(c̄ - c*) and its variance var(ℓ)/n."""
    n = len(x)
    r = np.sum(x) / np.sum(y)
    l = (x - r * y) / np.mean(y)
    est = r
    if c is not None:
        l = l - theta * c
        est = r - theta * (np.mean(c) - cstar)
    return est, np.var(l, ddof=1) / n


def ratio_cases():
    rng = np.random.default_rng(7)
    out = []
    for name, nc, nt, ctr_c, ctr_t, alpha in [
        ("ratio clicks per session", 3000, 3100, 0.20, 0.215, 0.05),
        ("ratio small arms", 40, 35, 0.3, 0.25, 0.1),
    ]:
        xc, yc, _ = ratio_arm(rng, nc, 3.0, ctr_c)
        xt, yt, _ = ratio_arm(rng, nt, 3.0, ctr_t)
        mc, vc = ratio_estimate(xc, yc)
        mt, vt = ratio_estimate(xt, yt)
        want = welch_from_estimates(mc, vc, nc, mt, vt, nt, alpha)
        out.append({"name": name, "kind": "ratio", "alpha": alpha,
                    "control": moments(xc, yc), "treatment": moments(xt, yt), "want": want})
    # Ratio with privacy noise on numerator and denominator means:
    # Var(x̄/ȳ) gains (σ²_x̄ + R²σ²_ȳ)/ȳ².
    xc, yc, _ = ratio_arm(rng, 2000, 2.0, 0.1)
    xt, yt, _ = ratio_arm(rng, 2000, 2.0, 0.11)
    c, t = moments(xc, yc), moments(xt, yt)
    c.update(NoiseVarMean=1e-5, NoiseVarDenMean=4e-5)
    t.update(NoiseVarMean=2e-5, NoiseVarDenMean=3e-5)
    mc, vc = ratio_estimate(xc, yc)
    mt, vt = ratio_estimate(xt, yt)
    noise_c = (1e-5 + mc ** 2 * 4e-5) / np.mean(yc) ** 2
    noise_t = (2e-5 + mt ** 2 * 3e-5) / np.mean(yt) ** 2
    want = welch_from_estimates(mc, vc, 2000, mt, vt, 2000, 0.05, noise_c, noise_t)
    out.append({"name": "ratio with privacy noise", "kind": "ratio", "alpha": 0.05,
                "control": c, "treatment": t, "want": want})
    return out


def pooled_theta(groups):
    """OLS slope of ℓ on c with arm fixed effects (within-arm demeaning)."""
    sxy = sum(np.dot(l - l.mean(), c - c.mean()) for l, c in groups)
    sxx = sum(np.dot(c - c.mean(), c - c.mean()) for l, c in groups)
    return sxy / sxx


def cuped_cases():
    rng = np.random.default_rng(99)
    out = []
    # Mean metric, three arms: revenue with its pre-period value as covariate.
    arms = []
    for n, lift in [(1500, 0.0), (1400, 0.8), (1600, -0.3)]:
        c = rng.gamma(2.0, 5.0, n)
        x = 0.8 * c + rng.normal(lift + 2.0, 4.0, n)
        arms.append((x, c))
    theta = pooled_theta(arms)
    n_all = sum(len(x) for x, _ in arms)
    cstar = sum(np.sum(c) for _, c in arms) / n_all
    ests = []
    for x, c in arms:
        adj = x - theta * (c - cstar)
        ests.append((np.mean(adj), np.var(adj, ddof=1) / len(x), len(x)))
    comps = []
    for i in (1, 2):
        comps.append(welch_from_estimates(ests[0][0], ests[0][1], ests[0][2],
                                          ests[i][0], ests[i][1], ests[i][2], 0.05))
    out.append({"name": "cuped mean three arms", "kind": "mean", "alpha": 0.05,
                "arms": [moments(x, c=c) for x, c in arms],
                "theta": f(theta), "covariate_mean": f(cstar), "comparisons": comps})
    # Proportion with a 0/1 pre-period covariate, two arms.
    arms = []
    for n, p in [(4000, 0.10), (4000, 0.12)]:
        c = (rng.random(n) < 0.3).astype(float)
        x = (rng.random(n) < p + 0.2 * c).astype(float)
        arms.append((x, c))
    theta = pooled_theta(arms)
    cstar = sum(np.sum(c) for _, c in arms) / sum(len(x) for x, _ in arms)
    ests = []
    for x, c in arms:
        adj = x - theta * (c - cstar)
        ests.append((np.mean(adj), np.var(adj, ddof=1) / len(x), len(x)))
    comps = [welch_from_estimates(ests[0][0], ests[0][1], ests[0][2], ests[1][0], ests[1][1], ests[1][2], 0.05)]
    out.append({"name": "cuped proportion", "kind": "proportion", "alpha": 0.05,
                "arms": [moments(x, c=c) for x, c in arms],
                "theta": f(theta), "covariate_mean": f(cstar), "comparisons": comps})
    # Ratio metric, three arms, linearised around the pooled ratio.
    arms = []
    for n, ctr in [(2500, 0.2), (2600, 0.22), (2400, 0.19)]:
        arms.append(ratio_arm(rng, n, 3.0, ctr, cov=True))
    xs = np.concatenate([a[0] for a in arms])
    ys = np.concatenate([a[1] for a in arms])
    r_pool = np.sum(xs) / np.sum(ys)
    ybar = np.mean(ys)
    theta = pooled_theta([((x - r_pool * y) / ybar, c) for x, y, c in arms])
    cstar = np.mean(np.concatenate([a[2] for a in arms]))
    ests = []
    for x, y, c in arms:
        e, v = ratio_estimate(x, y, theta, c, cstar)
        ests.append((e, v, len(x)))
    comps = []
    for i in (1, 2):
        comps.append(welch_from_estimates(ests[0][0], ests[0][1], ests[0][2],
                                          ests[i][0], ests[i][1], ests[i][2], 0.05))
    out.append({"name": "cuped ratio three arms", "kind": "ratio", "alpha": 0.05,
                "arms": [moments(x, y, c) for x, y, c in arms],
                "theta": f(theta), "covariate_mean": f(cstar), "comparisons": comps})
    return out


def sequential_cases():
    """Asymptotic confidence sequence written in per-unit form: with
    s² = n·Var(Δ̂) and n the units in both arms,
    half-width = √s² · √(2(nρ²+1)/(n²ρ²) · ln(√(nρ²+1)/α))."""
    out = []
    for name, c, t, nstar, alpha in [
        ("sequential at n star", {"N": 5000.0, "Mean": 10.0, "Var": 25.0}, {"N": 5000.0, "Mean": 10.3, "Var": 26.0}, 10000.0, 0.05),
        ("sequential early", {"N": 300.0, "Mean": 0.1, "Var": 0.09}, {"N": 310.0, "Mean": 0.14, "Var": 0.12}, 20000.0, 0.05),
        ("sequential late alpha 0.1", {"N": 80000.0, "Mean": 2.0, "Var": 4.0}, {"N": 80000.0, "Mean": 2.004, "Var": 4.1}, 20000.0, 0.1),
    ]:
        vc, vt = c["Var"] / c["N"], t["Var"] / t["N"]
        n = c["N"] + t["N"]
        s2 = n * (vc + vt)
        rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / nstar)
        hw = math.sqrt(s2) * math.sqrt(2 * (n * rho ** 2 + 1) / (n ** 2 * rho ** 2) * math.log(math.sqrt(n * rho ** 2 + 1) / alpha))
        diff = t["Mean"] - c["Mean"]
        # Mixture martingale at the observed statistic; p = min(1, 1/M).
        v = vc + vt
        m = 1 / math.sqrt(1 + n * rho ** 2 ) * math.exp(n * rho ** 2 * diff ** 2 / (2 * v * (1 + n * rho ** 2)))
        mc, mt = c["Mean"], t["Mean"]
        relse = math.sqrt(vt / mc ** 2 + mt ** 2 * vc / mc ** 4)
        mult = hw / math.sqrt(v)
        lo, hi = fieller_numeric(mc, mt, vc, vt, mult)
        out.append({"name": name, "kind": "mean", "alpha": alpha, "nstar": nstar, "control": c, "treatment": t,
                    "want": {"DiffLow": f(diff - hw), "DiffHigh": f(diff + hw), "PValue": f(min(1.0, 1 / m)),
                             "RelLow": f(lo), "RelHigh": f(hi), "Rho": f(rho)}})
    return out


def srm_cases():
    out = []
    for name, obs, shares in [
        ("balanced", [5012, 4988], [0.5, 0.5]),
        ("mismatch", [5200, 4800], [0.5, 0.5]),
        ("three arms unnormalised shares", [2500, 2480, 5100], [1, 1, 2]),
        ("ninety ten", [90210, 9790], [0.9, 0.1]),
        ("huge counts", [50_000_000, 50_010_000], [0.5, 0.5]),
    ]:
        exp = np.array(shares, dtype=float) / np.sum(shares) * np.sum(obs)
        res = stats.chisquare(np.array(obs, dtype=float), exp)
        out.append({"name": name, "observed": [f(o) for o in obs], "shares": [f(s) for s in shares],
                    "chi2": f(res.statistic), "p": f(res.pvalue), "expected": [f(e) for e in exp]})
    return out


def holm_alphas(p, alpha):
    """Per-step Bonferroni level of Holm's procedure (see HolmAlphas)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    r = 0
    for j, i in enumerate(order):
        if p[i] <= alpha / (m - j):
            r += 1
        else:
            break
    out = [0.0] * m
    for j, i in enumerate(order):
        out[i] = alpha / (m - j) if j < r else alpha / (m - r)
    return out


def bh_alphas(p, alpha):
    """Benjamini–Yekutieli FCR level α·R/m with R the BH rejections."""
    m = len(p)
    s = sorted(p)
    r = max([k + 1 for k in range(m) if s[k] <= (k + 1) * alpha / m], default=0)
    return [alpha * max(r, 1) / m] * m


def multitest_cases():
    rng = np.random.default_rng(3)
    vectors = [
        ("uniform ten", list(rng.random(10))),
        ("some signal", [0.0001, 0.012, 0.02, 0.031, 0.04, 0.2, 0.5, 0.9]),
        ("ties", [0.01, 0.01, 0.03, 0.03, 0.03, 0.5]),
        ("zero and one", [0.0, 1.0, 0.02, 0.004]),
        ("single", [0.03]),
        ("all significant", [1e-8, 2e-6, 1e-4]),
        ("tiny values", list(10 ** rng.uniform(-12, -2, 12))),
    ]
    out = []
    for name, p in vectors:
        p = [f(v) for v in p]
        holm = multipletests(p, alpha=0.05, method="holm")[1]
        bh = multipletests(p, alpha=0.05, method="fdr_bh")[1]
        out.append({"name": name, "p": p, "alpha": 0.05, "holm": [f(v) for v in holm], "bh": [f(v) for v in bh],
                    "holm_alphas": holm_alphas(p, 0.05), "bh_alphas": bh_alphas(p, 0.05)})
    return out


def mde_cases():
    out = []
    for se, alpha, power in [(1.0, 0.05, 0.8), (0.0123, 0.05, 0.9), (250.0, 0.01, 0.8), (3e-5, 0.1, 0.5)]:
        out.append({"se": se, "alpha": alpha, "power": power, "mde": f(mde(se, alpha, power))})
    return out


def write_reference(name, ref):
    """Write ref as stats/testdata/<name>, atomically, in the layout the Go tests read."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    with open(path + ".tmp", "w") as fh:
        json.dump(ref, fh, indent=1, sort_keys=True, allow_nan=False)
        fh.write("\n")
    os.replace(path + ".tmp", path)


def main():
    ref = {
        "generator": {"script": "stats/testdata/reference.py", "python": sys.version.split()[0],
                      "numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "tdist": tdist(),
        "welch": welch_cases() + noise_cases() + ratio_cases() + relative_cases(),
        "noisy_variance": noisy_variance_cases(),
        "noisy_ratio": noisy_ratio_cases(),
        "fieller_sets": fieller_set_cases(),
        "srm_exact": srm_exact_cases(),
        "psd": psd_cases(),
        "cuped": cuped_cases(),
        "sequential": sequential_cases(),
        "srm": srm_cases(),
        "multitest": multitest_cases(),
        "mde": mde_cases(),
    }
    write_reference("reference.json", ref)


if __name__ == "__main__":
    main()

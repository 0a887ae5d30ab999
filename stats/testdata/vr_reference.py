#!/usr/bin/python3
"""Reference values for the variance-reduction, interaction and anomaly
functions of the Go package stats (issue #21 items 3 and 4), computed
independently from unit-level NumPy arrays.

Run from the repository root with Debian's Python (NumPy 1.24, SciPy 1.10,
statsmodels 0.13):

    /usr/bin/python3 stats/testdata/vr_reference.py

It rewrites vr_reference.json beside it, deterministically (every draw
comes from numpy.random.default_rng with a fixed seed; floats are written
with repr).

What each section reproduces, and how it differs from the Go code:

post_stratification — Miratrix, Sekhon & Yu (2013). Each stratum's
    difference in means is computed from the unit arrays of the stratum;
    thin strata are pooled by concatenating their unit arrays (not by
    merging moments). The conditional variance Σ w_k²(s²_kt/n_kt +
    s²_kc/n_kc) is also obtained as statsmodels' HC2 variance of the
    treatment coefficient in OLS y ~ T + D + T·D (D the centred stratum
    indicators), and the script asserts the two agree. The population
    term Σ w_k(τ̂_k − τ̂)²/(n−1), Satterthwaite's ν and scipy.stats.t give
    the interval.

regression_adjustment — Lin (2013): statsmodels OLS of y on (1, x − x̄)
    fitted separately in each arm with the classical (cov_type='nonrobust')
    covariance, x̄ the mean over all units; the treatment effect's
    covariate-mean term (β̂_t − β̂_c)ᵀ S_x (β̂_t − β̂_c)/N from np.cov of all
    units' covariates. The fully interacted regression y ~ D + (x − x̄) +
    D·(x − x̄) is fitted too, and the script asserts its arm coefficients
    equal the per-arm differences; its HC2 standard error (statsmodels
    cov_type='HC2') is written as hc2_se for the Go test to measure the
    moment-based standard error against (they agree only asymptotically:
    HC2 needs each unit's leverage). Ratio metrics are linearised per unit,
    ℓ_i = R + (x_i − R·y_i)/ȳ* with the pooled R and ȳ*, before the
    regression.

interaction — the a×b table of cells of units in two experiments:
    statsmodels OLS of y on A's and B's arm indicators and their products
    (saturated, so each cell has its own mean) with cov_type='HC2'; its
    interaction coefficients are the contrasts θ_ij, their HC2 covariance
    is Σ s²/n over the cells involved, and the Wald statistic is
    results.wald_test(R, use_f=False); its p-value is scipy.stats.f.sf(W/m,
    m, ν_min) with ν_min the smallest contrast's Satterthwaite ν computed
    from the cells. For 2×2 the Welch–Satterthwaite ν is computed from the
    cells and the p-value and interval from SciPy's t.
    Assignment independence is scipy.stats.chi2_contingency(correction=False).
"""

import math
import sys

import numpy as np
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import stats

# f, t_ppf and write_reference are the ones reference.py uses (same folder).
from reference import f, t_ppf, write_reference  # noqa: E402


def cell(y):
    """A cell's moments as the pipeline passes them."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    return {"N": f(n), "Mean": f(np.mean(y)) if n else 0.0, "Var": f(np.var(y, ddof=1)) if n > 1 else 0.0}


def t_interval(est, se, df, alpha):
    q = t_ppf(1 - alpha / 2, df)
    return {"Critical": f(q), "Low": f(est - q * se), "High": f(est + q * se),
            "Statistic": f(est / se), "PValue": f(2 * stats.t.sf(abs(est / se), df))}


# ---------------------------------------------------------------------------
# Post-stratification


def pool_rule(strata, min_units):
    """The documented pooling rule, on unit arrays: returns groups of input
    strata (lists of indices) and the empty strata."""
    groups, empty, thin = [], [], []
    for k, (c, t) in enumerate(strata):
        if len(c) == 0 and len(t) == 0:
            empty.append(k)
        elif len(c) < min_units or len(t) < min_units:
            thin.append(k)
        else:
            groups.append([k])
    if thin:
        nc = sum(len(strata[k][0]) for k in thin)
        nt = sum(len(strata[k][1]) for k in thin)
        if nc >= min_units and nt >= min_units:
            groups.append(thin)
        else:
            sizes = [sum(len(strata[k][0]) + len(strata[k][1]) for k in g) for g in groups]
            big = sizes.index(max(sizes))
            groups[big] = sorted(groups[big] + thin)
    groups.sort(key=lambda g: g[0])
    return groups, empty


def post_stratify(strata, alpha, min_units=2):
    groups, empty = pool_rule(strata, min_units)
    cells = []
    for g in groups:
        c = np.concatenate([strata[k][0] for k in g])
        t = np.concatenate([strata[k][1] for k in g])
        cells.append((c, t))
    n = sum(len(c) + len(t) for c, t in cells)
    w = np.array([(len(c) + len(t)) / n for c, t in cells])
    tau = np.array([np.mean(t) - np.mean(c) for c, t in cells])
    est = float(np.sum(w * tau))
    terms = []
    for wk, (c, t) in zip(w, cells):
        for y in (c, t):
            terms.append((wk ** 2 * np.var(y, ddof=1) / len(y), len(y)))
    v_cond = sum(v for v, _ in terms)
    v_het = float(np.sum(w * (tau - est) ** 2)) / (n - 1)
    df = v_cond ** 2 / sum(v ** 2 / (m - 1) for v, m in terms)
    se = math.sqrt(v_cond + v_het)

    # The same estimate and conditional variance as HC2 OLS with stratum
    # indicators, on the unit-level data of the groups.
    y = np.concatenate([np.concatenate([c, t]) for c, t in cells])
    tr = np.concatenate([np.concatenate([np.zeros(len(c)), np.ones(len(t))]) for c, t in cells])
    g = np.concatenate([np.full(len(c) + len(t), i) for i, (c, t) in enumerate(cells)])
    cols = [tr]
    for i in range(1, len(cells)):
        d = (g == i).astype(float)
        d -= d.mean()
        cols += [d, tr * d]
    fit = sm.OLS(y, sm.add_constant(np.column_stack(cols))).fit(cov_type="HC2")
    assert abs(fit.params[1] - est) <= 1e-9 * max(1.0, abs(est)), (fit.params[1], est)
    assert abs(fit.bse[1] - math.sqrt(v_cond)) <= 1e-9 * math.sqrt(v_cond), (fit.bse[1], math.sqrt(v_cond))

    ac = np.concatenate([c for c, _ in cells])
    at = np.concatenate([t for _, t in cells])
    vu = np.var(at, ddof=1) / len(at) + np.var(ac, ddof=1) / len(ac)
    want = {"Estimate": est, "SE": f(se), "SEConditional": f(math.sqrt(v_cond)), "HC2SE": f(fit.bse[1]),
            "DF": f(df), "Unadjusted": f(np.mean(at) - np.mean(ac)), "UnadjustedSE": f(math.sqrt(vu)),
            "VarianceReduction": f(1 - se ** 2 / vu), "Groups": groups, "Empty": empty,
            "Weights": [f(x) for x in w], "Effects": [f(x) for x in tau]}
    want.update(t_interval(est, se, df, alpha))
    return want


def ps_case(name, strata, alpha=0.05, min_units=2):
    return {"name": name, "alpha": alpha, "min_units": min_units,
            "strata": [[cell(c), cell(t)] for c, t in strata],
            "want": post_stratify(strata, alpha, min_units)}


def post_stratification_cases():
    rng = np.random.default_rng(2113)
    out = []
    # Three personas with different levels, spreads and effects.
    strata = []
    for nc, nt, mu, sd, eff in [(300, 320, 5.0, 2.0, 0.3), (800, 760, 12.0, 5.0, 0.8), (150, 170, 30.0, 9.0, -0.5)]:
        strata.append((rng.normal(mu, sd, nc), rng.normal(mu + eff, sd * 1.1, nt)))
    out.append(ps_case("three personas", strata))
    # Thin strata: one with a single treated unit, one with no control;
    # pooled together they are still thin and join the largest stratum.
    strata = [(rng.exponential(10, 400), rng.exponential(10.5, 410)),
              (rng.exponential(3, 5), rng.exponential(3, 1)),
              (rng.exponential(20, 600), rng.exponential(21, 590)),
              (rng.exponential(7, 1), np.array([])),
              (np.array([]), np.array([]))]
    out.append(ps_case("thin strata join the largest", strata, alpha=0.1))
    # Thin strata that are enough when pooled.
    strata = [(rng.normal(1, 1, 200), rng.normal(1.2, 1, 210)),
              (rng.normal(4, 2, 3), rng.normal(4, 2, 1)),
              (rng.normal(6, 2, 1), rng.normal(6, 2, 4)),
              (rng.normal(2, 1, 250), rng.normal(2.1, 1, 240))]
    out.append(ps_case("thin strata pooled", strata))
    # Proportions in ten strata of very different base rates.
    strata = []
    for k in range(10):
        p = 0.02 + 0.05 * k
        nc, nt = int(rng.integers(150, 900)), int(rng.integers(150, 900))
        strata.append(((rng.random(nc) < p).astype(float), (rng.random(nt) < p * 1.08).astype(float)))
    out.append(ps_case("ten strata of proportions", strata))
    # One stratum: Welch's test, cross-checked with SciPy.
    c, t = rng.normal(3, 1, 40), rng.normal(3.4, 2, 25)
    case = ps_case("one stratum is Welch", [(c, t)])
    res = stats.ttest_ind(t, c, equal_var=False)
    assert abs(res.pvalue - case["want"]["PValue"]) <= 1e-9 * res.pvalue
    out.append(case)
    return out


# ---------------------------------------------------------------------------
# Regression adjustment


def arm_moments(z):
    """ArmMoments of a unit matrix z whose columns are (y, x1, …, xk)."""
    z = np.asarray(z, dtype=float)
    return {"N": f(z.shape[0]), "Mean": [f(v) for v in z.mean(axis=0)],
            "Cov": [f(v) for v in np.atleast_2d(np.cov(z, rowvar=False, ddof=1)).ravel()]}


def lin(arms, alpha):
    """Lin's estimator: per-arm OLS with classical covariance, plus the
    fully interacted HC2 regression for comparison."""
    k = arms[0].shape[1] - 1
    allz = np.vstack(arms)
    n_all = allz.shape[0]
    xbar = allz[:, 1:].mean(axis=0)
    sx = np.atleast_2d(np.cov(allz[:, 1:], rowvar=False, ddof=1))
    per_arm = []
    for z in arms:
        X = sm.add_constant(z[:, 1:] - xbar, has_constant="add")
        fit = sm.OLS(z[:, 0], X).fit()
        per_arm.append({"fit": fit, "n": z.shape[0]})
    # Fully interacted regression over all arms, HC2.
    y = allz[:, 0]
    xc = allz[:, 1:] - xbar
    arm_of = np.concatenate([np.full(z.shape[0], i) for i, z in enumerate(arms)])
    cols = []
    for i in range(1, len(arms)):
        d = (arm_of == i).astype(float)
        cols.append(d)
    cols += [xc[:, j] for j in range(k)]
    for i in range(1, len(arms)):
        d = (arm_of == i).astype(float)
        cols += [d * xc[:, j] for j in range(k)]
    full = sm.OLS(y, sm.add_constant(np.column_stack(cols), has_constant="add")).fit(cov_type="HC2")

    want_arms = []
    for a in per_arm:
        fit = a["fit"]
        want_arms.append({"AdjustedMean": f(fit.params[0]), "Var": f(fit.bse[0] ** 2),
                          "Slopes": [f(v) for v in fit.params[1:]], "ResidualVar": f(fit.scale)})
    effects = []
    for i in range(1, len(arms)):
        fc, ft = per_arm[0]["fit"], per_arm[i]["fit"]
        est = ft.params[0] - fc.params[0]
        assert abs(full.params[i] - est) <= 1e-9 * max(1.0, abs(est)), (full.params[i], est)
        vc, vt = fc.bse[0] ** 2, ft.bse[0] ** 2
        db = ft.params[1:] - fc.params[1:]
        v_het = float(db @ sx @ db) / n_all if k else 0.0
        se = math.sqrt(vc + vt + v_het)
        df = (vc + vt) ** 2 / (vc ** 2 / fc.df_resid + vt ** 2 / ft.df_resid)
        yc, yt = arms[0][:, 0], arms[i][:, 0]
        vu = np.var(yt, ddof=1) / len(yt) + np.var(yc, ddof=1) / len(yc)
        e = {"Arm": i, "Estimate": f(est), "SE": f(se), "SEConditional": f(math.sqrt(vc + vt)), "DF": f(df),
             "HC2SE": f(full.bse[i]), "Unadjusted": f(np.mean(yt) - np.mean(yc)), "UnadjustedSE": f(math.sqrt(vu)),
             "VarianceReduction": f(1 - se ** 2 / vu)}
        e.update(t_interval(est, se, df, alpha))
        effects.append(e)
    return {"CovariateMean": [f(v) for v in xbar], "Arms": want_arms, "Effects": effects}


def lin_case(name, arms, alpha=0.05, ratio=None):
    """ratio: the unit matrices (x, y, c…) before linearisation, when the
    metric is a ratio; arms are then the linearised ones."""
    case = {"name": name, "alpha": alpha, "ratio": ratio is not None,
            "arms": [arm_moments(z) for z in (ratio if ratio is not None else arms)],
            "want": lin(arms, alpha)}
    return case


def linearise(arms):
    allz = np.vstack(arms)
    r = allz[:, 0].sum() / allz[:, 1].sum()
    ybar = allz[:, 1].mean()
    return [np.column_stack([r + (z[:, 0] - r * z[:, 1]) / ybar, z[:, 2:]]) for z in arms]


def regression_cases():
    rng = np.random.default_rng(4242)
    out = []

    # Two arms, three correlated covariates, heteroskedastic errors whose
    # variance grows with the first covariate, and different slopes.
    def arm(n, shift, slopes):
        x1 = rng.gamma(2.0, 3.0, n)
        x2 = 0.5 * x1 + rng.normal(0, 2, n)
        x3 = (rng.random(n) < 0.3).astype(float)
        e = rng.normal(0, 1, n) * (1 + 0.3 * x1)
        y = 5 + shift + slopes[0] * x1 + slopes[1] * x2 + slopes[2] * x3 + e
        return np.column_stack([y, x1, x2, x3])

    arms = [arm(400, 0.0, (1.0, 0.5, 2.0)), arm(450, 0.7, (1.2, 0.4, 2.5))]
    out.append(lin_case("two arms three covariates heteroskedastic", arms))
    # Three arms, two covariates, larger.
    arms = []
    for n, shift, b in [(3000, 0.0, 0.8), (2900, 0.1, 0.8), (3100, -0.05, 0.9)]:
        c1 = rng.normal(10, 3, n)
        c2 = rng.exponential(2, n)
        y = 1 + shift + b * c1 - 0.3 * c2 + rng.normal(0, 2, n)
        arms.append(np.column_stack([y, c1, c2]))
    out.append(lin_case("three arms two covariates", arms, alpha=0.01))
    # Small arms, one covariate.
    arms = []
    for n, shift in [(12, 0.0), (9, 1.0)]:
        c = rng.normal(0, 1, n)
        arms.append(np.column_stack([2 + shift + 1.5 * c + rng.normal(0, 1, n), c]))
    out.append(lin_case("small arms one covariate", arms))
    # Ratio metric (clicks per session) with its pre-period ratio's parts.
    raw = []
    for n, lift in [(2500, 1.0), (2600, 1.1)]:
        ctr = rng.beta(2, 8, n)  # each user's own click-through rate
        pre_s = 1 + rng.poisson(3, n)
        pre_c = rng.binomial(pre_s, ctr)
        s = 1 + rng.poisson(0.5 + 0.6 * pre_s)
        c = rng.binomial(s, np.minimum(ctr * lift, 1))
        raw.append(np.column_stack([c, s, pre_c, pre_s]).astype(float))
    out.append(lin_case("ratio linearised two covariates", linearise(raw), ratio=raw))
    return out


# ---------------------------------------------------------------------------
# Interaction


def interaction_case(name, units, alpha=0.05):
    """units[i][j]: the outcome array of the cell (A's arm i, B's arm j)."""
    a, b = len(units), len(units[0])
    y = np.concatenate([units[i][j] for i in range(a) for j in range(b)])
    ai = np.concatenate([np.full(len(units[i][j]), i) for i in range(a) for j in range(b)])
    bj = np.concatenate([np.full(len(units[i][j]), j) for i in range(a) for j in range(b)])
    cols, names = [], []
    for i in range(1, a):
        cols.append((ai == i).astype(float))
    for j in range(1, b):
        cols.append((bj == j).astype(float))
    inter = []
    for i in range(1, a):
        for j in range(1, b):
            inter.append(len(cols))
            cols.append(((ai == i) & (bj == j)).astype(float))
    fit = sm.OLS(y, sm.add_constant(np.column_stack(cols))).fit(cov_type="HC2")
    idx = [k + 1 for k in inter]  # after the constant
    theta = fit.params[idx]
    cov = fit.cov_params()[np.ix_(idx, idx)]
    want = {"Contrasts": [f(v) for v in theta], "Cov": [f(v) for v in cov.ravel()]}
    effects = []
    for i in range(1, a):
        for j in range(b):
            yc, yt = units[0][j], units[i][j]
            effects.append({"ArmA": i, "ArmB": j, "Estimate": f(np.mean(yt) - np.mean(yc)),
                            "SE": f(math.sqrt(np.var(yt, ddof=1) / len(yt) + np.var(yc, ddof=1) / len(yc)))})
    want["Effects"] = effects
    if len(idx) == 1:
        d = [np.var(units[i][j], ddof=1) / len(units[i][j]) for i in range(a) for j in range(b)]
        n = [len(units[i][j]) for i in range(a) for j in range(b)]
        v = sum(d)
        assert abs(v - cov[0, 0]) <= 1e-9 * v
        df = v ** 2 / sum(x ** 2 / (m - 1) for x, m in zip(d, n))
        est, se = float(theta[0]), math.sqrt(v)
        want.update({"Method": "welch_t", "Estimate": f(est), "SE": f(se), "DF": f(df)})
        ti = t_interval(est, se, df, alpha)
        want.update({"Statistic": ti["Statistic"], "PValue": ti["PValue"], "Low": ti["Low"], "High": ti["High"]})
    else:
        R = np.zeros((len(idx), len(fit.params)))
        for r, k in enumerate(idx):
            R[r, k] = 1
        w = fit.wald_test(R, use_f=False, scalar=True)
        m = len(idx)
        # ν_min: the smallest Satterthwaite ν of one contrast, from the cells.
        nus = []
        for i in range(1, a):
            for j in range(1, b):
                d = [np.var(units[r][c], ddof=1) / len(units[r][c]) for r, c in ((i, j), (0, j), (i, 0), (0, 0))]
                n = [len(units[r][c]) for r, c in ((i, j), (0, j), (i, 0), (0, 0))]
                nus.append(sum(d) ** 2 / sum(x ** 2 / (k - 1) for x, k in zip(d, n)))
        nu = min(nus)
        want.update({"Method": "wald_f", "Statistic": f(w.statistic), "DF": f(m), "DFDenominator": f(nu),
                     "PValue": f(stats.f.sf(w.statistic / m, m, nu))})
    return {"name": name, "alpha": alpha, "cells": [[cell(units[i][j]) for j in range(b)] for i in range(a)],
            "want": want}


def interaction_cases():
    rng = np.random.default_rng(777)
    out = []
    # 2×2 with an interaction: A's lift is larger when B is on.
    units = [[rng.normal(10, 3, 2400), rng.normal(10.2, 3.5, 2500)],
             [rng.normal(10.3, 3.2, 2450), rng.normal(11.0, 4, 2380)]]
    out.append(interaction_case("2x2 interaction", units))
    # 2×2 proportions, no interaction, small cells.
    units = [[(rng.random(n) < p).astype(float) for n, p in row] for row in
             [[(60, 0.2), (45, 0.25)], [(52, 0.22), (70, 0.27)]]]
    out.append(interaction_case("2x2 proportions small", units, alpha=0.1))
    # 3×2 and 3×3, skewed revenue.
    units = [[rng.exponential(mu, n) for mu, n in row] for row in
             [[(20, 900), (21, 950)], [(22, 880), (23, 910)], [(19, 930), (24, 905)]]]
    out.append(interaction_case("3x2 revenue", units))
    units = [[rng.normal(mu, 2 + j, 300 + 10 * i + j) for j, mu in enumerate(row)] for i, row in
             enumerate([[5, 5.1, 5.2], [5.3, 5.3, 5.9], [5.0, 5.4, 5.1]])]
    out.append(interaction_case("3x3 normal", units))
    return out


def independence_cases():
    out = []
    for name, counts in [("balanced", [[25010, 24890], [24950, 25150]]),
                         ("dependent", [[15000, 25000], [35000, 25000]]),
                         ("3x2 unequal shares", [[3000, 1010], [2950, 990], [6100, 1900]]),
                         ("small counts", [[3, 7], [9, 2]])]:
        chi2, p, dof, expected = stats.chi2_contingency(np.array(counts, dtype=float), correction=False)
        out.append({"name": name, "counts": [[f(c) for c in row] for row in counts],
                    "want": {"ChiSquare": f(chi2), "PValue": f(p), "DF": int(dof),
                             "Expected": [f(e) for e in np.ravel(expected)]}})
    return out


# ---------------------------------------------------------------------------
# Anomaly


def anomaly_case(name, values, ses, missing, use_se, trend, alpha=0.01, checks=1):
    """The last night of values is checked against the others (those not
    missing), all of which form the history."""
    t0 = len(values) - 1
    hist = [j for j in range(t0) if j not in missing]
    y = np.array([values[j] for j in hist])
    w = np.array([1 / ses[j] ** 2 if use_se else 1.0 for j in hist])
    X = np.ones((len(hist), 1))
    x0 = np.ones((1, 1))
    if trend:
        X = np.column_stack([X, np.array(hist, dtype=float)])
        x0 = np.array([[1.0, float(t0)]])
    fit = sm.WLS(y, X, weights=w).fit()
    w0 = 1 / ses[t0] ** 2 if use_se else 1.0
    pred = fit.get_prediction(x0, weights=np.array([w0]))
    predicted = float(pred.predicted_mean[0])
    se = float(np.squeeze(pred.se_obs))
    stat = (values[t0] - predicted) / se
    p = 2 * stats.t.sf(abs(stat), fit.df_resid)
    level = alpha / checks
    series = [{"Value": f(v), "SE": f(e), "Missing": j in missing} for j, (v, e) in enumerate(zip(values, ses))]
    return {"name": name, "series": series,
            "options": {"Window": len(hist), "MinHistory": len(hist), "Alpha": alpha, "Checks": checks,
                        "UseSE": use_se, "Trend": trend},
            "want": {"Predicted": f(predicted), "PredSE": f(se), "Statistic": f(stat), "DF": f(fit.df_resid),
                     "PValue": f(p), "History": len(hist), "Flagged": bool(p <= level)}}


def anomaly_cases():
    rng = np.random.default_rng(1405)
    out = []
    v = list(10 + rng.normal(0, 0.1, 15))
    v[-1] -= 0.69  # volume halved
    out.append(anomaly_case("log volume halved", v, [1.0] * 15, set(), False, False))
    v = list(3 + 0.05 * np.arange(12) + rng.normal(0, 0.2, 12))
    out.append(anomaly_case("trend, a missing night", v, [1.0] * 12, {4}, False, True))
    ses = list(0.5 + 0.5 * rng.random(13))
    v = list(20 + np.array(ses) * rng.normal(0, 1, 13))
    v[-1] += 3 * ses[-1]
    out.append(anomaly_case("control mean with SEs, shift of 3 SE", v, ses, {2, 7}, True, False, alpha=0.01, checks=4))
    ses = list(0.2 + rng.random(9))
    v = list(1 - 0.02 * np.arange(9) + np.array(ses) * rng.normal(0, 1.3, 9))
    out.append(anomaly_case("SEs and trend", v, ses, set(), True, True, alpha=0.05))
    return out


def anomaly_power():
    """Detection probability of a shift δ at the last night: T is noncentral
    t with h − q degrees of freedom and ncp = δ/σ_pred, σ_pred² =
    κ(1/w₀ + 1/Σw) for a level model."""
    out = []
    for name, h, level, shift_over_sd in [
        ("volume halved, night-to-night sd 0.1", 14, 0.01, math.log(2) / 0.1),
        ("logger break of 5 SE", 14, 0.01, 5.0),
        ("logger break of 4 SE, 20 checks", 14, 0.05 / 20, 4.0),
    ]:
        df = h - 1
        ncp = shift_over_sd / math.sqrt(1 + 1 / h)
        c = t_ppf(1 - level / 2, df)
        power = stats.nct.sf(c, df, ncp) + stats.nct.cdf(-c, df, ncp)
        out.append({"name": name, "history": h, "level": f(level), "shift_sd": f(shift_over_sd), "power": f(power)})
    return out


def main():
    ref = {
        "generator": {"script": "stats/testdata/vr_reference.py", "python": sys.version.split()[0],
                      "numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "post_stratification": post_stratification_cases(),
        "regression_adjustment": regression_cases(),
        "interaction": interaction_cases(),
        "independence": independence_cases(),
        "anomaly": anomaly_cases(),
        "anomaly_power": anomaly_power(),
    }
    write_reference("vr_reference.json", ref)


if __name__ == "__main__":
    main()

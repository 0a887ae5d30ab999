#!/usr/bin/python3
"""Independent reference for the onboarding-flow-vr fixture's adjusted.csv
(issue 21 item 3: variance reduction beyond CUPED).

Reads the per-unit values of the plain-Go reference implementation
(vr_units.csv beside this file: one row per assigned unit, x and the CUPED
pre-period value c of every metric, fixed-point integers at 10^6) and
computes, with statsmodels/SciPy from the unit arrays (no Verity code, no
moments), every estimate the spec lists for each treatment against control
in cohort (all), at the spec's alpha 0.1:

cuped — Deng, Xu, Kohavi & Walker (2013). theta is the coefficient of c in
    statsmodels OLS  v ~ C(arm) + c  over all three arms (the slope pooled
    within arms), v the metric or, for the ratio, its linearisation
    (x - R*y)/ybar* around the pooled ratio. Each arm's estimate
    m_a - theta*(cbar_a - cbar*), with m_a the mean or the ratio
    xbar_a/ybar_a; its per-unit variance is the sample variance of
    x - theta*c (means) or of (x - R_a*y)/ybar_a - theta*c (ratio, R_a the
    arm's ratio: the delta method); Welch-Satterthwaite t interval
    (scipy.stats.t).
poststratify — Miratrix, Sekhon & Yu (2013), strata the persona cohorts.
    The estimate and the conditional variance are statsmodels' coefficient
    of T and its HC2 variance in OLS  v ~ T + D + T:D  on the control and
    treatment units (D the stratum indicators centred at their mean), which
    MSY show equals sum_k w_k^2 (s2_kt/n_kt + s2_kc/n_kc); the script
    asserts that identity. Plus the population term
    sum_k w_k (tau_k - tau)^2 / (n - 1); Satterthwaite df over the strata
    cells. The unadjusted comparison is the Welch difference of v.
regression — Lin (2013): statsmodels OLS of v on (1, X - Xbar) fitted
    separately in each of the three arms (Xbar over all units of all arms),
    X the pre-period value, other metrics' pre-period values
    (pre_period:<metric>, that metric's c column) and/or the persona indicators (first cohort in
    byte order the reference). The estimate is the difference of the
    intercepts, which the script checks against the coefficient of T in
    the interacted regression  v ~ T + Xc + T:Xc  on the two arms; the
    variance is the sum of the two per-arm classical intercept variances
    (bse[0]^2) plus (b_t - b_c)' S_X (b_t - b_c)/N (Negi & Wooldridge 2021;
    S_X = np.cov over all N units); df = Satterthwaite on n_a - k - 1.
    Verity computes the same from moments; HC2 standard errors would need
    the units (the script prints their ratio to the classical ones).

Ratio metric (revenue_per_session = purchase revenue / sessions): v is the
linearisation R + (x - R*y)/ybar* with R and ybar* pooled over all units,
y the sessions metric's x (the same definition). Variance reduction is
1 - SE_adj^2/SE_unadj^2.

Run from the repository root:  /usr/bin/python3 golden/testdata/vr_reference.py
(Debian bookworm: python3-statsmodels 0.13.5, NumPy 1.24, SciPy 1.10). It
rewrites vr_reference.json (onboarding-flow-vr) and vr2_reference.json
(onboarding-flow-vr2: regressions on several pre-period covariates, the
same per-unit values) beside it (floats by repr).
"""
import csv
import json
import os
import sys

import numpy as np
import statsmodels.api as sm
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ALPHA = 0.1
SCALE = 1e6
ARMS = ["control", "short", "guided"]
# (metric, kind, methods); methods as the spec lists them.
STD = ["cuped", "poststratify[persona]", "regression[pre_period+persona]"]
METRICS = [
    ("sessions", "mean", STD + ["regression[persona]"]),
    ("page_views", "mean", STD),
    ("converted", "proportion", STD),
    ("revenue_per_session", "ratio", STD),
]
# onboarding-flow-vr2 (the same units and values): regressions on several
# pre-period covariates, pre_period:<m> being metric m's c column.
METRICS_VR2 = [
    ("sessions", "mean", ["regression[pre_period+pre_period:page_views+persona]", "regression[pre_period:page_views]"]),
    ("page_views", "mean", ["regression[pre_period+pre_period:sessions+pre_period:converted]"]),
    ("converted", "proportion", ["regression[pre_period:sessions+pre_period:page_views]"]),
    ("revenue_per_session", "ratio", ["regression[pre_period+pre_period:sessions]"]),
]
OUTPUTS = [(METRICS, "vr_reference.json"), (METRICS_VR2, "vr2_reference.json")]


def load():
    with open(os.path.join(HERE, "vr_units.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    arm = np.array([r["variant"] for r in rows])
    cohort = np.array([r["cohort"] for r in rows])
    cols = {k: np.array([int(r[k]) for r in rows], dtype=float) / SCALE for k in rows[0] if k.endswith(("_x", "_c"))}
    return arm, cohort, cols


def welch(v, arm, t, c, var_t=None, var_c=None):
    """Welch comparison of two arms: difference, SE, df."""
    vt = np.var(v[arm == t], ddof=1) if var_t is None else var_t
    vc = np.var(v[arm == c], ddof=1) if var_c is None else var_c
    nt, nc = (arm == t).sum(), (arm == c).sum()
    se2 = vt / nt + vc / nc
    df = se2 ** 2 / ((vt / nt) ** 2 / (nt - 1) + (vc / nc) ** 2 / (nc - 1))
    return se2, df


def interval(est, se, df):
    q = stats.t.ppf(1 - ALPHA / 2, df)
    p = 2 * stats.t.sf(abs(est / se), df)
    return est - q * se, est + q * se, p


def cuped(x, y, c, arm, t, kind):
    n = len(x)
    if kind == "ratio":
        r_all, ybar = x.sum() / y.sum(), y.mean()
        v = (x - r_all * y) / ybar
    else:
        v = x
    dummies = np.column_stack([(arm == a).astype(float) for a in ARMS])
    fit = sm.OLS(v, np.column_stack([dummies, c])).fit()
    theta = fit.params[-1]
    cstar = c.mean()

    def arm_est(a):
        m = arm == a
        if kind == "ratio":
            ra = x[m].mean() / y[m].mean()
            lin = (x[m] - ra * y[m]) / y[m].mean()
            return ra, ra - theta * (c[m].mean() - cstar), np.var(lin - theta * c[m], ddof=1), np.var(lin, ddof=1)
        return x[m].mean(), x[m].mean() - theta * (c[m].mean() - cstar), np.var(x[m] - theta * c[m], ddof=1), np.var(x[m], ddof=1)

    mc, ac, sc, uc = arm_est("control")
    mt, at, st, ut = arm_est(t)
    se2, df = welch(None, arm, t, "control", st, sc)
    use2, _ = welch(None, arm, t, "control", ut, uc)
    est = at - ac
    lo, hi, p = interval(est, np.sqrt(se2), df)
    return dict(Unadjusted=mt - mc, UnadjustedSE=np.sqrt(use2), Estimate=est, SE=np.sqrt(se2), CILow=lo, CIHigh=hi, DF=df, PValue=p,
                VarianceReduced=1 - se2 / use2)


def linearised(x, y, kind):
    if kind != "ratio":
        return x
    r_all, ybar = x.sum() / y.sum(), y.mean()
    return r_all + (x - r_all * y) / ybar


def poststratify(v, cohort, arm, t):
    keep = (arm == "control") | (arm == t)
    v, cohort, arm = v[keep], cohort[keep], arm[keep]
    n = len(v)
    strata = sorted(set(cohort))
    T = (arm == t).astype(float)
    w, tau, vcond, dfden = [], [], 0.0, 0.0
    for s in strata:
        m = cohort == s
        mt, mc = m & (T == 1), m & (T == 0)
        assert mt.sum() >= 2 and mc.sum() >= 2, "a thin stratum: the fixture needs no pooling"
        wk = m.sum() / n
        w.append(wk)
        tau.append(v[mt].mean() - v[mc].mean())
        for mm in (mt, mc):
            term = wk * wk * np.var(v[mm], ddof=1) / mm.sum()
            vcond += term
            dfden += term * term / (mm.sum() - 1)
    w, tau = np.array(w), np.array(tau)
    est = (w * tau).sum()
    # statsmodels: the HC2 variance of T in the interacted regression.
    D = np.column_stack([(cohort == s).astype(float) for s in strata[1:]])
    Dc = D - D.mean(axis=0)
    X = np.column_stack([np.ones(n), T, Dc, T[:, None] * Dc])
    fit = sm.OLS(v, X).fit(cov_type="HC2")
    assert abs(fit.params[1] - est) <= 1e-9 * max(1, abs(est)), (fit.params[1], est)
    assert abs(fit.cov_params()[1, 1] - vcond) <= 1e-8 * vcond, (fit.cov_params()[1, 1], vcond)
    vhet = (w * (tau - est) ** 2).sum() / (n - 1)
    se = np.sqrt(vcond + vhet)
    df = min(vcond ** 2 / dfden, 1e12)
    lo, hi, p = interval(est, se, df)
    use2, _ = welch(v, arm, t, "control")
    unadj = v[arm == t].mean() - v[arm == "control"].mean()
    return dict(Unadjusted=unadj, UnadjustedSE=np.sqrt(use2), Estimate=est, SE=se, CILow=lo, CIHigh=hi, DF=df, PValue=p,
                VarianceReduced=1 - se ** 2 / use2)


def regression(v, X, arm, t):
    Xbar = X.mean(axis=0)
    k = X.shape[1]
    fits = {}
    for a in ARMS:
        m = arm == a
        fits[a] = sm.OLS(v[m], np.column_stack([np.ones(m.sum()), X[m] - Xbar])).fit()
    fc, ft = fits["control"], fits[t]
    est = ft.params[0] - fc.params[0]
    keep = (arm == "control") | (arm == t)
    T = (arm[keep] == t).astype(float)
    Xc = X[keep] - Xbar
    inter = sm.OLS(v[keep], np.column_stack([np.ones(keep.sum()), T, Xc, T[:, None] * Xc])).fit(cov_type="HC2")
    assert abs(inter.params[1] - est) <= 1e-9 * max(1, abs(est)), (inter.params[1], est)
    vc, vt = fc.bse[0] ** 2, ft.bse[0] ** 2
    db = ft.params[1:] - fc.params[1:]
    SX = np.atleast_2d(np.cov(X, rowvar=False))
    vhet = max(float(db @ SX @ db), 0.0) / len(v)
    se = np.sqrt(vc + vt + vhet)
    nc, nt = (arm == "control").sum(), (arm == t).sum()
    df = min((vc + vt) ** 2 / (vc ** 2 / (nc - k - 1) + vt ** 2 / (nt - k - 1)), 1e12)
    lo, hi, p = interval(est, se, df)
    use2, _ = welch(v, arm, t, "control")
    unadj = v[arm == t].mean() - v[arm == "control"].mean()
    print(f"    HC2/classical SE of the interacted regression: {inter.bse[1] / np.sqrt(vc + vt):.6f}", file=sys.stderr)
    return dict(Unadjusted=unadj, UnadjustedSE=np.sqrt(use2), Estimate=est, SE=se, CILow=lo, CIHigh=hi, DF=df, PValue=p,
                VarianceReduced=1 - se ** 2 / use2)


def main():
    for metrics, name in OUTPUTS:
        write(metrics, name)


def write(metrics, name):
    arm, cohort, cols = load()
    leaves = sorted(set(cohort))
    persona = np.column_stack([(cohort == s).astype(float) for s in leaves[1:]])
    out = []
    for metric, kind, methods in metrics:
        x, c = cols[metric + "_x"], cols[metric + "_c"]
        y = cols["sessions_x"]
        v = linearised(x, y, kind)
        for t in ARMS[1:]:
            for method in methods:
                print(f"{metric} {t} {method}", file=sys.stderr)
                if method == "cuped":
                    r = cuped(x, y, c, arm, t, kind)
                elif method == "poststratify[persona]":
                    r = poststratify(v, cohort, arm, t)
                else:
                    covs = method[len("regression["):-1].split("+")
                    parts = []
                    for cv in covs:
                        if cv == "pre_period":
                            parts.append(c[:, None])
                        elif cv.startswith("pre_period:"):
                            parts.append(cols[cv[len("pre_period:"):] + "_c"][:, None])
                        else:
                            assert cv == "persona", cv
                            parts.append(persona)
                    r = regression(v, np.column_stack(parts), arm, t)
                row = dict(Metric=metric, Variant=t, Method=method)
                row.update({k: float(val) for k, val in r.items()})
                out.append(row)
    with open(os.path.join(HERE, name), "w") as f:
        json.dump({"source": "golden/testdata/vr_reference.py (statsmodels %s)" % sm.__version__, "alpha": ALPHA, "rows": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

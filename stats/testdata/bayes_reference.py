#!/usr/bin/python3
"""Reference values for stats.Bayes, stats.EffectPosterior and
stats.ExpectedLoss: a SciPy re-implementation of GrowthBook's Bayesian
engine, written from its formulas.

It reproduces gbstats 0.8.0 (github.com/growthbook/growthbook at commit
8f1db4456915a8e7b7faf23d5632ca7219d2f469, packages/stats/gbstats):

  * bayesian/tests.py EffectBayesianABTest.compute_result: the conjugate
    normal update with a GaussianPrior(mean, variance, proper), chance to
    win norm.sf(0, mean, sd) (1 - that when inverse), the credible interval
    norm.ppf([alpha/2, 1 - alpha/2], mean, sd), and get_risk, which is
    P(δ > 0)·E[δ | δ > 0] and -P(δ < 0)·E[δ | δ < 0] from SciPy's truncated
    normal (gbstats' truncated_normal_mean, with its |μ/σ| > 37 limit and
    its Mills-ratio branch), swapped for inverse metrics;
  * models/tests.py EffectMoments / utils.py frequentist_diff and
    variance_of_ratios: relative effect (m_t - m_c)/|m_c| with variance
    v_t/m_c² + m_t²·v_c/m_c⁴;
  * the prior's rescaling between the relative and the absolute scale by
    |m_c| (see stats/bayes.go for the two places where Verity differs);

and gbstats' earlier log-normal relative model (GaussianBayesianABTest and
bayesian/dists.py Norm.moments(log=True) at commit 07561c76a8), whose risk
here is the relative expected loss, integrated numerically with
scipy.integrate.quad (the Go code uses the log-normal partial expectation
in closed form).

Under CUPED the relative effect here divides by the CUPED-adjusted control
estimate, Verity's documented convention (stats/bayes.go); gbstats divides
by the unadjusted control mean. Without CUPED the two coincide.

Arm estimates and their variances are computed from unit-level NumPy
arrays: ratio metrics by per-unit linearisation, CUPED by the within-arm
OLS slope and per-unit adjusted values, not from the moment formulas the
Go code uses; the Go test receives only the moments.

Run from the repository root with Debian's Python (SciPy 1.10, NumPy 1.24):

    /usr/bin/python3 stats/testdata/bayes_reference.py

It rewrites bayes_reference.json beside it, deterministically (seeded
numpy.random.default_rng draws, floats written with repr).
"""

import math
import sys

import numpy as np
import scipy
from scipy import integrate
from scipy.stats import norm, truncnorm

GBSTATS = "gbstats 0.8.0 (growthbook/growthbook 8f1db4456915a8e7b7faf23d5632ca7219d2f469); log-normal model of 07561c76a8"


# f and moments are the ones reference.py uses (same folder).
from reference import f, moments, write_reference  # noqa: E402


# --- gbstats, from its formulas -------------------------------------------

def truncated_normal_mean(mu, sigma, a, b):
    """gbstats utils.truncated_normal_mean."""
    alpha, beta = (a - mu) / sigma, (b - mu) / sigma
    if a == -np.inf and beta <= -1e3:
        return float(b + sigma / beta)
    if b == np.inf and alpha >= 1e3:
        return float(a + sigma / alpha)
    mn, _, _, _ = truncnorm.stats(alpha, beta, loc=mu, scale=sigma, moments="mvsk")
    return float(mn)


def get_risk(mu, sigma):
    """gbstats EffectBayesianABTest.get_risk: [risk of control, risk of treatment]."""
    if sigma > 0 and abs(mu / sigma) > 37:
        return [float(max(mu, 0.0)), float(max(-mu, 0.0))]
    p_ctrl_better = norm.cdf(0.0, loc=mu, scale=sigma)
    mn_neg = truncated_normal_mean(mu, sigma, -np.inf, 0.0)
    mn_pos = truncated_normal_mean(mu, sigma, 0.0, np.inf)
    return [float((1.0 - p_ctrl_better) * mn_pos), -float(p_ctrl_better * mn_neg)]


def effect_posterior(est, se, prior, alpha, inverse):
    """gbstats EffectBayesianABTest.compute_result on effect moments."""
    data_var = se ** 2
    if prior["proper"]:
        post_prec = 1 / data_var + 1 / prior["variance"]
        mean = (est / data_var + prior["mean"] / prior["variance"]) / post_prec
    else:
        post_prec = 1 / data_var
        mean = est
    sd = math.sqrt(1 / post_prec)
    ctw = norm.sf(0, mean, sd)
    if inverse:
        ctw = 1 - ctw
    ci = norm.ppf([alpha / 2, 1 - alpha / 2], mean, sd)
    risk = get_risk(mean, sd)
    if inverse:
        risk = [risk[1], risk[0]]
    return {"Mean": f(mean), "SD": f(sd), "Expected": f(mean), "Low": f(ci[0]), "High": f(ci[1]),
            "ChanceToWin": f(ctw), "RiskControl": f(risk[0]), "RiskTreatment": f(risk[1])}


def lognormal_posterior(mc, vc, mt, vt, alpha, inverse, epsilon=1e-4):
    """gbstats' earlier GaussianBayesianABTest, relative: Norm.moments(log=True)."""
    if mc <= 0 or mt <= 0 or norm.cdf(0, mc, math.sqrt(vc)) > epsilon or norm.cdf(0, mt, math.sqrt(vt)) > epsilon:
        return None
    mean_a, var_a = math.log(mc), vc / mc ** 2
    mean_b, var_b = math.log(mt), vt / mt ** 2
    mean = mean_b - mean_a
    sd = math.sqrt(var_a + var_b)
    ci = norm.ppf([alpha / 2, 1 - alpha / 2], mean, sd)
    ctw = norm.sf(0, mean, sd)
    if inverse:
        ctw = 1 - ctw
    # Relative expected losses by quadrature of the log-normal gain.
    pdf = lambda x: norm.pdf(x, mean, sd)
    lo, hi = mean - 40 * sd, mean + 40 * sd
    up = integrate.quad(lambda x: math.expm1(x) * pdf(x), 0, max(hi, 0), epsabs=0, epsrel=1e-13, limit=200)[0] if hi > 0 else 0.0
    down = integrate.quad(lambda x: -math.expm1(x) * pdf(x), min(lo, 0), 0, epsabs=0, epsrel=1e-13, limit=200)[0] if lo < 0 else 0.0
    risk = [up, down] if not inverse else [down, up]
    return {"Mean": f(mean), "SD": f(sd), "Expected": f(math.expm1(mean)),
            "Low": f(math.expm1(ci[0])), "High": f(math.expm1(ci[1])),
            "ChanceToWin": f(ctw), "RiskControl": f(risk[0]), "RiskTreatment": f(risk[1])}


# --- arm estimates from unit-level data -----------------------------------

def plain_estimate(x):
    return np.mean(x), np.var(x, ddof=1) / len(x)


def ratio_estimate(x, y):
    r = np.sum(x) / np.sum(y)
    l = (x - r * y) / np.mean(y)
    return r, np.var(l, ddof=1) / len(x)


def pooled_theta(groups):
    sxy = sum(np.dot(l - l.mean(), c - c.mean()) for l, c in groups)
    sxx = sum(np.dot(c - c.mean(), c - c.mean()) for l, c in groups)
    return sxy / sxx


def bayes_case(name, kind, arms_c, arms_t, est_c, est_t, prior, alpha=0.05, direction="increase",
               model="delta", cuped=None):
    mc, vc = est_c
    mt, vt = est_t
    inverse = direction == "decrease"
    want = {"AbsStatus": "ok", "RelStatus": "ok"}
    d, se = mt - mc, math.sqrt(vc + vt)
    abs_prior = dict(prior)
    if prior["proper"] and prior["scale"] == "relative":
        if mc == 0:
            abs_prior = None
        else:
            abs_prior = {"proper": True, "mean": prior["mean"] * abs(mc), "variance": prior["variance"] * mc ** 2}
    if abs_prior is None:
        want["AbsStatus"] = "prior cannot be rescaled"
    else:
        want["Absolute"] = effect_posterior(d, se, abs_prior, alpha, inverse)
    if mc == 0:
        want["RelStatus"] = "control mean is zero"
    elif model == "lognormal":
        p = lognormal_posterior(mc, vc, mt, vt, alpha, inverse)
        if p is None:
            want["RelStatus"] = "log-normal approximation inexact"
        else:
            want["Relative"] = p
    else:
        rel = (mt - mc) / abs(mc)                       # frequentist_diff
        rel_var = vt / mc ** 2 + vc * mt ** 2 / mc ** 4  # variance_of_ratios(mt, vt, mc, vc, 0)
        rel_prior = dict(prior)
        if prior["proper"] and prior["scale"] == "absolute":
            rel_prior = {"proper": True, "mean": prior["mean"] / abs(mc), "variance": prior["variance"] / mc ** 2}
        want["Relative"] = effect_posterior(rel, math.sqrt(rel_var), rel_prior, alpha, inverse)
    return {"name": name, "kind": kind, "alpha": alpha, "direction": direction, "model": model,
            "prior": prior, "cuped": cuped, "control": arms_c, "treatment": arms_t, "want": want}


FLAT = {"proper": False, "mean": 0.0, "variance": 1.0, "scale": "relative"}


def bayes_cases():
    rng = np.random.default_rng(2019)
    out = []
    # Proportions: conversion 10% vs 11%.
    xc = (rng.random(5000) < 0.10).astype(float)
    xt = (rng.random(5200) < 0.11).astype(float)
    for name, prior, direction in [
        ("proportion flat", FLAT, "increase"),
        ("proportion relative prior", {"proper": True, "mean": 0.0, "variance": 0.09, "scale": "relative"}, "increase"),
        ("proportion absolute prior", {"proper": True, "mean": 0.002, "variance": 1e-4, "scale": "absolute"}, "increase"),
        ("proportion decrease desired", FLAT, "decrease"),
        ("proportion tight relative prior", {"proper": True, "mean": -0.05, "variance": 1e-4, "scale": "relative"}, "increase"),
    ]:
        out.append(bayes_case(name, "proportion", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt), prior,
                              direction=direction))
    out.append(bayes_case("proportion lognormal", "proportion", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), FLAT, model="lognormal"))
    out.append(bayes_case("proportion lognormal decrease alpha 0.1", "proportion", moments(xc), moments(xt),
                          plain_estimate(xc), plain_estimate(xt), FLAT, alpha=0.1, direction="decrease", model="lognormal"))
    # Means: revenue, skewed.
    xc = rng.gamma(0.5, 40.0, 3000)
    xt = rng.gamma(0.5, 42.0, 2900)
    out.append(bayes_case("mean flat alpha 0.1", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt),
                          FLAT, alpha=0.1))
    out.append(bayes_case("mean relative prior", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt),
                          {"proper": True, "mean": 0.01, "variance": 0.0025, "scale": "relative"}))
    out.append(bayes_case("mean lognormal", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt),
                          FLAT, model="lognormal"))
    # Negative control mean (net balance change), treatment more negative: harmful.
    xc = rng.normal(-5.0, 3.0, 800)
    xt = rng.normal(-5.4, 3.5, 820)
    out.append(bayes_case("negative control mean", "mean", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), FLAT))
    out.append(bayes_case("negative control mean absolute prior", "mean", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), {"proper": True, "mean": 0.0, "variance": 0.25, "scale": "absolute"},
                          direction="decrease"))
    out.append(bayes_case("negative control mean lognormal refused", "mean", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), FLAT, model="lognormal"))
    # Tiny arms.
    xc = np.array([1.0, 3.0])
    xt = np.array([2.0, 5.0, 4.0])
    out.append(bayes_case("tiny n", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt), FLAT))
    out.append(bayes_case("tiny n lognormal refused", "mean", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), FLAT, model="lognormal"))
    # Zero control mean: absolute only; a relative prior cannot be moved.
    xc = np.array([-1.0, 1.0, -2.0, 2.0])
    xt = np.array([0.5, 1.5, -0.5, 2.5, 1.0])
    out.append(bayes_case("zero control mean", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt), FLAT))
    out.append(bayes_case("zero control mean relative prior", "mean", moments(xc), moments(xt), plain_estimate(xc),
                          plain_estimate(xt), {"proper": True, "mean": 0.0, "variance": 0.09, "scale": "relative"}))
    # Huge effect: |μ/σ| beyond gbstats' 37 cut-off.
    xc = rng.normal(10.0, 1.0, 5000)
    xt = rng.normal(12.0, 1.0, 5000)
    out.append(bayes_case("huge effect", "mean", moments(xc), moments(xt), plain_estimate(xc), plain_estimate(xt), FLAT))
    # Ratio metric (clicks per session), by per-unit linearisation.
    yc = rng.poisson(3.0, 2500) + 1.0
    xc = rng.binomial(yc.astype(int), 0.2).astype(float)
    yt = rng.poisson(3.0, 2600) + 1.0
    xt = rng.binomial(yt.astype(int), 0.215).astype(float)
    out.append(bayes_case("ratio flat", "ratio", moments(xc, yc), moments(xt, yt), ratio_estimate(xc, yc),
                          ratio_estimate(xt, yt), FLAT))
    out.append(bayes_case("ratio relative prior", "ratio", moments(xc, yc), moments(xt, yt),
                          ratio_estimate(xc, yc), ratio_estimate(xt, yt),
                          {"proper": True, "mean": 0.0, "variance": 0.01, "scale": "relative"}))
    # CUPED mean: per-unit adjusted values with the pooled within-arm slope.
    cc = rng.gamma(2.0, 5.0, 2000)
    xc = 0.8 * cc + rng.normal(2.0, 4.0, 2000)
    ct = rng.gamma(2.0, 5.0, 2100)
    xt = 0.8 * ct + rng.normal(2.4, 4.0, 2100)
    theta = pooled_theta([(xc, cc), (xt, ct)])
    cstar = (np.sum(cc) + np.sum(ct)) / (len(cc) + len(ct))
    ac, at = xc - theta * (cc - cstar), xt - theta * (ct - cstar)
    cup = {"Theta": f(theta), "CovariateMean": f(cstar)}
    out.append(bayes_case("cuped mean flat", "mean", moments(xc, c=cc), moments(xt, c=ct), plain_estimate(ac),
                          plain_estimate(at), FLAT, cuped=cup))
    out.append(bayes_case("cuped mean absolute prior", "mean", moments(xc, c=cc), moments(xt, c=ct), plain_estimate(ac),
                          plain_estimate(at), {"proper": True, "mean": 0.1, "variance": 0.04, "scale": "absolute"},
                          cuped=cup))
    return out


def effect_cases():
    """EffectPosterior directly on effect moments, including extreme |μ/σ|."""
    out = []
    for est, se, prior, alpha, direction in [
        (0.0123, 0.005, FLAT, 0.05, "increase"),
        (-0.0123, 0.005, FLAT, 0.05, "increase"),
        (0.0123, 0.005, FLAT, 0.05, "decrease"),
        (0.3, 0.1, {"proper": True, "mean": 0.0, "variance": 0.09}, 0.05, "increase"),
        (0.3, 0.1, {"proper": True, "mean": -0.2, "variance": 0.0001}, 0.2, "increase"),
        (1e-9, 1e-10, FLAT, 0.01, "increase"),
        (-4.0e6, 1.0e6, FLAT, 0.05, "increase"),
        (8.0, 1.0, FLAT, 0.05, "increase"),
        (-8.5, 1.0, FLAT, 0.05, "increase"),
        (20.0, 1.0, FLAT, 0.05, "increase"),
        (-30.0, 1.0, FLAT, 0.05, "increase"),
        (36.9, 1.0, FLAT, 0.05, "increase"),
        (-40.0, 1.0, FLAT, 0.05, "decrease"),
        (1e3, 1.0, FLAT, 0.05, "increase"),
        (0.0, 2.5, FLAT, 0.05, "increase"),
    ]:
        p = dict(prior)
        out.append({"est": est, "se": se, "prior": p, "alpha": alpha, "direction": direction,
                    "want": effect_posterior(est, se, p, alpha, direction == "decrease")})
    return out


def main():
    ref = {
        "generator": {"script": "stats/testdata/bayes_reference.py", "reproduces": GBSTATS,
                      "python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__},
        "bayes": bayes_cases(),
        "effect": effect_cases(),
    }
    write_reference("bayes_reference.json", ref)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference values for stats.PlanSampleSize and
stats.ConfidenceSequenceHorizon.

Fixed horizon, equal variances: statsmodels (0.13)
NormalIndPower().solve_power(effect_size = δ/(σ·√(1−ρ²)), nobs1 = None,
alpha, power, ratio = n_t/n_c = w/(1−w), alternative = 'two-sided' |
'larger'), which returns n_c; n_t = ratio·n_c. Unequal variances (e.g.
proportions p_c(1−p_c) ≠ p_t(1−p_t)): the power equation

    Φ(δ/SE − c) + Φ(−δ/SE − c) = power,  SE² = (1−ρ²)(σ_c²/n_c + σ_t²/n_t),
    c = z_{1−α/2}  (one-sided: Φ(δ/SE − z_{1−α}) = power)

solved for the total by brentq.

Always valid: the same equation with c = h(t), the half-width factor of the
normal-mixture confidence sequence that stats.Sequential implements
(Waudby-Smith et al. 2021, "Time-uniform central limit theory and
asymptotic confidence sequences"; Howard et al. 2021),

    h(t) = √(2(tρ²+1)/(tρ²) · ln(√(tρ²+1)/α)),  ρ² = (−2 ln α + ln(−2 ln α + 1))/N*,

with N* given, or N* = t (tuned at the horizon: t appears on both sides),
solved by brentq on t; and the horizon where the half-width √(K/t)·h(t)
equals the MDE. The Go code uses closed forms where N* = t and bisection
otherwise.

Run from the repository root with Debian's Python:

    /usr/bin/python3 stats/testdata/plan_reference.py

It rewrites plan_reference.json beside it, deterministically.
"""

import math
import sys
import warnings

import numpy as np
import scipy
import statsmodels
from scipy import optimize
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower


def f(x):
    return float(x)


def h_factor(t, alpha, nstar):
    l = -2 * math.log(alpha)
    rho2 = (l + math.log(l + 1)) / nstar
    tr = t * rho2
    return math.sqrt(2 * (tr + 1) / tr * math.log(math.sqrt(tr + 1) / alpha))


def root(g):
    """brentq on ln t over a bracket found by doubling."""
    lo, hi = 0.0, 1.0
    while g(math.exp(hi)) < 0:
        hi += 1.0
    while g(math.exp(lo)) > 0:
        lo -= 1.0
    x = optimize.brentq(lambda u: g(math.exp(u)), lo, hi, xtol=1e-14, rtol=8.9e-16, maxiter=500)
    return math.exp(x)


def plan(inp):
    alpha = inp.get("Alpha") or 0.05
    power = inp.get("Power") or 0.8
    w = inp.get("TreatmentShare") or 0.5
    vc = inp["BaselineVar"]
    vt = inp.get("TreatmentVar") or vc
    rho = inp.get("CUPEDCorrelation", 0.0)
    delta = inp["MDE"] * (abs(inp["BaselineMean"]) if inp.get("Relative") else 1.0)
    alt = inp.get("Alternative", "two-sided")
    design = inp.get("Design", "fixed")
    nstar = inp.get("NStar", 0.0)
    out = {"MDE": f(delta)}
    k = (1 - rho ** 2) * (vc / (1 - w) + vt / w)
    if design == "fixed":
        c = norm.ppf(1 - alpha / 2) if alt == "two-sided" else norm.ppf(1 - alpha)
        crit = lambda t: c
    elif nstar == 0:
        crit = lambda t: h_factor(t, alpha, t)
    else:
        crit = lambda t: h_factor(t, alpha, nstar)

    def g(t):
        a = delta / math.sqrt(k / t)
        if alt == "two-sided":
            return norm.cdf(a - crit(t)) + norm.cdf(-a - crit(t)) - power
        return norm.cdf(a - crit(t)) - power

    total = root(g)
    out["Method"] = {"fixed": "brentq on the power equation",
                     "sequential": "brentq, confidence sequence " + ("with given N*" if nstar else "tuned at the horizon")}[design]
    if design == "fixed" and vc == vt:
        # statsmodels for equal variances, cross-checked against the root
        # above; its solver does not converge below about one unit per arm.
        sm_alt = "two-sided" if alt == "two-sided" else "larger"
        es = delta / math.sqrt(vc * (1 - rho ** 2))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                nc = NormalIndPower().solve_power(effect_size=es, nobs1=None, alpha=alpha, power=power,
                                                  ratio=w / (1 - w), alternative=sm_alt)
                sm_total = nc / (1 - w)
                assert abs(sm_total - total) <= 1e-8 * total, (sm_total, total)
                total = sm_total
                out["Method"] = "statsmodels NormalIndPower.solve_power"
            except (Warning, RuntimeWarning):
                out["Method"] += " (statsmodels NormalIndPower did not converge)"
    out["Critical"] = f(crit(total))
    if design == "sequential":
        out["NStar"] = f(nstar if nstar else total)
    out["TotalN"] = f(total)
    out["ControlN"] = f((1 - w) * total)
    out["TreatmentN"] = f(w * total)
    cu, tu = math.ceil((1 - w) * total), math.ceil(w * total)
    out["ControlUnits"], out["TreatmentUnits"], out["TotalUnits"] = f(cu), f(tu), f(cu + tu)
    d = inp.get("DailyUnits", 0.0)
    out["Days"] = f(math.ceil(max(cu / ((1 - w) * d), tu / (w * d)))) if d else 0.0
    return out


def plan_cases():
    cases = [
        ("mean two-sided", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.5, "DailyUnits": 1000.0}),
        ("mean relative MDE 2% one-sided", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.02, "Relative": True,
                                            "Alternative": "greater", "DailyUnits": 700.0}),
        ("mean one-sided less", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.3, "Alternative": "less"}),
        ("unbalanced 20% treatment alpha 0.01 power 0.9", {"BaselineMean": 3.0, "BaselineVar": 4.0, "MDE": 0.1,
                                                          "Alpha": 0.01, "Power": 0.9, "TreatmentShare": 0.2,
                                                          "DailyUnits": 5000.0}),
        ("cuped rho 0.6", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.5, "CUPEDCorrelation": 0.6,
                           "DailyUnits": 1000.0}),
        ("proportion unequal variances", {"BaselineMean": 0.1, "BaselineVar": 0.09, "TreatmentVar": 0.11 * 0.89,
                                          "MDE": 0.01, "DailyUnits": 2500.0}),
        ("proportion relative 5% one-sided cuped", {"BaselineMean": 0.1, "BaselineVar": 0.09, "TreatmentVar": 0.105 * 0.895,
                                                    "MDE": 0.05, "Relative": True, "Alternative": "greater",
                                                    "CUPEDCorrelation": 0.3, "TreatmentShare": 0.6, "DailyUnits": 800.0}),
        ("negative baseline relative", {"BaselineMean": -4.0, "BaselineVar": 9.0, "MDE": 0.05, "Relative": True,
                                        "DailyUnits": 300.0}),
        ("huge MDE tiny n", {"BaselineMean": 1.0, "BaselineVar": 1.0, "MDE": 5.0, "DailyUnits": 1.0}),
        ("tiny MDE huge n", {"BaselineMean": 100.0, "BaselineVar": 400.0, "MDE": 1e-4, "Relative": True,
                             "DailyUnits": 1e6}),
        ("alpha 0.2 power 0.5", {"BaselineMean": 1.0, "BaselineVar": 1.0, "MDE": 0.1, "Alpha": 0.2, "Power": 0.5}),
        ("sequential tuned at horizon", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.5, "Design": "sequential",
                                         "DailyUnits": 1000.0}),
        ("sequential given N*", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.5, "Design": "sequential",
                                 "NStar": 5000.0, "DailyUnits": 1000.0}),
        ("sequential N* far too small", {"BaselineMean": 10.0, "BaselineVar": 25.0, "MDE": 0.5, "Design": "sequential",
                                         "NStar": 50.0}),
        ("sequential cuped unbalanced alpha 0.1", {"BaselineMean": 0.1, "BaselineVar": 0.09, "TreatmentVar": 0.0956,
                                                   "MDE": 0.03, "Relative": True, "Design": "sequential",
                                                   "CUPEDCorrelation": 0.5, "TreatmentShare": 0.3, "Alpha": 0.1,
                                                   "Power": 0.9, "NStar": 1e6, "DailyUnits": 20000.0}),
    ]
    return [{"name": n, "input": i, "want": plan(i)} for n, i in cases]


def horizon_cases():
    out = []
    for k, mde, alpha, nstar in [(100.0, 0.5, 0.05, 0.0), (100.0, 0.5, 0.05, 5000.0), (100.0, 0.5, 0.05, 10.0),
                                 (3.6, 0.002, 0.1, 1e7), (1e4, 30.0, 0.01, 0.0), (1e4, 30.0, 0.01, 1e3),
                                 (2.0, 1e-3, 0.5, 1e6)]:
        if nstar == 0:
            t = root(lambda t: mde - math.sqrt(k / t) * h_factor(t, alpha, t))
        else:
            t = root(lambda t: mde - math.sqrt(k / t) * h_factor(t, alpha, nstar))
        out.append({"unit_var": k, "mde": mde, "alpha": alpha, "nstar": nstar, "want": f(t)})
    return out


from reference import write_reference  # noqa: E402 (same folder)


def main():
    ref = {
        "generator": {"script": "stats/testdata/plan_reference.py", "python": sys.version.split()[0],
                      "numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "plan": plan_cases(),
        "horizon": horizon_cases(),
    }
    write_reference("plan_reference.json", ref)


if __name__ == "__main__":
    main()

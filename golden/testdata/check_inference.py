#!/usr/bin/env python3
"""Independent check of the Bayesian and hypothesis-test goldens.

Recomputes, from the per-arm numbers a golden results.csv publishes
(n, mean, sd of each arm), the numbers Verity's extended columns report,
with formulas written here from their sources and mpmath for the
distributions (no Verity code, no SciPy needed):

* checkout-button-bayes: GrowthBook's gbstats 0.8.0 EffectBayesianABTest
  (flat prior: posterior N(d, s^2); normal prior N(mu0, sigma0^2):
  precision-weighted), relative effect d = (m_t - m_c)/|m_c| with the
  delta-method variance v_t/m_c^2 + m_t^2 v_c/m_c^4; chance to win
  Phi(mean/sd); risks sd*(phi(z) -/+ z*Phi(-/+z)); guardrail
  P(harm beyond margin) = Phi((m - mean)/sd) for a harmful decrease.
* checkout-button-tests: Welch t with Satterthwaite df; the relative
  superiority/non-inferiority test is Fieller's, t = (m_t - k m_c) /
  sqrt(v_t + k^2 v_c), k = 1 + sign(m_c)*l0, one-sided p = P(T_df >= t),
  as statsmodels' ttest_ind(usevar='unequal', value=..., alternative='larger')
  for the absolute effect.

Run from the repository root: python3 golden/testdata/check_inference.py
It prints the largest relative difference per number and exits 1 when
one exceeds 1e-9.
"""
import csv
import sys

import mpmath as mp

mp.mp.dps = 40
TOL = 1e-9


def Phi(x):
    return mp.ncdf(x)


def phi(x):
    return mp.npdf(x)


def t_sf(t, df):
    # P(T_df >= t) through the regularized incomplete beta.
    x = df / (df + t * t)
    tail = mp.betainc(df / 2, mp.mpf(1) / 2, 0, x, regularized=True) / 2
    return tail if t >= 0 else 1 - tail


def arms(r):
    nc, nt = mp.mpf(r["n_control"]), mp.mpf(r["n_variant"])
    mc, mt = mp.mpf(r["mean_control"]), mp.mpf(r["mean_variant"])
    sc, st = mp.mpf(r["sd_control"]), mp.mpf(r["sd_variant"])
    return nc, nt, mc, mt, sc * sc / nc, st * st / nt


worst = 0


def check(name, got, want):
    global worst
    if got == "":
        print(f"  {name}: empty, want {mp.nstr(want, 17)}")
        worst = max(worst, 1)
        return
    g = mp.mpf(got)
    rel = abs(g - want) / max(abs(want), mp.mpf("1e-300"))
    worst = max(worst, float(rel))
    print(f"  {name}: {got} vs {mp.nstr(want, 17)}  rel {float(rel):.1e}")


def bayes():
    rows = list(csv.DictReader(open("golden/checkout-button-bayes/results.csv")))
    for r in rows:
        if r["cohort"] != "(all)":
            continue
        print(f"checkout-button-bayes {r['metric']}")
        nc, nt, mc, mt, vc, vt = arms(r)
        d, s2 = (mt - mc) / abs(mc), vt / mc**2 + mt**2 * vc / mc**4
        da, sa2 = mt - mc, vc + vt
        if r["metric"] == "revenue":  # normal(0, 0.3^2) on the relative effect
            p2 = mp.mpf("0.3") ** 2
            v = 1 / (1 / s2 + 1 / p2)
            m = v * d / s2
            pa2 = p2 * mc * mc  # moved to the absolute scale by |m_c|
            va = 1 / (1 / sa2 + 1 / pa2)
            ma = va * da / sa2
        else:
            v, m, va, ma = s2, d, sa2, da
        sd = mp.sqrt(v)
        q = mp.sqrt(2) * mp.erfinv(mp.mpf("0.95"))
        # Desired direction: increase (goals); away from harm (guardrail
        # page_views, harmful decrease): also increase.
        z = m / sd
        check("post_rel_mean", r["post_rel_mean"], m)
        check("post_rel_sd", r["post_rel_sd"], sd)
        check("cred_rel_low", r["cred_rel_low"], m - q * sd)
        check("cred_rel_high", r["cred_rel_high"], m + q * sd)
        check("post_abs_mean", r["post_abs_mean"], ma)
        check("post_abs_sd", r["post_abs_sd"], mp.sqrt(va))
        check("chance_to_beat_control", r["chance_to_beat_control"], Phi(z))
        check("risk_treatment", r["risk_treatment"], sd * (phi(z) - z * Phi(-z)))
        check("risk_control", r["risk_control"], sd * (phi(z) + z * Phi(z)))
        if r["metric"] == "page_views":
            print(f"  P(harm beyond -0.1) = {mp.nstr(Phi((-mp.mpf('0.1') - m) / sd), 17)} (decisions.json)")


def tests():
    rows = list(csv.DictReader(open("golden/checkout-button-tests/results.csv")))
    for r in rows:
        if r["cohort"] != "(all)":
            continue
        print(f"checkout-button-tests {r['metric']}")
        nc, nt, mc, mt, vc, vt = arms(r)
        df = (vc + vt) ** 2 / (vc**2 / (nc - 1) + vt**2 / (nt - 1))
        null = mp.mpf(r["null_value"])
        if r["test_scale"] == "relative":
            k = 1 + mp.sign(mc) * null
            t = (mt - k * mc) / mp.sqrt(vt + k * k * vc)
        else:
            t = (mt - mc - null) / mp.sqrt(vc + vt)
        # Every test here has alternative greater.
        assert r["alternative"] == "greater", r["alternative"]
        check("df", r["df"], df)
        check("test_statistic", r["test_statistic"], t)
        check("test_p_value", r["test_p_value"], t_sf(t, df))


bayes()
tests()
print(f"largest relative difference {worst:.1e} (tolerance {TOL})")
sys.exit(0 if worst <= TOL else 1)

#!/usr/bin/python3
"""Reference values for the quantile statistics of the Go package stats:
Histogram.Quantile, PooledQuantile, CappedMoments, EstimateQuantile,
CompareQuantiles, EstimateEventQuantile, CompareEventQuantiles,
Histogram.BucketCounts, EstimateGridQuantile and CompareGridQuantiles.

What it reproduces, computed from unit-level NumPy arrays (the Go test
receives the same integer arrays, builds its histograms and must agree):

  * quantiles: NumPy's np.quantile(x, p, method="inverted_cdf") (Hyndman
    and Fan's definition 1, NumPy >= 1.22) on the fixed-point integers; the
    script checks each against the ⌈n·p⌉-th order statistic with p read as
    its decimal (fractions.Fraction(repr(p))), the Go definition, so a case
    where NumPy's floating-point n·p would pick another rank is refused
    rather than written;
  * the unit-level order-statistic variance GrowthBook documents (Deng,
    Knoblich and Lu, KDD 2018; docs/statistics/quantile.mdx and gbstats
    0.8.0's QuantileStatistic in growthbook/growthbook at commit
    8f1db4456915a8e7b7faf23d5632ca7219d2f469), with the exact n instead of
    gbstats' n* grid and without its (n−1)/n factor:
    δ = z·√(p(1−p)/n), z = norm.ppf(0.975),
    lower, upper = np.quantile(x, p ∓ δ, method="inverted_cdf"),
    Var = ((upper − lower)/(2z))²;
  * the comparison: Δ = q_t − q_c, SE = √(V_c + V_t), Δ ± norm.ppf(1−α/2)·SE,
    p = 2·norm.sf(|Δ|/SE); relative L = Δ/|q_c| with the delta-method
    SE_L² = V_t/q_c² + q_t²·V_c/q_c⁴ (gbstats' variance_of_ratios), and
    Fieller's interval by root-finding (reference.fieller_numeric);
  * the event-level (clustered) variance of Yao, Li and Lu (2024) as
    GrowthBook implements it (QuantileClusteredStatistic, same commit):
    q̂ and the band from the pooled events as above, the indicator
    I_ij = 1{Y_ij ≤ q̂} per event, and Var_c(Ī) from statsmodels' OLS of I
    on a constant with cov_type="cluster" grouped by unit (the CR1
    cluster-robust variance of a mean: its small-sample factor is
    K/(K−1)·(n−1)/(n−1)), cross-checked against gbstats' ratio-of-means
    formula on the per-unit arrays m_i, n_i with np.var/np.cov (ddof=1);
    Var = Var_iid·Var_c(Ī)/(p(1−p)/n);
  * private grid quantiles: exact bucket counts from np.searchsorted on
    the interior edges (bucket j = (e_j, e_{j+1}], the ends open), the
    noise drawn here (two-sided geometric, the discrete Laplace), negative
    noisy counts set to zero; the ogive CDF is np.interp over the edges and
    the quantile its generalised inverse inf{x : F(x) ≥ u}, found by
    bisection (not by inverting the interpolation in closed form as the Go
    code does); the noise's share of the CDF variance at q̂ is Σ g_j²·σ_j²
    with g the gradient of F(q̂) in the (clamped) counts by central
    differences; V_F = p(1−p)/T + that, and Woodruff's band
    Q(p ∓ z·√V_F) gives Var = ((upper − lower)/(2z))²;
  * percentile capping: the cap is np.quantile of the arms' arrays
    concatenated (inverted_cdf); capped sums are Python-integer sums of
    np.clip(x, lower, upper), exact; the capped arm's mean and sample
    variance are np.mean and np.var(ddof=1) of the capped values.

Fixed-point values x are integers round(value·10^d); a reported value is
float(Fraction(x, 10^d)), correctly rounded as the Go code's.

Run from the repository root with Debian's Python (NumPy 1.24, SciPy 1.10,
statsmodels 0.13):

    /usr/bin/python3 stats/testdata/quantile_reference.py

It rewrites quantile_reference.json beside it, deterministically (seeded
numpy.random.default_rng draws, floats written with repr).
"""

import math
import sys
from fractions import Fraction

import numpy as np
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import stats

# f and write_reference are the ones reference.py uses (same folder);
# fieller_numeric is its root-finding Fieller interval.
from reference import f, fieller_numeric, write_reference  # noqa: E402

Z_BAND = stats.norm.ppf(0.975)


def fixed(v, d):
    """The fixed-point integer v at scale 10^-d as the nearest float."""
    return float(Fraction(int(v), 10 ** d))


def inverted_cdf(x, u):
    """np.quantile(x, u, method="inverted_cdf") as a Python int."""
    return int(np.quantile(x, u, method="inverted_cdf"))


def decimal_rank(n, p):
    """⌈n·p⌉ with p read as its shortest decimal, the Go definition."""
    return math.ceil(n * Fraction(repr(p)))


def quantile_checked(x, p):
    """The definition-1 quantile from NumPy, refused if NumPy's rank
    differs from the decimal one (float rounding of n·p)."""
    q = inverted_cdf(x, p)
    s = np.sort(x)
    if s[decimal_rank(len(x), p) - 1] != q:
        raise SystemExit(f"n={len(x)} p={p}: NumPy's inverted_cdf picks another rank; choose another case")
    return q


def unit_estimate(x, p, d):
    """An arm's quantile and its order-statistic variance from its array."""
    n = len(x)
    delta = Z_BAND * math.sqrt(p * (1 - p) / n)
    if not (p - delta > 0 and p + delta < 1):
        return None
    q = quantile_checked(x, p)
    lo, hi = inverted_cdf(x, p - delta), inverted_cdf(x, p + delta)
    if lo == hi:
        return None
    s = np.sort(x)
    rl, ru = max(1, math.ceil(n * (p - delta))), min(n, math.ceil(n * (p + delta)))
    assert s[rl - 1] == lo and s[ru - 1] == hi
    se = float(Fraction(hi - lo, 10 ** d)) / (2 * Z_BAND)
    return {"Quantile": fixed(q, d), "Lower": fixed(lo, d), "Upper": fixed(hi, d),
            "RankLower": rl, "RankUpper": ru, "Var": f(se * se), "SE": f(se), "N": f(n),
            "BandLevel": f(delta), "CDFVar": f(p * (1 - p) / n), "DesignEffect": 1.0}


def compare(c, t, alpha):
    """Normal difference and delta-method / Fieller relative effect."""
    z = stats.norm.ppf(1 - alpha / 2)
    diff = t["Quantile"] - c["Quantile"]
    se = math.sqrt(c["Var"] + t["Var"])
    out = {"Diff": f(diff), "SE": f(se), "Statistic": f(diff / se), "PValue": f(2 * stats.norm.sf(abs(diff / se))),
           "DiffLow": f(diff - z * se), "DiffHigh": f(diff + z * se), "Critical": f(z), "HasRelative": False}
    mc, mt = c["Quantile"], t["Quantile"]
    if mc != 0:
        rel = diff / abs(mc)
        relse = math.sqrt(t["Var"] / mc ** 2 + mt ** 2 * c["Var"] / mc ** 4)
        lo, hi = fieller_numeric(mc, mt, c["Var"], t["Var"], z)
        out.update(HasRelative=True, RelDiff=f(rel), RelSE=f(relse), RelLow=f(rel - z * relse),
                   RelHigh=f(rel + z * relse), FiellerBounded=lo is not None,
                   FiellerLow=f(lo) if lo is not None else 0.0, FiellerHigh=f(hi) if hi is not None else 0.0)
    return out


def to_fixed(values, d):
    return np.rint(np.asarray(values) * 10 ** d).astype(np.int64)


def unit_cases():
    rng = np.random.default_rng(20261220)
    cases = []

    def add(name, xc, xt, p, d, alpha=0.05):
        c, t = unit_estimate(xc, p, d), unit_estimate(xt, p, d)
        want = None
        if c is not None and t is not None:
            want = compare(c, t, alpha)
            want["Control"], want["Treatment"] = c, t
        cases.append({"name": name, "decimals": d, "p": p, "alpha": alpha,
                      "control": xc.tolist(), "treatment": xt.tolist(),
                      "degenerate": want is None, "want": want})

    add("median exponential spend", to_fixed(rng.exponential(20.0, 800), 2), to_fixed(rng.exponential(22.0, 900), 2), 0.5, 2)
    add("p90 lognormal latency", to_fixed(rng.lognormal(5.0, 0.6, 1000), 3), to_fixed(rng.lognormal(4.95, 0.6, 950), 3), 0.9, 3)
    add("p99 gamma, 600 units", to_fixed(rng.gamma(2.0, 3.0, 600), 2), to_fixed(rng.gamma(2.0, 3.3, 650), 2), 0.99, 2)
    add("p25 negative values alpha 0.1", to_fixed(rng.normal(-3.0, 2.0, 500), 4), to_fixed(rng.normal(-2.6, 2.5, 520), 4), 0.25, 4, 0.1)
    add("p10 small arms", to_fixed(rng.exponential(5.0, 60), 1), to_fixed(rng.exponential(6.0, 70), 1), 0.1, 1)
    # Poisson counts: ties, but a band still wider than one value.
    add("median poisson counts", rng.poisson(40, 400).astype(np.int64), rng.poisson(43, 380).astype(np.int64), 0.5, 0)
    # A control quantile of exactly zero: no relative effect.
    xc = to_fixed(rng.normal(0.0, 10.0, 801), 2)
    xc = xc - np.sort(xc)[400]
    add("control median zero", xc, to_fixed(rng.normal(1.0, 10.0, 790), 2), 0.5, 2)
    # Degenerate: a tie wider than the band (70% zeros at the median).
    zc = to_fixed(np.where(rng.random(900) < 0.7, 0.0, rng.exponential(30.0, 900)), 2)
    zt = to_fixed(np.where(rng.random(900) < 0.7, 0.0, rng.exponential(33.0, 900)), 2)
    add("median in a tie of zeros", zc, zt, 0.5, 2)
    # Degenerate: too few units for p99 (needs more than 380).
    add("p99 too few units", to_fixed(rng.exponential(1.0, 300), 3), to_fixed(rng.exponential(1.0, 300), 3), 0.99, 3)
    return cases


def cap_cases():
    rng = np.random.default_rng(20261221)
    cases = []
    for name, d, p_lo, p_hi, xc, xt in [
        ("revenue p99 cap", 2, None, 0.99, rng.lognormal(3, 1.5, 1200), rng.lognormal(3.05, 1.5, 1100)),
        ("p1 and p99 caps, negative values", 3, 0.01, 0.99, rng.standard_t(2, 1000) * 50, rng.standard_t(2, 1000) * 55),
        ("p95 cap of counts with ties", 0, None, 0.95, rng.poisson(3, 700), rng.poisson(3.2, 720)),
    ]:
        xc, xt = to_fixed(xc, d), to_fixed(xt, d)
        pooled = np.concatenate([xc, xt])
        hi = quantile_checked(pooled, p_hi)
        lo = quantile_checked(pooled, p_lo) if p_lo is not None else None
        arms = []
        for x in (xc, xt):
            capped = np.clip(x, lo if lo is not None else np.iinfo(np.int64).min, hi)
            ints = [int(v) for v in capped.tolist()]
            vals = np.array([fixed(v, d) for v in ints])
            arms.append({"N": len(ints), "Sum": sum(ints), "SumSq": sum(v * v for v in ints),
                         "Mean": f(np.mean(vals)), "Var": f(np.var(vals, ddof=1))})
        cases.append({"name": name, "decimals": d, "lower_p": p_lo, "upper_p": p_hi,
                      "control": xc.tolist(), "treatment": xt.tolist(),
                      "lower": lo, "upper": hi, "arms": arms})
    return cases


def cluster_variance(events, units, q):
    """Var_c of the fraction of events at or below q: statsmodels' CR1
    cluster-robust variance of the mean of I, checked against gbstats'
    ratio-of-means formula on per-unit sums."""
    ind = (events <= q).astype(float)
    fit = sm.OLS(ind, np.ones((len(ind), 1))).fit(cov_type="cluster", cov_kwds={"groups": units})
    v = float(fit.bse[0] ** 2)
    k = int(units.max()) + 1
    m = np.bincount(units, weights=ind, minlength=k)
    n = np.bincount(units, minlength=k).astype(float)
    mu_s, mu_n = m.mean(), n.mean()
    cov = np.cov(m, n, ddof=1)
    gb = (cov[0, 0] - 2 * mu_s * cov[0, 1] / mu_n + mu_s ** 2 * cov[1, 1] / mu_n ** 2) / (k * mu_n ** 2)
    assert abs(gb - v) <= 1e-12 * v, (gb, v)
    return v, int(m.sum())


def event_estimate(per_unit, p, d):
    events = np.concatenate(per_unit)
    units = np.repeat(np.arange(len(per_unit)), [len(u) for u in per_unit])
    e = unit_estimate(events, p, d)
    q = quantile_checked(events, p)
    vc, below = cluster_variance(events, units, q)
    n = len(events)
    deff = vc / (p * (1 - p) / n)
    e.update(Var=f(e["Var"] * deff), SE=f(math.sqrt(e["Var"] * deff)), CDFVar=f(vc), DesignEffect=f(deff),
             Clusters=len(per_unit), Threshold=q, Below=below)
    return e


def event_cases():
    """Sessions within users: unit effect u_i ~ N(mu, su²), events
    exp(u_i + e_ij), e_ij ~ N(0, se²), 1 + Poisson(lam) events per unit."""
    rng = np.random.default_rng(20261222)

    def arm(k, mu, su, se, lam, d):
        out = []
        for _ in range(k):
            m = 1 + rng.poisson(lam)
            out.append(to_fixed(np.exp(rng.normal(mu, su) + rng.normal(0, se, m)), d))
        return out

    cases = []
    for name, p, d, alpha, c, t in [
        ("p90 latency, strongly clustered", 0.9, 3, 0.05, arm(300, 5.0, 0.8, 0.3, 4, 3), arm(320, 4.9, 0.8, 0.3, 4, 3)),
        ("median, one event per unit", 0.5, 2, 0.05, arm(600, 1.0, 1.0, 0.5, 0, 2), arm(610, 1.1, 1.0, 0.5, 0, 2)),
        ("p25 weakly clustered alpha 0.1", 0.25, 2, 0.1, arm(300, 2.0, 0.1, 1.0, 6, 2), arm(310, 2.1, 0.1, 1.0, 6, 2)),
    ]:
        ce, te = event_estimate(c, p, d), event_estimate(t, p, d)
        want = compare(ce, te, alpha)
        want["Control"], want["Treatment"] = ce, te
        cases.append({"name": name, "decimals": d, "p": p, "alpha": alpha,
                      "control": [u.tolist() for u in c], "treatment": [u.tolist() for u in t], "want": want})
    return cases


def ogive_cdf(x, edges, counts):
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    return float(np.interp(x, edges, cum / cum[-1]))


def ogive_quantile(u, edges, counts):
    """inf{x : F(x) ≥ u} by bisection on [e_0, e_B]."""
    lo, hi = float(edges[0]), float(edges[-1])
    if ogive_cdf(lo, edges, counts) >= u:
        return lo
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if ogive_cdf(mid, edges, counts) >= u:
            hi = mid
        else:
            lo = mid
    return hi


def grid_estimate(counts, noise_var, edges, p):
    pos = np.maximum(counts, 0.0)
    total = float(pos.sum())
    q = ogive_quantile(p, edges, pos)
    grad = np.empty(len(pos))
    for j in range(len(pos)):
        h = 1e-2
        up, dn = pos.copy(), pos.copy()
        up[j] += h
        dn[j] -= h
        grad[j] = (ogive_cdf(q, edges, up) - ogive_cdf(q, edges, dn)) / (2 * h)
    vf = p * (1 - p) / total + float(np.sum(grad ** 2 * noise_var))
    delta = Z_BAND * math.sqrt(vf)
    if not (p - delta > 0 and p + delta < 1):
        return None
    lo, hi = ogive_quantile(p - delta, edges, pos), ogive_quantile(p + delta, edges, pos)
    se = (hi - lo) / (2 * Z_BAND)
    return {"Quantile": f(q), "Lower": f(lo), "Upper": f(hi), "Var": f(se * se), "SE": f(se), "N": f(total),
            "BandLevel": f(delta), "CDFVar": f(vf), "DesignEffect": 1.0}


def grid_cases():
    rng = np.random.default_rng(20261223)

    def discrete_laplace(eps, size):
        a = math.exp(-eps)
        return (rng.geometric(1 - a, size) - rng.geometric(1 - a, size)).astype(float), 2 * a / (1 - a) ** 2

    cases = []
    for name, p, d, edges, xc, xt, eps, alpha in [
        ("median spend, discrete Laplace eps 0.2", 0.5, 2, np.arange(0, 4001, 100),
         rng.exponential(10.0, 1200), rng.exponential(11.0, 1300), 0.2, 0.05),
        ("p90 latency, exact counts on a geometric grid", 0.9, 1, np.rint(10 * np.geomspace(10, 5000, 31)).astype(np.int64),
         rng.lognormal(5.0, 0.7, 1000), rng.lognormal(5.1, 0.7, 1000), None, 0.05),
        ("p25, negative noisy counts", 0.25, 2, np.arange(0, 3001, 150),
         rng.gamma(2.0, 3.0, 400), rng.gamma(2.0, 3.3, 420), 0.3, 0.1),
        ("too much noise for 60 units", 0.5, 2, np.arange(0, 2001, 100),
         rng.exponential(5.0, 60), rng.exponential(5.0, 60), 0.01, 0.05),
    ]:
        edges = np.asarray(edges, dtype=np.int64)
        b = len(edges) - 1
        arms, ests = [], []
        for x in (xc, xt):
            v = to_fixed(x, d)
            exact = np.bincount(np.searchsorted(edges[1:-1], v, side="left"), minlength=b)
            if eps is None:
                noise, nv = np.zeros(b), 0.0
            else:
                noise, nv = discrete_laplace(eps, b)
            noisy = exact + noise
            arms.append({"values": v.tolist(), "exact": exact.tolist(), "noise": noise.tolist(), "noise_var": [f(nv)] * b})
            ests.append(grid_estimate(noisy, np.full(b, nv), edges / 10 ** d, p))
        if name.startswith("p25"):
            assert any(e + n < 0 for a in arms for e, n in zip(a["exact"], a["noise"])), "no negative count"
        want = None
        if ests[0] is not None and ests[1] is not None:
            want = compare(ests[0], ests[1], alpha)
            want["Control"], want["Treatment"] = ests
        assert (want is None) == name.startswith("too much noise"), name
        cases.append({"name": name, "p": p, "alpha": alpha, "decimals": d, "edges": edges.tolist(),
                      "control": arms[0], "treatment": arms[1], "degenerate": want is None, "want": want})
    return cases


def main():
    ref = {
        "generator": {"script": "stats/testdata/quantile_reference.py", "python": sys.version.split()[0],
                      "numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "unit": unit_cases(),
        "caps": cap_cases(),
        "event": event_cases(),
        "grid": grid_cases(),
    }
    write_reference("quantile_reference.json", ref)


if __name__ == "__main__":
    main()

"""Independent truth of the capped means calibration (calibrate/caps.go).

The spend is 0 with probability z and lognormal(mu, sigma) otherwise,
times 1.1 in the planted treatment. The pooled cap solves the 50/50
mixture's CDF = q (scipy brentq), rounded to cents; an arm's capped mean
is E[min(aV, c)] by numerical integration (scipy quad) of the lognormal
density, not by the closed form the Go code uses. Prints the values
TestCapTruthAgainstSciPy pins:  python3 caps_truth.py
"""
import math
from scipy import integrate, optimize, stats

Z, MU, SIGMA, LIFT = 0.1, 3.0, 0.8, 1.1


def cdf(x, a):
    if x <= 0:
        return Z if x == 0 else 0.0
    return Z + (1 - Z) * stats.lognorm.cdf(x, SIGMA, scale=a * math.exp(MU))


def cap(q, planted):
    lift = LIFT if planted else 1.0
    c = optimize.brentq(lambda x: 0.5 * cdf(x, 1) + 0.5 * cdf(x, lift) - q, 1e-6, 1e6, xtol=1e-12)
    return round(c * 100) / 100


def capped_mean(c, a):
    dist = stats.lognorm(SIGMA, scale=a * math.exp(MU))
    below, _ = integrate.quad(lambda x: x * dist.pdf(x), 0, c, epsabs=1e-13, epsrel=1e-13, limit=200)
    return (1 - Z) * (below + c * dist.sf(c))


for q in (0.9, 0.99):
    for planted in (False, True):
        c = cap(q, planted)
        print(f"{q} {planted} cap={c!r} control={capped_mean(c, 1)!r} treatment={capped_mean(c, LIFT if planted else 1)!r}")

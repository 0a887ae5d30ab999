#!/usr/bin/python3
"""Independent reference for the checkout-button-ix fixture's interactions.csv
(issue 21 item 4: interactions between experiments).

Reads the per-unit values of the plain-Go reference implementation
(ix_units.csv beside this file: one row per unit assigned in both
checkout-button and onboarding-flow, each experiment's variant, and x of
every checkout-button metric, fixed-point integers at 10^6) and tests, with
statsmodels/SciPy from the unit arrays (no Verity code, no moments), for
each metric whether checkout-button's effect depends on the onboarding arm:

- statsmodels OLS  y ~ C(a, Treatment('control')) * C(b, Treatment('control'))
  (the saturated model: each cell its own mean) with HC2 standard errors.
  Its interaction coefficients are the contrasts
  (ybar_tj - ybar_cj) - (ybar_tc - ybar_cc), j = short, guided, and the HC2
  covariance of a saturated model is diag(s2_cell / n_cell) mapped through
  the contrasts, which the script asserts against the cell arithmetic.
- W = theta' V^-1 theta, m = 2 contrasts, compared with F(m, nu_min), nu_min
  the smaller of the two contrasts' Welch-Satterthwaite degrees of freedom
  nu = V_uu^2 / sum_cells (c_cell^2 s2_cell/n_cell)^2 / (n_cell - 1);
  p = scipy.stats.f.sf(W / m, m, nu_min).
- Holm's adjustment over the three metrics' p-values (statsmodels
  multipletests 'holm'), flagged at 0.01 (the spec's default alpha).

Writes ix_reference.json. Run: /usr/bin/python3 golden/testdata/ix_reference.py
(statsmodels 0.13, SciPy 1.10, pandas 1.5 from Debian's packages).
"""
import json
import os

import numpy as np
import pandas as pd
import scipy.stats
import statsmodels.formula.api as smf
from statsmodels.stats.multitest import multipletests

HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = 10**6

units = pd.read_csv(os.path.join(HERE, "ix_units.csv"))
metrics = [c for c in units.columns if c not in ("variant", "partner_variant")]
B = ["short", "guided"]  # the partner's treatments, in the spec's order

rows = []
for metric in metrics:
    d = pd.DataFrame({"y": units[metric] / SCALE, "a": units["variant"], "b": units["partner_variant"]})
    fit = smf.ols("y ~ C(a, Treatment('control')) * C(b, Treatment('control'))", data=d).fit(cov_type="HC2")
    names = [f"C(a, Treatment('control'))[T.treatment]:C(b, Treatment('control'))[T.{j}]" for j in B]
    theta = fit.params[names].to_numpy()
    V = fit.cov_params().loc[names, names].to_numpy()
    # The same from the cells: cell variances s2/n, contrasts of cell means.
    g = d.groupby(["a", "b"])["y"]
    mean, var, n = g.mean(), g.var(ddof=1), g.count()
    D = var / n
    cell_theta = np.array([(mean["treatment", j] - mean["control", j]) - (mean["treatment", "control"] - mean["control", "control"]) for j in B])
    assert np.allclose(theta, cell_theta, rtol=1e-12, atol=1e-14), (theta, cell_theta)
    coef = []
    for j in B:
        coef.append({("treatment", j): 1, ("control", j): -1, ("treatment", "control"): -1, ("control", "control"): 1})
    cell_V = np.array([[sum(cu.get(k, 0) * cv.get(k, 0) * D[k] for k in D.index) for cv in coef] for cu in coef])
    assert np.allclose(V, cell_V, rtol=1e-10, atol=0), (V, cell_V)
    W = float(theta @ np.linalg.solve(V, theta))
    nus = []
    for u, cu in enumerate(coef):
        den = sum((cu[k] ** 2 * D[k]) ** 2 / (n[k] - 1) for k in cu)
        nus.append(V[u, u] ** 2 / den)
    m = len(B)
    nu_min = min(nus)
    p = float(scipy.stats.f.sf(W / m, m, nu_min))
    rows.append({"metric": metric, "units": int(len(d)), "statistic": W, "df_denominator": nu_min, "p_value": p})

holm = multipletests([r["p_value"] for r in rows], method="holm")[1]
for r, h in zip(rows, holm):
    r["p_holm"] = float(h)

with open(os.path.join(HERE, "ix_reference.json"), "w") as f:
    json.dump({"source": "statsmodels OLS HC2 (saturated A x B), Wald W vs F(m, nu_min); Holm via multipletests", "rows": rows}, f, indent=2)
    f.write("\n")
for r in rows:
    print(r)

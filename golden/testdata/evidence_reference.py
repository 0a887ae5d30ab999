#!/usr/bin/env python3
"""Independent reference for the decision evidence's intervals (decisions.json
evidence low/high/ci_level and results.csv adj_ci_low/adj_ci_high).

For every golden whose correction is holm or bh on the fixed-horizon design,
exact (not private), every absolute-scale goal of the default two-sided rule
without CUPED: the family's p-values (results.csv p_value of the goal rows),
the per-goal level of the interval that matches the correction -- Holm: the
Bonferroni level of the step that decides it, alpha/(m-j+1) for the j-th
smallest p among the r rejected, alpha/(m-r) for the rest; BH (Benjamini &
Yekutieli 2005 FCR intervals): alpha*R/m, or alpha/m when nothing is rejected
-- with rejections by statsmodels' multipletests, and the Welch interval at
that level from the row's n, mean and sd (SciPy's t quantile). The family is
the goals of cohort (all), or of every cohort under correction_scope: cohorts;
alpha is the spec's (the manifest's effective design). Guardrails: the
nominal level 1 - alpha. Writes evidence_reference.json.

Run from the repository root:  python3 golden/testdata/evidence_reference.py
(Debian: python3-scipy python3-statsmodels).
"""
import csv
import glob
import json
import math
import os

from scipy import stats
from statsmodels.stats.multitest import multipletests

out = {}
for dec_path in sorted(glob.glob("golden/*/decisions.json")):
    name = dec_path.split(os.sep)[1]
    dec = json.load(open(dec_path))
    if dec.get("correction") not in ("holm", "bh") or dec.get("interval") != "fixed_horizon":
        continue
    eff = json.load(open(os.path.join("golden", name, "manifest.stable.json")))["effective"]
    ALPHA = eff["design"]["alpha"]
    rows = list(csv.DictReader(open(os.path.join("golden", name, "results.csv"))))
    if any(r["private"] == "true" for r in rows):
        continue
    by_key = {(r["metric"], r["variant"], r["cohort"]): r for r in rows}
    goals = [e for e in dec["evidence"] if e["role"] == "goal"]
    plain = [e for e in goals if e["scale"] == "absolute" and not e.get("test") and not e.get("alternative")]
    if len(plain) != len(goals):
        continue
    if eff["correction"]["scope"] == "cohorts":
        # Every cohort's goal comparisons form the family.
        fam = [r for r in rows if r["role"] == "goal" and r["p_value"] != ""]
    else:
        fam = [by_key[(e["metric"], e["variant"], e["cohort"])] for e in goals]
    p = [float(r["p_value"]) for r in fam]
    m = len(p)
    method = {"holm": "holm", "bh": "fdr_bh"}[dec["correction"]]
    reject, _, _, _ = multipletests(p, alpha=ALPHA, method=method)
    r_count = int(sum(reject))
    order = sorted(range(m), key=lambda i: p[i])
    alphas = [None] * m
    if dec["correction"] == "holm":
        for rank, i in enumerate(order):
            alphas[i] = ALPHA / (m - rank) if rank < r_count else ALPHA / (m - r_count)
    else:
        for i in range(m):
            alphas[i] = ALPHA * r_count / m if r_count else ALPHA / m
    items = []
    for r, a in zip(fam, alphas):
        e = next((e for e in goals if (e["metric"], e["variant"], e["cohort"]) == (r["metric"], r["variant"], r["cohort"])), None)
        if e is None or r["cuped_theta"] != "":
            continue
        nc, nv = int(r["n_control"]), int(r["n_variant"])
        mc, mv = float(r["mean_control"]), float(r["mean_variant"])
        vc, vv = float(r["sd_control"]) ** 2 / nc, float(r["sd_variant"]) ** 2 / nv
        se = math.sqrt(vc + vv)
        df = (vc + vv) ** 2 / (vc ** 2 / (nc - 1) + vv ** 2 / (nv - 1))
        t = stats.t.ppf(1 - a / 2, df)
        d = mv - mc
        items.append({"role": "goal", "metric": e["metric"], "variant": e["variant"], "cohort": e["cohort"],
                      "ci_level": 1 - a, "low": d - t * se, "high": d + t * se})
    for e in dec["evidence"]:
        if e["role"] == "guardrail" and not e.get("alternative"):
            items.append({"role": "guardrail", "metric": e["metric"], "variant": e["variant"], "cohort": e["cohort"],
                          "ci_level": 1 - ALPHA})
    if items:
        out[name] = items
with open("golden/testdata/evidence_reference.json", "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
print({k: len(v) for k, v in out.items()})

#!/usr/bin/python3
"""Independent reference for the checkout-drill fixture's drilldown.csv
(issue 21 item 2: drill-downs on trace dimensions).

Reads drill_units.csv beside this file: one row per assigned unit of
checkout-button, its variant, for each dimension d its slice (d, d_null,
d_tied: the value on its first-exposure row as the plain-Go reference
implementation fixtures/reference computes it from the Parquet rows) and x
of every metric (fixed-point integers at 10^6). From the unit arrays alone
(no Verity code, no moments), per dimension of the spec:

- slices: the distinct values in code-point (= UTF-8 byte) order, then
  NULL; each slice's units over both arms;
- collapsing at cohorts.min_units (400), the flat-taxonomy case of the
  documented rule (PRODUCT.md, privacy/collapse.go): a slice with at least
  400 units is released alone; smaller ones go to the remainder ("other"),
  released when it reaches 400, else it absorbs released slices, smallest
  first (ties in slice order), until it does;
- per released slice: SRM by Pearson's chi-square against 50/50
  (scipy.stats.chisquare), Bonferroni over the dimension's slices;
- per slice and metric, treatment vs control: Welch's t test
  (scipy.stats.ttest_ind(equal_var=False)) for the p-value, the difference
  of means with its Welch-Satterthwaite interval at 95%
  (scipy.stats.t.ppf);
- correction_scope: cohorts: each dimension's goal rows (converted,
  revenue) form one Holm family (statsmodels multipletests 'holm');
  page_views is secondary (no adjusted p-value).

Writes drill_reference.json. Run: /usr/bin/python3 golden/testdata/drill_reference.py
(SciPy 1.10, statsmodels 0.13, NumPy from Debian's packages).
"""
import csv
import json
import os

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = 1e6
ALPHA = 0.05
MIN_UNITS = 400
DIMENSIONS = ["sdk_version", "rule_id", "persona"]
METRICS = [("converted", "goal"), ("revenue", "goal"), ("page_views", "secondary")]


def load():
    with open(os.path.join(HERE, "drill_units.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    arm = np.array([r["variant"] for r in rows])
    x = {m: np.array([int(r[m]) for r in rows], dtype=float) / SCALE for m, _ in METRICS}
    return rows, arm, x


def quoted(s):
    # Go's %q of an ASCII string without control characters.
    return json.dumps(s)


def collapse(order, units):
    """Released slices of a flat taxonomy: list of member lists, the
    remainder (if any) last, with a flag saying which is the remainder."""
    alone = [s for s in order if units[s] >= MIN_UNITS]
    bucket = [s for s in order if units[s] < MIN_UNITS]
    if bucket:
        total = sum(units[s] for s in bucket)
        if total < MIN_UNITS:
            for s in sorted(alone, key=lambda s: (units[s], order.index(s))):
                alone.remove(s)
                bucket.append(s)
                total += units[s]
                if total >= MIN_UNITS:
                    break
        assert total >= MIN_UNITS, "everything below the minimum"
        bucket.sort(key=order.index)
    out = [([s], False) for s in alone]
    if bucket:
        out.append((bucket, True))
    return out


def main():
    rows, arm, x = load()
    out = []
    for d in DIMENSIONS:
        key = np.array([(None if r[d + "_null"] == "1" else r[d]) for r in rows], dtype=object)
        tied = np.array([r[d + "_tied"] == "1" for r in rows])
        values = sorted({k for k in key if k is not None})
        order = values + ([None] if any(k is None for k in key) else [])
        units = {s: int(sum(1 for k in key if k == s)) for s in order}
        released = collapse(order, units)
        srm = []
        for members, _ in released:
            m = np.isin(key, members)
            nc, nt = int(((arm == "control") & m).sum()), int(((arm == "treatment") & m).sum())
            srm.append(stats.chisquare([nc, nt], [(nc + nt) / 2, (nc + nt) / 2]).pvalue)
        srm = [min(1.0, p * len(released)) for p in srm]
        dim_rows = []
        for (members, other), srm_p in zip(released, srm):
            m = np.array([k in members for k in key]) if None in members else np.isin(key, members)
            base = {
                "dimension": d,
                "slice_kind": "other" if other else ("null" if members[0] is None else "value"),
                "slice": "" if other or members[0] is None else members[0],
                "collapsed_from": ";".join("(null)" if s is None else quoted(s) for s in members) if other else "",
                "units": int(m.sum()),
                "units_tied": int((tied & m).sum()),
                "srm_p_value": float(srm_p),
            }
            for name, role in METRICS:
                xc, xt = x[name][(arm == "control") & m], x[name][(arm == "treatment") & m]
                vc, vt = np.var(xc, ddof=1), np.var(xt, ddof=1)
                se2 = vt / len(xt) + vc / len(xc)
                df = se2 ** 2 / ((vt / len(xt)) ** 2 / (len(xt) - 1) + (vc / len(xc)) ** 2 / (len(xc) - 1))
                diff = xt.mean() - xc.mean()
                q = stats.t.ppf(1 - ALPHA / 2, df)
                p = stats.ttest_ind(xt, xc, equal_var=False).pvalue
                r = dict(base, metric=name, role=role, n_control=int(len(xc)), n_variant=int(len(xt)),
                         mean_control=float(xc.mean()), mean_variant=float(xt.mean()), abs_effect=float(diff),
                         abs_ci_low=float(diff - q * np.sqrt(se2)), abs_ci_high=float(diff + q * np.sqrt(se2)),
                         df=float(df), p_value=float(p), p_value_adjusted=None)
                dim_rows.append(r)
        goals = [r for r in dim_rows if r["role"] == "goal"]
        for r, h in zip(goals, multipletests([r["p_value"] for r in goals], method="holm")[1]):
            r["p_value_adjusted"] = float(h)
        for r in dim_rows:
            del r["role"]
        out.extend(dim_rows)
    with open(os.path.join(HERE, "drill_reference.json"), "w") as f:
        json.dump({"rows": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference values for the filtered-metric fixture (issue 20 item 3).

Inputs, beside this script, written by the Go test TestFilteredMatchesPandas
(golden/filter_reference_test.go) from the plain-Go reference of the
semantics (fixtures/reference):

  * filter_spec.json: the spec's metrics (kind, event, aggregate, clamp,
    filter), fixed-point decimals, alpha, control, leaves;
  * filter_units.csv: every assigned unit with its cohort and variant;
  * filter_events.csv: every attributed event (of an assigned unit, at or
    after its exposure, before the window end, after the NULL-key,
    duplicate and invalid-value rules), with its raw value and its raw
    country and plan; \\N is NULL. Unit = row of filter_units.csv.

What it computes, with pandas, NumPy and SciPy only (no Verity code):

  * each metric's events: the event name, and for every filter column a
    value in the listed set by exact string equality (pandas isin; a NULL
    never matches; "de" and " DE" are not "DE");
  * per unit, x in fixed point (S = 10^decimals, v = round(value * S) half
    away from zero, NULL value = 1): proportion S if any event, count
    S * events, sum of v; units without events 0; clamped to
    [round(lower * S), round(upper * S)];
  * per cohort ((all) and each leaf) and arm: n, mean and sample sd
    (exact integer sums through fractions, ddof = 1);
  * the Welch comparison: scipy.stats.ttest_ind(t, c, equal_var=False)
    for the p-value, Welch-Satterthwaite df, the interval
    diff -/+ t.ppf(1 - alpha/2, df) * se, and the relative effect
    diff / |mean_control|.

Output: filter_reference.json. Run from the repository root with Debian's
Python (NumPy 1.24, SciPy 1.10, pandas 1.5):

    /usr/bin/python3 golden/testdata/filter_reference.py
"""
import json
import math
import os
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def round_half_away(x):
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def main():
    with open(os.path.join(HERE, "filter_spec.json")) as f:
        spec = json.load(f)
    read = dict(dtype=str, na_values=["\\N"], keep_default_na=False)
    units = pd.read_csv(os.path.join(HERE, "filter_units.csv"), **read)
    events = pd.read_csv(os.path.join(HERE, "filter_events.csv"), **read)
    events["unit"] = events["unit"].astype(int)
    events["value"] = events["value"].astype(float)
    scale = 10 ** spec["decimals"]
    # v = round(coalesce(value, 1) * S), half away from zero.
    events["v"] = [round_half_away((1.0 if math.isnan(x) else x) * scale) for x in events["value"]]

    x = {}
    for m in spec["metrics"]:
        sel = events["event"] == m["event"]
        for col, vals in (m.get("filter") or {}).items():
            sel &= events[col].isin(vals) & events[col].notna()
        ev = events[sel]
        per = np.zeros(len(units), dtype=object)
        per[:] = 0
        if m["kind"] == "proportion":
            for u in ev["unit"].unique():
                per[u] = scale
        elif m["aggregate"] == "count":
            for u, c in ev.groupby("unit").size().items():
                per[u] = c * scale
        else:
            for u, s in ev.groupby("unit")["v"].sum().items():
                per[u] = int(s)
        if m.get("clamp"):
            lo = round_half_away(m["clamp"]["lower"] * scale)
            hi = round_half_away(m["clamp"]["upper"] * scale)
            per = np.array([min(max(int(v), lo), hi) for v in per], dtype=object)
        x[m["name"]] = per

    out = {"Rows": []}
    alpha = spec["alpha"]
    arms = sorted(units["variant"].unique())
    treatments = [a for a in arms if a != spec["control"]]
    for cohort in ["(all)"] + sorted(spec["leaves"]):
        in_cohort = np.ones(len(units), dtype=bool) if cohort == "(all)" else (units["cohort"] == cohort).to_numpy()
        for m in spec["metrics"]:
            def arm(variant):
                mask = in_cohort & (units["variant"] == variant).to_numpy()
                return [int(v) for v in x[m["name"]][mask]]

            def moments(vals):
                n = len(vals)
                s, s2 = sum(vals), sum(v * v for v in vals)
                mean = Fraction(s, n * scale)
                var = Fraction(n * s2 - s * s, n * (n - 1) * scale * scale)
                return n, mean, var

            c = arm(spec["control"])
            nc, mc, vc = moments(c)
            for t_name in treatments:
                t = arm(t_name)
                nt, mt, vt = moments(t)
                if vc == 0 or vt == 0 or mc == 0:
                    continue  # no Welch interval or relative effect: results.csv says why
                diff = float(mt - mc)
                a, b = float(vc) / nc, float(vt) / nt
                se = math.sqrt(a + b)
                df = (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))
                crit = stats.t.ppf(1 - alpha / 2, df)
                p = stats.ttest_ind(np.array(t, dtype=float) / scale, np.array(c, dtype=float) / scale, equal_var=False).pvalue
                out["Rows"].append({
                    "Cohort": cohort, "Metric": m["name"], "Variant": t_name,
                    "Values": {
                        "n_control": nc, "n_variant": nt,
                        "mean_control": float(mc), "mean_variant": float(mt),
                        "sd_control": math.sqrt(float(vc)), "sd_variant": math.sqrt(float(vt)),
                        "abs_effect": diff, "abs_ci_low": diff - crit * se, "abs_ci_high": diff + crit * se,
                        "df": df, "p_value": float(p), "rel_effect": diff / abs(float(mc)),
                    },
                })
    with open(os.path.join(HERE, "filter_reference.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

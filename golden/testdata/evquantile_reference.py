#!/usr/bin/python3
"""Reference values for the event-level quantile fixture (issue 20 item 1).

Inputs, beside this script, written by the Go test
TestEventQuantilesMatchPandas (golden/evquantile_reference_test.go) from the
plain-Go reference of the semantics (fixtures/reference):

  * evquantile_spec.json: the event-level metrics (event, level, clamp),
    fixed-point decimals, alpha, control, variants, leaves;
  * evquantile_units.csv: every assigned unit with its cohort and variant;
  * evquantile_events.csv: every attributed event (of an assigned unit, at
    or after its exposure, before the window end, after the NULL-key,
    duplicate and invalid-value rules) with its unit and raw value (\\N is
    NULL).

What it computes, with pandas, NumPy and SciPy only (no Verity code), for
every cohort ((all), then the leaves and _unclassified in name order),
event-level metric (spec order) and treatment against the control:

  * each event's fixed-point value v = round(value * 10^d) half away from
    zero (NULL value = 1), clamped event by event to
    [round(lower * 10^d), round(upper * 10^d)];
  * the arm's pooled events x (n of them): the quantile
    np.quantile(x, p, method="inverted_cdf") (definition 1), checked
    against the ceil(n*p)-th order statistic with p as a decimal;
  * the order-statistic variance of the pooled events as if independent
    (GrowthBook's quantile test; Deng, Knoblich & Lu 2018):
    z = norm.ppf(0.975), delta = z*sqrt(p(1-p)/n), lower/upper =
    np.quantile(x, p -/+ delta, "inverted_cdf"), Var_iid =
    ((upper - lower)/(2z))^2; too few events when p -/+ delta leaves
    (0, 1), a tie when lower == upper;
  * the clustering (Yao, Li & Lu 2024, arXiv:2401.14549, Algorithm 1):
    per unit with events, n_i its events and m_i those <= the quantile
    (pandas groupby); K units with events (at least 2), I = sum m / sum n,
    Var_c = K/(K-1) * sum (m_i - I n_i)^2 / n^2 (must be > 0), the design
    effect Var_c / (p(1-p)/n) and Var = Var_iid * design effect;
  * the difference q_t - q_c with the normal interval at 1 - alpha and
    p = 2*norm.sf(|diff|/SE), the relative difference with its delta-method
    interval and Fieller's set (quantile_reference.py's root-finding
    fieller()).

Output: evquantile_reference.json, one entry per event-level row of
quantiles.csv, in its order. Run from the repository root with Debian's
Python (NumPy 1.24, SciPy 1.10, pandas 1.5):

    /usr/bin/python3 golden/testdata/evquantile_reference.py
"""
import json
import math
import os
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.stats import norm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from quantile_reference import fieller  # noqa: E402  (root-finding Fieller, SciPy's brentq)


def round_half_away(x):
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def fixed(v, d):
    return float(Fraction(int(v), 10**d))


def quantile(x, p):
    q = int(np.quantile(x, p, method="inverted_cdf"))
    k = math.ceil(len(x) * Fraction(repr(p)))
    assert x[k - 1] == q, (len(x), p, k, q)
    return q


def estimate(ev, p, d):
    """One arm's events (DataFrame unit_id, v): (q, SE, lower, upper,
    design effect, events, units) or a status string."""
    x = np.sort(ev["v"].to_numpy(dtype=np.int64))
    n = len(x)
    z = norm.ppf(0.975)
    delta = z * math.sqrt(p * (1 - p) / n)
    if not (p - delta > 0 and p + delta < 1):
        return "too_few"
    lo = int(np.quantile(x, p - delta, method="inverted_cdf"))
    hi = int(np.quantile(x, p + delta, method="inverted_cdf"))
    if lo == hi:
        return "tie"
    q = quantile(x, p)
    var_iid = (fixed(hi - lo, d) / (2 * z)) ** 2
    per = ev.assign(below=(ev["v"] <= q).astype(np.int64)).groupby("unit_id").agg(n_i=("v", "size"), m_i=("below", "sum"))
    k = len(per)
    if k < 2:
        return "units"
    n_i = per["n_i"].to_numpy(dtype=np.float64)
    m_i = per["m_i"].to_numpy(dtype=np.float64)
    share = m_i.sum() / n_i.sum()
    var_c = k / (k - 1) * np.sum((m_i - share * n_i) ** 2) / n**2
    if not var_c > 0:
        return "zero_var"
    deff = var_c / (p * (1 - p) / n)
    return fixed(q, d), math.sqrt(var_iid * deff), fixed(lo, d), fixed(hi, d), deff


COLS = ["quantile_control", "quantile_variant", "se_control", "se_variant", "band_low_control", "band_high_control",
        "band_low_variant", "band_high_variant", "abs_effect", "abs_ci_low", "abs_ci_high", "p_value", "rel_effect",
        "rel_delta_ci_low", "rel_delta_ci_high", "rel_fieller_low", "rel_fieller_high", "design_effect_control",
        "design_effect_variant", "events_control", "events_variant", "units_with_events_control",
        "units_with_events_variant", "n_control", "n_variant"]


def compare(uc, ut, evc, evt, p, d, alpha):
    v = {c: None for c in COLS}
    v["n_control"], v["n_variant"] = float(uc), float(ut)
    v["events_control"], v["events_variant"] = float(len(evc)), float(len(evt))
    v["units_with_events_control"] = float(evc["unit_id"].nunique())
    v["units_with_events_variant"] = float(evt["unit_id"].nunique())
    if len(evc):
        v["quantile_control"] = fixed(quantile(np.sort(evc["v"].to_numpy(dtype=np.int64)), p), d)
    if len(evt):
        v["quantile_variant"] = fixed(quantile(np.sort(evt["v"].to_numpy(dtype=np.int64)), p), d)
    if uc == 0 or ut == 0:
        return "missing_arm", v
    if len(evc) == 0:
        return "no_events:control", v
    if len(evt) == 0:
        return "no_events:treatment", v
    c = estimate(evc, p, d)
    if isinstance(c, str):
        return c + ":control", v
    t = estimate(evt, p, d)
    if isinstance(t, str):
        return t + ":treatment", v
    qc, sc, v["band_low_control"], v["band_high_control"], v["design_effect_control"] = c
    qt, st, v["band_low_variant"], v["band_high_variant"], v["design_effect_variant"] = t
    v["se_control"], v["se_variant"] = sc, st
    z = norm.ppf(1 - alpha / 2)
    diff, se = qt - qc, math.sqrt(sc * sc + st * st)
    v["abs_effect"], v["abs_ci_low"], v["abs_ci_high"] = diff, diff - z * se, diff + z * se
    v["p_value"] = 2 * norm.sf(abs(diff) / se)
    if qc == 0:
        return "zero_control", v
    rel = diff / abs(qc)
    rse = math.sqrt(st * st / qc**2 + qt**2 * sc * sc / qc**4)
    v["rel_effect"], v["rel_delta_ci_low"], v["rel_delta_ci_high"] = rel, rel - z * rse, rel + z * rse
    shape, r1, r2 = fieller(qc, qt, sc * sc, st * st, z)
    if shape == "whole_line":
        return "unbounded", v
    v["rel_fieller_low"], v["rel_fieller_high"] = r1 - 1, r2 - 1
    return ("ok" if shape == "bounded" else "unbounded"), v


def main():
    with open(os.path.join(HERE, "evquantile_spec.json")) as f:
        spec = json.load(f)
    read = dict(dtype=str, na_values=["\\N"], keep_default_na=False)
    units = pd.read_csv(os.path.join(HERE, "evquantile_units.csv"), **read)
    events = pd.read_csv(os.path.join(HERE, "evquantile_events.csv"), **read)
    events["value"] = events["value"].astype(float)
    d = spec["decimals"]
    scale = 10**d
    events["raw_v"] = [round_half_away((1.0 if math.isnan(x) else x) * scale) for x in events["value"]]
    events = events.merge(units, on="unit_id", how="left", validate="many_to_one")
    assert events["variant"].notna().all(), "an attributed event of an unassigned unit"
    leaves = sorted(spec["leaves"] + ["_unclassified"])
    out = []
    for cohort in ["(all)"] + leaves:
        in_cohort = units if cohort == "(all)" else units[units["cohort"] == cohort]
        for m in spec["metrics"]:
            lo, hi = round_half_away(m["lower"] * scale), round_half_away(m["upper"] * scale)
            ev = events[events["event"] == m["event"]]
            if cohort != "(all)":
                ev = ev[ev["cohort"] == cohort]
            ev = ev.assign(v=ev["raw_v"].clip(lower=lo, upper=hi))

            def arm(variant):
                return int((in_cohort["variant"] == variant).sum()), ev[ev["variant"] == variant][["unit_id", "v"]]

            uc, evc = arm(spec["control"])
            for variant in spec["variants"]:
                if variant == spec["control"]:
                    continue
                ut, evt = arm(variant)
                status, values = compare(uc, ut, evc, evt, m["level"], d, spec["alpha"])
                out.append({"Cohort": cohort, "Metric": m["name"], "Variant": variant, "Status": status, "Values": values})
    with open(os.path.join(HERE, "evquantile_reference.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

package calibrate

import (
	"math"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// Percentile caps (issue 20 item 2) in the exact quantiles mode's datasets:
// each spec also carries mean metrics of the same spend winsorised at the
// pooled 0.9 and 0.99 quantile (cap: {upper_quantile: q}), and their
// difference and relative intervals are judged against the capped
// population means.
//
// The cap is a quantile of every unit of cohort (all), both arms pooled,
// so its population value c solves F_pool(c) = q with F_pool the
// allocation-weighted (50/50) mixture of the arms' distributions: the
// spend V is 0 with probability z and lognormal(μ, σ) otherwise, ×1.1 in
// the planted treatment. An arm's capped mean is then, for V' = a·V with
// log-location μ_a = μ + ln a,
//
//	E[min(V', c)] = (1 − z)·(exp(μ_a + σ²/2)·Φ((ln c − μ_a − σ²)/σ) + c·(1 − Φ((ln c − μ_a)/σ))).
//
// The sample cap is a quantile of values rounded to two decimals, whose
// population limit is c rounded; the truth uses that rounded cap (the
// rounding of the values themselves moves a mean by far less than 10⁻³ of
// its standard error here). The intervals treat the night's cap as a
// constant: this mode measures what ignoring its sampling variance costs.
// Leaves share cohort (all)'s cap, so their truth is (all)'s.
const CapMode = "capped means"

var capLevels = []float64{0.9, 0.99}

// capMetric is the spec's name of the metric capped at level q.
func capMetric(q float64) string { return "spend_cap_" + expspec.QuantileLabel(q) }

// capKind is the tally's metric kind of a cap level.
func capKind(q float64) string { return "capped-" + expspec.QuantileLabel(q) }

// capLevelOf returns the cap level of a capped metric's name.
func capLevelOf(metric string) (float64, bool) {
	for _, q := range capLevels {
		if capMetric(q) == metric {
			return q, true
		}
	}
	return 0, false
}

// spendCDF is P(V' ≤ x) for an arm whose spend is scaled by a.
func spendCDF(x, a float64) float64 {
	if x < 0 {
		return 0
	}
	if x == 0 {
		return quantileZero
	}
	return quantileZero + (1-quantileZero)*distuv.UnitNormal.CDF((math.Log(x)-quantileMu-math.Log(a))/quantileSigma)
}

// capTruth is the rounded population cap at level q of an experiment (the
// planted one pools a treatment scaled by quantileLift).
func capTruth(q float64, planted bool) float64 {
	lift := 1.0
	if planted {
		lift = quantileLift
	}
	pooled := func(x float64) float64 { return 0.5*spendCDF(x, 1) + 0.5*spendCDF(x, lift) }
	lo, hi := 1e-9, 1e9 // q > z, so the cap is positive
	for range 200 {
		mid := math.Sqrt(lo * hi)
		if pooled(mid) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Round(hi*100) / 100
}

// cappedMean is E[min(a·V, c)].
func cappedMean(c, a float64) float64 {
	mu := quantileMu + math.Log(a)
	s := quantileSigma
	lc := math.Log(c)
	return (1 - quantileZero) * (math.Exp(mu+s*s/2)*distuv.UnitNormal.CDF((lc-mu-s*s)/s) + c*(1-distuv.UnitNormal.CDF((lc-mu)/s)))
}

// capTallies adds a capped metric's row to tl: interval, coverage and the
// one-sided misses on both scales, and the A/A final-night significance of
// (all). It reports false for rows of other metrics.
func capTallies(tl Tally, r analysis.ResultRow, planted bool) bool {
	q, ok := capLevelOf(r.Metric)
	if !ok {
		return false
	}
	c := capTruth(q, planted)
	lift := 1.0
	if planted {
		lift = quantileLift
	}
	mc, mt := cappedMean(c, 1), cappedMean(c, lift)
	abs := mt - mc
	rel := abs / math.Abs(mc)
	for _, o := range observeCapped(r, abs, rel) {
		base := CapMode + "/" + cohortType(r.Cohort) + "/" + capKind(q) + "/" + o.scale
		tl.add("interval/"+base, o.hasInterval)
		if !o.hasInterval {
			continue
		}
		tl.add("coverage/"+base, !o.below && !o.above)
		tl.add("below/"+base, o.below)
		tl.add("above/"+base, o.above)
	}
	if !planted && r.Cohort == expspec.AllCohort {
		tl.add("aa-final/"+CapMode+"/"+capKind(q), r.PValue != nil && *r.PValue < alpha)
	}
	return true
}

// observeCapped compares a capped mean row's intervals with the truth. The
// capped control mean is about 17 with a standard error near 0.3, so a
// relative interval is always bounded here; a row without one counts as
// having no interval (and fails the interval check).
func observeCapped(r analysis.ResultRow, abs, rel float64) []observation {
	var out []observation
	o := observation{scale: "absolute"}
	if r.AbsCILow != nil && r.AbsCIHigh != nil {
		o.hasInterval = true
		o.below, o.above = *r.AbsCIHigh < abs, *r.AbsCILow > abs
	}
	out = append(out, o)
	o = observation{scale: "relative"}
	if r.RelCILow != nil && r.RelCIHigh != nil && r.Status != stats.StatusRelativeUnbounded {
		o.hasInterval = true
		o.below, o.above = *r.RelCIHigh < rel, *r.RelCILow > rel
	}
	return append(out, o)
}

// judgeCaps adds the capped means checks: (all) and leaves, both levels,
// both scales.
func judgeCaps(add func(key, side, what string, nominal float64)) {
	for _, ct := range []string{"all", "leaf"} {
		for _, q := range capLevels {
			for _, scale := range []string{"absolute", "relative"} {
				base := CapMode + "/" + ct + "/" + capKind(q) + "/" + scale
				add("interval/"+base, "at least", "rows with an interval", 1)
				add("coverage/"+base, "two-sided", "coverage", 1-alpha)
				add("below/"+base, "two-sided", "interval below the truth", alpha/2)
				add("above/"+base, "two-sided", "interval above the truth", alpha/2)
			}
		}
	}
	for _, q := range capLevels {
		add("aa-final/"+CapMode+"/"+capKind(q), "two-sided", "A/A significant at the final night", alpha)
	}
}

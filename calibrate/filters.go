package calibrate

import (
	"math"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// Filtered metrics (issue 20 item 3) in the exact quantiles mode's
// datasets: every spend event also carries a property column channel,
// drawn for each event from its own seeded stream (so the spend values and
// assignments are those of the quantiles mode): NULL with probability
// filterNull, "web" with probability filterWeb, "app" otherwise. Each spec
// declares inputs.event_properties: [channel] (events@v9, filter_counts@v1)
// and carries two filtered metrics:
//
//	spend_web      mean of the per-unit spend of web events:
//	               filterWeb·(1 − z)·exp(μ + σ²/2), × 1.1 in the planted treatment;
//	converted_web  units with a web spend event: filterWeb·(1 − z) in both arms.
//
// A NULL channel never matches, so it only thins the events like "app".
// The intervals are judged against these population values on both
// scales, in (all) and the leaves, at the final night; the A/A experiment's
// (all) rows for significance.
const FilterMode = "filtered metrics"

const (
	filterWeb  = 0.6
	filterNull = 0.05
)

// filterKinds are the tally's metric kinds, by metric name.
var filterKinds = map[string]string{"spend_web": "filtered-mean", "converted_web": "filtered-proportion"}

// channelOf draws an event's channel from u, a uniform draw in [0, 1).
func channelOf(u float64) *string {
	var c string
	switch {
	case u < filterNull:
		return nil
	case u < filterNull+filterWeb:
		c = "web"
	default:
		c = "app"
	}
	return &c
}

// filterTruth is a filtered metric's population mean in an arm.
func filterTruth(metric string, treated bool) float64 {
	p := filterWeb * (1 - quantileZero)
	if metric == "converted_web" {
		return p
	}
	m := p * math.Exp(quantileMu+quantileSigma*quantileSigma/2)
	if treated {
		m *= quantileLift
	}
	return m
}

// filterTallies adds a filtered metric's row to tl: interval, coverage and
// one-sided misses on both scales, and the A/A final-night significance
// of (all). It reports false for rows of other metrics.
func filterTallies(tl Tally, r analysis.ResultRow, planted bool) bool {
	kind, ok := filterKinds[r.Metric]
	if !ok {
		return false
	}
	mc, mt := filterTruth(r.Metric, false), filterTruth(r.Metric, planted)
	abs := mt - mc
	for _, o := range observeCapped(r, abs, abs/math.Abs(mc)) {
		base := FilterMode + "/" + cohortType(r.Cohort) + "/" + kind + "/" + o.scale
		tl.add("interval/"+base, o.hasInterval)
		if !o.hasInterval {
			continue
		}
		tl.add("coverage/"+base, !o.below && !o.above)
		tl.add("below/"+base, o.below)
		tl.add("above/"+base, o.above)
	}
	if !planted && r.Cohort == expspec.AllCohort {
		tl.add("aa-final/"+FilterMode+"/"+kind, r.PValue != nil && *r.PValue < alpha)
	}
	return true
}

// judgeFilters adds the filtered metrics' checks: (all) and leaves, both
// kinds, both scales.
func judgeFilters(add func(key, side, what string, nominal float64)) {
	for _, ct := range []string{"all", "leaf"} {
		for _, kind := range []string{"filtered-mean", "filtered-proportion"} {
			for _, scale := range []string{"absolute", "relative"} {
				base := FilterMode + "/" + ct + "/" + kind + "/" + scale
				add("interval/"+base, "at least", "rows with an interval", 1)
				add("coverage/"+base, "two-sided", "coverage", 1-alpha)
				add("below/"+base, "two-sided", "interval below the truth", alpha/2)
				add("above/"+base, "two-sided", "interval above the truth", alpha/2)
			}
		}
	}
	for _, kind := range []string{"filtered-mean", "filtered-proportion"} {
		add("aa-final/"+FilterMode+"/"+kind, "two-sided", "A/A significant at the final night", alpha)
	}
}

package calibrate

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"gonum.org/v1/gonum/stat/distuv"
)

// Event-level quantile metrics (over: events; issue 20 item 1) in the
// exact quantiles mode's datasets: every unit also has 1 to evqMaxEvents
// "latency" events (uniform), drawn from a seeded stream of its own (so the
// spend values and assignments are those of the quantiles mode), with
// clustered values: unit i has a random effect U_i ~ N(0, σ_u²) and its
// event j the value exp(μ + U_i + ε_ij), ε_ij ~ N(0, σ_e²), × 1.1 in the
// planted treatment. The number of events is independent of the values, so
// the population distribution of the pooled events is the marginal
// lognormal(μ, σ_u² + σ_e²), whose p-quantile (rounded to the specs' 2
// decimals, a monotone map) is the truth:
//
//	q_p = exp(μ + √(σ_u² + σ_e²)·Φ⁻¹(p))   (× 1.1 treated).
//
// With σ_u = 0.6 and σ_e = 0.4 a unit's events are strongly correlated
// (intra-unit correlation 0.69): intervals that treated them as
// independent would be too narrow. Each spec carries the p50 and p90 over
// events (eventbins@v1); judged on both scales in (all) and the leaves,
// and the A/A experiment's (all) rows for significance.
const EventQuantileMode = "event quantiles"

const (
	evqMu         = 4.0
	evqSigmaUnit  = 0.6
	evqSigmaEvent = 0.4
	evqMaxEvents  = 6
)

var evqLevels = []float64{0.5, 0.9}

// evqMetric is the spec's name of the event-level metric at a level.
func evqMetric(level float64) string { return "latency_events_" + expspec.QuantileLabel(level) }

// evqKind is the tally's metric kind of a level.
func evqKind(level float64) string { return "event-quantile-" + expspec.QuantileLabel(level) }

// evqStream is the latency events' own random stream of a dataset.
func evqStream(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d)) }

// latencyEvents returns a unit's latency events, from ts on.
func latencyEvents(rng *rand.Rand, id string, ts int64, treated bool) []channelEventRow {
	u := evqSigmaUnit * rng.NormFloat64()
	n := 1 + rng.IntN(evqMaxEvents)
	out := make([]channelEventRow, n)
	for j := range out {
		v := math.Exp(evqMu + u + evqSigmaEvent*rng.NormFloat64())
		if treated {
			v *= quantileLift
		}
		t := ts + int64(j+2)*60_000_000
		metric, eid := "latency", fmt.Sprintf("l-%s-%d", id, j)
		out[j] = channelEventRow{TS: &t, UnitID: &id, Metric: &metric, Value: &v, EventID: &eid}
	}
	return out
}

// evqSpecLines are the event-level metrics of a quantile spec.
func evqSpecLines() string {
	s := ""
	for _, l := range evqLevels {
		s += fmt.Sprintf("  - {name: %s, kind: quantile, over: events, level: %g, event: latency, clamp: {lower: 0, upper: 1000000}, attribution_hours: %d}\n",
			evqMetric(l), l, quantileDays*24)
	}
	return s
}

// evqTruth is the rounded population p-quantile of an arm's pooled events.
func evqTruth(p float64, treated bool) float64 {
	q := math.Exp(evqMu + math.Hypot(evqSigmaUnit, evqSigmaEvent)*distuv.UnitNormal.Quantile(p))
	if treated {
		q *= quantileLift
	}
	return math.Round(q*100) / 100
}

// evqTallies adds an event-level quantile row to tl: interval, coverage
// and one-sided misses on both scales, and the A/A final-night
// significance of (all). It reports false for rows of other metrics.
func evqTallies(tl Tally, r analysis.ResultRow, planted bool) bool {
	if r.Kind != analysis.EventQuantileKind || r.Quantile == nil {
		return false
	}
	l := r.Quantile.Level
	tc, tt := evqTruth(l, false), evqTruth(l, planted)
	for _, o := range observeQuantile(r, tt-tc, (tt-tc)/math.Abs(tc)) {
		base := EventQuantileMode + "/" + cohortType(r.Cohort) + "/" + evqKind(l) + "/" + o.scale
		tl.add("interval/"+base, o.hasInterval)
		if !o.hasInterval {
			continue
		}
		tl.add("unbounded/"+base, o.unbounded)
		tl.add("coverage/"+base, !o.below && !o.above && !o.gap)
		tl.add("below/"+base, o.below)
		tl.add("above/"+base, o.above)
	}
	// Reported, not judged: how often the interval that treated every
	// event as independent (each arm's SE over √(design effect)) would
	// have covered the absolute truth.
	if q := r.Quantile; q.SEControl != nil && q.SEVariant != nil && q.DesignEffectControl != nil && q.DesignEffectVariant != nil && q.AbsEffect != nil {
		se := math.Hypot(*q.SEControl/math.Sqrt(*q.DesignEffectControl), *q.SEVariant/math.Sqrt(*q.DesignEffectVariant))
		z := distuv.UnitNormal.Quantile(1 - alpha/2)
		miss := math.Abs(*q.AbsEffect-(tt-tc)) > z*se
		tl.add("iid-coverage/"+EventQuantileMode+"/"+cohortType(r.Cohort)+"/"+evqKind(l)+"/absolute", !miss)
	}
	if !planted && r.Cohort == expspec.AllCohort {
		tl.add("aa-final/"+EventQuantileMode+"/"+evqKind(l), r.PValue != nil && *r.PValue < alpha)
	}
	return true
}

// judgeEventQuantiles adds the event-level quantiles' checks.
func judgeEventQuantiles(add func(key, side, what string, nominal float64)) {
	for _, ct := range []string{"all", "leaf"} {
		for _, l := range evqLevels {
			for _, scale := range []string{"absolute", "relative"} {
				base := EventQuantileMode + "/" + ct + "/" + evqKind(l) + "/" + scale
				if scale == "absolute" {
					add("interval/"+base, "at least", "rows with an interval", 1)
				}
				add("coverage/"+base, "two-sided", "coverage", 1-alpha)
				add("below/"+base, "two-sided", "interval below the truth", alpha/2)
				add("above/"+base, "two-sided", "interval above the truth", alpha/2)
			}
		}
	}
	for _, l := range evqLevels {
		add("aa-final/"+EventQuantileMode+"/"+evqKind(l), "two-sided", "A/A significant at the final night", alpha)
	}
}

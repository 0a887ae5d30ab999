package calibrate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// Exact quantiles mode (issue 20): coverage of the quantile difference
// intervals (stats.CompareQuantiles through the pinned SQL, histograms@v1)
// on planted data whose population quantiles are known in closed form.
//
// Each dataset has QuantileUnits units in each of two experiments (an A/A
// and one whose treatment multiplies every spend by 1.1), randomised 50/50
// and into personas a and b with probability 1/2 each. A unit has one
// trace on the first day and, with probability 1 − quantileZero, one
// "spend" event whose value is lognormal(μ, σ); otherwise no event (its
// per-unit value is 0, from the template's rule for units without events).
// With fixed-point decimals 2, a unit's value is round(100·X)/100, and
// since rounding is monotone the p-quantile of the rounded values is the
// rounded p-quantile of X:
//
//	q_p = 0 for p ≤ z,  q_p = exp(μ + σ·Φ⁻¹((p − z)/(1 − z))) otherwise,
//
// (z = quantileZero), times 1.1 in the planted treatment. The truth of the
// absolute difference is round(100·q_t)/100 − round(100·q_c)/100, of the
// relative one that over round(100·q_c)/100. Every cohort has the (all)
// truth. Levels 0.5, 0.9 and 0.99; the final night only.
const (
	quantileZero  = 0.1
	quantileMu    = 3.0
	quantileSigma = 0.8
	quantileLift  = 1.1
	quantileDays  = 2
)

// QuantileMode is the mode name of the exact quantiles tallies.
const QuantileMode = "exact quantiles"

var quantileLevels = []float64{0.5, 0.9, 0.99}

// quantileKind is the tally's metric kind of a level.
func quantileKind(level float64) string { return "quantile-" + expspec.QuantileLabel(level) }

// RunQuantiles runs the exact quantiles mode over cfg.Seeds with cfg.Units
// units per experiment and returns its tallies (Judge judges them with the
// others). cfg.Nights is ignored: the final night only.
func RunQuantiles(ctx context.Context, cfg Config) (Tally, error) {
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	total := Tally{}
	for i, seed := range cfg.Seeds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		tl, err := quantileDataset(ctx, cfg, seed)
		if err != nil {
			return nil, fmt.Errorf("quantiles seed %d: %w", seed, err)
		}
		total.merge(tl)
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf("quantile dataset %d/%d (seed %d) in %.1fs", i+1, len(cfg.Seeds), seed, time.Since(t0).Seconds()))
		}
	}
	return total, nil
}

var quantileExperiments = []struct {
	id      string
	planted bool
}{{"q-aa", false}, {"q-ab", true}}

// writeQuantileData writes one dataset's traces and events.
func writeQuantileData(dir string, seed uint64, units int) error {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	// The events' channel (filters.go) comes from a stream of its own, so
	// the values and assignments are the same with or without it.
	channels := rand.New(rand.NewPCG(seed, 0x5bd1e9955bd1e995))
	latency := evqStream(seed) // evquantiles.go
	str := func(s string) *string { return &s }
	var traces []fixtures.TraceRow
	var events []channelEventRow
	for _, e := range quantileExperiments {
		for i := range units {
			id := fmt.Sprintf("%s-u%06d", e.id, i)
			variant := "control"
			if rng.Float64() >= 0.5 {
				variant = "treatment"
			}
			persona := "a"
			if rng.Float64() >= 0.5 {
				persona = "b"
			}
			ts := windowStart.Add(time.Duration(rng.IntN(20*3600)) * time.Second).UnixMicro()
			traces = append(traces, fixtures.TraceRow{TS: &ts, UnitID: str(id), ExperimentID: str(e.id), Variant: str(variant),
				FlagKey: str(e.id), Persona: str(persona), EventID: str("t-" + id)})
			events = append(events, latencyEvents(latency, id, ts, e.planted && variant == "treatment")...)
			if rng.Float64() < quantileZero {
				continue
			}
			v := math.Exp(quantileMu + quantileSigma*rng.NormFloat64())
			if e.planted && variant == "treatment" {
				v *= quantileLift
			}
			ets := ts + 60_000_000
			events = append(events, channelEventRow{TS: &ets, UnitID: str(id), Metric: str("spend"), Value: &v, EventID: str("e-" + id), Channel: channelOf(channels.Float64())})
		}
	}
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "traces.parquet"), traces); err != nil {
		return err
	}
	return parquet.WriteFile(filepath.Join(dir, "events.parquet"), events)
}

// channelEventRow is an event with the property column channel.
type channelEventRow struct {
	TS      *int64   `parquet:"ts,timestamp(microsecond:utc)"`
	UnitID  *string  `parquet:"unit_id"`
	Metric  *string  `parquet:"metric"`
	Value   *float64 `parquet:"value"`
	EventID *string  `parquet:"event_id"`
	Channel *string  `parquet:"channel"`
}

// quantileSpecYAML is the spec of one quantile experiment.
func quantileSpecYAML(id string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexperiment: %s\n", id)
	b.WriteString("inputs: {traces: [traces.parquet], events: [events.parquet], event_properties: [channel]}\n")
	fmt.Fprintf(&b, "window: {start: %s, end: %s}\n", windowStart.Format(time.RFC3339), windowStart.AddDate(0, 0, quantileDays).Format(time.RFC3339))
	b.WriteString("variants:\n  - {name: control, allocation: 0.5, control: true}\n  - {name: treatment, allocation: 0.5}\n")
	// events@v9 (filtered metrics) gives events@v6's results for the
	// unfiltered ones (golden/filter_reference_test.go, versions_test.go).
	b.WriteString("templates: {traces: v7, assignment: v5, events: v9, unit_metrics: v5, sufstats: v3, quality: v4, histograms: v2, filter_counts: v1, eventbins: v1}\n")
	b.WriteString("cohorts: {dimension: persona, taxonomy: [a, b]}\nmetrics:\n")
	for _, l := range quantileLevels {
		fmt.Fprintf(&b, "  - {name: spend_%s, kind: quantile, level: %g, event: spend, aggregate: sum, clamp: {lower: 0, upper: 1000000}, attribution_hours: %d}\n",
			expspec.QuantileLabel(l), l, quantileDays*24)
	}
	for _, q := range capLevels {
		fmt.Fprintf(&b, "  - {name: %s, kind: mean, event: spend, aggregate: sum, clamp: {lower: 0, upper: 1000000}, cap: {upper_quantile: %g}, attribution_hours: %d}\n",
			capMetric(q), q, quantileDays*24)
	}
	b.WriteString(evqSpecLines())
	fmt.Fprintf(&b, "  - {name: spend_web, kind: mean, event: spend, aggregate: sum, clamp: {lower: 0, upper: 1000000}, filter: {channel: [web]}, attribution_hours: %d}\n", quantileDays*24)
	fmt.Fprintf(&b, "  - {name: converted_web, kind: proportion, event: spend, filter: {channel: [web]}, attribution_hours: %d}\n", quantileDays*24)
	fmt.Fprintf(&b, "statistics: {alpha: %g, fixed_point_decimals: 2}\nprivacy: {enabled: false}\n", alpha)
	return b.String()
}

// quantileTruth is the rounded population p-quantile of an arm.
func quantileTruth(p float64, treated bool) float64 {
	if p <= quantileZero {
		return 0
	}
	q := math.Exp(quantileMu + quantileSigma*distuv.UnitNormal.Quantile((p-quantileZero)/(1-quantileZero)))
	if treated {
		q *= quantileLift
	}
	return math.Round(q*100) / 100
}

// quantileDataset generates, analyses and tallies one dataset.
func quantileDataset(ctx context.Context, cfg Config, seed uint64) (Tally, error) {
	dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("quantiles-%d", seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeQuantileData(dir, seed, cfg.Units); err != nil {
		return nil, err
	}
	var specs []*expspec.Spec
	for _, e := range quantileExperiments {
		s, err := expspec.ParseSpec(filepath.Join(dir, e.id+".yaml"), []byte(quantileSpecYAML(e.id)))
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	date := windowStart.AddDate(0, 0, quantileDays-1).Format("2006-01-02")
	ins, err := pipeline.CalibrationPass(ctx, specs, pipeline.Options{Date: date, Engine: engine.Engine{Threads: 1}})
	if err != nil {
		return nil, err
	}
	tl := Tally{}
	for k, e := range quantileExperiments {
		rows, _, _, _, err := pipeline.CalibrationExact(specs[k], ins[k])
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if r.Cohort != expspec.UnclassifiedLeaf && (capTallies(tl, r, e.planted) || filterTallies(tl, r, e.planted) || evqTallies(tl, r, e.planted)) {
				continue
			}
			q := r.Quantile
			if q == nil || r.Cohort == expspec.UnclassifiedLeaf {
				continue // every unit has persona a or b: _unclassified is empty by design
			}
			tc, tt := quantileTruth(q.Level, false), quantileTruth(q.Level, e.planted)
			for _, o := range observeQuantile(r, tt-tc, (tt-tc)/math.Abs(tc)) {
				base := QuantileMode + "/" + cohortType(r.Cohort) + "/" + quantileKind(q.Level) + "/" + o.scale
				tl.add("interval/"+base, o.hasInterval)
				if !o.hasInterval {
					continue
				}
				tl.add("unbounded/"+base, o.unbounded)
				tl.add("coverage/"+base, !o.below && !o.above && !o.gap)
				tl.add("below/"+base, o.below)
				tl.add("above/"+base, o.above)
			}
			if !e.planted && r.Cohort == expspec.AllCohort {
				tl.add("aa-final/"+QuantileMode+"/"+quantileKind(q.Level), r.PValue != nil && *r.PValue < alpha)
			}
		}
	}
	return tl, nil
}

// observeQuantile compares a quantile row's absolute interval and relative
// (Fieller) set with the truth. An exclusive Fieller set misses when the
// truth lies in its gap, on the side where the data lie.
func observeQuantile(r analysis.ResultRow, abs, rel float64) []observation {
	q := r.Quantile
	o := observation{scale: "absolute"}
	if r.AbsCILow != nil && r.AbsCIHigh != nil {
		o.hasInterval = true
		o.below, o.above = *r.AbsCIHigh < abs, *r.AbsCILow > abs
	}
	out := []observation{o}
	o = observation{scale: "relative"}
	switch {
	case r.RelCILow != nil && r.RelCIHigh != nil:
		o.hasInterval = true
		o.below, o.above = *r.RelCIHigh < rel, *r.RelCILow > rel
	case r.Status == stats.StatusRelativeUnbounded:
		o.hasInterval, o.unbounded = true, true
		if q.FiellerShape == "exclusive" && q.RelFiellerLow != nil && q.RelFiellerHigh != nil && *q.RelFiellerLow < rel && rel < *q.RelFiellerHigh {
			o.gap = true
			if *q.AbsEffect-rel*math.Abs(*q.QuantileControl) > 0 {
				o.above = true
			} else {
				o.below = true
			}
		}
	}
	return append(out, o)
}

// QuantileQuickSeeds are the exact quantiles mode's seeds in `make test`,
// fixed before any run.
func QuantileQuickSeeds() []uint64 { return QuantileSeeds(24) }

// QuantileSeeds are the exact quantiles mode's n seeds (the full suite's),
// fixed before any run: do not edit them to make a run pass.
func QuantileSeeds(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = 2_000_029 + uint64(i)*104_729
	}
	return s
}

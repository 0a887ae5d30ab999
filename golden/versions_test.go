package golden

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// equivalentVersions lists template versions released as faster or leaner
// rewrites of an earlier version with exactly the same results. Each must
// reproduce every output byte of the version it replaces.
var equivalentVersions = []struct {
	name, from, to string
}{
	{"traces", "v1", "v2"},
	{"assignment", "v1", "v2"},
	{"events", "v1", "v2"},
}

// runWithPins runs spec with the given template pins and returns its
// outputs (the manifest, which names the templates, is left out).
func runWithPins(t *testing.T, spec *expspec.Spec, pins map[string]string) map[string][]byte {
	t.Helper()
	s := *spec
	s.Templates = map[string]string{}
	for k, v := range spec.Templates {
		s.Templates[k] = v
	}
	for k, v := range pins {
		s.Templates[k] = v
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), &s, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}})
	var gate *analysis.GateError
	if err != nil && !(errors.As(err, &gate) && res != nil) { // a blocked run still commits
		t.Fatalf("pins %v: %v", pins, err)
	}
	out := map[string][]byte{}
	for _, f := range []string{"results.csv", "results.parquet", "quality.json", "decisions.json"} {
		b, err := os.ReadFile(filepath.Join(res.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

func checkEquivalent(t *testing.T, spec *expspec.Spec) {
	t.Helper()
	old := map[string]string{}
	new := map[string]string{}
	for _, v := range equivalentVersions {
		old[v.name], new[v.name] = v.from, v.to
	}
	a, b := runWithPins(t, spec, old), runWithPins(t, spec, new)
	for f := range a {
		if !bytes.Equal(withoutSpecHash(t, f, a[f]), withoutSpecHash(t, f, b[f])) {
			t.Errorf("%s differs between %v and %v", f, old, new)
		}
	}
}

// TestEquivalentVersionsOnFixtures: every exact fixture spec gives the same
// bytes with the rewritten templates. Private specs are left out by design:
// their noise streams are bound to the exact SQL (a template change draws
// fresh noise rather than publishing the difference of two releases).
func TestEquivalentVersionsOnFixtures(t *testing.T) {
	for _, p := range specPaths(t) {
		t.Run(caseName(p), func(t *testing.T) {
			spec, err := expspec.LoadSpec(p)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Privacy.Enabled {
				t.Skip("private: noise is bound to the exact templates")
			}
			if spec.HasQuantiles() || spec.HasCaps() {
				t.Skip("quantiles and caps: histograms need the single-join unit values, which the older layouts lack")
			}
			if spec.Interactions != nil {
				t.Skip("interactions: the interactions template needs the single-join unit values, which the older layouts lack")
			}
			if len(spec.CrossMomentPairs()) > 0 {
				t.Skip("other metrics' pre-periods: the crossmoments template needs the single-join unit values, which the older layouts lack")
			}
			if spec.HasFilters() {
				t.Skip("filtered metrics: only events@v9 applies filters (filter_reference_test.go holds it to events@v7 without filters)")
			}
			if spec.Drilldowns != nil {
				t.Skip("drill-downs: the drilldown template needs the single-join assignment and unit values, which the older layouts lack")
			}
			checkEquivalent(t, spec)
		})
	}
}

// TestEquivalentVersionsUnderFaults: a generated dataset with every fault at
// a high rate (duplicates, retries, NULL keys, stale versions, unknown
// variants, invalid values, far timestamps, multi-variant units), where
// the duplicate rules matter most.
func TestEquivalentVersionsUnderFaults(t *testing.T) {
	dir := faultyDataset(t)
	base, err := os.ReadFile("../fixtures/specs/checkout-button.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base = bytes.ReplaceAll(base, []byte("../data/basic/"), []byte("data/"))
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, base, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	checkEquivalent(t, spec)
}

// faultyDataset generates 3,000 units with every fault at a high rate into
// a temporary folder's data/ and returns the folder.
func faultyDataset(t *testing.T) string {
	t.Helper()
	cfg := fixtures.DefaultConfig()
	cfg.Units = 3000
	f := &cfg.Faults
	f.Duplicates, f.Retries, f.NullKeys, f.StalePersona = 0.05, 0.04, 0.02, 0.05
	f.UnknownVariants, f.InvalidValues, f.HugeValues, f.FarTimestamps = 0.02, 0.02, 0.02, 0.02
	f.MultiVariant, f.NullEventIDs, f.EarlyEvents, f.LateEvents = 0.05, 0.03, 0.05, 0.05
	dir := t.TempDir()
	if _, err := fixtures.Generate(context.Background(), cfg, filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEquivalentVersionsOnConflictingCopies: duplicates whose copies differ
// (in time, value, variant, persona, even unit), so that which copy is kept
// changes the numbers. Generated retries differ by seconds only; this
// dataset makes the keep-the-first rule decide every duplicate.
func TestEquivalentVersionsOnConflictingCopies(t *testing.T) {
	checkEquivalent(t, conflictingCopiesSpec(t))
}

// conflictingCopiesSpec writes the dataset of
// TestEquivalentVersionsOnConflictingCopies and returns its spec. Some
// units also have several distinct traces whose personas differ (later,
// at the same time with a NULL persona, at the same time with a smaller
// one), so that the earliest-row persona rule decides their cohort.
func conflictingCopiesSpec(t *testing.T) *expspec.Spec {
	t.Helper()
	dir := t.TempDir()
	s := func(v string) *string { return &v }
	f := func(v float64) *float64 { return &v }
	us := func(day, minute int) *int64 {
		v := int64(1_763_251_200_000_000) + int64(day)*86_400_000_000 + int64(minute)*60_000_000 // 2025-11-16 + day
		return &v
	}
	var tr []fixtures.TraceRow
	var ev []fixtures.EventRow
	variants := []string{"control", "treatment"}
	personas := []string{"power/mobile", "casual/mobile"}
	for u := 0; u < 400; u++ {
		unit := s(fmt.Sprintf("u%03d", u))
		id := s(fmt.Sprintf("t%03d", u))
		tr = append(tr, fixtures.TraceRow{TS: us(1, u), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[u%2]), Persona: s(personas[u%2]), EventID: id})
		if u%5 == 0 { // a conflicting copy: later, the other variant and persona
			tr = append(tr, fixtures.TraceRow{TS: us(1, u+30), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[(u+1)%2]), Persona: s(personas[(u+1)%2]), EventID: id})
		}
		if u%7 == 0 { // an earlier conflicting copy, in the other variant
			tr = append(tr, fixtures.TraceRow{TS: us(1, u-1), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[(u+1)%2]), Persona: s(personas[u%2]), EventID: id})
		}
		switch u % 11 { // more traces of the same unit, with other personas
		case 1: // later, another persona: the earliest row's persona stays
			tr = append(tr, fixtures.TraceRow{TS: us(1, u+10), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[u%2]), Persona: s(personas[(u+1)%2]), EventID: s(fmt.Sprintf("x%03d", u))})
		case 2: // at the same time with a NULL persona: the non-NULL one wins
			tr = append(tr, fixtures.TraceRow{TS: us(1, u), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[u%2]), EventID: s(fmt.Sprintf("x%03d", u))})
		case 3: // at the same time with another persona: the smaller wins
			tr = append(tr, fixtures.TraceRow{TS: us(1, u), UnitID: unit, ExperimentID: s("exp"), Variant: s(variants[u%2]), Persona: s(personas[(u+1)%2]), EventID: s(fmt.Sprintf("x%03d", u))})
		}
		// Events on the boundaries: exactly at exposure (counts), a minute
		// before (pre-period), exactly at the one-day CUPED lookback edge
		// (counts as pre-period) and a minute beyond it (does not), and
		// exactly at the window end (does not count).
		exposure := us(1, u)
		for j, at := range []int64{0, -60_000_000, -86_400_000_000, -86_460_000_000} {
			ts := *exposure + at
			ev = append(ev, fixtures.EventRow{TS: &ts, UnitID: unit, Metric: s("buy"), Value: f(float64(j) + 1.25), EventID: s(fmt.Sprintf("b%03d-%d", u, j))})
		}
		end := int64(1_763_251_200_000_000) + 4*86_400_000_000
		ev = append(ev, fixtures.EventRow{TS: &end, UnitID: unit, Metric: s("buy"), Value: f(3), EventID: s(fmt.Sprintf("w%03d", u))})
		for k := 0; k < 3; k++ {
			eid := s(fmt.Sprintf("e%03d-%d", u, k))
			ev = append(ev, fixtures.EventRow{TS: us(2, u+k), UnitID: unit, Metric: s("buy"), Value: f(float64(u%9) + 0.5), EventID: eid})
			switch (u + k) % 6 {
			case 0: // a later copy with another value
				ev = append(ev, fixtures.EventRow{TS: us(2, u+k+5), UnitID: unit, Metric: s("buy"), Value: f(99.25), EventID: eid})
			case 1: // an earlier copy with another value
				ev = append(ev, fixtures.EventRow{TS: us(2, u+k-5), UnitID: unit, Metric: s("buy"), Value: f(0.75), EventID: eid})
			case 2: // a copy at the same time with a NULL value (sorts first)
				ev = append(ev, fixtures.EventRow{TS: us(2, u+k), UnitID: unit, Metric: s("buy"), EventID: eid})
			case 3: // a copy on another unit
				ev = append(ev, fixtures.EventRow{TS: us(2, u+k), UnitID: s(fmt.Sprintf("u%03d", (u+1)%400)), Metric: s("buy"), Value: f(7), EventID: eid})
			}
		}
	}
	os.MkdirAll(filepath.Join(dir, "traces"), 0o755)
	os.MkdirAll(filepath.Join(dir, "events"), 0o755)
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "traces", "t.parquet"), tr); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteEventFile(filepath.Join(dir, "events", "e.parquet"), ev); err != nil {
		t.Fatal(err)
	}
	spec := `version: 1
experiment: exp
inputs: {traces: ["traces/*.parquet"], events: ["events/*.parquet"]}
window: {start: 2025-11-16, end: 2025-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}
cohorts: {dimension: persona, taxonomy: [power/mobile, casual/mobile]}
metrics:
  - {name: revenue, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 500}}
  - {name: buys, kind: mean, event: buy, aggregate: count, clamp: {lower: 0, upper: 50}}
  - {name: bought, kind: proportion, event: buy}
  - {name: revenue_per_buy, kind: ratio, event: buy, aggregate: sum, clamp: {lower: 0, upper: 500}, denominator: {event: buy, aggregate: count, clamp: {lower: 0, upper: 50}}}
statistics: {cuped: {lookback_days: 1}}
quality: {trace_duplicate_rate: {block: 2}, event_duplicate_rate: {block: 2}}
privacy: {enabled: false}
`
	p := filepath.Join(dir, "spec.yaml")
	os.WriteFile(p, []byte(spec), 0o644)
	sp, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

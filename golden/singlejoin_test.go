package golden

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// The single-join set replaces all six templates at once: it is a new
// layout (no per-row tables, integer keys, one join of the events for
// every experiment of a run), not a rewrite of one template. It must reproduce, byte for
// byte, the per-event layout with the same attribution rules (conversion
// windows): unit_metrics@v3 with the templates it goes with.
var (
	perEventPins   = map[string]string{"traces": "v2", "assignment": "v2", "events": "v2", "unit_metrics": "v3", "sufstats": "v2", "quality": "v2"}
	singleJoinPins = map[string]string{"traces": "v5", "assignment": "v4", "events": "v4", "unit_metrics": "v5", "sufstats": "v3", "quality": "v3"}
	// events@v11 is events@v4 with event_units grouped once (issue 18,
	// part 5): the same bytes as singleJoinPins.
	singleJoinV11Pins = map[string]string{"traces": "v5", "assignment": "v4", "events": "v11", "unit_metrics": "v5", "sufstats": "v3", "quality": "v3"}
	// events@v13 is events@v4 with DuckDB's join order and build sides
	// fixed to the text's (issue 18, part 5): the same bytes again.
	singleJoinV13Pins = map[string]string{"traces": "v5", "assignment": "v4", "events": "v13", "unit_metrics": "v5", "sufstats": "v3", "quality": "v3"}
	// The unit-keyed set's first release and its faster rewrites (issue 18:
	// traces@v7 and events@v6 test blank keys without running trim on every
	// row; traces@v8 and events@v7 are those planned without DuckDB's
	// build/probe side swap; traces@v9, assignment@v6 and events@v10 group
	// the (experiment, unit) pairs once, for many experiments in one pass),
	// which must give the same bytes, faults and blank keys included.
	unitKeyedV1Pins = map[string]string{"traces": "v6", "assignment": "v5", "events": "v5", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	unitKeyedV2Pins = map[string]string{"traces": "v7", "assignment": "v5", "events": "v6", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	unitKeyedV3Pins = map[string]string{"traces": "v8", "assignment": "v5", "events": "v7", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	unitKeyedPins   = map[string]string{"traces": "v9", "assignment": "v6", "events": "v12", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	// Each rewrite of issue 18's part 5 with the previous versions of the
	// others, so that a difference names the template that made it.
	unitKeyedTracesV9Pins  = map[string]string{"traces": "v9", "assignment": "v6", "events": "v7", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	unitKeyedEventsV10Pins = map[string]string{"traces": "v8", "assignment": "v5", "events": "v10", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	unitKeyedEventsV12Pins = map[string]string{"traces": "v8", "assignment": "v5", "events": "v12", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}
	// The first release of the set, which traces@v4, assignment@v4,
	// events@v4 and unit_metrics@v5 made faster.
	singleJoinV3Pins = map[string]string{"traces": "v3", "assignment": "v3", "events": "v3", "unit_metrics": "v4", "sufstats": "v3", "quality": "v3"}
)

// runGroupWithPins runs specs together (one SQL pass for those that share
// inputs, as a nightly run does) with the given pins on 2 DuckDB threads and
// returns each experiment's outputs.
func runGroupWithPins(t *testing.T, specs []*expspec.Spec, pins map[string]string) map[string]map[string][]byte {
	return runGroupWithPinsThreads(t, specs, pins, 2)
}

func runGroupWithPinsThreads(t *testing.T, specs []*expspec.Spec, pins map[string]string, threads int) map[string]map[string][]byte {
	t.Helper()
	var pinned []*expspec.Spec
	for _, spec := range specs {
		s := *spec
		s.Templates = map[string]string{}
		for k, v := range pins {
			s.Templates[k] = v
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		pinned = append(pinned, &s)
	}
	out := map[string]map[string][]byte{}
	for _, res := range pipeline.RunAll(context.Background(), pinned, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: threads}}) {
		var gate *analysis.GateError
		if res.Outcome == nil || (res.Err != nil && !errors.As(res.Err, &gate)) { // a blocked run still commits
			t.Fatalf("%s with pins %v: %v %s", res.Experiment, pins, res.Err, res.Skipped)
		}
		files := map[string][]byte{}
		for _, f := range []string{"results.csv", "results.parquet", "quality.json", "decisions.json"} {
			b, err := os.ReadFile(filepath.Join(res.Outcome.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		out[res.Experiment] = files
	}
	return out
}

func checkSingleJoin(t *testing.T, specs ...*expspec.Spec) {
	t.Helper()
	a := runGroupWithPins(t, specs, perEventPins)
	if len(a) != len(specs) {
		t.Fatalf("want %d experiments, got %d", len(specs), len(a))
	}
	// The set's row keys (uid) follow DuckDB's execution order and its
	// aggregates run in parallel: 1 and 4 threads must give the same bytes.
	runs := []struct {
		pins    map[string]string
		threads int
	}{{singleJoinPins, 1}, {singleJoinPins, 4}, {singleJoinV3Pins, 2}, {singleJoinV11Pins, 3}, {singleJoinV13Pins, 3}}
	for _, r := range runs {
		b := runGroupWithPinsThreads(t, specs, r.pins, r.threads)
		for exp, files := range a {
			for f, want := range files {
				got, ok := b[exp][f]
				// Each pin set is its own spec, whose hash every row names:
				// compare the rows with that column blanked.
				want, got = withoutSpecHash(t, f, want), withoutSpecHash(t, f, got)
				if !ok || !bytes.Equal(want, got) {
					t.Errorf("%s %s differs between the per-event templates and %v on %d threads:\n%s", exp, f, r.pins, r.threads, firstDiff(want, got))
				}
			}
		}
	}
}

// checkUnitKeyedRewrite runs specs with the unit-keyed set's first release
// and with each of its rewrites and compares every output file byte for
// byte (the spec hash blanked: the pins are part of the spec).
func checkUnitKeyedRewrite(t *testing.T, specs ...*expspec.Spec) {
	t.Helper()
	a := runGroupWithPins(t, specs, unitKeyedV1Pins)
	for _, pins := range []map[string]string{unitKeyedV2Pins, unitKeyedV3Pins, unitKeyedTracesV9Pins, unitKeyedEventsV10Pins, unitKeyedEventsV12Pins, unitKeyedPins} {
		b := runGroupWithPinsThreads(t, specs, pins, 3)
		if len(a) != len(specs) || len(b) != len(specs) {
			t.Fatalf("want %d experiments, got %d and %d", len(specs), len(a), len(b))
		}
		for exp, files := range a {
			for f, want := range files {
				got, ok := b[exp][f]
				want, got = withoutSpecHash(t, f, want), withoutSpecHash(t, f, got)
				if !ok || !bytes.Equal(want, got) {
					t.Errorf("%s %s differs between %v and %v:\n%s", exp, f, unitKeyedV1Pins, pins, firstDiff(want, got))
				}
			}
		}
	}
}

// withoutSpecHash blanks what identifies the spec itself, for comparing
// the outputs of two specs that must give the same numbers: the
// spec_sha256 column of results.csv and results.parquet (re-encoded by the
// pipeline's own, deterministic encoder) and the success-criteria block
// of decisions.json and line of report.html (their hash covers the
// metrics' definitions); other files pass unchanged.
func withoutSpecHash(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	switch name {
	case "results.csv":
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(rows) == 0 {
			t.Fatalf("results.csv: %v", err)
		}
		col := slices.Index(rows[0], "spec_sha256")
		if col < 0 {
			t.Fatal("results.csv has no spec_sha256 column")
		}
		var out bytes.Buffer
		w := csv.NewWriter(&out)
		for i, r := range rows {
			if i > 0 {
				r[col] = "-"
			}
			w.Write(r)
		}
		w.Flush()
		return out.Bytes()
	case "results.parquet":
		rows, err := parquet.Read[analysis.ResultRow](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("results.parquet: %v", err)
		}
		for i := range rows {
			rows[i].SpecSHA256 = "-"
		}
		out, err := publish.EncodeResultsParquet(rows)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case "decisions.json":
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("decisions.json: %v", err)
		}
		if _, ok := d["criteria"]; !ok {
			t.Fatal("decisions.json has no criteria block")
		}
		delete(d, "criteria")
		out, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return out
	case "report.html":
		if !criteriaLine.Match(b) {
			t.Fatal("report.html has no criteria line")
		}
		return criteriaLine.ReplaceAll(b, nil)
	}
	return b
}

var criteriaLine = regexp.MustCompile(`(?m)^<p id="criteria".*</p>\n`)

// firstDiff shows the first differing line of two outputs.
func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  per-event:   %.300s\n  single-join: %.300s", i+1, x, y)
		}
	}
	return "(binary difference)"
}

func loadSpecs(t *testing.T, private bool) []*expspec.Spec {
	t.Helper()
	var out []*expspec.Spec
	for _, p := range specPaths(t) {
		spec, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		// Quantile metrics and percentile caps need histograms@v1/v2 over
		// the single-join unit values: they have no per-event layout to
		// be compared with (their own tests: quantile_reference_test.go,
		// capped_reference_test.go, shard_test.go). Interactions need the
		// interactions template over the same values (interactions_test.go),
		// regressions on other metrics' pre-period values the crossmoments
		// template (vr_reference_test.go). Filtered metrics need events@v9
		// (filter_reference_test.go, which also holds v9 without filters
		// to events@v7's bytes), drill-downs the drilldown template
		// (drill_reference_test.go).
		if spec.Privacy.Enabled == private && !spec.HasQuantiles() && !spec.HasCaps() && spec.Interactions == nil && len(spec.CrossMomentPairs()) == 0 && !spec.HasFilters() && spec.Drilldowns == nil {
			out = append(out, spec)
		}
	}
	return out
}

// TestSingleJoinOnFixtures: every exact fixture spec on its own, and all of
// them in one run, where the specs on the same files share one join.
func TestSingleJoinOnFixtures(t *testing.T) {
	specs := loadSpecs(t, false)
	for _, s := range specs {
		t.Run(s.Experiment, func(t *testing.T) { checkSingleJoin(t, s) })
	}
	// One spec per experiment: a run analyses an experiment once.
	var together []*expspec.Spec
	seen := map[string]bool{}
	for _, s := range specs {
		if !seen[s.Experiment] {
			seen[s.Experiment] = true
			together = append(together, s)
		}
	}
	if len(together) < 3 {
		t.Fatalf("want at least three experiments to run together, got %d", len(together))
	}
	t.Run("together", func(t *testing.T) { checkSingleJoin(t, together...) })
	t.Run("unit-keyed rewrite", func(t *testing.T) { checkUnitKeyedRewrite(t, together...) })
}

// TestSingleJoinUnderFaults: the fault-laden dataset (faultyDataset),
// analysed by two experiments at once
// with a ratio, CUPED and metrics on the same event with different
// conversion windows (so one event meets several attribution windows).
func TestSingleJoinUnderFaults(t *testing.T) {
	dir := faultyDataset(t)
	var specs []*expspec.Spec
	for _, name := range []string{"checkout-button", "onboarding-flow"} {
		base, err := os.ReadFile("../fixtures/specs/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		base = bytes.ReplaceAll(base, []byte("../data/basic/"), []byte("data/"))
		base = regexp.MustCompile(`(?m)^templates: .*$`).ReplaceAll(base, []byte("templates: {traces: v2, assignment: v2, events: v2, unit_metrics: v3, sufstats: v2, quality: v2}"))
		extra := map[string]string{
			// Three conversion windows on purchase, one of them longer
			// than the analysis window, and a clamp that lifts units
			// without events to 1 session; the session metric also makes
			// both specs use the same events, so they share one pass.
			"checkout-button": "  - {name: converted_1d, kind: proportion, event: purchase, attribution_hours: 24}\n" +
				"  - {name: revenue_5d, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 300}, attribution_hours: 120}\n" +
				"  - {name: sessions_floor, kind: mean, event: session, aggregate: count, clamp: {lower: 1, upper: 40}}\n",
			// A ratio whose numerator and denominator are lifted above 0
			// (so units without events add non-zero x, y and c), over a
			// 48-hour conversion window, with CUPED.
			"onboarding-flow": "  - {name: revenue_per_session_floor, kind: ratio, event: purchase, aggregate: sum, clamp: {lower: 0.5, upper: 500}, denominator: {event: session, aggregate: count, clamp: {lower: 1, upper: 40}}, attribution_hours: 48}\n",
		}[name]
		base = bytes.Replace(base, []byte("metrics:\n"), []byte("metrics:\n"+extra), 1)
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, base, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, spec)
	}
	if len(specs[0].Metrics) != 6 || len(specs[1].Metrics) != 5 {
		t.Fatalf("the extra metrics were not added: %d and %d metrics", len(specs[0].Metrics), len(specs[1].Metrics))
	}
	checkSingleJoin(t, specs...)
	t.Run("alone", func(t *testing.T) { checkSingleJoin(t, specs[1]) })
	t.Run("unit-keyed rewrite", func(t *testing.T) { checkUnitKeyedRewrite(t, specs...) })
}

// TestSingleJoinOnConflictingCopies: duplicates whose copies differ, events
// exactly on the exposure, lookback and window boundaries, and units whose
// traces disagree on the persona (golden/versions_test.go's dataset).
func TestSingleJoinOnConflictingCopies(t *testing.T) {
	checkSingleJoin(t, conflictingCopiesSpec(t))
	t.Run("unit-keyed rewrite", func(t *testing.T) { checkUnitKeyedRewrite(t, conflictingCopiesSpec(t)) })
}

// TestSingleJoinWithWholeWindowAttribution: with every conversion window as
// long as the analysis window, the single-join set counts events until the
// window ends, as the v1 and v2 templates do, and must give their bytes:
// each exact fixture spec with its own pins against the single-join set.
func TestSingleJoinWithWholeWindowAttribution(t *testing.T) {
	for _, spec := range loadSpecs(t, false) {
		t.Run(caseName(spec.Path()), func(t *testing.T) {
			start, end := spec.Window.Bounds()
			whole := *spec
			whole.Metrics = append([]expspec.Metric(nil), spec.Metrics...)
			for i := range whole.Metrics {
				whole.Metrics[i].AttributionHours = int(end.Sub(start).Hours())
			}
			a := runGroupWithPins(t, []*expspec.Spec{spec}, spec.Templates)
			b := runGroupWithPins(t, []*expspec.Spec{&whole}, singleJoinPins)
			for f, want := range a[spec.Experiment] {
				got := withoutSpecHash(t, f, b[spec.Experiment][f])
				if want := withoutSpecHash(t, f, want); !bytes.Equal(want, got) {
					t.Errorf("%s differs between pins %v and the single-join set:\n%s", f, spec.Templates, firstDiff(want, got))
				}
			}
		})
	}
}

// TestSingleJoinOverflowingCell: a cell whose exact sums do not fit in
// 128 bits (units at the top of a clamp near the int64 limit, and one unit
// without events lifted to the clamp's floor). The single-join set adds the
// terms of units without events in SQL; it must fail such a run as the
// per-event templates do (DuckDB refuses the HUGEINT addition: a data error,
// exit 65, no outputs), never return a wrapped or truncated sum.
func TestSingleJoinOverflowingCell(t *testing.T) {
	dir := t.TempDir()
	s := func(v string) *string { return &v }
	day := int64(1_763_251_200_000_000) // 2025-11-16
	at := func(min int) *int64 { v := day + 86_400_000_000 + int64(min)*60_000_000; return &v }
	var tr []fixtures.TraceRow
	var ev []fixtures.EventRow
	for u := 0; u < 3; u++ {
		unit := s(fmt.Sprintf("u%d", u))
		tr = append(tr, fixtures.TraceRow{TS: at(u), UnitID: unit, ExperimentID: s("exp"), Variant: s("control"), Persona: s("a"), EventID: s(fmt.Sprintf("t%d", u))})
		if u < 2 {
			v := 9.19e12
			ev = append(ev, fixtures.EventRow{TS: at(u + 5), UnitID: unit, Metric: s("buy"), Value: &v, EventID: s(fmt.Sprintf("e%d", u))})
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
templates: {traces: v2, assignment: v2, events: v2, unit_metrics: v3, sufstats: v2, quality: v2}
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: revenue, kind: mean, event: buy, aggregate: sum, clamp: {lower: 9.1e12, upper: 9.19e12}, attribution_hours: 96}
privacy: {enabled: false}
`
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	sp, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pins := range []map[string]string{perEventPins, singleJoinPins, singleJoinV3Pins} {
		s := *sp
		s.Templates = pins
		_, err := pipeline.Run(context.Background(), &s, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}})
		if err == nil || pipeline.ExitCode(err) != pipeline.ExitData || !strings.Contains(strings.ToLower(err.Error()), "overflow") {
			t.Errorf("pins %v: want a data error (exit %d) about the overflow, got exit %d: %v", pins, pipeline.ExitData, pipeline.ExitCode(err), err)
		}
	}
}

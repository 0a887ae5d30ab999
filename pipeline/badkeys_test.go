package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
)

// TestBlankKeysAreCountedNotMerged: rows whose unit_id is empty or blank
// must not become one pseudo-unit, and events whose metric name is NULL or
// blank must not vanish. With the unit-keyed templates both are counted
// exclusions with a quality check; the same data through the single-join set
// before it merges the blank ids into one unit (the trap this fixes).
func TestBlankKeysAreCountedNotMerged(t *testing.T) {
	dir := t.TempDir()
	ts := func(h int) *int64 { return ptr(int64(1794873600_000000) + int64(h)*3600_000000) }
	var traces []fixtures.TraceRow
	var events []fixtures.EventRow
	for i, u := range []string{"u1", "u2", "u3", "u4"} {
		v := []string{"control", "treatment"}[i%2]
		traces = append(traces, fixtures.TraceRow{TS: ts(1), UnitID: ptr(u), ExperimentID: ptr("exp"), Variant: ptr(v), Persona: ptr("a")})
		events = append(events, fixtures.EventRow{TS: ts(2), UnitID: ptr(u), Metric: ptr("buy"), Value: ptr(1.0)})
	}
	for i, blank := range []string{"", " ", "\t", "  ", "", "\n"} {
		v := []string{"control", "treatment"}[i%2]
		traces = append(traces, fixtures.TraceRow{TS: ts(1), UnitID: ptr(blank), ExperimentID: ptr("exp"), Variant: ptr(v), Persona: ptr("a")})
		events = append(events, fixtures.EventRow{TS: ts(2), UnitID: ptr(blank), Metric: ptr("buy"), Value: ptr(1.0)})
	}
	for _, name := range []*string{nil, ptr(""), ptr("  ")} {
		events = append(events, fixtures.EventRow{TS: ts(3), UnitID: ptr("u1"), Metric: name, Value: ptr(1.0)})
	}
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "t.parquet"), traces); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteEventFile(filepath.Join(dir, "e.parquet"), events); err != nil {
		t.Fatal(err)
	}
	run := func(pins string) engine.Quality {
		spec := `version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: ` + pins + `
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy, attribution_hours: 96}
privacy: {enabled: false}
`
		p := filepath.Join(dir, "spec.yaml")
		if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		o, err := pipeline.Run(context.Background(), s, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}})
		if o == nil {
			t.Fatalf("run: %v", err)
		}
		return o.Quality
	}
	old := run("{traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}")
	// The trap: five distinct blank ids become five pseudo-units, and the
	// two rows with "" are merged into one of them.
	if old.UnitsExposed != 9 {
		t.Errorf("single-join set: %d units exposed; this test expects the trap it documents (4 units + 5 blank pseudo-units)", old.UnitsExposed)
	}
	q := run("{traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}")
	if q.UnitsExposed != 4 || q.UnitsAssigned != 4 {
		t.Errorf("unit-keyed set: %d units exposed, %d assigned; want the 4 real units", q.UnitsExposed, q.UnitsAssigned)
	}
	if privatize.Opt64(q.TraceNoUnit) != 6 || q.TraceNullKeys != 6 {
		t.Errorf("trace rows with no unit: %d (null keys %d), want 6", privatize.Opt64(q.TraceNoUnit), q.TraceNullKeys)
	}
	if privatize.Opt64(q.EventNoUnit) != 6 || q.EventNullKeys != 6 {
		t.Errorf("events with no unit: %d (null keys %d), want 6", privatize.Opt64(q.EventNoUnit), q.EventNullKeys)
	}
	if privatize.Opt64(q.EventNullMetric) != 3 || privatize.Opt64(q.UnitsEventNullMetric) != 1 {
		t.Errorf("events with no metric name: %d rows, %d units; want 3 rows of 1 unit", privatize.Opt64(q.EventNullMetric), privatize.Opt64(q.UnitsEventNullMetric))
	}
	if q.EventAttributed != 4 {
		t.Errorf("attributed events %d, want the 4 real units' events", q.EventAttributed)
	}
	// traces@v7 and events@v6 test blank keys with a cheaper expression
	// (issue 18): the same quality counts, blank keys included.
	fast := run("{traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4}")
	if !reflect.DeepEqual(fast, q) {
		t.Errorf("traces@v7/events@v6 quality differs from traces@v6/events@v5:\n%+v\n%+v", fast, q)
	}
	// traces@v8 and events@v7 are v7/v6 planned without DuckDB's
	// build/probe side swap: the same counts again.
	if noSwap := run("{traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4}"); !reflect.DeepEqual(noSwap, q) {
		t.Errorf("traces@v8/events@v7 quality differs from traces@v6/events@v5:\n%+v\n%+v", noSwap, q)
	}
	// traces@v9, assignment@v6 and events@v10 group the (experiment, unit)
	// pairs once (issue 18, part 5): the same counts, per-unit gates included.
	for _, pins := range []string{
		"{traces: v9, assignment: v6, events: v10, unit_metrics: v5, sufstats: v3, quality: v4}",
		"{traces: v9, assignment: v6, events: v12, unit_metrics: v5, sufstats: v3, quality: v4}",
	} {
		if grouped := run(pins); !reflect.DeepEqual(grouped, q) {
			t.Errorf("%s: quality differs from traces@v6/events@v5:\n%+v\n%+v", pins, grouped, q)
		}
	}
}

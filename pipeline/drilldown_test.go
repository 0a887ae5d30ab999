package pipeline_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// drillData writes hostile drill-down traces: units whose sdk_version is a
// value, NULL, the empty string, the literal text "(null)", units whose
// rows at the exposure instant disagree (two values; NULL and a value),
// and one whose later row has another value; flag_version (BIGINT) gives
// a second, integer dimension.
func drillData(t *testing.T, dir string) {
	t.Helper()
	ts := func(h int) *int64 { return ptr(int64(1794873600_000000) + int64(h)*3600_000000) }
	var traces []fixtures.TraceRow
	var events []fixtures.EventRow
	n := 0
	add := func(sdk *string, flag int64, rows ...func(*fixtures.TraceRow)) string {
		n++
		u := unitID(n)
		v := []string{"control", "treatment"}[n%2]
		traces = append(traces, fixtures.TraceRow{TS: ts(1), UnitID: ptr(u), ExperimentID: ptr("exp"), Variant: ptr(v), Persona: ptr("a"), SDKVersion: sdk, FlagVersion: ptr(flag)})
		for _, f := range rows {
			r := traces[len(traces)-1]
			f(&r)
			traces = append(traces, r)
		}
		if n%3 == 0 {
			events = append(events, fixtures.EventRow{TS: ts(2), UnitID: ptr(u), Metric: ptr("buy"), Value: ptr(float64(n))})
		}
		return u
	}
	for i := 0; i < 10; i++ {
		add(ptr("ios"), 7)
		add(ptr("android"), 12)
	}
	for i := 0; i < 6; i++ {
		add(nil, 7)
	}
	for i := 0; i < 4; i++ {
		add(ptr(""), 7)
	}
	add(ptr("(null)"), 7)
	add(ptr("(null)"), 7)
	// Tied: two values at the exposure instant (kept in "android"), and
	// NULL beside a value (kept in "ios"); a later row's value is not the
	// first exposure's.
	add(ptr("ios"), 7, func(r *fixtures.TraceRow) { r.SDKVersion = ptr("android") })
	add(nil, 7, func(r *fixtures.TraceRow) { r.SDKVersion = ptr("ios") })
	add(ptr("ios"), 7, func(r *fixtures.TraceRow) { r.TS, r.SDKVersion = ts(2), ptr("android") })
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "t.parquet"), traces); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteEventFile(filepath.Join(dir, "e.parquet"), events); err != nil {
		t.Fatal(err)
	}
}

// drillSpec writes a spec over drillData with the given drilldowns and
// privacy sections.
func drillSpec(t *testing.T, dir, drill, privacy string) *expspec.Spec {
	t.Helper()
	spec := `version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3, drilldown: v1}
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal, attribution_hours: 96}
  - {name: spend, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 100}, attribution_hours: 96}
drilldowns: ` + drill + `
privacy: ` + privacy + `
`
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func drillRows(t *testing.T, final string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(final, publish.DrilldownFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// TestDrilldownHostileValues: NULL, empty and "(null)" are three slices
// that never merge; tied units are counted and kept in the smallest value;
// a dimension above max_values gets one status row and no numbers; an
// integer column slices by its text.
func TestDrilldownHostileValues(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	spec := drillSpec(t, dir, "{dimensions: [sdk_version, flag_version], max_values: 5}", "{enabled: false}")
	o, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	type slice struct{ kind, value, units, tied string }
	got := map[string][]slice{}
	for _, r := range drillRows(t, o.Dir) {
		if r["metric"] == "spend" {
			continue
		}
		got[r["dimension"]] = append(got[r["dimension"]], slice{r["slice_kind"], r["slice"], r["units"], r["units_tied"]})
	}
	want := map[string][]slice{
		// Byte order: "" < "(null)" < "android" < "ios"; NULL last.
		"sdk_version":  {{"value", "", "4", "0"}, {"value", "(null)", "2", "0"}, {"value", "android", "11", "1"}, {"value", "ios", "12", "1"}, {"null", "", "6", "0"}},
		"flag_version": {{"value", "12", "10", "0"}, {"value", "7", "25", "0"}},
	}
	for d, w := range want {
		if len(got[d]) != len(w) {
			t.Errorf("%s: slices %v, want %v", d, got[d], w)
			continue
		}
		for i := range w {
			if got[d][i] != w[i] {
				t.Errorf("%s slice %d: %v, want %v", d, i, got[d][i], w[i])
			}
		}
	}
	// Every unit is in exactly one slice.
	var total int
	for _, s := range got["sdk_version"] {
		var n int
		for _, c := range s.units {
			n = n*10 + int(c-'0')
		}
		total += n
	}
	if total != int(o.Quality.UnitsAssigned) || total != 35 {
		t.Errorf("slices hold %d units, %d assigned (want 35 both)", total, o.Quality.UnitsAssigned)
	}

	// Above the cap: one row, its status and count, no numbers.
	spec = drillSpec(t, dir, "{dimensions: [sdk_version, flag_version], max_values: 4}", "{enabled: false}")
	o, err = pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	rows := drillRows(t, o.Dir)
	if r := rows[0]; r["dimension"] != "sdk_version" || r["status"] != "too_many_values" || r["dimension_values"] != "5" || r["units"] != "35" || r["abs_effect"] != "" || r["metric"] != "" ||
		!strings.Contains(r["detail"], "max_values 4") {
		t.Errorf("capped dimension row: %v", r)
	}
	// (Its "12" slice holds android units only, all in one arm: a missing
	// arm, and an exact-binomial SRM p-value.)
	if rows[1]["dimension"] != "flag_version" || rows[1]["slice"] != "12" || rows[1]["status"] != "missing arm" || rows[1]["srm_p_value"] == "" {
		t.Errorf("the second dimension is within the cap and analysed: %v", rows[1])
	}
}

// TestDrilldownColumnTypo: a dimension no trace file has fails before any
// SQL with exit 78, naming the key, the file and the columns it has; it
// never becomes a dimension of NULLs. A key column is refused as a
// dimension, and so are private and sharded specs.
func TestDrilldownColumnTypo(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	spec := drillSpec(t, dir, "{dimensions: [sdk_versoin]}", "{enabled: false}")
	out := t.TempDir()
	_, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 1}})
	var se *expspec.SpecError
	if !errors.As(err, &se) || se.Key != "drilldowns.dimensions[0]" || pipeline.ExitCode(err) != 78 {
		t.Fatalf("typo: %v (exit %d), want a SpecError at drilldowns.dimensions[0], exit 78", err, pipeline.ExitCode(err))
	}
	for _, want := range []string{`"sdk_versoin"`, "t.parquet", "sdk_version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("typo error %q does not name %s", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "exp")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(out, "exp"))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("a refused run wrote %s", e.Name())
			}
		}
	}
	for _, c := range []struct{ name, drill, privacy, key string }{
		{"key column", "{dimensions: [unit_id]}", "{enabled: false}", "drilldowns.dimensions[0]"},
		{"listed twice", "{dimensions: [sdk_version, sdk_version]}", "{enabled: false}", "drilldowns.dimensions[1]"},
		{"not an identifier", "{dimensions: [\"sdk version\"]}", "{enabled: false}", "drilldowns.dimensions[0]"},
		{"cap", "{dimensions: [sdk_version], max_values: 100000}", "{enabled: false}", "drilldowns.max_values"},
		{"private without declared values", "{dimensions: [sdk_version]}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.values.sdk_version"},
		{"private, a value listed twice", "{dimensions: [sdk_version], values: {sdk_version: [ios, android, ios]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.values.sdk_version[2]"},
		{"private, values of an undeclared dimension", "{dimensions: [sdk_version], values: {sdk_version: [ios], sdk_versoin: [ios]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.values.sdk_versoin"},
		{"private, an empty list", "{dimensions: [sdk_version], values: {sdk_version: []}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.values.sdk_version"},
		{"private, a cap", "{dimensions: [sdk_version], max_values: 5, values: {sdk_version: [ios]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.max_values"},
		{"private, a share of 1", "{dimensions: [sdk_version], budget_share: 1, values: {sdk_version: [ios]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.budget_share"},
		{"private, shares leave nothing", "{dimensions: [sdk_version], budget_share: 0.5, values: {sdk_version: [ios]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY, gate_share: 0.5}", "drilldowns.budget_share"},
		{"private, a NULL value", "{dimensions: [sdk_version], values: {sdk_version: [ios, ~]}}", "{enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_TEST_KEY}", "drilldowns.values.sdk_version[1]"},
		{"exact, declared values", "{dimensions: [sdk_version], values: {sdk_version: [ios]}}", "{enabled: false}", "drilldowns.values"},
		{"exact, a budget share", "{dimensions: [sdk_version], budget_share: 0.2}", "{enabled: false}", "drilldowns.budget_share"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := `version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4, drilldown: v1}
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal, attribution_hours: 96}
drilldowns: ` + c.drill + `
privacy: ` + c.privacy + `
`
			_, err := expspec.ParseSpec(filepath.Join(dir, "s.yaml"), []byte(spec))
			var se *expspec.SpecError
			if !errors.As(err, &se) || se.Key != c.key || pipeline.ExitCode(err) != 78 {
				t.Errorf("got %v, want a SpecError at %s (exit 78)", err, c.key)
			}
		})
	}
	s := drillSpec(t, dir, "{dimensions: [sdk_version]}", "{enabled: false}")
	var sse *expspec.SpecError
	if err := s.ShardableError(); !errors.As(err, &sse) || sse.Key != "drilldowns" {
		t.Errorf("sharded drill-down: %v, want a refusal at drilldowns", err)
	}
}

// narrowTrace is a trace row of a file without the optional columns.
type narrowTrace struct {
	TS           *int64  `parquet:"ts,timestamp(microsecond:utc)"`
	UnitID       *string `parquet:"unit_id"`
	ExperimentID *string `parquet:"experiment_id"`
	Variant      *string `parquet:"variant"`
}

// TestDrilldownColumnMissingFromOneFile: when one trace file lacks the
// dimension (its rows would read as NULL), the run fails with exit 65
// naming that file and the column, before any output.
func TestDrilldownColumnMissingFromOneFile(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	ts := int64(1794873600_000000) + 3600_000000
	f, err := os.Create(filepath.Join(dir, "t2.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(f, []narrowTrace{{TS: &ts, UnitID: ptr("late"), ExperimentID: ptr("exp"), Variant: ptr("control")}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	spec := drillSpec(t, dir, "{dimensions: [sdk_version]}", "{enabled: false}")
	b, err := os.ReadFile(spec.Path())
	if err != nil {
		t.Fatal(err)
	}
	spec, err = expspec.ParseSpec(spec.Path(), bytes.Replace(b, []byte("traces: [t.parquet]"), []byte("traces: [t.parquet, t2.parquet]"), 1))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 1}})
	var ie *intake.InputError
	if !errors.As(err, &ie) || pipeline.ExitCode(err) != 65 || !strings.HasSuffix(ie.File, "t2.parquet") || ie.Column != "sdk_version" {
		t.Fatalf("a file without the dimension: %v (exit %d), want an InputError naming t2.parquet and sdk_version, exit 65", err, pipeline.ExitCode(err))
	}
	if _, err := os.Stat(filepath.Join(out, "exp", "2026-11-19")); err == nil {
		t.Error("a failed run committed its folder")
	}
}

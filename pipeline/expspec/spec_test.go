package expspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

const baseSpec = `version: 1
experiment: checkout-button
inputs:
  traces: ["data/traces/"]
  events: ["data/events/*.parquet"]
window:
  start: 2026-11-16T00:00:00Z
  end: 2026-11-20
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts:
  dimension: persona
  taxonomy: [power/mobile, casual/mobile]
metrics:
  - {name: converted, kind: proportion, event: purchase}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}}
privacy: {enabled: false}
`

func TestParseSpecValid(t *testing.T) {
	s, err := expspec.ParseSpec("specs/a.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Statistics.Alpha != 0.05 || *s.Statistics.FixedPointDecimals != 6 || s.Scale() != 1_000_000 {
		t.Errorf("defaults not applied: %+v", s.Statistics)
	}
	start, end := s.Window.Bounds()
	if start.Format("2006-01-02T15") != "2026-11-16T00" || end.Format("2006-01-02T15") != "2026-11-20T00" {
		t.Errorf("window = %v, %v", start, end)
	}
	if s.Control() != "control" {
		t.Errorf("control = %q", s.Control())
	}
	// The canonical form does not depend on the YAML layout.
	reordered := strings.Replace(baseSpec, "persona_algo_version: pa-2\n", "", 1)
	reordered = strings.Replace(reordered, "version: 1\n", "version: 1\npersona_algo_version: pa-2\n", 1)
	s2, err := expspec.ParseSpec("specs/b.yaml", []byte(reordered))
	if err != nil {
		t.Fatal(err)
	}
	_, h1, _ := s.Canonical()
	_, h2, _ := s2.Canonical()
	if h1 != h2 {
		t.Errorf("canonical hash depends on key order: %s vs %s", h1, h2)
	}
	s2.Metrics[1].Clamp.Upper = 999
	if _, h3, _ := s2.Canonical(); h3 == h1 {
		t.Error("canonical hash ignores a clamp change")
	}
}

// The single-join set validates when pinned whole, and its conversion
// windows are allowed (unit_metrics@v4 computes them).
func TestParseSpecSingleJoinSet(t *testing.T) {
	text := strings.Replace(baseSpec, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
		"templates: {traces: v3, assignment: v3, events: v3, unit_metrics: v4, sufstats: v3, quality: v3}", 1)
	text = strings.Replace(text, "event: purchase}", "event: purchase, attribution_hours: 24}", 1)
	if _, err := expspec.ParseSpec("specs/a.yaml", []byte(text)); err != nil {
		t.Fatal(err)
	}
}

// traces@v9 writes trace_units in a layout only assignment@v6 reads
// (issue 18, part 5): the unit-keyed set validates with the pair and with
// the previous pair, and a mix of the two is refused naming both.
func TestUnitKeyedTracesAssignmentPair(t *testing.T) {
	for _, tc := range []struct {
		pins, wantErr string
	}{
		{"traces: v9, assignment: v6, events: v10", ""},
		{"traces: v9, assignment: v6, events: v7", ""},
		{"traces: v8, assignment: v5, events: v10", ""},
		{"traces: v9, assignment: v5, events: v10", "traces@v9 and assignment@v5 do not fit together"},
		{"traces: v8, assignment: v6, events: v10", "traces@v8 and assignment@v6 do not fit together"},
	} {
		text := strings.Replace(baseSpec, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
			"templates: {"+tc.pins+", unit_metrics: v5, sufstats: v3, quality: v4}", 1)
		_, err := expspec.ParseSpec("specs/a.yaml", []byte(text))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.pins, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v, want an error containing %q", tc.pins, err, tc.wantErr)
		}
	}
}

// engine.Statements splits a template at lines whose code ends with ";",
// not at a ";" inside a comment or in the middle of a line.
func TestStatements(t *testing.T) {
	text := "-- header; not an end\nCREATE TABLE a AS SELECT 1;\n\nSELECT ';' AS x, 2; -- end\nSELECT 3\n"
	got := engine.Statements(text)
	want := []string{"-- header; not an end\nCREATE TABLE a AS SELECT 1;\n", "\nSELECT ';' AS x, 2; -- end\n", "SELECT 3\n"}
	if len(got) != len(want) {
		t.Fatalf("got %d statements %q, want %q", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d = %q, want %q", i, got[i], want[i])
		}
	}
	if n := len(engine.Statements("SELECT 1\n")); n != 1 {
		t.Errorf("a template without ';' is %d statements, want 1", n)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(string) string
		wantKey   string // the key the SpecError names
		wantInMsg string
	}{
		{"unknown key", func(s string) string { return s + "colour: blue\n" }, "", `unknown key "colour"`},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, "  dimension: persona", "  dimension: persona\n  dimensions: x", 1)
		}, "", `unknown key "dimensions"`},
		{"missing version", func(s string) string { return strings.Replace(s, "version: 1\n", "", 1) }, "version", "missing"},
		{"future version", func(s string) string { return strings.Replace(s, "version: 1", "version: 2", 1) }, "version", "unsupported"},
		{"bad experiment", func(s string) string { return strings.Replace(s, "checkout-button", "../etc", 1) }, "experiment", "letters"},
		{"no traces", func(s string) string { return strings.Replace(s, `traces: ["data/traces/"]`, "traces: []", 1) }, "inputs.traces", "glob"},
		{"window order", func(s string) string { return strings.Replace(s, "end: 2026-11-20", "end: 2026-11-01", 1) }, "window", "after"},
		{"window not utc", func(s string) string {
			return strings.Replace(s, "2026-11-16T00:00:00Z", "2026-11-16T00:00:00+02:00", 1)
		}, "window.start", "UTC"},
		{"window garbage", func(s string) string { return strings.Replace(s, "end: 2026-11-20", "end: tomorrow", 1) }, "window.end", "RFC 3339"},
		{"allocations", func(s string) string { return strings.Replace(s, "allocation: 0.5}", "allocation: 0.6}", 1) }, "variants", "sum to 1"},
		{"two controls", func(s string) string {
			return strings.Replace(s, "allocation: 0.5}", "allocation: 0.5, control: true}", 1)
		}, "variants", "exactly one"},
		{"duplicate variant", func(s string) string { return strings.Replace(s, "name: treatment", "name: control", 1) }, "variants[1].name", "duplicate"},
		{"missing template", func(s string) string { return strings.Replace(s, "quality: v1", "", 1) }, "templates.quality", "pinned"},
		{"bad template version", func(s string) string { return strings.Replace(s, "sufstats: v1", "sufstats: latest", 1) }, "templates.sufstats", "v1"},
		{"unknown template", func(s string) string { return strings.Replace(s, "quality: v1", "quality: v1, extra: v1", 1) }, "templates.extra", "unknown"},
		{"parent listed as leaf", func(s string) string {
			return strings.Replace(s, "[power/mobile, casual/mobile]", "[power/mobile, power]", 1)
		}, "cohorts.taxonomy", "parent"},
		{"bad leaf", func(s string) string { return strings.Replace(s, "power/mobile,", "power//mobile,", 1) }, "cohorts.taxonomy[0]", "path"},
		{"mean without clamp", func(s string) string { return strings.Replace(s, ", clamp: {lower: 0, upper: 1000}", "", 1) }, "metrics[1].clamp", "required"},
		{"clamp on proportion", func(s string) string {
			return strings.Replace(s, "event: purchase}", "event: purchase, clamp: {lower: 0, upper: 1}}", 1)
		}, "metrics[0].clamp", "not allowed"},
		{"bad kind", func(s string) string { return strings.Replace(s, "kind: proportion", "kind: median", 1) }, "metrics[0].kind", "proportion, mean, ratio or quantile"},
		{"bad aggregate", func(s string) string { return strings.Replace(s, "aggregate: sum", "aggregate: max", 1) }, "metrics[1].aggregate", "sum or count"},
		{"clamp overflow", func(s string) string { return strings.Replace(s, "upper: 1000}", "upper: 1e15}", 1) }, "metrics[1]", "overflows"},
		{"bad alpha", func(s string) string { return s + "statistics: {alpha: 0.7}\n" }, "statistics.alpha", "(0, 0.5)"},
		{"mapping to non-contract column", func(s string) string {
			return strings.Replace(s, `  events: ["data/events/*.parquet"]`, "  events: [\"data/events/*.parquet\"]\n  columns: {traces: {user: uid}}", 1)
		}, "inputs.columns.traces.user", "contract"},
		{"mapping to unsafe identifier", func(s string) string {
			return strings.Replace(s, `  events: ["data/events/*.parquet"]`, "  events: [\"data/events/*.parquet\"]\n  columns: {traces: {unit_id: \"a; DROP\"}}", 1)
		}, "inputs.columns.traces.unit_id", "column name"},
		{"ratio needs v2 templates", func(s string) string {
			s = strings.Replace(s, "kind: mean", "kind: ratio", 1)
			return strings.Replace(s, "upper: 1000}}", "upper: 1000}, denominator: {event: s, aggregate: count, clamp: {lower: 0, upper: 9}}}", 1)
		}, "templates.unit_metrics", "cannot compute ratio"},
		{"duplicate yaml key", func(s string) string {
			return strings.Replace(s, "kind: mean", "kind: mean, kind: ratio", 1)
		}, "", "already defined"},
		{"ratio without denominator", func(s string) string {
			return strings.Replace(s, "kind: mean", "kind: ratio", 1)
		}, "metrics[1].denominator", "required"},
		{"cuped needs v2", func(s string) string { return s + "statistics: {cuped: {lookback_days: 7}}\n" }, "templates.unit_metrics", "cannot compute cuped"},
		{"attribution needs v3", func(s string) string {
			s = strings.Replace(s, "unit_metrics: v1, sufstats: v1", "unit_metrics: v2, sufstats: v2", 1)
			return strings.Replace(s, "upper: 1000}}", "upper: 1000}, attribution_hours: 24}", 1)
		}, "templates.unit_metrics", "cannot compute attribution"},
		{"v2 sufstats with v1 unit metrics", func(s string) string { return strings.Replace(s, "sufstats: v1", "sufstats: v2", 1) }, "templates", "do not fit"},
		{"guardrail without rule", func(s string) string {
			return strings.Replace(s, "event: purchase}", "event: purchase, role: guardrail}", 1)
		}, "metrics[0].guardrail", "required"},
		{"guardrail bad direction", func(s string) string {
			return strings.Replace(s, "event: purchase}", "event: purchase, role: guardrail, guardrail: {harmful: up, margin: 1}}", 1)
		}, "metrics[0].guardrail.harmful", "increase or decrease"},
		{"direction on secondary", func(s string) string {
			return strings.Replace(s, "event: purchase}", "event: purchase, direction: decrease}", 1)
		}, "metrics[0].direction", "only goals"},
		{"bad correction", func(s string) string { return s + "statistics: {correction: bonferroni}\n" }, "statistics.correction", "holm, bh or none"},
		{"bad n_star", func(s string) string { return s + "statistics: {sequential: {n_star: 1}}\n" }, "statistics.sequential.n_star", ">= 2"},
		{"unknown quality check", func(s string) string { return s + "quality: {made_up_rate: {warn: 0.1}}\n" }, "quality.made_up_rate", "unknown check"},
		{"quality warn above block", func(s string) string { return s + "quality: {trace_duplicate_rate: {warn: 0.5, block: 0.1}}\n" }, "quality.trace_duplicate_rate", "above block"},
		{"missing privacy", func(s string) string { return strings.Replace(s, "privacy: {enabled: false}\n", "", 1) }, "privacy", "required"},
		{"privacy without budget", func(s string) string {
			return strings.Replace(s, "privacy: {enabled: false}", "privacy: {enabled: true}", 1)
		}, "privacy", "epsilon"},
		{"single-join set pinned in part", func(s string) string {
			return strings.Replace(s, "events: v1, unit_metrics: v1", "events: v3, unit_metrics: v4", 1)
		}, "templates", "pin all six or none"},
		{"single-join traces and assignment of two releases", func(s string) string {
			return strings.Replace(s, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
				"templates: {traces: v4, assignment: v3, events: v3, unit_metrics: v4, sufstats: v3, quality: v3}", 1)
		}, "templates", "traces@v4 and v5 go with assignment@v4"},
		{"two documents", func(s string) string { return s + "---\nversion: 1\n" }, "", "more than one"},
		{"not yaml", func(string) string { return "version: [1\n" }, "", "YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/x.yaml", []byte(tc.edit(baseSpec)))
			var se *expspec.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("want *SpecError, got %v", err)
			}
			if se.File != "specs/x.yaml" || se.Key != tc.wantKey || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Fatalf("got file %q key %q msg %q; want key %q containing %q", se.File, se.Key, err, tc.wantKey, tc.wantInMsg)
			}
			if pipeline.ExitCode(err) != pipeline.ExitConfig {
				t.Errorf("exit code %d, want %d", pipeline.ExitCode(err), pipeline.ExitConfig)
			}
		})
	}
}

// FuzzParseSpec checks the loader never panics and that every accepted spec
// is valid and canonicalisable.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(baseSpec))
	f.Add([]byte("version: 1\n"))
	f.Add([]byte("version: 1\nexperiment: [\n"))
	f.Add([]byte(strings.Replace(baseSpec, "0.5", "NaN", 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := expspec.ParseSpec("fuzz.yaml", data)
		if err != nil {
			var se *expspec.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error is not a *SpecError: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted spec fails Validate: %v", err)
		}
		if _, _, err := s.Canonical(); err != nil {
			t.Fatalf("accepted spec has no canonical form: %v", err)
		}
	})
}

// A spec with several faults of one kind gets the same error every time:
// the message must not depend on map iteration order.
func TestValidateErrorsAreDeterministic(t *testing.T) {
	cases := []struct{ name, edit, want string }{
		{"two unknown templates", "quality: v1, zeta: v1, alpha: v1", `templates.alpha`},
		{"a parent of two leaves", "taxonomy: [power/mobile/a, power/mobile/b, power/mobile, casual/mobile]", `"power/mobile" is listed as a leaf but is the parent of "power/mobile/a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(baseSpec, "quality: v1", c.edit, 1)
			if strings.HasPrefix(c.edit, "taxonomy") {
				text = strings.Replace(baseSpec, "taxonomy: [power/mobile, casual/mobile]", c.edit, 1)
			}
			for i := 0; i < 50; i++ {
				_, err := expspec.ParseSpec("specs/a.yaml", []byte(text))
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("run %d: got %v, want an error naming %s", i, err, c.want)
				}
			}
		})
	}
}

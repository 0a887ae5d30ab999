package expspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// quantileSpec is a valid spec with a p90 quantile metric on the
// single-join unit-keyed set.
const quantileSpec = `version: 1
experiment: checkout-button
inputs:
  traces: ["data/traces/"]
  events: ["data/events/*.parquet"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4, histograms: v1}
cohorts: {dimension: persona, taxonomy: [power/mobile, casual/mobile]}
metrics:
  - {name: converted, kind: proportion, event: purchase}
  - {name: revenue_p90, kind: quantile, level: 0.9, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}}
privacy: {enabled: false}
`

func TestQuantileSpecValid(t *testing.T) {
	s, err := expspec.ParseSpec("specs/q.yaml", []byte(quantileSpec))
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasQuantiles() || s.Metrics[1].Level != 0.9 || s.Metrics[1].Role != "secondary" {
		t.Errorf("quantile metric not parsed: %+v", s.Metrics[1])
	}
	got := strings.Join(s.PinnedTemplateNames(), ",")
	if got != "traces,assignment,events,unit_metrics,sufstats,quality,histograms" {
		t.Errorf("pinned templates %s", got)
	}
	b, _, err := s.Canonical()
	if err != nil || !strings.Contains(string(b), `"level":0.9`) || !strings.Contains(string(b), `"histograms":"v1"`) {
		t.Errorf("canonical form lacks the level or the pin: %s (%v)", b, err)
	}
	// A spec without quantiles keeps its canonical form: no level key.
	plain, err := expspec.ParseSpec("specs/a.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := plain.Canonical(); strings.Contains(string(b), "level") || strings.Contains(string(b), "histograms") {
		t.Errorf("a spec without quantiles has quantile keys: %s", b)
	}
	for lvl, want := range map[float64]string{0.5: "p50", 0.9: "p90", 0.99: "p99", 0.999: "p99.9", 0.25: "p25"} {
		if got := expspec.QuantileLabel(lvl); got != want {
			t.Errorf("QuantileLabel(%v) = %s, want %s", lvl, got, want)
		}
	}
}

func TestEventQuantileSpecValid(t *testing.T) {
	src := strings.Replace(quantileSpec, "level: 0.9, event: purchase, aggregate: sum,", "level: 0.9, over: events, event: purchase,", 1)
	src = strings.Replace(src, "histograms: v1", "eventbins: v1", 1)
	s, err := expspec.ParseSpec("specs/q.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Metrics[1]
	if !m.EventLevel() || m.NeedsHistogram() || !s.HasEventQuantiles() || !s.HasQuantiles() {
		t.Errorf("event-level metric not recognised: %+v", m)
	}
	if got := strings.Join(s.PinnedTemplateNames(), ","); got != "traces,assignment,events,unit_metrics,sufstats,quality,eventbins" {
		t.Errorf("pinned templates %s", got)
	}
	// over: units is the default, written or not.
	u, err := expspec.ParseSpec("specs/q.yaml", []byte(strings.Replace(quantileSpec, "level: 0.9,", "level: 0.9, over: units,", 1)))
	if err != nil || u.Metrics[1].EventLevel() || !u.Metrics[1].NeedsHistogram() {
		t.Errorf("over: units: %v %+v", err, u)
	}
	plain, _ := expspec.ParseSpec("specs/q.yaml", []byte(quantileSpec))
	if b, _, _ := plain.Canonical(); strings.Contains(string(b), `"over"`) {
		t.Errorf("a spec without over has the key in its canonical form: %s", b)
	}
}

func TestQuantileSpecErrors(t *testing.T) {
	q := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("test edit: %q not in the spec", old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	cases := []struct {
		name     string
		edit     func(string) string
		key, msg string
	}{
		{"level missing", q("level: 0.9, ", ""), "metrics[1].level", "required"},
		{"level one", q("level: 0.9", "level: 1"), "metrics[1].level", "strictly between 0 and 1"},
		{"level negative", q("level: 0.9", "level: -0.5"), "metrics[1].level", "strictly between 0 and 1"},
		{"level percent", q("level: 0.9", "level: 90"), "metrics[1].level", "strictly between 0 and 1"},
		{"level NaN", q("level: 0.9", "level: .nan"), "metrics[1].level", "strictly between 0 and 1"},
		{"level on a mean", q("kind: quantile", "kind: mean"), "metrics[1].level", "only quantile metrics"},
		{"level typo", q("level: 0.9", "levle: 0.9"), "", `unknown key "levle"`},
		{"kind typo", q("kind: quantile", "kind: quantiles"), "metrics[1].kind", "quantile"},
		{"no aggregate", q("aggregate: sum, ", ""), "metrics[1].aggregate", "sum or count"},
		{"no clamp", q(", clamp: {lower: 0, upper: 1000}", ""), "metrics[1].clamp", "required"},
		{"no histograms pin", q(", histograms: v1", ""), "templates.histograms", "required for quantile metrics"},
		{"histograms v3", q("histograms: v1", "histograms: v3"), "templates.histograms", "want v1 or v2"},
		{"histograms without quantiles", q("kind: quantile, level: 0.9", "kind: mean"), "templates.histograms", "no quantile metric or percentile cap"},
		{"cap on a quantile", q("level: 0.9,", "level: 0.9, cap: {upper_quantile: 0.99},"), "metrics[1].cap", "only mean metrics"},
		{"cap needs v2", q("kind: quantile, level: 0.9,", "kind: mean, cap: {upper_quantile: 0.99},"), "templates.histograms", "pin histograms: v2"},
		{"cap level", func(s string) string {
			return strings.Replace(strings.Replace(s, "kind: quantile, level: 0.9,", "kind: mean, cap: {upper_quantile: 99},", 1), "histograms: v1", "histograms: v2", 1)
		}, "metrics[1].cap.upper_quantile", "strictly between 0 and 1"},
		{"cap typo", q("level: 0.9,", "level: 0.9, cap: {upper_quantil: 0.99},"), "", `unknown key "upper_quantil"`},
		{"cap private", func(s string) string {
			s = strings.Replace(strings.Replace(s, "kind: quantile, level: 0.9,", "kind: mean, cap: {upper_quantile: 0.99},", 1), "histograms: v1", "histograms: v2", 1)
			return strings.Replace(s, "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_env: K}", 1)
		}, "metrics[1].cap", "breaks the per-unit bound"},
		{"histogram typo", q("histograms: v1", "histogram: v1"), "templates.histogram", "unknown template"},
		{"goal", q("clamp: {lower: 0, upper: 1000}}", "clamp: {lower: 0, upper: 1000}, role: goal}"), "metrics[1].role", "reported, not decided on"},
		{"cuped", func(s string) string { return s + "statistics: {cuped: {lookback_days: 7}}\n" }, "statistics.cuped", "not available with quantile"},
		{"sequential", func(s string) string { return s + "statistics: {sequential: {n_star: 1000}}\n" }, "statistics.sequential", "fixed-horizon"},
		{"private", q("privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_env: K}"), "metrics[1].kind", "no differentially private quantile"},
		{"old unit_metrics", q("traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4", "traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1"), "templates.unit_metrics", "single-join"},
	}
	// Event-level quantiles (over: events).
	ev := func(edits ...func(string) string) func(string) string {
		return func(s string) string {
			s = strings.Replace(s, "level: 0.9, event: purchase, aggregate: sum,", "level: 0.9, over: events, event: purchase,", 1)
			s = strings.Replace(s, "histograms: v1", "eventbins: v1", 1)
			for _, e := range edits {
				s = e(s)
			}
			return s
		}
	}
	cases = append(cases, []struct {
		name     string
		edit     func(string) string
		key, msg string
	}{
		{"over typo", ev(q("over: events", "over: event")), "metrics[1].over", "want units"},
		{"over key typo", ev(q("over: events", "ovr: events")), "", `unknown key "ovr"`},
		{"over on a mean", ev(q("kind: quantile, level: 0.9, over: events", "kind: mean, over: events, aggregate: sum")), "metrics[1].over", "only quantile metrics"},
		{"over events with aggregate", ev(q("over: events,", "over: events, aggregate: count,")), "metrics[1].aggregate", "not allowed with over: events"},
		{"over events no clamp", ev(q(", clamp: {lower: 0, upper: 1000}", "")), "metrics[1].clamp", "required"},
		{"over events no pin", ev(q(", eventbins: v1", "")), "templates.eventbins", "required for event-level quantile"},
		{"eventbins v2", ev(q("eventbins: v1", "eventbins: v2")), "templates.eventbins", "want v1"},
		{"eventbins without event quantiles", q("histograms: v1", "histograms: v1, eventbins: v1"), "templates.eventbins", "no event-level quantile"},
		{"eventbins typo", ev(q("eventbins: v1", "eventbin: v1")), "templates.eventbin", "unknown template"},
		{"histograms beside event quantiles only", ev(q("eventbins: v1", "eventbins: v1, histograms: v1")), "templates.histograms", "no quantile metric or percentile cap"},
		{"over events on events@v8", ev(q("events: v6", "events: v8"), q(`events: ["data/events/*.parquet"]`, `events: ["data/events/*.parquet"]
  sorted_by: {events: [unit_id, event_id]}`)), "templates.events", "eventbins@v1 repeats"},
		{"over events on events@v4", ev(q("traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4", "traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3")), "templates.events", "eventbins@v1 repeats"},
		{"over events private", ev(q("privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_env: K}")), "metrics[1].kind", "no differentially private quantile"},
		{"over events goal", ev(q("clamp: {lower: 0, upper: 1000}}", "clamp: {lower: 0, upper: 1000}, role: goal}")), "metrics[1].role", "reported, not decided on"},
		{"over events cuped", ev(func(s string) string { return s + "statistics: {cuped: {lookback_days: 7}}\n" }), "statistics.cuped", "not available with quantile"},
	}...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/q.yaml", []byte(c.edit(quantileSpec)))
			var se *expspec.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("want a SpecError, got %v", err)
			}
			if se.Key != c.key || !strings.Contains(se.Err.Error(), c.msg) {
				t.Errorf("got key %q error %q; want key %q containing %q", se.Key, se.Err, c.key, c.msg)
			}
		})
	}
}

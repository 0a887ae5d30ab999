package pipeline_test

// Verdict traps (issue 14, "Verdicts and numbers"): cases where a run used
// to end with exit 0 and a verdict or label a reader would take at its
// word although it was not literally true.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// singleJoinPins is the single-join template set.
const singleJoinPins = "templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}"

// specVariant writes badSpec with the replacements applied (each must
// match) into dir/spec.yaml.
func specVariant(t *testing.T, dir string, repl ...string) {
	t.Helper()
	s := badSpec
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("spec has no %q", repl[i])
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// decisionsOf reads a committed decisions.json as generic JSON.
func decisionsOf(t *testing.T, final string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(final, "decisions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFixedHorizonBeforePlannedEnd: a nightly run on day 3 of a 4-day
// fixed-horizon window does not ship; it says where the experiment stands.
// The same night replays byte for byte, and the last night decides.
func TestFixedHorizonBeforePlannedEnd(t *testing.T) {
	spec, err := expspec.LoadSpec("../fixtures/specs/checkout-button.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run := func(date string) map[string]any {
		t.Helper()
		o, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Date: date, Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
		if err != nil {
			t.Fatalf("run %s: %v", date, err)
		}
		return decisionsOf(t, o.Dir)
	}
	d := run("2026-11-18")
	if d["verdict"] != "in_progress" || d["rule"] != "fixed_horizon_not_reached" {
		t.Fatalf("day 3 of 4: verdict %v rule %v, want in_progress fixed_horizon_not_reached", d["verdict"], d["rule"])
	}
	h, _ := d["horizon"].(map[string]any)
	want := map[string]any{"design": "fixed_horizon", "planned_end": "2026-11-20T00:00:00Z", "analysed_until": "2026-11-19T00:00:00Z",
		"days_elapsed": 3.0, "days_planned": 4.0, "days_remaining": 1.0, "reached": false}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("horizon.%s = %v, want %v", k, h[k], v)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, "checkout-button", "2026-11-18", "report.html"))
	if !strings.Contains(string(page), "day 3 of 4") || !strings.Contains(string(page), "1 day remaining") {
		t.Error("report.html does not show days elapsed and remaining")
	}
	rep, err := replay.Replay(context.Background(), filepath.Join(out, "checkout-button", "2026-11-18", "manifest.json"), replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if err != nil || !rep.Identical() {
		t.Fatalf("replay of the day-3 run: %v", err)
	}
	if d := run("2026-11-19"); d["verdict"] != "ship" {
		t.Errorf("last day: verdict %v, want ship", d["verdict"])
	}
	// A sequential design is safe to read every night.
	seq, err := expspec.LoadSpec("../fixtures/specs/pricing-page-guardrail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := pipeline.Run(context.Background(), seq, pipeline.Options{OutDir: out, Date: "2026-11-18", Engine: engine.Engine{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionsOf(t, o.Dir); d["verdict"] != "rollback" {
		t.Errorf("sequential design on day 3: verdict %v, want rollback", d["verdict"])
	}
}

// TestEffectiveDefaultsShown: the single-join set's default 72 h
// conversion window (and every other default) appears in the manifest's
// effective block, in results and in the report, without entering the
// spec or its hash.
func TestEffectiveDefaultsShown(t *testing.T) {
	for _, tc := range []struct {
		name, pins  string
		hours       string // results.csv attribution_hours
		attribution string
	}{
		{"single join", singleJoinPins, "72", "72 h after exposure (the default of unit_metrics@v5"},
		{"v1", "", "", "until the window end (unit_metrics@v1 has no conversion window)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			baseData().write(t, dir)
			if tc.pins != "" {
				specVariant(t, dir, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}", tc.pins)
			}
			if err := runIn(t, dir); err != nil {
				t.Fatal(err)
			}
			final := filepath.Join(dir, "out", badExperiment, badDate)
			b, _ := os.ReadFile(filepath.Join(final, "manifest.json"))
			var m publish.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Effective == nil || len(m.Effective.Metrics) != 3 {
				t.Fatalf("manifest effective block: %+v", m.Effective)
			}
			e := m.Effective.Metrics[0]
			if !strings.Contains(e.Attribution, tc.attribution) {
				t.Errorf("effective attribution %q, want it to say %q", e.Attribution, tc.attribution)
			}
			if m.Effective.Correction.Method != "holm" || !strings.Contains(m.Effective.Correction.Family, "cohort (all)") {
				t.Errorf("effective correction %+v", m.Effective.Correction)
			}
			if strings.Contains(string(m.Spec), "attribution_hours") {
				t.Error("the default went into the resolved spec (and its hash)")
			}
			spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if _, h, _ := spec.Canonical(); h != m.SpecSHA256 {
				t.Errorf("spec_sha256 %s is not the spec's own hash %s", m.SpecSHA256, h)
			}
			res, _ := os.ReadFile(filepath.Join(final, "results.csv"))
			lines := strings.Split(strings.TrimSpace(string(res)), "\n")
			col := map[string]int{}
			for i, h := range strings.Split(lines[0], ",") {
				col[h] = i
			}
			for _, l := range lines[1:] {
				f := strings.Split(l, ",")
				if f[col["attribution_hours"]] != tc.hours {
					t.Errorf("attribution_hours %q, want %q: %s", f[col["attribution_hours"]], tc.hours, l)
				}
				want := "nominal"
				if f[col["cohort"]] == "(all)" && f[col["role"]] == "goal" {
					want = "holm"
				}
				if f[col["correction"]] != want {
					t.Errorf("correction %q, want %q: %s", f[col["correction"]], want, l)
				}
			}
			page, _ := os.ReadFile(filepath.Join(final, "report.html"))
			for _, want := range []string{"Settings in effect", tc.attribution, "holm over goal metrics × treatments in cohort (all)"} {
				if !strings.Contains(string(page), want) {
					t.Errorf("report.html lacks %q", want)
				}
			}
		})
	}
}

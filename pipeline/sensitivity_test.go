package pipeline_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestSensitivity runs the checkout-button fixture two days into its
// four-day window and checks the days still needed for the target MDE
// against what the MDE's scaling requires: the relative MDE at N units
// is the target at N·(MDE/target)² in the fixed design (MDE ∝ 1/√N), so
// a target half the current MDE needs four times the units, which at the
// rate so far (N units in 2 days) is 6 more days; a target equal to the
// current MDE is reached. The always-valid design needs more units than
// the fixed one for the same target. The report shows the table while
// the horizon is ahead, and not at the end.
func TestSensitivity(t *testing.T) {
	spec := loadFixtureSpec(t, "checkout-button.yaml", nil)
	out := t.TempDir()
	_, page := criteriaNight(t, spec, out, "2026-11-17")
	if !strings.Contains(page, `id="sensitivity"`) || !strings.Contains(page, "Days still needed to detect a") {
		t.Errorf("the report of a running experiment has no sensitivity table")
	}
	rows := nightRows(t, out, spec, "2026-11-17")
	h := analysis.Horizon{DaysElapsed: 2}
	now := analysis.SensitivityOf(spec, rows, h)
	if len(now) != 2 { // converted and revenue, treatment
		t.Fatalf("want 2 goal comparisons, got %+v", now)
	}
	for _, s := range now {
		if s.Status != "ok" || !(s.RelMDE > 0) {
			t.Fatalf("%+v", s)
		}
		for _, tc := range []struct {
			target float64
			units  float64 // expected units needed, ±2 for rounding up each arm
			days   float64
		}{
			{s.RelMDE, s.Units, 0},
			{s.RelMDE / 2, 4 * s.Units, 6},
			{s.RelMDE / 3, 9 * s.Units, 16},
		} {
			sp := *spec
			sp.Statistics.MaxRelativeMDE = tc.target
			got := analysis.SensitivityOf(&sp, rows, h)
			g := got[indexOf(got, s.Metric)]
			if g.Status != "ok" || math.Abs(g.UnitsNeeded-tc.units) > 2+1e-6*tc.units || g.DaysNeeded != tc.days {
				t.Errorf("%s target %.4g: units %v days %v, want %v ±2 and %v", s.Metric, tc.target, g.UnitsNeeded, g.DaysNeeded, tc.units, tc.days)
			}
			seq := sp
			seq.Statistics.Sequential = &expspec.Sequential{NStar: 20000}
			gs := analysis.SensitivityOf(&seq, rows, h)[indexOf(got, s.Metric)]
			if gs.Status != "ok" || !(gs.UnitsNeeded > g.UnitsNeeded) {
				t.Errorf("%s: always-valid needs %v units, fixed %v: want more", s.Metric, gs.UnitsNeeded, g.UnitsNeeded)
			}
		}
	}

	_, end := criteriaNight(t, spec, out, "2026-11-19")
	if strings.Contains(end, `id="sensitivity"`) {
		t.Errorf("the report at the planned end still shows the sensitivity table")
	}
}

func indexOf(s []analysis.Sensitivity, metric string) int {
	for i, x := range s {
		if x.Metric == metric {
			return i
		}
	}
	return -1
}

// TestSensitivityAtMetricLevel: a goal with its own α and power (a
// hypothesis block) publishes its MDE at that level, and the days still
// needed are planned at the same level: a target equal to tonight's MDE is
// reached and half of it needs four times the units.
func TestSensitivityAtMetricLevel(t *testing.T) {
	spec := loadFixtureSpec(t, "checkout-button.yaml", func(s *expspec.Spec) {
		s.Statistics.Correction = "none"
		for i := range s.Metrics {
			if s.Metrics[i].Role == "goal" {
				s.Metrics[i].Hypothesis = &expspec.Hypothesis{Alpha: 0.01, Power: 0.9}
			}
		}
	})
	out := t.TempDir()
	criteriaNight(t, spec, out, "2026-11-17")
	rows := nightRows(t, out, spec, "2026-11-17")
	h := analysis.Horizon{DaysElapsed: 2}
	for _, s := range analysis.SensitivityOf(spec, rows, h) {
		if s.Status != "ok" {
			t.Fatalf("%+v", s)
		}
		for _, tc := range []struct{ target, units, days float64 }{{s.RelMDE, s.Units, 0}, {s.RelMDE / 2, 4 * s.Units, 6}} {
			sp := *spec
			sp.Statistics.MaxRelativeMDE = tc.target
			got := analysis.SensitivityOf(&sp, rows, h)
			g := got[indexOf(got, s.Metric)]
			if math.Abs(g.UnitsNeeded-tc.units) > 2+1e-6*tc.units || g.DaysNeeded != tc.days {
				t.Errorf("%s target %.4g at α 0.01, power 0.9: units %v days %v, want %v ±2 and %v", s.Metric, tc.target, g.UnitsNeeded, g.DaysNeeded, tc.units, tc.days)
			}
		}
	}
}

// nightRows reads the result rows a night published (results.parquet).
func nightRows(t *testing.T, out string, spec *expspec.Spec, night string) []analysis.ResultRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, spec.OutputName(), night, "results.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[analysis.ResultRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

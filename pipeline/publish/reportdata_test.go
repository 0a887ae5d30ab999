package publish

import (
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/report"
)

// TestReportSignificanceLabels: only rows in the correction family are
// "significant after correction"; a persona cohort, a secondary metric or a
// guardrail with a small raw p-value is nominal, and a guardrail moving the
// harmful way is drawn as harm, not as a win.
func TestReportSignificanceLabels(t *testing.T) {
	spec := &expspec.Spec{Experiment: "e", Variants: []expspec.Variant{{Name: "c", Control: true, Allocation: 0.5}, {Name: "t", Allocation: 0.5}},
		Templates: map[string]string{"unit_metrics": "v1"},
		Metrics: []expspec.Metric{
			{Name: "conv", Kind: "proportion", Event: "buy", Role: "goal", Direction: "increase"},
			{Name: "errors", Kind: "mean", Event: "err", Role: "guardrail", Clamp: &expspec.Clamp{Lower: 0, Upper: 10}, Guardrail: &expspec.Guardrail{Harmful: "increase", Margin: 0.1}},
			{Name: "views", Kind: "mean", Event: "view", Role: "secondary", Clamp: &expspec.Clamp{Lower: 0, Upper: 10}},
		},
	}
	d := 6
	spec.Statistics = expspec.Statistics{Alpha: 0.05, Correction: "holm", CorrectionScope: "overall", FixedPointDecimals: &d, SRMThreshold: 0.001, Power: 0.8, MaxRelativeMDE: 0.05}
	row := func(cohort, metric, role string, eff, p float64, adj *float64) analysis.ResultRow {
		return analysis.ResultRow{Cohort: cohort, Metric: metric, Role: role, Variant: "t", Control: "c", Status: "ok",
			AbsEffect: &eff, RelEffect: &eff, RelCILow: f64(eff - 0.01), RelCIHigh: f64(eff + 0.01), PValue: &p, PValueAdjusted: adj}
	}
	rows := []analysis.ResultRow{
		row(expspec.AllCohort, "conv", "goal", 0.02, 0.01, f64(0.02)),
		row("a/x", "conv", "goal", 0.02, 0.01, nil),
		row(expspec.AllCohort, "errors", "guardrail", 0.5, 0.001, nil),
		row(expspec.AllCohort, "views", "secondary", 0.3, 0.01, nil),
	}
	AnnotateRows(spec, rows)
	data := BuildReport(ReportInput{Spec: spec, Rows: rows})
	want := []struct {
		sig, corrected bool
		tone           string
	}{{true, true, "better"}, {true, false, "better"}, {true, false, "worse"}, {true, false, ""}}
	for i, w := range want {
		r := data.Rows[i]
		if r.Significant != w.sig || r.Corrected != w.corrected || r.Tone != w.tone {
			t.Errorf("row %d (%s %s): significant %v corrected %v tone %q, want %v %v %q", i, r.Cohort, r.Metric, r.Significant, r.Corrected, r.Tone, w.sig, w.corrected, w.tone)
		}
	}
	page, err := report.Render(data)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(page), ">★ sig.</tspan>") + strings.Count(string(page), ">★ sig. (corrected)</span>"); n != 2 { // the (all) goal: its plot row and its table flag
		t.Errorf("%d ★ marks, want 2 (only the corrected goal row)", n)
	}
	if !strings.Contains(string(page), `class="pt nom worse"`) {
		t.Error("the harmed guardrail is not drawn in the harm colour")
	}
}

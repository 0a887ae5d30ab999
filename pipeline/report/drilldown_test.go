package report

import (
	"strings"
	"testing"
)

// TestDrilldownSection: slices are shown as value, NULL or the collapsed
// remainder, a slice's SRM is called out, a dimension without numbers
// shows its status and why; a spec without drill-downs has no section.
func TestDrilldownSection(t *testing.T) {
	p, srmP, low, high, eff := 0.04, 0.0001, 0.01, 0.09, 0.05
	d := minimalData()
	d.Drilldown = &Drilldown{Rows: []DrillRow{
		{Dimension: "country", Kind: "value", Slice: "DE", Units: 900, Tied: 3, Metric: "converted", Variant: "treatment",
			Effect: &eff, Low: &low, High: &high, P: &p, SRMP: &srmP, SRM: true, Analysed: true, Status: "ok"},
		{Dimension: "country", Kind: "null", Units: 40, Metric: "converted", Variant: "treatment", Analysed: true, Status: "ok"},
		{Dimension: "country", Kind: "other", CollapsedFrom: `"FR";"IT"`, Units: 120, Metric: "converted", Variant: "treatment", Analysed: true, Status: "ok"},
		{Dimension: "app_version", Status: "too_many_values", Detail: "812 distinct values"},
	}}
	page := render(t, d)
	for _, want := range []string{`id="drilldown"`, "Sample-ratio mismatch in a slice</strong> (1 of the comparisons below)", "“DE”", "900 (3 tied)", "(null)", "other: &#34;FR&#34;;&#34;IT&#34;", "too_many_values", "812 distinct values", "never change the verdict"} {
		if !strings.Contains(page, want) {
			t.Errorf("drill-down section lacks %q", want)
		}
	}
	// No slice tested (every dimension over its cap): not "no mismatch".
	d.Drilldown = &Drilldown{Rows: []DrillRow{{Dimension: "app_version", Status: "too_many_values", Detail: "812 distinct values"}}}
	page = render(t, d)
	if strings.Contains(page, "No slice shows a sample-ratio mismatch") || !strings.Contains(page, "No slice could be tested for a sample-ratio mismatch") {
		t.Error("with no slice tested the summary claims none shows a mismatch")
	}
	srmOK := 0.5
	d.Drilldown = &Drilldown{Rows: []DrillRow{{Dimension: "country", Kind: "value", Slice: "DE", Units: 900, Metric: "converted", Variant: "treatment", SRMP: &srmOK, Analysed: true, Status: "ok"}}}
	if page = render(t, d); !strings.Contains(page, "No slice shows a sample-ratio mismatch") {
		t.Error("a tested slice without mismatch is not summarised as such")
	}
	if strings.Contains(minimalPage(t), `id="drilldown"`) {
		t.Error("drill-down section shown for a spec without drill-downs")
	}
}

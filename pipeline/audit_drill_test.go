package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/privacy"
)

// The privacy audit of private drill-downs: TestPrivacyAudit's checks
// (every published byte recomputed from the restricted record's noisy
// numbers and the published facts, the manifest's data-independent facts
// equal, every exact value within its sensitivity, one unit moving each
// statistic's cells by Σ(Δ/sensitivity)² ≤ 1) for a spec drilled down on
// two trace dimensions with declared slices, and neighbours aimed at the
// drill-down: a unit alone in a declared slice (empty without it), one
// with an undeclared value, one with NULL, one whose first-exposure rows
// disagree, plus three of the general neighbours. Without collapsing, the
// published slices (kind and value) are the same for both datasets.

const auditDrillSection = `drilldowns:
  dimensions: [sdk_version, rule_id]
  values:
    sdk_version: [ios-4.2.0, android-4.1.3, rare-sdk]
    rule_id: [rule-default, rule-beta-cohort]
`

func auditDrillNeighbours(traceIDs, eventIDs []string) map[string]func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
	tr := func(u, variant, sdk, rule *string, id string, h int) fixtures.TraceRow {
		return fixtures.TraceRow{TS: auditTS(h), UnitID: u, ExperimentID: ptr("checkout-button"), Variant: variant,
			Persona: ptr("power/mobile"), PersonaAlgoVersion: ptr("pa-2"), SDKVersion: sdk, RuleID: rule, EventID: ptr(id)}
	}
	ev := func(u, metric string, v *float64, id string, h int) fixtures.EventRow {
		return fixtures.EventRow{TS: auditTS(h), UnitID: ptr(u), Metric: ptr(metric), Value: v, EventID: ptr(id)}
	}
	general := auditNeighbours(traceIDs, eventIDs)
	return map[string]func(u string) ([]fixtures.TraceRow, []fixtures.EventRow){
		"alone in a declared slice": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(ptr(u), ptr("treatment"), ptr("rare-sdk"), ptr("rule-beta-cohort"), u+"-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(60.0), u+"-e1", 2), ev(u, "page_view", nil, u+"-e2", 3)}
		},
		"an undeclared value": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(ptr(u), ptr("control"), ptr("unknown-9.9"), ptr("rule-new"), u+"-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(45.0), u+"-e1", 2)}
		},
		"NULL values": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(ptr(u), ptr("treatment"), nil, nil, u+"-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(10.0), u+"-e1", 2)}
		},
		"tied at its exposure": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(ptr(u), ptr("control"), ptr("rare-sdk"), ptr("rule-default"), u+"-t1", 1),
					tr(ptr(u), ptr("control"), ptr("android-4.1.3"), nil, u+"-t2", 1),
					tr(ptr(u), ptr("control"), ptr("ios-4.2.0"), ptr("rule-beta-cohort"), u+"-t3", 5)},
				[]fixtures.EventRow{ev(u, "page_view", nil, u+"-e1", 2)}
		},
		"ordinary":         general["ordinary"],
		"trips every gate": general["trips every gate"],
		"in both variants": general["in both variants"],
	}
}

func TestPrivacyAuditDrilldown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two dozen private jobs")
	}
	key, err := privacy.ParseKey([]byte("hex:5c0f6a9e21d3b4c78e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"))
	if err != nil {
		t.Fatal(err)
	}
	for _, minUnits := range []int{0, 300} {
		for name, extra := range auditDrillNeighbours([]string{"x"}, []string{"y"}) {
			t.Run(map[int]string{0: "min_units=0", 300: "min_units=300"}[minUnits]+"/"+name, func(t *testing.T) {
				dir := auditDataset(t, minUnits, nil, nil)
				p := filepath.Join(dir, "specs", "audit.yaml")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				spec := strings.Replace(string(b), "quality: v4}", "quality: v4, drilldown: v1}", 1) + auditDrillSection
				if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
					t.Fatal(err)
				}
				base := runAudit(t, dir, "a")
				if base.spec.Drilldowns == nil {
					t.Fatal("the audit spec does not drill down")
				}
				base.republish(t, key)
				tr, ev := extra("audit-unit-1")
				addNeighbour(t, dir, tr, ev)
				nb := runAudit(t, dir, "b")
				nb.republish(t, key)
				if a, b := publicFacts(base.manifest), publicFacts(nb.manifest); a != b {
					t.Errorf("data-independent facts of the manifest differ between neighbours:\n%s\n%s", a, b)
				}
				checkSensitivity(t, base, nb)
				sa, sb := publishedSlices(t, base.dir), publishedSlices(t, nb.dir)
				if len(sa) == 0 {
					t.Fatal("no drill-down rows published")
				}
				if minUnits == 0 && sa != sb {
					t.Errorf("published slices differ between neighbours without collapsing:\n%s\n%s", sa, sb)
				}
				drillMoved := false
				for _, n := range nb.record.Numbers {
					if strings.HasPrefix(n.Metric, "(drill ") && n.Statistic == "n" && n.Variant != "*" {
						for _, o := range base.record.Numbers {
							if o.Metric == n.Metric && o.Cohort == n.Cohort && o.Variant == n.Variant && o.Statistic == n.Statistic && o.Exact != n.Exact {
								drillMoved = true
							}
						}
					}
				}
				if !drillMoved && name != "in both variants" {
					t.Error("no drill-down count moved: the neighbour did not reach the drill-down release")
				}
			})
		}
	}
}

// publishedSlices lists drilldown.csv's dimension, slice kind and slice
// of every row, in order, deduplicated.
func publishedSlices(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	for _, r := range drillRows(t, dir) {
		s := r["dimension"] + "|" + r["slice_kind"] + "|" + r["slice"]
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return strings.Join(out, "\n")
}

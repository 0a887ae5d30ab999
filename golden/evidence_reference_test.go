package golden

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The decision evidence's intervals against SciPy/statsmodels: a goal in
// a Holm or BH family is shown at the level of its adjusted test, which
// the report used to label "95% CI". testdata/evidence_reference.py
// recomputes, from each golden's results.csv, the family's rejections
// (statsmodels), each goal's matching level (Holm's step level, BH's
// Benjamini–Yekutieli FCR level) and the Welch interval at it (SciPy), and
// each guardrail's nominal level. The goldens themselves are what a fresh
// run writes (TestGolden). Rerun the script after an -update:
//
//	/usr/bin/python3 golden/testdata/evidence_reference.py
func TestEvidenceIntervalsMatchReference(t *testing.T) {
	var ref map[string][]struct {
		Role, Metric, Variant, Cohort string
		CILevel                       float64 `json:"ci_level"`
		Low, High                     *float64
	}
	readJSON(t, filepath.Join("testdata", "evidence_reference.json"), &ref)
	if len(ref) < 5 {
		t.Fatalf("the reference covers %d goldens; want the Holm and BH fixtures", len(ref))
	}
	levels := map[float64]bool{}
	for name, items := range ref {
		var dec struct {
			Evidence []struct {
				Role, Metric, Variant, Cohort string
				Low, High                     float64
				CILevel                       *float64 `json:"ci_level"`
			}
		}
		readJSON(t, filepath.Join(name, "decisions.json"), &dec)
		b, err := os.ReadFile(filepath.Join(name, "results.csv"))
		if err != nil {
			t.Fatal(err)
		}
		rows := csvRows(t, b)
		for _, w := range items {
			levels[w.CILevel] = true
			found := false
			for _, e := range dec.Evidence {
				if e.Role != w.Role || e.Metric != w.Metric || e.Variant != w.Variant || e.Cohort != w.Cohort {
					continue
				}
				found = true
				if e.CILevel == nil || math.Abs(*e.CILevel-w.CILevel) > 1e-12 {
					t.Errorf("%s %s %s %s: ci_level %v, reference %v", name, w.Role, w.Metric, w.Variant, e.CILevel, w.CILevel)
				}
				if w.Low == nil {
					continue
				}
				if !close(e.Low, *w.Low, 1, 1e-9) || !close(e.High, *w.High, 1, 1e-9) {
					t.Errorf("%s %s %s: evidence [%v, %v], reference [%v, %v]", name, w.Metric, w.Variant, e.Low, e.High, *w.Low, *w.High)
				}
				for _, r := range rows {
					if r["metric"] != w.Metric || r["variant"] != w.Variant || r["cohort"] != w.Cohort {
						continue
					}
					lo, err1 := strconv.ParseFloat(r["adj_ci_low"], 64)
					hi, err2 := strconv.ParseFloat(r["adj_ci_high"], 64)
					if err1 != nil || err2 != nil || !close(lo, *w.Low, 1, 1e-9) || !close(hi, *w.High, 1, 1e-9) {
						t.Errorf("%s %s %s: results.csv adj_ci [%s, %s], reference [%v, %v]", name, w.Metric, w.Variant, r["adj_ci_low"], r["adj_ci_high"], *w.Low, *w.High)
					}
				}
			}
			if !found {
				t.Errorf("%s: no evidence for %s %s %s %s", name, w.Role, w.Metric, w.Variant, w.Cohort)
			}
		}
	}
	// The reference must exercise an adjusted level, not only 95%.
	if !levels[0.975] || !levels[0.95] {
		t.Errorf("reference levels %v: want a Holm step (0.975) beside the nominal 0.95", levels)
	}
}

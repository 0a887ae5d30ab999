package analysis

import (
	"math/big"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

const quantileAnalysisSpec = `version: 1
experiment: q
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4, histograms: v1}
cohorts: {dimension: persona, taxonomy: [a, b]}
metrics:
  - {name: spend_p90, kind: quantile, level: 0.9, event: buy, aggregate: sum, clamp: {lower: 0, upper: 1000}}
  - {name: spend_p999, kind: quantile, level: 0.999, event: buy, aggregate: sum, clamp: {lower: 0, upper: 1000}}
privacy: {enabled: false}
`

// quantileCell is a cell of a quantile metric holding values (fixed point).
func quantileCell(t *testing.T, cohort, variant, metric string, values []int64) engine.Cell {
	t.Helper()
	h, err := stats.HistogramOf(6, values)
	if err != nil {
		t.Fatal(err)
	}
	c := engine.NewCell(cohort, variant, metric)
	c.N = int64(len(values))
	for _, v := range values {
		c.Sum.Add(c.Sum, big.NewInt(v))
	}
	c.Hist = &h
	return c
}

// TestQuantileRowsHostile: an empty arm, every unit equal, a level so high
// that only one unit is above it, and a usable cohort, each with its
// status; (all) merges the leaves' histograms exactly.
func TestQuantileRowsHostile(t *testing.T) {
	spec, err := expspec.ParseSpec("q.yaml", []byte(quantileAnalysisSpec))
	if err != nil {
		t.Fatal(err)
	}
	spread := func(n, offset int64) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = (int64(i)*7919%n + offset) * 1000
		}
		return v
	}
	equal := make([]int64, 500)
	for i := range equal {
		equal[i] = 500_000 // 0.5, inside the spread values
	}
	var cells []engine.Cell
	for _, m := range []string{"spend_p90", "spend_p999"} {
		// Cohort a: control has no units (no cell), treatment 500 equal.
		cells = append(cells, quantileCell(t, "a", "treatment", m, equal))
		// Cohort b: 1000 spread units per arm.
		cells = append(cells, quantileCell(t, "b", "control", m, spread(1000, 0)), quantileCell(t, "b", "treatment", m, spread(1000, 50)))
	}
	complete, err := CompleteCells(spec, cells)
	if err != nil {
		t.Fatal(err)
	}
	var cohorts []CohortRelease
	for _, c := range CohortOrder(spec) {
		cohorts = append(cohorts, CohortRelease{Label: c})
	}
	rows, _, err := Analyse(spec, complete, cohorts, nil, "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"(all)/spend_p90":  "ok",
		"(all)/spend_p999": StatusQuantileTooFew + " (control)", // 1000 control units: p + δ ≥ 1
		"a/spend_p90":      stats.StatusMissingArm,
		"a/spend_p999":     stats.StatusMissingArm,
		"b/spend_p90":      "ok",
		"b/spend_p999":     StatusQuantileTooFew + " (control)",
	}
	seen := 0
	for _, r := range rows {
		k := r.Cohort + "/" + r.Metric
		w, ok := want[k]
		if !ok {
			continue
		}
		seen++
		if r.Status != w || r.Quantile == nil || r.Quantile.Status != w {
			t.Errorf("%s: status %q, want %q", k, r.Status, w)
		}
		if r.MeanControl != nil || r.SDControl != nil || r.MDEAbs != nil {
			t.Errorf("%s: a quantile row has mean, sd or MDE columns", k)
		}
		if w != "ok" && (r.AbsEffect != nil || r.PValue != nil) {
			t.Errorf("%s: numbers without an interval: %+v", k, r)
		}
	}
	if seen != len(want) {
		t.Fatalf("checked %d rows, want %d", seen, len(want))
	}
	// (all) of spend_p90: control is b's 1000 units, treatment b's 1000
	// and a's 500 equal ones merged; the row must be CompareQuantiles on
	// those histograms.
	tv := append(spread(1000, 50), equal...)
	hc, _ := stats.HistogramOf(6, spread(1000, 0))
	ht, _ := stats.HistogramOf(6, tv)
	cmp, err := stats.CompareQuantiles(hc, ht, 0.9, stats.QuantileOptions{Alpha: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Cohort == expspec.AllCohort && r.Metric == "spend_p90" {
			if r.AbsEffect == nil || *r.AbsEffect != cmp.Diff || *r.AbsCILow != cmp.DiffLow || *r.PValue != cmp.PValue || r.NVariant != 1500 {
				t.Errorf("(all) row %+v, want diff %v low %v p %v over 1500 units", r, cmp.Diff, cmp.DiffLow, cmp.PValue)
			}
		}
	}

	// Every unit equal in both arms: a tie, no interval.
	tie := []engine.Cell{quantileCell(t, "b", "control", "spend_p90", equal), quantileCell(t, "b", "treatment", "spend_p90", equal),
		quantileCell(t, "b", "control", "spend_p999", equal), quantileCell(t, "b", "treatment", "spend_p999", equal)}
	complete, err = CompleteCells(spec, tie)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err = Analyse(spec, complete, cohorts, nil, "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	if r := rows[0]; r.Metric != "spend_p90" || r.Status != StatusQuantileTie+" (control)" || *r.Quantile.QuantileControl != 0.5 {
		t.Errorf("all-equal arms: %q, quantile %v", r.Status, r.Quantile.QuantileControl)
	}
}

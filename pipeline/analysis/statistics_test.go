package analysis

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/stats"
)

const tinyAllocationSpec = `version: 1
experiment: tiny
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.998, control: true}
  - {name: treatment, allocation: 0.002}
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal}
privacy: {enabled: false}
`

// TestSRMTinyDeclaredAllocation: 0.002 declared, 50/50 observed over 3,000
// units. The χ² test gave p = 0 but was ignored (expected treatment count
// 6 < 8), status ok, and the winning goal shipped. The exact binomial test
// makes it a mismatch: verdict invalid, never ship.
func TestSRMTinyDeclaredAllocation(t *testing.T) {
	spec, err := expspec.ParseSpec("tiny.yaml", []byte(tinyAllocationSpec))
	if err != nil {
		t.Fatal(err)
	}
	s := spec.Scale()
	var cells []engine.Cell
	for _, arm := range []struct {
		name string
		k    int64
	}{{"control", 150}, {"treatment", 300}} {
		c := engine.NewCell("a", arm.name, "converted")
		c.N = 1500
		c.Sum.SetInt64(arm.k * s)
		c.SumSq.Mul(c.Sum, big.NewInt(s))
		cells = append(cells, c)
	}
	complete, err := CompleteCells(spec, cells)
	if err != nil {
		t.Fatal(err)
	}
	var cohorts []CohortRelease
	for _, c := range CohortOrder(spec) {
		cohorts = append(cohorts, CohortRelease{Label: c})
	}
	rows, dec, err := Analyse(spec, complete, cohorts, nil, "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	if dec.Verdict != stats.VerdictInvalid || dec.Rule != stats.RuleSRM {
		t.Errorf("verdict %s (rule %s), want invalid (srm)", dec.Verdict, dec.Rule)
	}
	all := dec.SRM[0]
	if all.Cohort != expspec.AllCohort || all.Method != stats.SRMExact || !all.Invalid || !(all.PValue < 1e-12) {
		t.Errorf("SRM (all): %+v, want an invalid exact test", all)
	}
	if !rows[0].SRM {
		t.Error("results row does not carry the SRM flag")
	}
	if dec.LooksNote == "" || dec.Interval != "fixed_horizon" {
		t.Errorf("decisions interval %q looks_note %q", dec.Interval, dec.LooksNote)
	}
}

// TestPrivateMomentsAlwaysGiveRatioInterval: noisy ratio moments whose
// numerator–denominator covariance is larger than the variances allow
// used to give "negative variance" and no interval. After projection onto
// the nearest bounded covariance every such cell has an interval.
func TestPrivateMomentsAlwaysGiveRatioInterval(t *testing.T) {
	const s = 100 // fixed-point scale
	bx, by := &[2]float64{0, 50}, &[2]float64{0, 10}
	rng := rand.New(rand.NewPCG(15, 1))
	sd := &privatize.NoiseSD{N: 2, Sums: [9]float64{400, 4e7, 300, 1e7, 2e7}} // sensitivities 5000² and 5000·1000 at a small ε
	arm := func() engine.Cell {
		c := engine.NewCell("a", "control", "rps")
		c.N = 300 + rng.Int64N(200)
		// Sums of a unit-level sample, then noise large enough to break
		// their consistency.
		for range c.N {
			y := rng.Int64N(5 * s)
			x := rng.Int64N(10*s) * y / s / 4
			c.Sum.Add(c.Sum, big.NewInt(x))
			c.SumSq.Add(c.SumSq, big.NewInt(x*x))
			c.SumY.Add(c.SumY, big.NewInt(y))
			c.SumY2.Add(c.SumY2, big.NewInt(y*y))
			c.SumXY.Add(c.SumXY, big.NewInt(x*y))
		}
		for i, p := range c.Sums()[:5] {
			(*p).Add(*p, big.NewInt(int64(rng.NormFloat64()*sd.Sums[i])))
		}
		return c
	}
	negative, before := 0, 0
	for range 500 {
		c, tr := arm(), arm()
		// The old projection: variances clamped, covariance left alone.
		m := momentsOf(c, s)
		old := stats.Arm{N: float64(c.N), Mean: m.MeanX, Var: min(max(m.VarX, 0), 625), DenMean: m.MeanY, DenVar: min(max(m.VarY, 0), 25), CovXY: m.CovXY}
		mt := momentsOf(tr, s)
		oldT := stats.Arm{N: float64(tr.N), Mean: mt.MeanX, Var: min(max(mt.VarX, 0), 625), DenMean: mt.MeanY, DenVar: min(max(mt.VarY, 0), 25), CovXY: mt.CovXY}
		if stats.Compare(old, oldT, stats.Ratio, stats.Options{}).Status == stats.StatusNegativeVariance {
			before++
		}
		got := stats.Compare(armOf(c, stats.Ratio, s, false, sd, bx, by, true), armOf(tr, stats.Ratio, s, false, sd, bx, by, true), stats.Ratio, stats.Options{})
		if !got.Valid() {
			negative++
			t.Logf("status %q", got.Status)
		}
	}
	if before == 0 {
		t.Fatal("the noise never made the old moments inconsistent: the test proves nothing")
	}
	if negative > 0 {
		t.Errorf("%d of 500 noisy ratio comparisons without an interval (clamping the variances alone: %d)", negative, before)
	}
	t.Logf("with the old rule (variances clamped, a negative linearised variance an error) %d of 500 had no interval", before)
}

// TestPrivateComparisonKeepsUnclampedMeans: a private cell whose noisy Σx
// is negative is compared with its unclamped noisy mean (unbiased, with
// the noise variance the interval counts), not with the mean clamped to
// the lower bound; the reported means are the comparison's, so that the
// effect is their difference. The projected arm (for θ and the reported
// SD) still clamps it.
func TestPrivateComparisonKeepsUnclampedMeans(t *testing.T) {
	const s = 100
	sd := &privatize.NoiseSD{N: 14, Sums: [9]float64{2e5, 4e8}}
	bx := &[2]float64{0, 1000}
	c := engine.NewCell("a", "control", "revenue")
	c.N = 500
	c.Sum.SetInt64(-150_000) // noisy: -3.0 a unit after noise
	c.SumSq.SetInt64(3_000_000_000)
	tr := engine.NewCell("a", "treatment", "revenue")
	tr.N = 500
	tr.Sum.SetInt64(400_000)
	tr.SumSq.SetInt64(3_500_000_000)
	proj := armOf(c, stats.Mean, s, false, sd, bx, nil, false)
	if proj.Mean != 0 {
		t.Fatalf("projected mean %v, want 0 (clamped)", proj.Mean)
	}
	ca, ta := armOf(c, stats.Mean, s, false, sd, bx, nil, true), armOf(tr, stats.Mean, s, false, sd, bx, nil, true)
	if ca.Mean != -3 {
		t.Fatalf("comparison mean %v, want the unclamped -3", ca.Mean)
	}
	cmp := stats.Compare(ca, ta, stats.Mean, stats.Options{})
	if !cmp.Valid() || cmp.Diff != 11 {
		t.Fatalf("status %q, diff %v: want a valid comparison of 8 - (-3) = 11", cmp.Status, cmp.Diff)
	}
	mean, _ := armSummary(withMeans(proj, ca), stats.Mean)
	if mean == nil || *mean != -3 {
		t.Errorf("reported control mean %v, want -3 (the comparison's)", mean)
	}
}

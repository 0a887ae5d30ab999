package analysis

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

const vrTestSpec = `version: 1
experiment: vr
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}
cohorts: {dimension: persona, taxonomy: [a, b, c]}
metrics:
  - {name: spend, kind: mean, event: buy, aggregate: sum, clamp: {lower: -1000, upper: 1000}}
statistics:
  fixed_point_decimals: 0
  cuped: {lookback_days: 2}
  variance_reduction: [{method: cuped}, {method: poststratify}, {method: regression, covariates: [pre_period]}, {method: regression, covariates: [pre_period, persona]}]
privacy: {enabled: false}
`

// vrUnit is one unit of the test data: its leaf, arm, value and covariate.
type vrUnit struct {
	leaf, arm string
	x, c      int64
}

// vrCells sums units into leaf cells exactly as sufstats does.
func vrCells(units []vrUnit) []engine.Cell {
	idx := map[[2]string]*engine.Cell{}
	var order [][2]string
	for _, u := range units {
		k := [2]string{u.leaf, u.arm}
		c := idx[k]
		if c == nil {
			nc := engine.NewCell(u.leaf, u.arm, "spend")
			c = &nc
			idx[k] = c
			order = append(order, k)
		}
		c.N++
		x, cv := big.NewInt(u.x), big.NewInt(u.c)
		c.Sum.Add(c.Sum, x)
		c.SumSq.Add(c.SumSq, new(big.Int).Mul(x, x))
		c.SumC.Add(c.SumC, cv)
		c.SumC2.Add(c.SumC2, new(big.Int).Mul(cv, cv))
		c.SumXC.Add(c.SumXC, new(big.Int).Mul(x, cv))
	}
	var out []engine.Cell
	for _, k := range order {
		out = append(out, *idx[k])
	}
	return out
}

func vrRows(t *testing.T, units []vrUnit) map[string]AdjustedRow {
	t.Helper()
	spec, err := expspec.ParseSpec("vr.yaml", []byte(vrTestSpec))
	if err != nil {
		t.Fatal(err)
	}
	complete, err := CompleteCells(spec, vrCells(units))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := VarianceReductions(spec, complete)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]AdjustedRow{}
	for _, r := range rows {
		out[r.Method] = r
	}
	if len(out) != 4 {
		t.Fatalf("want 4 methods, got %d rows", len(rows))
	}
	return out
}

// plantedUnits: leaves with different baselines (persona predicts the
// outcome), a covariate correlated with the outcome, and a treatment
// effect of +5.
func plantedUnits(seed uint64, thin bool) []vrUnit {
	r := rand.New(rand.NewPCG(seed, 1))
	base := map[string]float64{"a": 0, "b": 40, "c": 80}
	var units []vrUnit
	for i := range 3000 {
		leaf := []string{"a", "b", "c"}[i%3]
		arm := []string{"control", "treatment"}[(i/3)%2]
		if thin && leaf == "c" && arm == "treatment" {
			if i > 6 {
				continue // one treatment unit in leaf c: thin, pooled
			}
		}
		e := r.NormFloat64() * 20
		c := base[leaf] + e + r.NormFloat64()*10
		x := base[leaf] + e + r.NormFloat64()*10
		if arm == "treatment" {
			x += 5
		}
		units = append(units, vrUnit{leaf, arm, int64(math.Round(x)), int64(math.Round(c))})
	}
	return units
}

// TestVarianceReductionPlanted: on data where persona and the pre-period
// predict the outcome, every method is estimated; post-stratification
// equals Σ w_k τ̂_k computed here from the units, and removes variance;
// regression on both covariates removes more than on the pre-period alone.
func TestVarianceReductionPlanted(t *testing.T) {
	units := plantedUnits(7, false)
	rows := vrRows(t, units)
	for m, r := range rows {
		if r.Status != "ok" || r.Estimate == nil || r.VarianceReduction == nil {
			t.Fatalf("%s: status %q", m, r.Status)
		}
	}
	// Σ_k w_k (ȳ_kt − ȳ_kc), plainly.
	type acc struct{ n, s [2]float64 }
	per := map[string]*acc{}
	for _, u := range units {
		a := per[u.leaf]
		if a == nil {
			a = &acc{}
			per[u.leaf] = a
		}
		i := 0
		if u.arm == "treatment" {
			i = 1
		}
		a.n[i]++
		a.s[i] += float64(u.x)
	}
	var want float64
	for _, a := range per {
		want += (a.n[0] + a.n[1]) / float64(len(units)) * (a.s[1]/a.n[1] - a.s[0]/a.n[0])
	}
	ps := rows["poststratify[persona]"]
	if got := *ps.Estimate; math.Abs(got-want) > 1e-9*math.Abs(want) {
		t.Errorf("post-stratified estimate %v, want %v", got, want)
	}
	if ps.Strata != 3 || *ps.VarianceReduction < 0.5 {
		t.Errorf("post-stratification: %d strata, reduction %v; want 3 and most of the between-persona variance", ps.Strata, *ps.VarianceReduction)
	}
	pre, both := rows["regression[pre_period]"], rows["regression[pre_period+persona]"]
	if !(*pre.VarianceReduction > 0.5 && *both.VarianceReduction > *pre.VarianceReduction) {
		t.Errorf("regression reductions: pre_period %v, pre_period+persona %v", *pre.VarianceReduction, *both.VarianceReduction)
	}
	if c := rows["cuped"]; math.Abs(*c.VarianceReduction-*pre.VarianceReduction) > 0.01 {
		t.Errorf("cuped %v and Lin with one covariate %v should nearly agree (equal slopes)", *c.VarianceReduction, *pre.VarianceReduction)
	}
	for m, r := range rows {
		if !(*r.CILow < 5 && 5 < *r.CIHigh) {
			t.Errorf("%s: interval [%v, %v] misses the planted +5", m, *r.CILow, *r.CIHigh)
		}
	}
}

// TestVarianceReductionDegenerate: a constant covariate and a thin leaf
// give a counted status or a pooled stratum, never a panic or NaN.
func TestVarianceReductionDegenerate(t *testing.T) {
	units := plantedUnits(11, false)
	for i := range units {
		units[i].c = 3
	}
	rows := vrRows(t, units)
	for _, m := range []string{"cuped", "regression[pre_period]", "regression[pre_period+persona]"} {
		if r := rows[m]; !strings.HasPrefix(r.Status, "not estimated: ") || r.Estimate != nil {
			t.Errorf("%s with a constant covariate: status %q, estimate %v", m, r.Status, r.Estimate)
		}
	}
	if r := rows["poststratify[persona]"]; r.Status != "ok" {
		t.Errorf("poststratify needs no covariate: %q", r.Status)
	}

	rows = vrRows(t, plantedUnits(13, true))
	for m, r := range rows {
		if r.Status != "ok" {
			t.Errorf("thin leaf, %s: %q", m, r.Status)
		}
	}
	// Leaf c (one treatment unit) joins the largest group: two strata.
	if s := rows["poststratify[persona]"].Strata; s != 2 {
		t.Errorf("post-stratification strata %d, want 2 (thin leaf pooled)", s)
	}
	if s := rows["regression[pre_period+persona]"].Strata; s != 2 {
		t.Errorf("regression persona groups %d, want 2 (thin leaf pooled)", s)
	}
}

// TestVarianceReductionLabels: a post-stratification whose leaves were all
// pooled into one stratum says so instead of "ok" (its estimate is the
// unadjusted difference), and a status names the variant, not an index.
func TestVarianceReductionLabels(t *testing.T) {
	var units []vrUnit
	rng := rand.New(rand.NewPCG(5, 9))
	for _, leaf := range []string{"a", "b", "c"} {
		for _, arm := range []string{"control", "treatment"} {
			for range 1 {
				units = append(units, vrUnit{leaf: leaf, arm: arm, x: int64(rng.IntN(50)), c: int64(rng.IntN(50))})
			}
		}
	}
	rows := vrRows(t, units)
	r := rows["poststratify[persona]"]
	if r.Strata != 1 || !strings.HasPrefix(r.Status, "single stratum") {
		t.Errorf("every leaf thin: strata %d, status %q; want one stratum said as such", r.Strata, r.Status)
	}
	// A treatment arm with one unit: the regression cannot fit it.
	var one []vrUnit
	seen := false
	for _, u := range plantedUnits(17, false) {
		if u.arm == "treatment" {
			if seen {
				continue
			}
			seen = true
		}
		one = append(one, u)
	}
	rows = vrRows(t, one)
	for m, r := range rows {
		if strings.HasPrefix(r.Status, "not estimated") && (strings.Contains(r.Status, "arm 1") || strings.Contains(r.Status, "stratum ")) {
			t.Errorf("%s: status %q names an index, not the variant or persona", m, r.Status)
		}
		t.Logf("%s: %s", m, r.Status)
	}
	if r := rows["regression[pre_period]"]; !strings.Contains(r.Status, "variant treatment") {
		t.Errorf("regression with one treatment unit: status %q, want it to name variant treatment", r.Status)
	}
}

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
	rows, err := VarianceReductions(spec, complete, nil)
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

const vrOtherSpec = `version: 1
experiment: vr
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4, crossmoments: v1}
cohorts: {dimension: persona, taxonomy: [a, b, c]}
metrics:
  - {name: spend, kind: mean, event: buy, aggregate: sum, clamp: {lower: -1000, upper: 1000}, variance_reduction: [{method: regression, covariates: [COVS]}]}
  - {name: visits, kind: mean, event: visit, aggregate: sum, clamp: {lower: -1000, upper: 1000}}
statistics:
  fixed_point_decimals: 0
  cuped: {lookback_days: 2}
privacy: {enabled: false}
`

// TestOtherPrePeriodMoments: a regression of spend on visits' pre-period
// value (pre_period:visits, moments assembled from visits' cells and the
// cross-moment cells) equals the regression of spend on its own pre-period
// value (pre_period) when that value is set to visits' for every unit; the
// planted covariate removes most of the variance; a missing or overflowed
// cross-moment cell makes the row say which leaf and why.
func TestOtherPrePeriodMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type unit struct {
		leaf, arm             string
		spend, cs, visits, cv int64
	}
	var units []unit
	for range 600 {
		leaf := []string{"a", "b", "c"}[rng.IntN(3)]
		arm := []string{"control", "treatment"}[rng.IntN(2)]
		cv := int64(rng.IntN(40))
		spend := 3*cv + int64(rng.IntN(15))
		if arm == "treatment" {
			spend += 4
		}
		units = append(units, unit{leaf, arm, spend, int64(rng.IntN(30)), int64(rng.IntN(50)), cv})
	}
	cellsOf := func(ownC func(u unit) int64) ([]engine.Cell, []engine.CrossCell) {
		idx := map[[3]string]*engine.Cell{}
		cross := map[[2]string]*engine.CrossCell{}
		var order [][3]string
		var corder [][2]string
		add := func(u unit, metric string, x, c int64) {
			k := [3]string{u.leaf, u.arm, metric}
			cl := idx[k]
			if cl == nil {
				nc := engine.NewCell(u.leaf, u.arm, metric)
				cl = &nc
				idx[k] = cl
				order = append(order, k)
			}
			cl.N++
			bx, bc := big.NewInt(x), big.NewInt(c)
			cl.Sum.Add(cl.Sum, bx)
			cl.SumSq.Add(cl.SumSq, new(big.Int).Mul(bx, bx))
			cl.SumC.Add(cl.SumC, bc)
			cl.SumC2.Add(cl.SumC2, new(big.Int).Mul(bc, bc))
			cl.SumXC.Add(cl.SumXC, new(big.Int).Mul(bx, bc))
		}
		for _, u := range units {
			add(u, "spend", u.spend, ownC(u))
			add(u, "visits", u.visits, u.cv)
			k := [2]string{u.leaf, u.arm}
			x := cross[k]
			if x == nil {
				x = &engine.CrossCell{Experiment: "vr", Cohort: u.leaf, Variant: u.arm, MetricA: "spend", MetricB: "visits", SumXC: new(big.Int), SumYC: new(big.Int), SumCC: new(big.Int)}
				cross[k] = x
				corder = append(corder, k)
			}
			x.N++
			x.SumXC.Add(x.SumXC, big.NewInt(u.spend*u.cv))
			x.SumCC.Add(x.SumCC, big.NewInt(ownC(u)*u.cv))
		}
		var cells []engine.Cell
		for _, k := range order {
			cells = append(cells, *idx[k])
		}
		var crossCells []engine.CrossCell
		for _, k := range corder {
			crossCells = append(crossCells, *cross[k])
		}
		return cells, crossCells
	}
	run := func(covs string, ownC func(u unit) int64, edit func([]engine.CrossCell) []engine.CrossCell) AdjustedRow {
		t.Helper()
		text := strings.Replace(vrOtherSpec, "COVS", covs, 1)
		if !strings.Contains(covs, ":") {
			text = strings.Replace(text, ", crossmoments: v1", "", 1)
		}
		spec, err := expspec.ParseSpec("vr.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		cells, cross := cellsOf(ownC)
		complete, err := CompleteCells(spec, cells)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			cross = edit(cross)
		}
		rows, err := VarianceReductions(spec, complete, cross)
		if err != nil || len(rows) != 1 {
			t.Fatalf("%v, %d rows", err, len(rows))
		}
		return rows[0]
	}
	other := run("pre_period:visits", func(u unit) int64 { return u.cs }, nil)
	own := run("pre_period", func(u unit) int64 { return u.cv }, nil)
	if other.Status != "ok" || own.Status != "ok" {
		t.Fatalf("status %q / %q", other.Status, own.Status)
	}
	for _, f := range []struct {
		name string
		a, b *float64
	}{{"estimate", other.Estimate, own.Estimate}, {"se", other.SE, own.SE}, {"df", other.DF, own.DF}, {"p", other.PValue, own.PValue}} {
		if math.Abs(*f.a-*f.b) > 1e-12*math.Max(1, math.Abs(*f.b)) {
			t.Errorf("%s: pre_period:visits %v, pre_period set to visits' %v", f.name, *f.a, *f.b)
		}
	}
	if *other.VarianceReduction < 0.8 {
		t.Errorf("variance removed %v: the planted covariate explains most of spend", *other.VarianceReduction)
	}
	// Both covariates: more than either alone is not guaranteed, but the
	// pair must be estimable and at least as good as the weak one.
	both := run("pre_period, pre_period:visits", func(u unit) int64 { return u.cs }, nil)
	if both.Status != "ok" || *both.VarianceReduction < *other.VarianceReduction-0.01 {
		t.Errorf("both covariates: %q %v", both.Status, both.VarianceReduction)
	}
	missing := run("pre_period:visits", func(u unit) int64 { return u.cs }, func(c []engine.CrossCell) []engine.CrossCell { return c[1:] })
	if !strings.HasPrefix(missing.Status, "not estimated: persona ") || !strings.Contains(missing.Status, "no cross-moments of spend and visits's pre-period value") || missing.Estimate != nil {
		t.Errorf("missing cross cell: %q", missing.Status)
	}
	overflow := run("pre_period:visits", func(u unit) int64 { return u.cs }, func(c []engine.CrossCell) []engine.CrossCell {
		c[0].Overflow, c[0].SumXC, c[0].SumYC, c[0].SumCC = true, nil, nil, nil
		return c
	})
	if !strings.HasPrefix(overflow.Status, "not estimated: persona ") || !strings.Contains(overflow.Status, "could exceed 128 bits") || overflow.Estimate != nil {
		t.Errorf("overflowed cross cell: %q", overflow.Status)
	}
}

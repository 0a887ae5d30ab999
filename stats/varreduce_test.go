package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// unitCell returns the Cell of the values xs (two-pass moments; Var 0
// for fewer than two values).
func unitCell(xs []float64) Cell {
	if len(xs) < 2 {
		c := Cell{N: float64(len(xs))}
		if len(xs) == 1 {
			c.Mean = xs[0]
		}
		return c
	}
	u := unitData{x: xs}
	a := u.moments(false, false)
	return Cell{N: a.N, Mean: a.Mean, Var: a.Var}
}

// unitMoments returns the ArmMoments of rows z (each row y, x₁, …, x_k),
// two-pass.
func unitMoments(z [][]float64) ArmMoments {
	n, p := len(z), len(z[0])
	m := ArmMoments{N: float64(n), Mean: make([]float64, p), Cov: make([]float64, p*p)}
	for _, r := range z {
		for j, v := range r {
			m.Mean[j] += v / float64(n)
		}
	}
	for _, r := range z {
		for i := range p {
			for j := range p {
				m.Cov[i*p+j] += (r[i] - m.Mean[i]) * (r[j] - m.Mean[j]) / float64(n-1)
			}
		}
	}
	return m
}

func TestMergeMomentsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	var all [][]float64
	var parts []ArmMoments
	var cells []Cell
	for _, n := range []int{1, 7, 0, 40, 2} {
		var z [][]float64
		var ys []float64
		for range n {
			x := rng.NormFloat64()*3 + 10
			r := []float64{2*x + rng.NormFloat64(), x, rng.ExpFloat64()}
			z = append(z, r)
			ys = append(ys, r[0])
		}
		all = append(all, z...)
		if n == 0 {
			parts = append(parts, ArmMoments{Mean: make([]float64, 3), Cov: make([]float64, 9)})
			cells = append(cells, Cell{})
			continue
		}
		m := unitMoments(z)
		if n == 1 {
			m.Cov = []float64{9, 9, 9, 9, 9, 9, 9, 9, 9} // ignored: one unit has no spread
		}
		parts = append(parts, m)
		cells = append(cells, Cell{N: m.N, Mean: m.Mean[0], Var: m.Cov[0]})
	}
	got, err := MergeArmMoments(parts...)
	if err != nil {
		t.Fatal(err)
	}
	want := unitMoments(all)
	checkClose(t, "N", got.N, want.N, 0)
	for i, v := range want.Mean {
		checkCloseTol(t, "Mean", got.Mean[i], v, 1, 1e-12)
	}
	for i, v := range want.Cov {
		checkCloseTol(t, "Cov", got.Cov[i], v, 1, 1e-12)
	}
	c, err := MergeCells(cells...)
	if err != nil {
		t.Fatal(err)
	}
	checkCloseTol(t, "cell mean", c.Mean, want.Mean[0], 1, 1e-12)
	checkCloseTol(t, "cell var", c.Var, want.Cov[0], 1, 1e-12)
	if _, err := MergeArmMoments(parts[0], ArmMoments{N: 1, Mean: []float64{1}, Cov: []float64{0}}); !errors.Is(err, ErrLength) {
		t.Errorf("mixed dimensions: %v, want ErrLength", err)
	}
	if _, err := MergeCells(Cell{N: 3, Mean: math.NaN()}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("NaN cell: %v, want ErrInvalidInput", err)
	}
}

// TestPostStratifyOneStratumIsCompare: with one stratum the estimate,
// interval and p-value are Compare's Welch comparison.
func TestPostStratifyOneStratumIsCompare(t *testing.T) {
	c, tr := Cell{N: 40, Mean: 3.1, Var: 1.3}, Cell{N: 25, Mean: 3.6, Var: 4.1}
	got, err := PostStratify([][2]Cell{{c, tr}}, PostStratOptions{Alpha: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	want := Compare(Arm{N: c.N, Mean: c.Mean, Var: c.Var}, Arm{N: tr.N, Mean: tr.Mean, Var: tr.Var}, Mean, Options{Alpha: 0.1})
	checkClose(t, "Estimate", got.Estimate, want.Diff, 0)
	checkClose(t, "SE", got.SE, want.SE, 0)
	checkClose(t, "DF", got.DF, want.DF, 0)
	checkClose(t, "PValue", got.PValue, want.PValue, 0)
	checkClose(t, "Low", got.Low, want.DiffLow, want.SE)
	checkClose(t, "High", got.High, want.DiffHigh, want.SE)
	if math.Abs(got.VarianceReduction) > 1e-12 {
		t.Errorf("variance reduction %v, want 0", got.VarianceReduction)
	}
}

// TestPostStratifyIsLinWithIndicators: Lin's estimator with stratum
// indicators as covariates is the post-stratified estimate, and its
// covariate-mean term is PostStratify's between-strata term.
func TestPostStratifyIsLinWithIndicators(t *testing.T) {
	strata := [][2]Cell{
		{{N: 120, Mean: 2, Var: 1}, {N: 130, Mean: 2.4, Var: 1.5}},
		{{N: 300, Mean: 8, Var: 9}, {N: 280, Mean: 8.1, Var: 8}},
		{{N: 60, Mean: 20, Var: 30}, {N: 75, Mean: 21.5, Var: 28}},
	}
	ps, err := PostStratify(strata, PostStratOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Each arm's moments of (y, d₁, d₂), d_k the indicator of stratum k,
	// merged exactly from the cells (within a cell the indicators are
	// constant).
	arms := make([]ArmMoments, 2)
	for a := range 2 {
		var parts []ArmMoments
		for k, s := range strata {
			c := s[a]
			m := ArmMoments{N: c.N, Mean: []float64{c.Mean, 0, 0}, Cov: make([]float64, 9)}
			if k > 0 {
				m.Mean[k] = 1
			}
			m.Cov[0] = c.Var
			parts = append(parts, m)
		}
		if arms[a], err = MergeArmMoments(parts...); err != nil {
			t.Fatal(err)
		}
	}
	lin, err := RegressionAdjust(arms, RegressionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := lin.Effects[0]
	checkCloseTol(t, "Estimate", e.Estimate, ps.Estimate, ps.SE, 1e-10)
	hetLin := e.SE*e.SE - e.SEConditional*e.SEConditional
	hetPS := ps.SE*ps.SE - ps.SEConditional*ps.SEConditional
	checkCloseTol(t, "between-strata term", hetLin, hetPS, 0, 1e-6)
}

func TestPostStratifyPooling(t *testing.T) {
	big := Cell{N: 500, Mean: 1, Var: 1}
	cases := []struct {
		name     string
		strata   [][2]Cell
		minUnits float64
		groups   [][]int
		empty    []int
	}{
		{"no thin strata", [][2]Cell{{big, big}, {big, big}}, 0, [][]int{{0}, {1}}, nil},
		{"thin pooled alone", [][2]Cell{{big, big}, {{N: 1, Mean: 2}, {N: 3, Mean: 2, Var: 1}}, {{N: 4, Mean: 1, Var: 1}, {N: 1, Mean: 3}}},
			0, [][]int{{0}, {1, 2}}, nil},
		{"thin joins the largest", [][2]Cell{{big, big}, {{N: 1, Mean: 2}, {}}, {{N: 900, Mean: 1, Var: 2}, big}},
			0, [][]int{{0}, {1, 2}}, nil},
		{"largest tie goes to the first", [][2]Cell{{big, big}, {{N: 1, Mean: 2}, {}}, {big, big}},
			0, [][]int{{0, 1}, {2}}, nil},
		{"empty strata dropped", [][2]Cell{{}, {big, big}, {}}, 0, [][]int{{1}}, []int{0, 2}},
		{"min units 30", [][2]Cell{{big, big}, {{N: 20, Mean: 1, Var: 1}, {N: 40, Mean: 1, Var: 1}}, {{N: 40, Mean: 2, Var: 1}, {N: 25, Mean: 2, Var: 2}}},
			30, [][]int{{0}, {1, 2}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := PostStratify(c.strata, PostStratOptions{MinUnits: c.minUnits})
			if err != nil {
				t.Fatal(err)
			}
			var groups [][]int
			for _, s := range r.Strata {
				groups = append(groups, s.Strata)
			}
			if b, _ := json.Marshal(groups); string(b) != mustJSON(t, c.groups) {
				t.Errorf("groups %s, want %s", b, mustJSON(t, c.groups))
			}
			if b, _ := json.Marshal(r.Empty); string(b) != mustJSON(t, c.empty) {
				t.Errorf("empty %s, want %s", b, mustJSON(t, c.empty))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPostStratifyHostile(t *testing.T) {
	ok := Cell{N: 50, Mean: 1, Var: 2}
	cases := []struct {
		name     string
		strata   [][2]Cell
		opts     PostStratOptions
		want     error
		row, col int // of the *CellError, or −2 when none
	}{
		{"no strata", nil, PostStratOptions{}, ErrLength, -2, 0},
		{"NaN mean", [][2]Cell{{ok, ok}, {ok, {N: 5, Mean: math.NaN(), Var: 1}}}, PostStratOptions{}, ErrInvalidInput, 1, 1},
		{"negative variance", [][2]Cell{{{N: 5, Mean: 1, Var: -1}, ok}}, PostStratOptions{}, ErrInvalidInput, 0, 0},
		{"negative n", [][2]Cell{{ok, {N: -3, Mean: 1}}}, PostStratOptions{}, ErrInvalidInput, 0, 1},
		{"infinite n", [][2]Cell{{ok, {N: math.Inf(1), Mean: 1}}}, PostStratOptions{}, ErrInvalidInput, 0, 1},
		{"only n=1 cells", [][2]Cell{{{N: 1, Mean: 1}, {N: 1, Mean: 2}}}, PostStratOptions{}, ErrDegenerate, -2, 0},
		{"all empty", [][2]Cell{{}, {}}, PostStratOptions{}, ErrDegenerate, -2, 0},
		{"one arm missing everywhere", [][2]Cell{{ok, {}}, {ok, {}}}, PostStratOptions{}, ErrDegenerate, -2, 0},
		{"zero variance", [][2]Cell{{{N: 10, Mean: 1}, {N: 10, Mean: 2}}, {{N: 10, Mean: 3}, {N: 10, Mean: 3}}}, PostStratOptions{}, ErrDegenerate, -2, 0},
		{"alpha 1", [][2]Cell{{ok, ok}}, PostStratOptions{Alpha: 1}, ErrInvalidInput, -2, 0},
		{"min units 1", [][2]Cell{{ok, ok}}, PostStratOptions{MinUnits: 1}, ErrInvalidInput, -2, 0},
		{"overflow", [][2]Cell{{{N: 10, Mean: 1e300, Var: 1e300}, {N: 10, Mean: -1e300, Var: 1e300}}}, PostStratOptions{}, ErrInvalidInput, -2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := PostStratify(c.strata, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v (result %+v)", err, c.want, r)
			}
			var ce *CellError
			if got := errors.As(err, &ce); got != (c.row != -2) {
				t.Fatalf("CellError %v in %v", got, err)
			}
			if ce != nil && (ce.Row != c.row || ce.Col != c.col || ce.Table != "stratum") {
				t.Errorf("cell error at %s %d, %d; want stratum %d, %d", ce.Table, ce.Row, ce.Col, c.row, c.col)
			}
		})
	}
	// One cell without variance is fine when another has some.
	r, err := PostStratify([][2]Cell{{{N: 10, Mean: 1}, {N: 10, Mean: 2, Var: 1}}}, PostStratOptions{})
	if err != nil || !r.finite() {
		t.Errorf("one constant arm: %v, %+v", err, r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("does not encode: %v", err)
	}
}

// TestRegressionAdjustWithoutCovariatesIsCompare: k = 0 is Welch.
func TestRegressionAdjustWithoutCovariatesIsCompare(t *testing.T) {
	c := ArmMoments{N: 30, Mean: []float64{4}, Cov: []float64{9}}
	tr := ArmMoments{N: 45, Mean: []float64{5.2}, Cov: []float64{16}}
	r, err := RegressionAdjust([]ArmMoments{c, tr}, RegressionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Compare(Arm{N: 30, Mean: 4, Var: 9}, Arm{N: 45, Mean: 5.2, Var: 16}, Mean, Options{})
	e := r.Effects[0]
	checkClose(t, "Estimate", e.Estimate, want.Diff, 0)
	checkClose(t, "SE", e.SE, want.SE, 0)
	checkClose(t, "DF", e.DF, want.DF, 0)
	checkClose(t, "PValue", e.PValue, want.PValue, 0)
	checkClose(t, "Low", e.Low, want.DiffLow, want.SE)
}

// TestRegressionAdjustAndCUPED: with one covariate, the treatment arm a
// copy of the control shifted by δ in y (same covariates, so equal slopes
// and covariate means), Lin's estimate is CUPED's and its variance is
// CUPED's times (n−1)/(n−2), the residual degree of freedom. With
// different slopes the estimates differ by exactly
// −(β̂_t − θ)(c̄_t − c̄*) + (β̂_c − θ)(c̄_c − c̄*).
func TestRegressionAdjustAndCUPED(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	const n, delta = 200, 0.7
	var uc, ut unitData
	for range n {
		c := 10 + 3*rng.NormFloat64()
		y := 2 + 0.8*c + rng.NormFloat64()*(1+0.1*c)
		uc.x, uc.c = append(uc.x, y), append(uc.c, c)
		ut.x, ut.c = append(ut.x, y+delta), append(ut.c, c)
	}
	toMoments := func(a Arm) ArmMoments {
		return ArmMoments{N: a.N, Mean: []float64{a.Mean, a.CovMean}, Cov: []float64{a.Var, a.CovXC, a.CovXC, a.CovVar}}
	}
	check := func(ac, at Arm, equalSlopes bool) {
		t.Helper()
		cu, err := NewCUPED([]Arm{ac, at}, Mean)
		if err != nil {
			t.Fatal(err)
		}
		cmp := Compare(ac, at, Mean, Options{CUPED: &cu})
		lin, err := RegressionAdjust([]ArmMoments{toMoments(ac), toMoments(at)}, RegressionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e := lin.Effects[0]
		bc, bt := lin.Arms[0].Slopes[0], lin.Arms[1].Slopes[0]
		want := cmp.Diff - (bt-cu.Theta)*(at.CovMean-cu.CovariateMean) + (bc-cu.Theta)*(ac.CovMean-cu.CovariateMean)
		checkCloseTol(t, "Lin − CUPED estimate", e.Estimate, want, e.SE, 1e-10)
		if equalSlopes {
			checkCloseTol(t, "estimate", e.Estimate, cmp.Diff, e.SE, 1e-10)
			checkCloseTol(t, "variance", e.SE*e.SE, cmp.SE*cmp.SE*(n-1)/(n-2), 0, 1e-10)
		}
	}
	check(uc.moments(false, true), ut.moments(false, true), true)
	// Now a treatment arm of its own, with a steeper slope.
	ut.reset()
	for range n {
		c := 10 + 3*rng.NormFloat64()
		ut.x, ut.c = append(ut.x, 2.5+1.1*c+rng.NormFloat64()), append(ut.c, c)
	}
	check(uc.moments(false, true), ut.moments(false, true), false)
}

func TestRegressionAdjustHostile(t *testing.T) {
	good := func() ArmMoments {
		return ArmMoments{N: 50, Mean: []float64{1, 2, 3}, Cov: []float64{4, 1, 0.5, 1, 2, 0.3, 0.5, 0.3, 1}}
	}
	with := func(f func(*ArmMoments)) ArmMoments {
		a := good()
		f(&a)
		return a
	}
	cases := []struct {
		name string
		arms []ArmMoments
		want error
		row  int // arm of the *CellError, or −1 when none
	}{
		{"one arm", []ArmMoments{good()}, ErrLength, -1},
		{"dimensions differ", []ArmMoments{good(), {N: 50, Mean: []float64{1}, Cov: []float64{1}}}, ErrLength, -1},
		{"covariance shape", []ArmMoments{good(), with(func(a *ArmMoments) { a.Cov = a.Cov[:8] })}, ErrLength, 1},
		{"NaN covariance", []ArmMoments{good(), with(func(a *ArmMoments) { a.Cov[7] = math.NaN() })}, ErrInvalidInput, 1},
		{"infinite mean", []ArmMoments{with(func(a *ArmMoments) { a.Mean[2] = math.Inf(-1) }), good()}, ErrInvalidInput, 0},
		{"negative variance", []ArmMoments{good(), with(func(a *ArmMoments) { a.Cov[8] = -1 })}, ErrInvalidInput, 1},
		{"n=1", []ArmMoments{good(), with(func(a *ArmMoments) { a.N = 1 })}, ErrDegenerate, 1},
		{"n = k+1", []ArmMoments{good(), with(func(a *ArmMoments) { a.N = 3 })}, ErrDegenerate, 1},
		{"collinear covariates", []ArmMoments{good(), with(func(a *ArmMoments) {
			// x₂ = 2·x₁: Var 4·Var(x₁), Cov(x₁, x₂) = 2·Var(x₁).
			a.Cov = []float64{4, 1, 2, 1, 2, 4, 2, 4, 8}
		})}, ErrSingular, 1},
		{"nearly collinear", []ArmMoments{with(func(a *ArmMoments) {
			a.Cov = []float64{4, 1, 1, 1, 1, 1 - 1e-12, 1, 1 - 1e-12, 1}
		}), good()}, ErrSingular, 0},
		{"constant covariate", []ArmMoments{good(), with(func(a *ArmMoments) { a.Cov[4], a.Cov[1], a.Cov[3], a.Cov[5], a.Cov[7] = 0, 0, 0, 0, 0 })}, ErrSingular, 1},
		{"not positive semi-definite", []ArmMoments{good(), with(func(a *ArmMoments) { a.Cov[0] = 0.1 })}, ErrInvalidInput, 1},
		{"zero residual variance", []ArmMoments{
			{N: 10, Mean: []float64{2, 1}, Cov: []float64{4, 2, 2, 1}},
			{N: 10, Mean: []float64{3, 1}, Cov: []float64{4, 2, 2, 1}}}, ErrDegenerate, -1},
		{"zero variance, no covariates", []ArmMoments{
			{N: 10, Mean: []float64{2}, Cov: []float64{0}}, {N: 10, Mean: []float64{3}, Cov: []float64{0}}}, ErrDegenerate, -1},
		{"overflow", []ArmMoments{
			{N: 10, Mean: []float64{1e300}, Cov: []float64{1e300}}, {N: 10, Mean: []float64{-1e300}, Cov: []float64{1e300}}}, ErrInvalidInput, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := RegressionAdjust(c.arms, RegressionOptions{})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v (result %+v)", err, c.want, r)
			}
			var ce *CellError
			if got := errors.As(err, &ce); got != (c.row >= 0) {
				t.Fatalf("CellError %v in %v", got, err)
			}
			if ce != nil && (ce.Row != c.row || ce.Table != "arm") {
				t.Errorf("cell error at %s %d, want arm %d", ce.Table, ce.Row, c.row)
			}
		})
	}
	if _, err := RegressionAdjust([]ArmMoments{good(), good()}, RegressionOptions{Alpha: -1}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("alpha −1: %v", err)
	}
	// A perfect fit in one arm is fine: that arm contributes no variance.
	r, err := RegressionAdjust([]ArmMoments{{N: 10, Mean: []float64{2, 1}, Cov: []float64{4, 2, 2, 1}}, good2()}, RegressionOptions{})
	if err != nil || r.Arms[0].Var != 0 {
		t.Errorf("perfect fit in arm 0: %v, var %v", err, r.Arms)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("does not encode: %v", err)
	}
	for _, bad := range [][]ArmMoments{
		{{N: 5, Mean: []float64{1}, Cov: []float64{1}}},
		{{N: 5, Mean: []float64{1, 0}, Cov: []float64{1, 0, 0, 1}}, {N: 5, Mean: []float64{1, 0}, Cov: []float64{1, 0, 0, 1}}},
		{{N: 5, Mean: []float64{1, math.NaN()}, Cov: []float64{1, 0, 0, 1}}},
	} {
		if _, err := LinearizeRatio(bad); err == nil {
			t.Errorf("LinearizeRatio(%v): no error", bad)
		}
	}
}

func good2() ArmMoments {
	return ArmMoments{N: 12, Mean: []float64{3, 1.2}, Cov: []float64{5, 1, 1, 1}}
}

// TestVarianceReductionCoverage: seeded simulation of the 95% intervals of
// PostStratify and RegressionAdjust for the population effect, with
// effects that differ between strata and slopes that differ between arms
// (so that the between-strata and covariate-mean terms matter), random
// stratum counts (thin strata get pooled) and heteroskedastic errors.
// Each coverage must be within 4.5 binomial standard deviations of 0.95.
func TestVarianceReductionCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const reps = 2000
	rng := rand.New(rand.NewPCG(2113, 21))
	tol := 4.5 * math.Sqrt(0.95*0.05/reps)

	// Post-stratification: 5 strata with shares π, means μ, spreads σ and
	// effects τ; 400 units, each treated with probability 1/2.
	pi := []float64{0.4, 0.3, 0.2, 0.07, 0.03}
	mu := []float64{1, 4, 9, 15, 30}
	sd := []float64{1, 2, 4, 6, 10}
	tau := []float64{0.1, 0.3, 0.8, -0.5, 2}
	var pate float64
	for k := range pi {
		pate += pi[k] * tau[k]
	}
	var psCover, psVR float64
	for range reps {
		vals := make([][2][]float64, len(pi))
		for range 400 {
			u, k := rng.Float64(), 0
			for k < len(pi)-1 && u > pi[k] {
				u -= pi[k]
				k++
			}
			a := rng.IntN(2)
			y := mu[k] + sd[k]*rng.NormFloat64()*(1+0.5*float64(a)) + float64(a)*tau[k]
			vals[k][a] = append(vals[k][a], y)
		}
		strata := make([][2]Cell, len(pi))
		for k := range pi {
			for a := range 2 {
				if len(vals[k][a]) > 0 {
					strata[k][a] = unitCell(vals[k][a])
				}
			}
		}
		r, err := PostStratify(strata, PostStratOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Low <= pate && pate <= r.High {
			psCover++
		}
		psVR += r.VarianceReduction
	}

	// Regression adjustment: two arms of 150, three covariates, slopes that
	// differ by arm, error spread growing with x₁.
	beta := [2][3]float64{{1, 0.5, 2}, {1.3, 0.3, 2.5}}
	xMean := [3]float64{6, 3, 0.3} // E x₁ = 2·3, E x₂ = 0.5·E x₁, E x₃ = 0.3
	linTruth := 0.5
	for j := range 3 {
		linTruth += (beta[1][j] - beta[0][j]) * xMean[j]
	}
	var linCover, linVR float64
	for range reps {
		arms := make([]ArmMoments, 2)
		for a := range 2 {
			z := make([][]float64, 150)
			for i := range z {
				x1 := 3 * (rng.ExpFloat64() + rng.ExpFloat64()) // Gamma(2, 3)
				x2 := 0.5*x1 + 2*rng.NormFloat64()
				x3 := bernoulli(rng, 0.3)
				y := 5 + 0.5*float64(a) + beta[a][0]*x1 + beta[a][1]*x2 + beta[a][2]*x3 + rng.NormFloat64()*(1+0.3*x1)
				z[i] = []float64{y, x1, x2, x3}
			}
			arms[a] = unitMoments(z)
		}
		r, err := RegressionAdjust(arms, RegressionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e := r.Effects[0]
		if e.Low <= linTruth && linTruth <= e.High {
			linCover++
		}
		linVR += e.VarianceReduction
	}
	for _, c := range []struct {
		name     string
		cover    float64
		meanVR   float64
		minMeanV float64
	}{{"post-stratification", psCover / reps, psVR / reps, 0.5}, {"regression adjustment", linCover / reps, linVR / reps, 0.5}} {
		t.Logf("%s: coverage %.4f (95%% ± %.4f), mean variance reduction %.3f", c.name, c.cover, tol, c.meanVR)
		if math.Abs(c.cover-0.95) > tol {
			t.Errorf("%s: coverage %.4f, want 0.95 ± %.4f", c.name, c.cover, tol)
		}
		if c.meanVR < c.minMeanV {
			t.Errorf("%s: mean variance reduction %.3f, want at least %.2f", c.name, c.meanVR, c.minMeanV)
		}
	}
}

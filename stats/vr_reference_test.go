package stats

import (
	"math"
	"slices"
	"testing"
)

// The values in testdata/vr_reference.json come from
// testdata/vr_reference.py (unit-level NumPy arrays; statsmodels OLS per
// arm and with HC2; SciPy's t distribution):
//
//	/usr/bin/python3 stats/testdata/vr_reference.py
//
// Tolerances: closed forms agree to relTol (1e-9) relative, against
// max(|want|, scale) with the scale of an estimate or bound its SE. The
// moment-based standard error of RegressionAdjust is compared with
// statsmodels' HC2 at 0.25/√n_min relative: HC2 needs each unit's
// leverage, and the two differ by O(n^−½) relative under
// heteroskedasticity (see regadjust.go); the reference cases differ by
// 0.02% to 0.84%.

type vrReference struct {
	PostStratification []struct {
		Name     string
		Alpha    float64
		MinUnits float64 `json:"min_units"`
		Strata   [][2]Cell
		Want     struct {
			Estimate, SE, SEConditional, HC2SE, DF      float64
			Statistic, PValue, Low, High, Critical      float64
			Unadjusted, UnadjustedSE, VarianceReduction float64
			Groups                                      [][]int
			Empty                                       []int
			Weights, Effects                            []float64
		}
	} `json:"post_stratification"`
	RegressionAdjustment []struct {
		Name  string
		Alpha float64
		Ratio bool
		Arms  []ArmMoments
		Want  struct {
			CovariateMean []float64
			Arms          []struct {
				AdjustedMean, Var, ResidualVar float64
				Slopes                         []float64
			}
			Effects []struct {
				Arm                                         int
				Estimate, SE, SEConditional, HC2SE, DF      float64
				Statistic, PValue, Low, High, Critical      float64
				Unadjusted, UnadjustedSE, VarianceReduction float64
			}
		}
	} `json:"regression_adjustment"`
}

func vrRef(t *testing.T) *vrReference {
	t.Helper()
	var r vrReference
	loadJSON(t, "testdata/vr_reference.json", &r)
	return &r
}

func TestPostStratifyAgainstReference(t *testing.T) {
	cases := vrRef(t).PostStratification
	if len(cases) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := PostStratify(c.Strata, PostStratOptions{Alpha: c.Alpha, MinUnits: c.MinUnits})
			if err != nil {
				t.Fatal(err)
			}
			w := c.Want
			for _, f := range []struct {
				name             string
				got, want, scale float64
			}{
				{"Estimate", got.Estimate, w.Estimate, w.SE},
				{"SE", got.SE, w.SE, 0},
				{"SEConditional (= statsmodels HC2)", got.SEConditional, w.HC2SE, 0},
				{"DF", got.DF, w.DF, 0},
				{"Statistic", got.Statistic, w.Statistic, 1},
				{"PValue", got.PValue, w.PValue, 1e-300},
				{"Critical", got.Critical, w.Critical, 0},
				{"Low", got.Low, w.Low, w.SE},
				{"High", got.High, w.High, w.SE},
				{"Unadjusted", got.Unadjusted, w.Unadjusted, w.UnadjustedSE},
				{"UnadjustedSE", got.UnadjustedSE, w.UnadjustedSE, 0},
				{"VarianceReduction", got.VarianceReduction, w.VarianceReduction, 1},
			} {
				checkClose(t, f.name, f.got, f.want, f.scale)
			}
			if len(got.Strata) != len(w.Groups) {
				t.Fatalf("%d strata, want %d (%v)", len(got.Strata), len(w.Groups), w.Groups)
			}
			for i, g := range got.Strata {
				if !slices.Equal(g.Strata, w.Groups[i]) {
					t.Errorf("stratum %d holds %v, want %v", i, g.Strata, w.Groups[i])
				}
				checkClose(t, "Weight", g.Weight, w.Weights[i], 0)
				checkClose(t, "Effect", g.Effect, w.Effects[i], g.EffectSE)
			}
			if !slices.Equal(got.Empty, w.Empty) {
				t.Errorf("empty strata %v, want %v", got.Empty, w.Empty)
			}
		})
	}
}

func TestRegressionAdjustAgainstReference(t *testing.T) {
	cases := vrRef(t).RegressionAdjustment
	if len(cases) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			arms := c.Arms
			if c.Ratio {
				var err error
				if arms, err = LinearizeRatio(arms); err != nil {
					t.Fatal(err)
				}
			}
			got, err := RegressionAdjust(arms, RegressionOptions{Alpha: c.Alpha})
			if err != nil {
				t.Fatal(err)
			}
			w := c.Want
			for j, m := range w.CovariateMean {
				checkClose(t, "CovariateMean", got.CovariateMean[j], m, 0)
			}
			nMin := math.Inf(1)
			for i, a := range w.Arms {
				g := got.Arms[i]
				se := math.Sqrt(a.Var)
				checkClose(t, "AdjustedMean", g.AdjustedMean, a.AdjustedMean, se)
				checkClose(t, "Var (per-arm OLS)", g.Var, a.Var, 0)
				checkClose(t, "ResidualVar", g.ResidualVar, a.ResidualVar, 0)
				for j, b := range a.Slopes {
					checkClose(t, "Slope", g.Slopes[j], b, 1e-12*math.Abs(b)+relTol*maxAbs(a.Slopes))
				}
				nMin = math.Min(nMin, g.N)
			}
			if len(got.Effects) != len(w.Effects) {
				t.Fatalf("%d effects, want %d", len(got.Effects), len(w.Effects))
			}
			for i, e := range w.Effects {
				g := got.Effects[i]
				if g.Arm != e.Arm {
					t.Errorf("effect %d is arm %d, want %d", i, g.Arm, e.Arm)
				}
				for _, f := range []struct {
					name             string
					got, want, scale float64
				}{
					{"Estimate", g.Estimate, e.Estimate, e.SE},
					{"SE", g.SE, e.SE, 0},
					{"SEConditional", g.SEConditional, e.SEConditional, 0},
					{"DF", g.DF, e.DF, 0},
					{"Statistic", g.Statistic, e.Statistic, 1},
					{"PValue", g.PValue, e.PValue, 1e-300},
					{"Critical", g.Critical, e.Critical, 0},
					{"Low", g.Low, e.Low, e.SE},
					{"High", g.High, e.High, e.SE},
					{"Unadjusted", g.Unadjusted, e.Unadjusted, e.UnadjustedSE},
					{"UnadjustedSE", g.UnadjustedSE, e.UnadjustedSE, 0},
					{"VarianceReduction", g.VarianceReduction, e.VarianceReduction, 1},
				} {
					checkClose(t, f.name, f.got, f.want, f.scale)
				}
				tol := 0.25 / math.Sqrt(nMin)
				rel := g.SEConditional/e.HC2SE - 1
				t.Logf("arm %d: moment SE / statsmodels HC2 SE − 1 = %.2e (tolerance %.2e); variance reduction %.3f",
					g.Arm, rel, tol, g.VarianceReduction)
				if math.Abs(rel) > tol {
					t.Errorf("SE %v vs HC2 %v: relative difference %.3g beyond %.3g", g.SEConditional, e.HC2SE, rel, tol)
				}
			}
		})
	}
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Reference values: the interaction and independence sections of
// testdata/vr_reference.json (statsmodels' HC2 OLS on the saturated A×B
// regression and its wald_test; SciPy's chi2_contingency). Tolerance
// relTol (1e-9) relative, as in vr_reference_test.go; the Wald test's F
// p-value (gonum's F survival function) at fTol.

const fTol = 1e-9

type interactionReference struct {
	Interaction []struct {
		Name  string
		Alpha float64
		Cells [][]Cell
		Want  struct {
			Method                               string
			Contrasts, Cov                       []float64
			Statistic, DF, DFDenominator, PValue float64
			Estimate, SE                         float64
			Low, High                            float64
			Effects                              []InteractionEffect
		}
	}
	Independence []struct {
		Name   string
		Counts [][]float64
		Want   struct {
			ChiSquare, PValue float64
			DF                int
			Expected          []float64
		}
	}
}

func TestInteractionAgainstReference(t *testing.T) {
	var ref interactionReference
	loadJSON(t, "testdata/vr_reference.json", &ref)
	if len(ref.Interaction) == 0 || len(ref.Independence) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Interaction {
		t.Run(c.Name, func(t *testing.T) {
			got, err := Interaction(c.Cells, InteractionOptions{Alpha: c.Alpha})
			if err != nil {
				t.Fatal(err)
			}
			w := c.Want
			if got.Method != w.Method {
				t.Errorf("method %q, want %q", got.Method, w.Method)
			}
			for i, v := range w.Contrasts {
				checkClose(t, "Contrast", got.Contrasts[i], v, math.Sqrt(w.Cov[i*len(w.Contrasts)+i]))
			}
			for i, v := range w.Cov {
				checkClose(t, "Cov (HC2)", got.Cov[i], v, w.Cov[0])
			}
			checkClose(t, "Statistic", got.Statistic, w.Statistic, 1)
			checkClose(t, "DF", got.DF, w.DF, 0)
			checkClose(t, "DFDenominator", got.DFDenominator, w.DFDenominator, 0)
			checkCloseTol(t, "PValue", got.PValue, w.PValue, 1e-300, fTol)
			if w.Method == InteractionWelch {
				checkClose(t, "Estimate", got.Estimate, w.Estimate, w.SE)
				checkClose(t, "SE", got.SE, w.SE, 0)
				checkClose(t, "Low", got.Low, w.Low, w.SE)
				checkClose(t, "High", got.High, w.High, w.SE)
			}
			if len(got.Effects) != len(w.Effects) {
				t.Fatalf("%d effects, want %d", len(got.Effects), len(w.Effects))
			}
			for i, e := range w.Effects {
				g := got.Effects[i]
				if g.ArmA != e.ArmA || g.ArmB != e.ArmB {
					t.Errorf("effect %d is (%d, %d), want (%d, %d)", i, g.ArmA, g.ArmB, e.ArmA, e.ArmB)
				}
				checkClose(t, "Effect", g.Estimate, e.Estimate, e.SE)
				checkClose(t, "Effect SE", g.SE, e.SE, 0)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("does not encode: %v", err)
			}
		})
	}
	for _, c := range ref.Independence {
		t.Run(c.Name, func(t *testing.T) {
			got, err := AssignmentIndependence(c.Counts)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "ChiSquare", got.ChiSquare, c.Want.ChiSquare, 1)
			checkClose(t, "PValue", got.PValue, c.Want.PValue, 1e-300)
			if got.DF != c.Want.DF {
				t.Errorf("DF %d, want %d", got.DF, c.Want.DF)
			}
			for i, e := range c.Want.Expected {
				checkClose(t, "Expected", got.Expected[i], e, 0)
			}
		})
	}
}

// TestInteractionFalsePositiveRate: without an interaction (additive arm
// effects, cell variances unequal, cells of 35–90 units) the 2×2 Welch
// test and the 3×2 Wald F test reject at α = 0.05 within 4.5 binomial
// standard deviations; with
// a planted interaction of 4 standard errors the 2×2 test detects it.
func TestInteractionFalsePositiveRate(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const reps, alpha = 4000, 0.05
	rng := rand.New(rand.NewPCG(21, 3))
	draw := func(n int, mu, sd float64) Cell { return unitCellOf(normalArm(rng, n, mu, sd)) }
	var fp22, fp32, hit int
	for range reps {
		// A adds 0.4, B adds 0.2, no interaction; spreads differ by cell.
		c := [][]Cell{{draw(80, 5, 1), draw(60, 5.2, 2)}, {draw(70, 5.4, 1.5), draw(90, 5.6, 3)}}
		if r, err := Interaction(c, InteractionOptions{}); err != nil {
			t.Fatal(err)
		} else if r.PValue <= alpha {
			fp22++
		}
		c3 := [][]Cell{{draw(50, 1, 1), draw(40, 1.3, 1)}, {draw(45, 1.5, 2), draw(55, 1.8, 2)}, {draw(60, 0.7, 0.5), draw(35, 1.0, 1.5)}}
		if r, err := Interaction(c3, InteractionOptions{}); err != nil {
			t.Fatal(err)
		} else if r.PValue <= alpha {
			fp32++
		}
		// Interaction of 4·SE: SE² = Σσ²/n = 4·(1/100) → SE = 0.2.
		ci := [][]Cell{{draw(100, 0, 1), draw(100, 0, 1)}, {draw(100, 0, 1), draw(100, 0.8, 1)}}
		if r, err := Interaction(ci, InteractionOptions{}); err != nil {
			t.Fatal(err)
		} else if r.PValue <= alpha {
			hit++
		}
	}
	tol := 4.5 * math.Sqrt(alpha*(1-alpha)/reps)
	for _, r := range []struct {
		name string
		hits int
	}{{"2×2 Welch", fp22}, {"3×2 Wald F", fp32}} {
		rate := float64(r.hits) / reps
		t.Logf("%s: false-positive rate %.4f (α = %v ± %.4f)", r.name, rate, alpha, tol)
		if math.Abs(rate-alpha) > tol {
			t.Errorf("%s: rate %.4f, want %v ± %.4f", r.name, rate, alpha, tol)
		}
	}
	// Power of a two-sided level-0.05 test at 4 SE: Φ(4 − 1.96) ≈ 0.979.
	power := float64(hit) / reps
	t.Logf("planted interaction of 4 SE: detected %.4f (normal theory 0.979)", power)
	if power < 0.979-4.5*math.Sqrt(0.979*0.021/reps)-0.005 {
		t.Errorf("planted interaction detected %.4f, want about 0.979", power)
	}
}

func unitCellOf(a Arm) Cell { return Cell{N: a.N, Mean: a.Mean, Var: a.Var} }

func TestInteractionHostile(t *testing.T) {
	ok := Cell{N: 30, Mean: 1, Var: 1}
	cases := []struct {
		name     string
		cells    [][]Cell
		want     error
		row, col int // of the *CellError, or −1 when none
	}{
		{"empty table", nil, ErrLength, -1, -1},
		{"1×2", [][]Cell{{ok, ok}}, ErrLength, -1, -1},
		{"2×1", [][]Cell{{ok}, {ok}}, ErrLength, -1, -1},
		{"ragged", [][]Cell{{ok, ok}, {ok}}, ErrLength, -1, -1},
		{"n=1", [][]Cell{{ok, ok}, {ok, {N: 1, Mean: 2}}}, ErrDegenerate, 1, 1},
		{"empty cell", [][]Cell{{ok, {}}, {ok, ok}}, ErrDegenerate, 0, 1},
		{"NaN", [][]Cell{{ok, ok}, {{N: 5, Mean: math.NaN(), Var: 1}, ok}}, ErrInvalidInput, 1, 0},
		{"negative variance", [][]Cell{{ok, ok}, {ok, {N: 5, Var: -1}}}, ErrInvalidInput, 1, 1},
		{"zero variance 2×2", [][]Cell{{{N: 5, Mean: 1}, {N: 5, Mean: 2}}, {{N: 5, Mean: 3}, {N: 5, Mean: 3}}}, ErrDegenerate, -1, -1},
		{"zero variance 3×2", [][]Cell{{{N: 5, Mean: 1}, {N: 5, Mean: 2}}, {{N: 5, Mean: 3}, {N: 5, Mean: 3}}, {ok, ok}}, ErrDegenerate, -1, -1},
		{"overflow", [][]Cell{{{N: 5, Mean: 1e308, Var: 1e308}, ok}, {{N: 5, Mean: -1e308, Var: 1e308}, ok}}, ErrInvalidInput, -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Interaction(c.cells, InteractionOptions{})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v (result %+v)", err, c.want, r)
			}
			var ce *CellError
			if got := errors.As(err, &ce); got != (c.row >= 0) {
				t.Fatalf("CellError %v in %v", got, err)
			}
			if ce != nil && (ce.Row != c.row || ce.Col != c.col) {
				t.Errorf("cell error at %d, %d; want %d, %d", ce.Row, ce.Col, c.row, c.col)
			}
		})
	}
	if _, err := Interaction([][]Cell{{ok, ok}, {ok, ok}}, InteractionOptions{Alpha: 2}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("alpha 2: %v", err)
	}
	for name, counts := range map[string][][]float64{
		"1×2": {{1, 2}}, "ragged": {{1, 2}, {3}}, "negative": {{1, -2}, {3, 4}}, "NaN": {{1, math.NaN()}, {3, 4}},
		"empty row": {{0, 0}, {3, 4}}, "empty column": {{0, 2}, {0, 4}},
	} {
		if _, err := AssignmentIndependence(counts); err == nil {
			t.Errorf("AssignmentIndependence %s: no error", name)
		}
	}
}

func TestFlagInteractions(t *testing.T) {
	p := []float64{0.001, 0.3, 0.02, 0.011, math.NaN(), 0.04}
	adj, flagged, err := FlagInteractions(p, DefaultInteractionCorrection, 0)
	if err != nil {
		t.Fatal(err)
	}
	// BH: sorted 0.001, 0.011, 0.02, 0.04, 0.3, 1 (NaN) → m·p/i = 0.006,
	// 0.033, 0.04, 0.06, 0.36, 1 → step-up minima 0.006, 0.033, 0.04,
	// 0.06, 0.36, 1.
	want := []float64{0.006, 0.36, 0.04, 0.033, 1, 0.06}
	for i := range want {
		checkCloseTol(t, "adjusted", adj[i], want[i], 0, 1e-12)
	}
	if !slices.Equal(flagged, []bool{true, false, true, true, false, false}) {
		t.Errorf("flagged %v", flagged)
	}
	_, holm, _ := FlagInteractions(p, HolmCorrection, 0.05)
	if !slices.Equal(holm, []bool{true, false, false, false, false, false}) {
		t.Errorf("Holm flagged %v", holm)
	}
	_, none, _ := FlagInteractions(p, NoCorrection, 0.01)
	if !slices.Equal(none, []bool{true, false, false, false, false, false}) {
		t.Errorf("per-test 0.01 flagged %v", none)
	}
	if _, _, err := FlagInteractions(p, Correction(9), 0.05); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown correction: %v", err)
	}
	if _, _, err := FlagInteractions(p, BHCorrection, 1.5); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("alpha 1.5: %v", err)
	}
}

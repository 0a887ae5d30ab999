package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestSRMErrors(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name        string
		obs, shares []float64
		want        error
	}{
		{"length mismatch", []float64{10, 10}, []float64{1}, ErrLength},
		{"one arm", []float64{10}, []float64{1}, ErrLength},
		{"negative count", []float64{-1, 10}, []float64{1, 1}, ErrInvalidInput},
		{"NaN count", []float64{nan, 10}, []float64{1, 1}, ErrInvalidInput},
		{"zero share", []float64{10, 10}, []float64{0, 1}, ErrInvalidInput},
		{"NaN share", []float64{10, 10}, []float64{nan, 1}, ErrInvalidInput},
		{"no units", []float64{0, 0}, []float64{1, 1}, ErrDegenerate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SRM(tc.obs, tc.shares); !errors.Is(err, tc.want) {
				t.Errorf("SRM error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := SRMCohorts([][]float64{{10, 10}, {1, -1}}, []float64{1, 1}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("SRMCohorts error %v", err)
	}
}

func TestSRMInvalidRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		obs       []float64
		threshold float64
		want      bool
	}{
		{"balanced", []float64{5012, 4988}, 0, false},
		{"clear mismatch", []float64{5200, 4800}, 0, true},
		{"p just above the default threshold", []float64{5160, 4840}, 0, false}, // χ²=10.24, p=0.0014
		{"p just below the default threshold", []float64{5165, 4835}, 0, true},  // χ²=10.89, p=0.00097
		{"looser threshold", []float64{5150, 4850}, 0.01, true},
		{"empty arm is still a mismatch", []float64{10000, 0}, 0, true},
		// Expected counts below MinChiSquareExpected use the exact binomial
		// test: 0 of 14 has p = 2·0.5¹⁴ = 0.00012, a mismatch (χ² used to
		// give 0.0002 and be ignored as "too few units").
		{"few expected units, exact test", []float64{0, 14}, 0, true},
		{"few expected units, exact test, plausible", []float64{2, 12}, 0, false}, // p = 0.013
		{"very few units cannot mismatch", []float64{0, 6}, 0, false},             // p = 0.031
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := SRM(tc.obs, []float64{1, 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Invalid(tc.threshold); got != tc.want {
				t.Errorf("Invalid(%v) = %v, want %v (p = %v, expected %v)", tc.threshold, got, tc.want, r.PValue, r.Expected)
			}
		})
	}
}

func TestSRMCohortsBonferroni(t *testing.T) {
	cohorts := [][]float64{{5012, 4988}, {5150, 4850}, {1000, 1010}}
	rs, err := SRMCohorts(cohorts, []float64{0.5, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		single, _ := SRM(cohorts[i], []float64{0.5, 0.5})
		if r.PValue != single.PValue || r.AdjPValue != math.Min(1, 3*single.PValue) {
			t.Errorf("cohort %d: p %v adj %v, want %v and %v", i, r.PValue, r.AdjPValue, single.PValue, math.Min(1, 3*single.PValue))
		}
	}
	// Cohort 1 alone has p = 0.0027: invalid at 0.01, but not after ×3.
	if single, _ := SRM(cohorts[1], []float64{1, 1}); !single.Invalid(0.01) {
		t.Fatalf("cohort 1 alone should be invalid at 0.01 (p %v)", single.PValue)
	}
	if SRMInvalid(rs, 0.005) {
		t.Errorf("Bonferroni across 3 cohorts should clear p=%v at 0.005", rs[1].PValue)
	}
	if !SRMInvalid(rs, 0.01) {
		t.Errorf("adjusted p %v should be invalid at 0.01", rs[1].AdjPValue)
	}
}

// TestSRMCalibration checks that under correct allocation the χ² test
// rejects at about its nominal rate.
func TestSRMCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const reps, n = 4000, 1000
	rejects := 0
	for range reps {
		var a, b float64
		for range n {
			if rng.Float64() < 0.4 {
				a++
			} else {
				b++
			}
		}
		r, err := SRM([]float64{a, b}, []float64{0.4, 0.6})
		if err != nil {
			t.Fatal(err)
		}
		if r.PValue < 0.05 {
			rejects++
		}
	}
	if rate := float64(rejects) / reps; rate < 0.04 || rate > 0.06 {
		t.Errorf("rejection rate at 0.05 = %v, want within [0.04, 0.06]", rate)
	}
}

func TestMultipleTestingProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for rep := range 500 {
		m := 1 + rng.IntN(15)
		p := make([]float64, m)
		for i := range p {
			// A mix of nulls and strong signals, with ties.
			switch rng.IntN(4) {
			case 0:
				p[i] = math.Pow(10, -1-6*rng.Float64())
			case 1:
				p[i] = float64(rng.IntN(5)) / 100
			default:
				p[i] = rng.Float64()
			}
		}
		const alpha = 0.05
		holm, bh, bonf := Holm(p), BenjaminiHochberg(p), Bonferroni(p)
		ha, ba := HolmAlphas(p, alpha), BenjaminiHochbergAlphas(p, alpha)
		for i := range p {
			// BH ≤ Holm up to rounding (m·p/m may round one ulp up).
			if !(holm[i] >= p[i] && holm[i] <= 1 && bh[i] >= p[i] && bh[i] <= holm[i]*(1+1e-15) && holm[i] <= bonf[i]) {
				t.Fatalf("rep %d: p %v, holm %v, bh %v, bonferroni %v", rep, p[i], holm[i], bh[i], bonf[i])
			}
			// The adjusted interval excludes 0 exactly when the hypothesis is
			// rejected: p_i ≤ α_i ⇔ p̃_i ≤ α.
			if (p[i] <= ha[i]) != (holm[i] <= alpha) {
				t.Fatalf("rep %d: holm p %v alpha_i %v adjusted %v (p=%v)", rep, p[i], ha[i], holm[i], p)
			}
			if (p[i] <= ba[i]) != (bh[i] <= alpha) {
				t.Fatalf("rep %d: bh p %v alpha_i %v adjusted %v (p=%v)", rep, p[i], ba[i], bh[i], p)
			}
			// Monotone: a smaller raw p never gets a larger adjusted p.
			for j := range p {
				if p[i] < p[j] && (holm[i] > holm[j] || bh[i] > bh[j]) {
					t.Fatalf("rep %d: not monotone at %v < %v", rep, p[i], p[j])
				}
			}
		}
	}
}

func TestMultipleTestingEdgeCases(t *testing.T) {
	if got := Holm(nil); len(got) != 0 {
		t.Errorf("Holm(nil) = %v", got)
	}
	if got := BenjaminiHochbergAlphas(nil, 0.05); len(got) != 0 {
		t.Errorf("BenjaminiHochbergAlphas(nil) = %v", got)
	}
	// NaN and out-of-range p-values are treated as 1 (never rejected) or
	// clipped to 0, and the input is not modified.
	p := []float64{math.NaN(), 0.01, -0.5, 2}
	holm := Holm(p)
	want := []float64{1, 0.03, 0, 1}
	for i := range want {
		if holm[i] != want[i] {
			t.Errorf("Holm(%v)[%d] = %v, want %v", p, i, holm[i], want[i])
		}
	}
	if !math.IsNaN(p[0]) || p[2] != -0.5 {
		t.Errorf("input modified: %v", p)
	}
	if got := Adjust(NoCorrection, []float64{0.2, math.NaN()}); got[0] != 0.2 || got[1] != 1 {
		t.Errorf("Adjust(none) = %v", got)
	}
	if got := AdjustedAlphas(NoCorrection, []float64{0.2, 0.3}, 0.1); got[0] != 0.1 || got[1] != 0.1 {
		t.Errorf("AdjustedAlphas(none) = %v", got)
	}
}

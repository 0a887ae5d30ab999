package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// The values in testdata/hypothesis_reference.json come from
// testdata/hypothesis_reference.py: statsmodels' ttest_ind, ttost_ind,
// tconfint_diff, ztest_ind and zconfint_diff (usevar='unequal') on
// unit-level arrays for the absolute effect, and Fieller's test with
// bounds by root-finding (or the delta method) in SciPy for the relative
// effect:
//
//	/usr/bin/python3 stats/testdata/hypothesis_reference.py
//
// Tolerance: relTol (1e-9) relative, against max(|want|, scale) with the
// scale of a statistic 1, of an estimate or bound the test's SE (a bound
// near zero is a difference of comparable numbers), and of a p-value
// 1e-300 (p-values are compared relative to themselves).

type hypothesisReference struct {
	Cases []struct {
		Name       string
		Kind       string
		Control    Arm
		Treatment  Arm
		CUPED      *CUPED
		Hypothesis struct {
			Alternative     Alternative
			Null            float64
			NullHigh        float64 `json:"null_high"`
			Relative, Delta bool
			Normal          bool
			Alpha           float64
		}
		Want struct {
			Estimate, SE, Statistic, StatisticHigh, PValue float64
			DF                                             *float64
			Low, High                                      float64
			HasLow, HasHigh, Reject                        bool
		}
	}
}

func TestHypothesisReference(t *testing.T) {
	var ref hypothesisReference
	loadJSON(t, "testdata/hypothesis_reference.json", &ref)
	if len(ref.Cases) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Cases {
		t.Run(c.Name, func(t *testing.T) {
			hh := c.Hypothesis
			h := Hypothesis{Alternative: hh.Alternative, Null: hh.Null, NullHigh: hh.NullHigh, Relative: hh.Relative,
				DeltaMethod: hh.Delta, Normal: hh.Normal, Alpha: hh.Alpha}
			got := TestHypothesis(c.Control, c.Treatment, mustKind(t, c.Kind), c.CUPED, h)
			if got.Status != StatusOK {
				t.Fatalf("status %q", got.Status)
			}
			w := c.Want
			checkClose(t, "Estimate", got.Estimate, w.Estimate, w.SE)
			checkClose(t, "SE", got.SE, w.SE, 0)
			checkClose(t, "Statistic", got.Statistic, w.Statistic, 1)
			checkClose(t, "StatisticHigh", got.StatisticHigh, w.StatisticHigh, 1)
			checkClose(t, "PValue", got.PValue, w.PValue, 1e-300)
			if w.DF != nil {
				checkClose(t, "DF", got.DF, *w.DF, 0)
			} else if got.DF != NoiseOnlyDF {
				t.Errorf("DF %v, want NoiseOnlyDF for a normal test", got.DF)
			}
			if got.HasLow != w.HasLow || got.HasHigh != w.HasHigh || got.Reject != w.Reject {
				t.Errorf("HasLow %v HasHigh %v Reject %v, want %v %v %v", got.HasLow, got.HasHigh, got.Reject, w.HasLow, w.HasHigh, w.Reject)
			}
			checkClose(t, "Low", got.Low, w.Low, w.SE)
			checkClose(t, "High", got.High, w.High, w.SE)
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("does not encode: %v", err)
			}
		})
	}
}

// TestHypothesisConsistentWithCompare: a two-sided test of δ₀ = 0 is
// Compare's test, on both scales; and for any ℓ₀ Fieller's two-sided test
// rejects exactly when ℓ₀ is outside Compare's relative interval.
func TestHypothesisConsistentWithCompare(t *testing.T) {
	c, tr := Arm{N: 60, Mean: 4, Var: 9}, Arm{N: 55, Mean: 5.1, Var: 16}
	cmp := Compare(c, tr, Mean, Options{Alpha: 0.1})
	for _, rel := range []bool{false, true} {
		got := TestHypothesis(c, tr, Mean, nil, Hypothesis{Relative: rel, Alpha: 0.1})
		checkClose(t, "p", got.PValue, cmp.PValue, 0)
	}
	abs := TestHypothesis(c, tr, Mean, nil, Hypothesis{Alpha: 0.1})
	checkClose(t, "low", abs.Low, cmp.DiffLow, cmp.SE)
	checkClose(t, "high", abs.High, cmp.DiffHigh, cmp.SE)
	rel := TestHypothesis(c, tr, Mean, nil, Hypothesis{Relative: true, Alpha: 0.1})
	checkClose(t, "rel low", rel.Low, cmp.RelLow, cmp.RelSE)
	checkClose(t, "rel high", rel.High, cmp.RelHigh, cmp.RelSE)
	for _, l0 := range []float64{-0.5, -0.1, 0, 0.05, cmp.RelLow - 1e-6, cmp.RelLow + 1e-6, 0.3, cmp.RelHigh - 1e-6, cmp.RelHigh + 1e-6, 2} {
		h := TestHypothesis(c, tr, Mean, nil, Hypothesis{Null: l0, Relative: true, Alpha: 0.1})
		outside := l0 < cmp.RelLow || l0 > cmp.RelHigh
		if h.Reject != outside {
			t.Errorf("ℓ₀ = %v: reject %v (p %v), outside [%v, %v] %v", l0, h.Reject, h.PValue, cmp.RelLow, cmp.RelHigh, outside)
		}
	}
	// Superiority and non-inferiority are the mirrored one-sided tests.
	if h := Superiority(Decrease, 0.1, true, 0.01); h.Alternative != Less || h.Null != -0.1 || !h.Relative || h.Alpha != 0.01 {
		t.Errorf("Superiority(Decrease) = %+v", h)
	}
	if h := NonInferiority(Increase, 0.1, false, 0); h.Alternative != Greater || h.Null != -0.1 {
		t.Errorf("NonInferiority(Increase) = %+v", h)
	}
	if h := NonInferiority(Decrease, 0.1, false, 0); h.Alternative != Less || h.Null != 0.1 {
		t.Errorf("NonInferiority(Decrease) = %+v", h)
	}
}

func TestHypothesisDegenerate(t *testing.T) {
	ok := Arm{N: 100, Mean: 5, Var: 4}
	cases := []struct {
		name  string
		c, tr Arm
		h     Hypothesis
		want  string
	}{
		{"zero variance", Arm{N: 10, Mean: 1}, Arm{N: 10, Mean: 2}, Hypothesis{Alternative: Greater}, StatusZeroVariance},
		{"n=1", Arm{N: 1, Mean: 1}, ok, Hypothesis{}, StatusTooFew},
		{"missing", Arm{}, ok, Hypothesis{}, StatusMissingArm},
		{"NaN null", ok, ok, Hypothesis{Null: math.NaN()}, StatusInvalidOptions},
		{"one-sided alpha 0.5", ok, ok, Hypothesis{Alternative: Greater, Alpha: 0.5}, StatusInvalidOptions},
		{"bad alternative", ok, ok, Hypothesis{Alternative: 7}, StatusInvalidOptions},
		{"equivalence bounds reversed", ok, ok, Hypothesis{Alternative: Equivalent, Null: 1, NullHigh: -1}, StatusInvalidOptions},
		{"relative zero control", Arm{N: 10, Mean: 0, Var: 1}, ok, Hypothesis{Relative: true}, StatusControlMeanZero},
		{"noisy moments", Arm{N: 100, Mean: 5, Var: 4, MomentNoise: MomentNoise{Var: 1}}, ok, Hypothesis{}, StatusUnsupported},
		{"absolute with zero control", Arm{N: 10, Mean: 0, Var: 1}, ok, Hypothesis{Alternative: Greater, Null: -1}, StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := TestHypothesis(c.c, c.tr, Mean, nil, c.h)
			if r.Status != c.want {
				t.Errorf("status %q, want %q", r.Status, c.want)
			}
			if r.Status != StatusOK && (r.PValue != 1 || r.Reject) {
				t.Errorf("degenerate result %+v", r)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("does not encode: %v", err)
			}
		})
	}
}

// TestHypothesisFalsePositiveRate is a Monte Carlo property test with a
// fixed seed: at the boundary of the null (true effect = margin), the
// one-sided Welch test rejects at about α — absolute non-inferiority with
// small unequal arms, and Fieller's relative non-inferiority test — and
// TOST at an equivalence bound at most α. Each rate must be within 4.5
// binomial standard deviations (plus 0.004 for Welch's approximation at
// 12 and 20 units) of α.
func TestHypothesisFalsePositiveRate(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const reps = 6000
	rng := rand.New(rand.NewPCG(19, 7))
	draw := func(n int, mu, sd float64) Arm { return normalArm(rng, n, mu, sd) }
	const alpha = 0.05
	var absFP, relFP, tost, lessFP int
	for range reps {
		// Absolute: true effect −0.5 = −margin, H₁ δ > −0.5.
		c, tr := draw(12, 3, 1), draw(20, 2.5, 2)
		if TestHypothesis(c, tr, Mean, nil, NonInferiority(Increase, 0.5, false, alpha)).Reject {
			absFP++
		}
		if TestHypothesis(c, tr, Mean, nil, Hypothesis{Alternative: Less, Null: -0.5, Alpha: alpha}).Reject {
			lessFP++
		}
		if TestHypothesis(c, tr, Mean, nil, Hypothesis{Alternative: Equivalent, Null: -0.5, NullHigh: 1, Alpha: alpha}).Reject {
			tost++
		}
		// Relative: true ℓ = −10% with a margin of 10%.
		c2, t2 := draw(200, 20, 6), draw(220, 18, 7)
		if TestHypothesis(c2, t2, Mean, nil, NonInferiority(Increase, 0.1, true, alpha)).Reject {
			relFP++
		}
	}
	tol := 4.5*math.Sqrt(alpha*(1-alpha)/reps) + 0.004
	for _, r := range []struct {
		name   string
		hits   int
		atMost bool
	}{{"absolute non-inferiority", absFP, false}, {"less at boundary", lessFP, false},
		{"relative non-inferiority (Fieller)", relFP, false}, {"TOST", tost, true}} {
		rate := float64(r.hits) / reps
		t.Logf("%s: false-positive rate %.4f (α = %v)", r.name, rate, alpha)
		if rate > alpha+tol || (!r.atMost && rate < alpha-tol) {
			t.Errorf("%s: rate %.4f, want %v ± %.4f", r.name, rate, alpha, tol)
		}
	}
}

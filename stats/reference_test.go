package stats

import (
	"encoding/json"
	"math"
	"os"
	"sync"
	"testing"
)

// The reference values in testdata/reference.json are produced by
// testdata/reference.py (SciPy, statsmodels, NumPy; see that script) and
// regenerated with
//
//	/usr/bin/python3 stats/testdata/reference.py
//
// Closed forms must agree to relTol = 1e-9 relative. An interval bound is
// compared relative to the larger of the bound and the interval's
// half-width, because a bound near zero is the difference of two comparable
// numbers and inherits their absolute error.
const relTol = 1e-9

type refWant struct {
	ControlMean, TreatmentMean, ControlVar, TreatmentVar float64
	Diff, SE, DF, Statistic, PValue, DiffLow, DiffHigh   float64
	RelDiff, RelSE, RelLow, RelHigh, MDE, Rho            float64
	RelUnbounded                                         bool
	GbstatsRel                                           float64
}

type refComparison struct {
	Name      string
	Kind      string
	Alpha     float64
	NStar     float64
	Control   Arm
	Treatment Arm
	Want      refWant
}

type reference struct {
	TDist []struct {
		Nu, T, P, Alpha, Q float64
	}
	Welch []refComparison
	// NoisyVariance: comparisons whose variance estimate carries privacy
	// noise (see noisyPivot), integrated by SciPy's adaptive quadrature.
	NoisyVariance []refComparison `json:"noisy_variance"`
	// NoisyRatio: private ratios from raw noisy moments (a variance may be
	// negative); only the absolute comparison is recorded.
	NoisyRatio []refComparison `json:"noisy_ratio"`
	// FiellerSets: Fieller's relative confidence set in every shape.
	FiellerSets []struct {
		Name              string
		MC, MT, VC, VT, Q float64
		Shape             string
		Lo, Hi            float64
	} `json:"fieller_sets"`
	CUPED []struct {
		Name          string
		Kind          string
		Alpha         float64
		Arms          []Arm
		Theta         float64
		CovariateMean float64 `json:"covariate_mean"`
		Comparisons   []refWant
	}
	Sequential []refComparison
	SRM        []struct {
		Name     string
		Observed []float64
		Shares   []float64
		Chi2, P  float64
		Expected []float64
	}
	Multitest []struct {
		Name       string
		P          []float64
		Alpha      float64
		Holm, BH   []float64
		HolmAlphas []float64 `json:"holm_alphas"`
		BHAlphas   []float64 `json:"bh_alphas"`
	}
	MDE []struct {
		SE, Alpha, Power, MDE float64
	}
	SRMExact []struct {
		Name     string
		Observed []float64
		Shares   []float64
		P        float64
		Small    []int
	} `json:"srm_exact"`
	PSD []struct {
		Name   string
		A      []float64
		MaxVar []float64 `json:"max_var"`
		Want   []float64
	}
}

var loadRef = sync.OnceValues(func() (*reference, error) {
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		return nil, err
	}
	r := new(reference)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, err
	}
	return r, nil
})

func ref(t *testing.T) *reference {
	t.Helper()
	r, err := loadRef()
	if err != nil {
		t.Fatalf("reference values: %v", err)
	}
	return r
}

// checkClose fails unless |got-want| ≤ relTol·max(|want|, scale).
func checkClose(t *testing.T, name string, got, want, scale float64) {
	t.Helper()
	checkCloseTol(t, name, got, want, scale, relTol)
}

// checkCloseTol is checkClose at relative tolerance relTol.
func checkCloseTol(t *testing.T, name string, got, want, scale, relTol float64) {
	t.Helper()
	tol := relTol * math.Max(math.Abs(want), scale)
	if !(math.Abs(got-want) <= tol) {
		t.Errorf("%s = %.17g, want %.17g (rel. err %.2g, tolerance %.2g)", name, got, want,
			math.Abs(got-want)/math.Max(math.Abs(want), scale), relTol)
	}
}

func mustKind(t *testing.T, s string) Kind {
	t.Helper()
	k, err := ParseKind(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkComparison compares every reference field with Compare's result.
func checkComparison(t *testing.T, got Comparison, w refWant) {
	t.Helper()
	checkComparisonTol(t, got, w, relTol)
}

// checkComparisonTol is checkComparison with the p-value and the interval
// bounds compared at relative tolerance quadTol (the other fields at
// relTol).
func checkComparisonTol(t *testing.T, got Comparison, w refWant, quadTol float64) {
	t.Helper()
	wantStatus := StatusOK
	if w.RelUnbounded {
		wantStatus = StatusRelativeUnbounded
	}
	if got.Status != wantStatus {
		t.Fatalf("status %q, want %q", got.Status, wantStatus)
	}
	half := w.DiffHigh - w.DiffLow
	relHalf := w.RelHigh - w.RelLow
	for _, f := range []struct {
		name             string
		got, want, scale float64
	}{
		{"ControlMean", got.ControlMean, w.ControlMean, 0},
		{"TreatmentMean", got.TreatmentMean, w.TreatmentMean, 0},
		{"ControlVar", got.ControlVar, w.ControlVar, 0},
		{"TreatmentVar", got.TreatmentVar, w.TreatmentVar, 0},
		{"Diff", got.Diff, w.Diff, 0},
		{"SE", got.SE, w.SE, 0},
		{"DF", got.DF, w.DF, 0},
		{"Statistic", got.Statistic, w.Statistic, 0},
		{"RelDiff", got.RelDiff, w.RelDiff, 0},
		{"RelSE", got.RelSE, w.RelSE, 0},
		{"MDE", got.MDE, w.MDE, 0},
	} {
		checkClose(t, f.name, f.got, f.want, f.scale)
	}
	for _, f := range []struct {
		name             string
		got, want, scale float64
	}{
		{"PValue", got.PValue, w.PValue, 0},
		{"DiffLow", got.DiffLow, w.DiffLow, half},
		{"DiffHigh", got.DiffHigh, w.DiffHigh, half},
		{"RelLow", got.RelLow, w.RelLow, relHalf},
		{"RelHigh", got.RelHigh, w.RelHigh, relHalf},
	} {
		checkCloseTol(t, f.name, f.got, f.want, f.scale, quadTol)
	}
}

func TestStudentTAgainstSciPy(t *testing.T) {
	for _, r := range ref(t).TDist {
		if r.Alpha == 0 {
			checkClose(t, "P(|T|≥t)", tTwoSidedP(r.T, r.Nu), r.P, 0)
			if t.Failed() {
				t.Fatalf("ν=%g t=%g", r.Nu, r.T)
			}
			continue
		}
		checkClose(t, "quantile", tQuantileTwoSided(r.Alpha, r.Nu), r.Q, 0)
		if t.Failed() {
			t.Fatalf("ν=%g alpha=%g", r.Nu, r.Alpha)
		}
	}
}

func TestCompareAgainstReference(t *testing.T) {
	for _, tc := range ref(t).Welch {
		t.Run(tc.Name, func(t *testing.T) {
			got := Compare(tc.Control, tc.Treatment, mustKind(t, tc.Kind), Options{Alpha: tc.Alpha})
			checkComparison(t, got, tc.Want)
			if got.Sequential || got.CUPEDApplied {
				t.Errorf("Sequential=%v CUPEDApplied=%v, want false", got.Sequential, got.CUPEDApplied)
			}
		})
	}
}

// TestNoisyVarianceAgainstReference: with privacy noise in the variance
// estimate, the critical value and p-value come from the pivot's reference
// distribution (noisyPivot), integrated here with a 25-node rule and in
// the reference with SciPy's adaptive quadrature; they agree to 3e-3
// relative (the rule's error), the other fields to relTol. The cases
// include the calibration suite's regime, where the old Satterthwaite
// degrees of freedom gave a t quantile of 2.3–2.6.
func TestNoisyVarianceAgainstReference(t *testing.T) {
	cases := ref(t).NoisyVariance
	if len(cases) < 4 {
		t.Fatalf("%d noisy-variance reference cases, want 4", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			got := Compare(tc.Control, tc.Treatment, mustKind(t, tc.Kind), Options{Alpha: tc.Alpha})
			checkComparisonTol(t, got, tc.Want, 3e-3)
		})
	}
}

func TestCUPEDAgainstReference(t *testing.T) {
	for _, tc := range ref(t).CUPED {
		t.Run(tc.Name, func(t *testing.T) {
			kind := mustKind(t, tc.Kind)
			theta, err := CUPEDTheta(tc.Arms, kind)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "theta", theta, tc.Theta, 0)
			cu, err := NewCUPED(tc.Arms, kind)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "CUPED.Theta", cu.Theta, tc.Theta, 0)
			checkClose(t, "CUPED.CovariateMean", cu.CovariateMean, tc.CovariateMean, 0)
			if len(tc.Comparisons) != len(tc.Arms)-1 {
				t.Fatalf("%d comparisons for %d arms", len(tc.Comparisons), len(tc.Arms))
			}
			for i, w := range tc.Comparisons {
				got := Compare(tc.Arms[0], tc.Arms[i+1], kind, Options{Alpha: tc.Alpha, CUPED: &cu})
				if !got.CUPEDApplied || got.CUPEDTheta != cu.Theta {
					t.Errorf("arm %d: CUPEDApplied=%v theta=%v", i+1, got.CUPEDApplied, got.CUPEDTheta)
				}
				checkComparison(t, got, w)
				plain := Compare(tc.Arms[0], tc.Arms[i+1], kind, Options{Alpha: tc.Alpha})
				if !(got.SE < plain.SE) {
					t.Errorf("arm %d: CUPED SE %g not below unadjusted %g", i+1, got.SE, plain.SE)
				}
			}
		})
	}
}

func TestSequentialAgainstReference(t *testing.T) {
	for _, tc := range ref(t).Sequential {
		t.Run(tc.Name, func(t *testing.T) {
			seq := &Sequential{NStar: tc.NStar}
			checkClose(t, "rho", seq.Rho(tc.Alpha), tc.Want.Rho, 0)
			got := Compare(tc.Control, tc.Treatment, mustKind(t, tc.Kind), Options{Alpha: tc.Alpha, Sequential: seq})
			if got.Status != StatusOK || !got.Sequential {
				t.Fatalf("status %q sequential %v", got.Status, got.Sequential)
			}
			w := tc.Want
			checkClose(t, "DiffLow", got.DiffLow, w.DiffLow, w.DiffHigh-w.DiffLow)
			checkClose(t, "DiffHigh", got.DiffHigh, w.DiffHigh, w.DiffHigh-w.DiffLow)
			checkClose(t, "RelLow", got.RelLow, w.RelLow, w.RelHigh-w.RelLow)
			checkClose(t, "RelHigh", got.RelHigh, w.RelHigh, w.RelHigh-w.RelLow)
			checkClose(t, "PValue", got.PValue, w.PValue, 0)
			// The always-valid interval is wider than the fixed-horizon one.
			fixed := Compare(tc.Control, tc.Treatment, mustKind(t, tc.Kind), Options{Alpha: tc.Alpha})
			if !(got.DiffHigh-got.DiffLow > fixed.DiffHigh-fixed.DiffLow) {
				t.Errorf("sequential width %g not above fixed %g", got.DiffHigh-got.DiffLow, fixed.DiffHigh-fixed.DiffLow)
			}
		})
	}
}

func TestSRMAgainstReference(t *testing.T) {
	for _, tc := range ref(t).SRM {
		t.Run(tc.Name, func(t *testing.T) {
			got, err := SRM(tc.Observed, tc.Shares)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "chi2", got.ChiSquare, tc.Chi2, 0)
			checkClose(t, "p", got.PValue, tc.P, 0)
			if got.DF != len(tc.Observed)-1 {
				t.Errorf("DF = %d, want %d", got.DF, len(tc.Observed)-1)
			}
			for i := range tc.Expected {
				checkClose(t, "expected", got.Expected[i], tc.Expected[i], 0)
			}
		})
	}
}

func TestMultipleTestingAgainstStatsmodels(t *testing.T) {
	for _, tc := range ref(t).Multitest {
		t.Run(tc.Name, func(t *testing.T) {
			for _, f := range []struct {
				name      string
				got, want []float64
			}{
				{"holm", Holm(tc.P), tc.Holm},
				{"bh", BenjaminiHochberg(tc.P), tc.BH},
				{"holm alphas", HolmAlphas(tc.P, tc.Alpha), tc.HolmAlphas},
				{"bh alphas", BenjaminiHochbergAlphas(tc.P, tc.Alpha), tc.BHAlphas},
				{"Adjust(holm)", Adjust(HolmCorrection, tc.P), tc.Holm},
				{"Adjust(bh)", Adjust(BHCorrection, tc.P), tc.BH},
			} {
				if len(f.got) != len(f.want) {
					t.Fatalf("%s: %d values, want %d", f.name, len(f.got), len(f.want))
				}
				for i := range f.want {
					checkClose(t, f.name, f.got[i], f.want[i], 0)
				}
			}
		})
	}
}

// TestRelativeSignConvention: the relative effect has the sign of the
// absolute one for either sign of the control mean, where GrowthBook's
// (m_t - m_c)/m_c flips it for a negative control mean.
func TestRelativeSignConvention(t *testing.T) {
	n := 0
	for _, tc := range ref(t).Welch {
		if tc.Want.GbstatsRel == 0 {
			continue
		}
		n++
		got := Compare(tc.Control, tc.Treatment, mustKind(t, tc.Kind), Options{Alpha: tc.Alpha})
		if (got.RelDiff > 0) != (got.Diff > 0) {
			t.Errorf("%s: relative %v and absolute %v effects differ in sign", tc.Name, got.RelDiff, got.Diff)
		}
		want := tc.Want.GbstatsRel
		if tc.Control.Mean < 0 {
			want = -want
		}
		checkClose(t, tc.Name+": RelDiff vs gbstats", got.RelDiff, want, 0)
		if !got.HasRelative() {
			t.Errorf("%s: no relative effect (status %q)", tc.Name, got.Status)
		}
		if got.Status == StatusOK && !(got.RelLow <= got.RelDiff && got.RelDiff <= got.RelHigh) {
			t.Errorf("%s: interval [%v, %v] does not contain the estimate %v", tc.Name, got.RelLow, got.RelHigh, got.RelDiff)
		}
	}
	if n < 5 {
		t.Fatalf("only %d relative cases in the reference", n)
	}
}

func TestExactSRMAgainstSciPy(t *testing.T) {
	for _, tc := range ref(t).SRMExact {
		t.Run(tc.Name, func(t *testing.T) {
			got, err := SRM(tc.Observed, tc.Shares)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != SRMExact {
				t.Fatalf("method %q, want %q (expected %v)", got.Method, SRMExact, got.Expected)
			}
			checkClose(t, "p", got.PValue, tc.P, 1e-300)
		})
	}
}

func TestNearestCovarianceAgainstNumPy(t *testing.T) {
	for _, tc := range ref(t).PSD {
		t.Run(tc.Name, func(t *testing.T) {
			got, err := NearestCovariance(tc.A, tc.MaxVar)
			if err != nil {
				t.Fatal(err)
			}
			scale := 0.0
			for _, v := range tc.Want {
				scale = math.Max(scale, math.Abs(v))
			}
			for i := range tc.Want {
				// Entries are compared on the matrix's scale: an entry near zero
				// is a sum of products of eigenvector components.
				if math.Abs(got[i]-tc.Want[i]) > 1e-12*scale {
					t.Errorf("entry %d = %.17g, want %.17g", i, got[i], tc.Want[i])
				}
			}
		})
	}
}

func TestMDEAgainstStatsmodels(t *testing.T) {
	for _, tc := range ref(t).MDE {
		got, err := MDEFromSE(tc.SE, tc.Alpha, tc.Power)
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "mde", got, tc.MDE, 0)
	}
}

// TestNoisyRatioAgainstReference: a private ratio whose raw noisy moments
// include a negative variance has an interval. Its per-unit variance is
// the linearised quadratic form of the raw moment matrix truncated at
// zero once, its noise propagated from each moment's; the reference
// computes the form with NumPy and integrates the pivot with SciPy's
// adaptive quadrature (3e-3 relative, the node rule's error, for the
// critical value and p-value; relTol for the rest).
func TestNoisyRatioAgainstReference(t *testing.T) {
	cases := ref(t).NoisyRatio
	if len(cases) < 2 {
		t.Fatalf("%d noisy-ratio reference cases, want 2", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			got := Compare(tc.Control, tc.Treatment, Ratio, Options{Alpha: tc.Alpha})
			if !got.Valid() {
				t.Fatalf("status %q, want a valid comparison", got.Status)
			}
			w := tc.Want
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"ControlMean", got.ControlMean, w.ControlMean}, {"TreatmentMean", got.TreatmentMean, w.TreatmentMean},
				{"ControlVar", got.ControlVar, w.ControlVar}, {"TreatmentVar", got.TreatmentVar, w.TreatmentVar},
				{"Diff", got.Diff, w.Diff}, {"SE", got.SE, w.SE}, {"DF", got.DF, w.DF}, {"Statistic", got.Statistic, w.Statistic},
			} {
				checkClose(t, f.name, f.got, f.want, 0)
			}
			half := w.DiffHigh - w.Diff
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"half-width", got.DiffHigh - got.Diff, half}, {"PValue", got.PValue, w.PValue},
			} {
				if math.Abs(f.got-f.want) > 3e-3*math.Abs(f.want) {
					t.Errorf("%s = %.10g, want %.10g (SciPy quad) within 3e-3", f.name, f.got, f.want)
				}
			}
		})
	}
}

// TestFiellerSetsAgainstReference: Fieller's set in each shape, against
// the reference's scan of the test statistic.
func TestFiellerSetsAgainstReference(t *testing.T) {
	cases := ref(t).FiellerSets
	if len(cases) < 5 {
		t.Fatalf("%d Fieller-set reference cases, want 5", len(cases))
	}
	names := map[SetShape]string{SetBounded: "bounded", SetExclusive: "exclusive", SetWholeLine: "whole"}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			lo, hi, shape := fiellerSet(tc.MC, tc.MT, tc.VC, tc.VT, tc.Q)
			if names[shape] != tc.Shape {
				t.Fatalf("shape %s, want %s", names[shape], tc.Shape)
			}
			if shape == SetWholeLine {
				return
			}
			checkClose(t, "lo", lo, tc.Lo, hi-lo)
			checkClose(t, "hi", hi, tc.Hi, hi-lo)
		})
	}
}

package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// The values in testdata/bayes_reference.json come from
// testdata/bayes_reference.py, a SciPy re-implementation of GrowthBook's
// gbstats 0.8.0 Bayesian engine (and its earlier log-normal model) written
// from its formulas, with arm estimates from unit-level arrays:
//
//	/usr/bin/python3 stats/testdata/bayes_reference.py
//
// Tolerance: bayesTol = 1e-9 relative, against max(|want|, scale) where the
// scale of every location (mean, bounds) and of the risks is the
// posterior's SD — gbstats' truncated-normal risks lose absolute precision
// far in the tail (and are exactly 0 beyond |μ/σ| = 37), where Verity's
// closed form keeps going — and probabilities are compared relative to
// themselves (scale 1e-300).
const bayesTol = 1e-9

type refPosterior struct {
	Mean, SD, Expected, Low, High           float64
	ChanceToWin, RiskControl, RiskTreatment float64
}

type refPrior struct {
	Proper         bool
	Mean, Variance float64
	Scale          string
}

func (p refPrior) prior(t *testing.T) Prior {
	t.Helper()
	q := Prior{Proper: p.Proper, Mean: p.Mean, Variance: p.Variance}
	switch p.Scale {
	case "", "relative":
		q.Scale = ScaleRelative
	case "absolute":
		q.Scale = ScaleAbsolute
	default:
		t.Fatalf("prior scale %q", p.Scale)
	}
	return q
}

type bayesReference struct {
	Bayes []struct {
		Name      string
		Kind      string
		Alpha     float64
		Direction Direction
		Model     string
		Prior     refPrior
		CUPED     *CUPED
		Control   Arm
		Treatment Arm
		Want      struct {
			AbsStatus, RelStatus string
			Absolute, Relative   *refPosterior
		}
	}
	Effect []struct {
		Est, SE   float64
		Prior     refPrior
		Alpha     float64
		Direction Direction
		Want      refPosterior
	}
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reference values: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("reference values %s: %v", path, err)
	}
}

func checkPosterior(t *testing.T, name string, got Posterior, w refPosterior) {
	t.Helper()
	s := w.SD
	checkCloseTol(t, name+".Mean", got.Mean, w.Mean, s, bayesTol)
	checkCloseTol(t, name+".SD", got.SD, w.SD, 0, bayesTol)
	checkCloseTol(t, name+".Expected", got.Expected, w.Expected, s, bayesTol)
	checkCloseTol(t, name+".Low", got.Low, w.Low, s, bayesTol)
	checkCloseTol(t, name+".High", got.High, w.High, s, bayesTol)
	checkCloseTol(t, name+".ChanceToWin", got.ChanceToWin, w.ChanceToWin, 1e-300, bayesTol)
	checkCloseTol(t, name+".RiskControl", got.RiskControl, w.RiskControl, s, bayesTol)
	checkCloseTol(t, name+".RiskTreatment", got.RiskTreatment, w.RiskTreatment, s, bayesTol)
}

func TestBayesReference(t *testing.T) {
	var ref bayesReference
	loadJSON(t, "testdata/bayes_reference.json", &ref)
	if len(ref.Bayes) == 0 || len(ref.Effect) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Bayes {
		t.Run(c.Name, func(t *testing.T) {
			opts := BayesOptions{Alpha: c.Alpha, Prior: c.Prior.prior(t), Direction: c.Direction, CUPED: c.CUPED}
			if c.Model == "lognormal" {
				opts.RelativeModel = RelativeLogNormal
			}
			got := Bayes(c.Control, c.Treatment, mustKind(t, c.Kind), opts)
			if got.AbsoluteStatus != c.Want.AbsStatus || got.RelativeStatus != c.Want.RelStatus {
				t.Fatalf("statuses %q, %q; want %q, %q", got.AbsoluteStatus, got.RelativeStatus, c.Want.AbsStatus, c.Want.RelStatus)
			}
			if c.Want.Absolute != nil {
				checkPosterior(t, "Absolute", got.Absolute, *c.Want.Absolute)
			}
			if c.Want.Relative != nil {
				checkPosterior(t, "Relative", got.Relative, *c.Want.Relative)
			}
			if (got.Status == StatusOK) != (got.HasAbsolute() && got.HasRelative()) {
				t.Errorf("Status %q with absolute %q, relative %q", got.Status, got.AbsoluteStatus, got.RelativeStatus)
			}
		})
	}
	for _, c := range ref.Effect {
		got, err := EffectPosterior(c.Est, c.SE, c.Prior.prior(t), c.Alpha, c.Direction)
		if err != nil {
			t.Errorf("EffectPosterior(%v, %v): %v", c.Est, c.SE, err)
			continue
		}
		checkPosterior(t, "EffectPosterior", got, c.Want)
	}
}

// TestExpectedLossIdentities checks the closed forms against identities
// that hold exactly: E[max(g,0)] − E[max(−g,0)] = μ, symmetry, the value
// σ/√(2π) at μ = 0, and the asymptotic tail σ·φ(z)/z² for the small side.
func TestExpectedLossIdentities(t *testing.T) {
	for _, mu := range []float64{-50, -12, -8.0001, -7.9999, -3, -0.1, 0, 0.1, 3, 7.9999, 8.0001, 12, 50} {
		for _, sigma := range []float64{1e-3, 1, 7} {
			c, tr := ExpectedLoss(mu*sigma, sigma)
			checkCloseTol(t, "difference", c-tr, mu*sigma, sigma, 1e-14)
			c2, t2 := ExpectedLoss(-mu*sigma, sigma)
			if c2 != tr || t2 != c {
				t.Errorf("ExpectedLoss(%v) not symmetric: (%v, %v) vs (%v, %v)", mu*sigma, c, tr, c2, t2)
			}
			if c < 0 || tr < 0 {
				t.Errorf("negative expected loss at %v: %v, %v", mu, c, tr)
			}
		}
	}
	c, tr := ExpectedLoss(0, 2)
	checkCloseTol(t, "E[max(g,0)] at 0", c, 2/math.Sqrt(2*math.Pi), 0, 1e-15)
	checkCloseTol(t, "E[max(-g,0)] at 0", tr, 2/math.Sqrt(2*math.Pi), 0, 1e-15)
	// Continuity across the switch to the continued fraction at z = −8, and
	// the tail: zΦ(z)+φ(z) = φ(z)/z²·(1 − 3/z² + 15/z⁴ − 105/z⁶ + …).
	lo, hi := partialExpectation(-8-1e-12), partialExpectation(-8+1e-12)
	checkCloseTol(t, "continuity at -8", lo, hi, 0, 1e-10)
	for _, z := range []float64{-10, -20, -35} {
		z2 := z * z
		asym := normalPDF(z) / z2 * (1 - 3/z2 + 15/(z2*z2) - 105/(z2*z2*z2) + 945/(z2*z2*z2*z2))
		// The series' error is below its first omitted term, 10395/z¹⁰.
		checkCloseTol(t, "tail", partialExpectation(z), asym, 0, 2*10395/math.Pow(z, 10)+1e-13)
	}
	if c, tr := ExpectedLoss(math.NaN(), 1); c != 0 || tr != 0 {
		t.Errorf("NaN input: %v, %v", c, tr)
	}
}

func TestBayesDegenerate(t *testing.T) {
	ok := Arm{N: 100, Mean: 5, Var: 4}
	cases := []struct {
		name      string
		c, tr     Arm
		kind      Kind
		opts      BayesOptions
		wantAbs   string
		wantRel   string
		wantTotal string
	}{
		{"zero variance", Arm{N: 10, Mean: 1}, Arm{N: 10, Mean: 1}, Mean, BayesOptions{}, StatusZeroVariance, StatusZeroVariance, StatusZeroVariance},
		{"zero variance proper prior", Arm{N: 10, Mean: 1}, Arm{N: 10, Mean: 2}, Mean,
			BayesOptions{Prior: Prior{Proper: true, Variance: 1}}, StatusZeroVariance, StatusZeroVariance, StatusZeroVariance},
		{"missing arm", Arm{}, ok, Mean, BayesOptions{}, StatusMissingArm, StatusMissingArm, StatusMissingArm},
		{"n=1", Arm{N: 1, Mean: 3}, ok, Mean, BayesOptions{}, StatusTooFew, StatusTooFew, StatusTooFew},
		{"NaN", Arm{N: 10, Mean: math.NaN(), Var: 1}, ok, Mean, BayesOptions{}, StatusInvalidInput, StatusInvalidInput, StatusInvalidInput},
		{"bad prior", ok, ok, Mean, BayesOptions{Prior: Prior{Proper: true, Variance: 0}}, StatusInvalidOptions, StatusInvalidOptions, StatusInvalidOptions},
		{"lognormal with prior", ok, ok, Mean, BayesOptions{RelativeModel: RelativeLogNormal, Prior: Prior{Proper: true, Variance: 1}},
			StatusInvalidOptions, StatusInvalidOptions, StatusInvalidOptions},
		{"alpha", ok, ok, Mean, BayesOptions{Alpha: 1.5}, StatusInvalidOptions, StatusInvalidOptions, StatusInvalidOptions},
		{"zero denominator", Arm{N: 10, Mean: 1, Var: 1, DenMean: 0}, Arm{N: 10, Mean: 1, Var: 1, DenMean: 1}, Ratio, BayesOptions{},
			StatusZeroDenominator, StatusZeroDenominator, StatusZeroDenominator},
		{"zero control mean", Arm{N: 10, Mean: 0, Var: 1}, ok, Mean, BayesOptions{}, StatusOK, StatusControlMeanZero, StatusControlMeanZero},
		{"huge", Arm{N: 10, Mean: 1e300, Var: 1e300}, Arm{N: 10, Mean: -1e300, Var: 1e300}, Mean, BayesOptions{}, StatusOverflow, StatusOverflow, StatusOverflow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Bayes(c.c, c.tr, c.kind, c.opts)
			if r.AbsoluteStatus != c.wantAbs || r.RelativeStatus != c.wantRel || r.Status != c.wantTotal {
				t.Errorf("statuses (%q, %q, %q), want (%q, %q, %q)", r.AbsoluteStatus, r.RelativeStatus, r.Status, c.wantAbs, c.wantRel, c.wantTotal)
			}
			for _, p := range []Posterior{r.Absolute, r.Relative} {
				for _, v := range []float64{p.Mean, p.SD, p.Expected, p.Low, p.High, p.ChanceToWin, p.RiskControl, p.RiskTreatment} {
					if !finite(v) {
						t.Errorf("non-finite field in %+v", p)
					}
				}
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("does not encode: %v", err)
			}
		})
	}
}

// TestBayesFlatMatchesCompare: under a flat prior the relative posterior is
// Compare's RelDiff ± z·RelSE and the absolute one Compare's Diff with SE.
func TestBayesFlatMatchesCompare(t *testing.T) {
	c, tr := Arm{N: 500, Mean: 3, Var: 9}, Arm{N: 480, Mean: 3.4, Var: 10}
	cmp := Compare(c, tr, Mean, Options{})
	b := Bayes(c, tr, Mean, BayesOptions{})
	checkClose(t, "abs mean", b.Absolute.Mean, cmp.Diff, 0)
	checkClose(t, "abs sd", b.Absolute.SD, cmp.SE, 0)
	checkClose(t, "rel mean", b.Relative.Mean, cmp.RelDiff, 0)
	checkClose(t, "rel sd", b.Relative.SD, cmp.RelSE, 0)
	checkClose(t, "ctw", b.Absolute.ChanceToWin, normalCDF(cmp.Statistic), 0)
}

func TestDecideBayes(t *testing.T) {
	post := func(ctw, rc, rt float64) BayesResult {
		p := Posterior{ChanceToWin: ctw, RiskControl: rc, RiskTreatment: rt}
		return BayesResult{Status: StatusOK, AbsoluteStatus: StatusOK, RelativeStatus: StatusOK, Absolute: p, Relative: p}
	}
	std := BayesRule{MinChanceToWin: 0.95, MaxRisk: 0.0025}
	cases := []struct {
		name     string
		r        BayesResult
		rule     BayesRule
		verdict  string
		ruleName string
	}{
		{"ship", post(0.97, 0.01, 0.001), std, VerdictShip, RuleBayesShip},
		{"ship needs low risk", post(0.97, 0.01, 0.003), std, VerdictHold, RuleBayesUndecided},
		{"rollback", post(0.02, 0.001, 0.02), std, VerdictRollback, RuleBayesRollback},
		{"rollback needs low risk of control", post(0.02, 0.003, 0.02), std, VerdictHold, RuleBayesUndecided},
		{"undecided", post(0.6, 0.004, 0.003), std, VerdictHold, RuleBayesUndecided},
		{"boundary ship", post(0.95, 0.01, 0.0025), std, VerdictShip, RuleBayesShip},
		{"chance only", post(0.96, 0.5, 0.5), BayesRule{MinChanceToWin: 0.95}, VerdictShip, RuleBayesShip},
		{"risk only ship", post(0.7, 0.004, 0.001), BayesRule{MaxRisk: 0.002}, VerdictShip, RuleBayesShip},
		{"risk only both low", post(0.3, 0.0005, 0.001), BayesRule{MaxRisk: 0.002}, VerdictRollback, RuleBayesRollback},
		{"no relative posterior", BayesResult{Status: StatusControlMeanZero, AbsoluteStatus: StatusOK, RelativeStatus: StatusControlMeanZero},
			std, VerdictHold, RuleBayesNoPosterior},
		{"absolute scale", BayesResult{Status: StatusControlMeanZero, AbsoluteStatus: StatusOK, RelativeStatus: StatusControlMeanZero,
			Absolute: Posterior{ChanceToWin: 0.99, RiskTreatment: 0.001}}, BayesRule{MinChanceToWin: 0.95, MaxRisk: 0.01, Scale: ScaleAbsolute},
			VerdictShip, RuleBayesShip},
		{"invalid rule", post(0.99, 0, 0), BayesRule{}, VerdictHold, RuleBayesNoPosterior},
		{"invalid threshold", post(0.99, 0, 0), BayesRule{MinChanceToWin: 0.4}, VerdictHold, RuleBayesNoPosterior},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := DecideBayes(c.r, c.rule)
			if d.Verdict != c.verdict || d.Rule != c.ruleName {
				t.Errorf("got %s/%s (%s), want %s/%s", d.Verdict, d.Rule, d.Reason, c.verdict, c.ruleName)
			}
			if d.Reason == "" || strings.Contains(d.Reason, "NaN") {
				t.Errorf("reason %q", d.Reason)
			}
		})
	}
}

// TestBayesCalibration is a Monte Carlo property test with a fixed seed:
// under a flat prior the 95% credible intervals of the absolute and the
// relative effect cover the true effect in about 95% of repeated
// experiments (they are the normal-approximation confidence intervals),
// and in A/A experiments DecideBayes ships or rolls back at chance to win
// 0.95 about 5% + 5% of the time. Each rate must lie within 4.5 binomial
// standard deviations of its nominal value (a false failure has
// probability below 1e-5 per rate), plus 0.003 for the normal
// approximation's own error at 150 units per arm.
func TestBayesCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const reps = 4000
	rng := rand.New(rand.NewPCG(19, 2026))
	draw := func(n int, mu, sd float64) Arm { return normalArm(rng, n, mu, sd) }
	check := func(name string, hits int, p float64) {
		t.Helper()
		rate := float64(hits) / reps
		tol := 4.5*math.Sqrt(p*(1-p)/reps) + 0.003
		if math.Abs(rate-p) > tol {
			t.Errorf("%s: rate %.4f, want %.3f ± %.4f", name, rate, p, tol)
		}
		t.Logf("%s: %.4f (nominal %.3f)", name, rate, p)
	}
	var absCover, relCover, ship, rollback int
	const mc, mt = 10.0, 10.4
	for range reps {
		r := Bayes(draw(150, mc, 2), draw(150, mt, 3), Mean, BayesOptions{})
		if !r.HasRelative() {
			t.Fatalf("status %s", r.Status)
		}
		if r.Absolute.Low <= mt-mc && mt-mc <= r.Absolute.High {
			absCover++
		}
		if rel := (mt - mc) / mc; r.Relative.Low <= rel && rel <= r.Relative.High {
			relCover++
		}
		aa := Bayes(draw(150, mc, 2), draw(150, mc, 3), Mean, BayesOptions{})
		switch DecideBayes(aa, BayesRule{MinChanceToWin: 0.95}).Verdict {
		case VerdictShip:
			ship++
		case VerdictRollback:
			rollback++
		}
	}
	check("absolute coverage", absCover, 0.95)
	check("relative coverage", relCover, 0.95)
	check("A/A ship", ship, 0.05)
	check("A/A rollback", rollback, 0.05)
}

// normalArm draws n units from N(mu, sd²) and returns their arm moments
// (sample mean and unbiased variance), for the simulations.
func normalArm(rng *rand.Rand, n int, mu, sd float64) Arm {
	var s, ss float64
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = mu + sd*rng.NormFloat64()
		s += xs[i]
	}
	m := s / float64(n)
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return Arm{N: float64(n), Mean: m, Var: ss / float64(n-1)}
}

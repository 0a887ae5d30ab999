package privacy

import (
	"fmt"
	"math"
	"testing"
)

// TestConversionsAgainstReference compares the float64 conversions with
// 60-digit mpmath values from testdata/reference.py.
func TestConversionsAgainstReference(t *testing.T) {
	r := ref(t)
	for _, c := range r.CDPDelta {
		got, err := CDPDelta(c.Rho, c.Eps)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, fmt.Sprintf("CDPDelta(%g, %g)", c.Rho, c.Eps), got, c.Delta, 1e-9)
	}
	for _, c := range r.CDPEps {
		got, err := CDPEpsilon(c.Rho, c.Delta)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, fmt.Sprintf("CDPEpsilon(%g, %g)", c.Rho, c.Delta), got, c.Eps, 1e-9)
		simple, _ := CDPEpsilonSimple(c.Rho, c.Delta)
		if simple < got {
			t.Errorf("simple ε %g < tight ε %g", simple, got)
		}
	}
	for _, c := range r.CDPRho {
		got, err := CDPRho(c.Eps, c.Delta)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, fmt.Sprintf("CDPRho(%g, %g)", c.Eps, c.Delta), got, c.Rho, 1e-9)
	}
}

func TestConversionsConsistent(t *testing.T) {
	for _, eps := range []float64{0.05, 0.3, 1, 3, 10} {
		for _, delta := range []float64{1e-12, 1e-9, 1e-6, 1e-3} {
			rho, err := CDPRho(eps, delta)
			if err != nil {
				t.Fatal(err)
			}
			// The ρ is safe: it gives back at most δ and at most ε.
			if d, _ := CDPDelta(rho, eps); d > delta {
				t.Errorf("CDPDelta(CDPRho(%g, %g)) = %g > δ", eps, delta, d)
			}
			if e, _ := CDPEpsilon(rho, delta); e > eps*(1+1e-12) {
				t.Errorf("CDPEpsilon(CDPRho(%g, %g)) = %.17g > ε", eps, delta, e)
			} else if e < eps*(1-1e-9) {
				t.Errorf("CDPEpsilon(CDPRho(%g, %g)) = %.17g, not tight", eps, delta, e)
			}
			// The tight conversion allows at least what the simple bound does:
			// ε = ρ + 2√(ρL) ⇔ √ρ = √(L+ε) − √L with L = ln(1/δ).
			L := math.Log(1 / delta)
			simple := math.Pow(math.Sqrt(L+eps)-math.Sqrt(L), 2)
			if rho < simple*(1-1e-12) {
				t.Errorf("CDPRho(%g, %g) = %g < simple-bound ρ %g", eps, delta, rho, simple)
			}
		}
	}
}

// TestGaussianCalibrationInverse: σ → δ and δ → σ invert each other.
func TestGaussianCalibrationInverse(t *testing.T) {
	for _, sens := range []float64{1, 7, 1e6} {
		for _, eps := range []float64{0.1, 1, 5} {
			for _, delta := range []float64{1e-10, 1e-6, 1e-3} {
				name := fmt.Sprintf("Δ=%g ε=%g δ=%g", sens, eps, delta)
				sigma, err := GaussianSigma(delta, sens, eps)
				if err != nil {
					t.Fatal(name, err)
				}
				d, err := GaussianDelta(sigma, sens, eps)
				if err != nil {
					t.Fatal(name, err)
				}
				if d > delta || d < delta*(1-1e-6) {
					t.Errorf("%s: GaussianDelta(GaussianSigma) = %.17g", name, d)
				}
				// and the other way round, from σ
				back, err := GaussianSigma(d, sens, eps)
				if err != nil {
					t.Fatal(name, err)
				}
				checkRel(t, name+": GaussianSigma(GaussianDelta(σ))", back, sigma, 1e-9)
				// δ falls as σ grows
				if d2, _ := GaussianDelta(sigma*1.01, sens, eps); d2 >= d {
					t.Errorf("%s: δ(1.01σ) = %g ≥ δ(σ) = %g", name, d2, d)
				}
			}
		}
	}
	// A worked value: Δ = 1, σ² = 4 ⇒ ρ = 1/8, and at ε = 1 the reference
	// δ is 0.017985448229143712 (first reference case).
	if d, _ := GaussianDelta(2, 1, 1); math.Abs(d-0.017985448229143712) > 1e-9*d {
		t.Errorf("GaussianDelta(2, 1, 1) = %.17g", d)
	}
}

func TestConversionErrors(t *testing.T) {
	bad := []struct {
		name string
		f    func() (float64, error)
	}{
		{"negative ρ", func() (float64, error) { return CDPDelta(-1, 1) }},
		{"NaN ε", func() (float64, error) { return CDPDelta(1, math.NaN()) }},
		{"δ = 0", func() (float64, error) { return CDPEpsilon(1, 0) }},
		{"δ = 1", func() (float64, error) { return CDPRho(1, 1) }},
		{"σ = 0", func() (float64, error) { return GaussianDelta(0, 1, 1) }},
		{"Δ = 0", func() (float64, error) { return GaussianSigma(1e-6, 0, 1) }},
		{"infinite ε", func() (float64, error) { return CDPRho(math.Inf(1), 1e-6) }},
	}
	for _, b := range bad {
		if v, err := b.f(); err == nil {
			t.Errorf("%s: got %g, want an error", b.name, v)
		}
	}
	if d, err := CDPDelta(0, 1); err != nil || d != 0 {
		t.Errorf("CDPDelta(0, 1) = %g, %v; want 0", d, err)
	}
}

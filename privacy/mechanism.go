package privacy

import (
	"fmt"
	"math"
	"math/big"
)

// MechanismKind names a noise mechanism.
type MechanismKind string

// The mechanisms.
const (
	// KindDiscreteGaussian: P[Z = z] ∝ exp(−z²/(2σ²)); Param is σ².
	// Accounted in zCDP: ρ = Δ²/(2σ²).
	KindDiscreteGaussian MechanismKind = "discrete_gaussian"
	// KindDiscreteLaplace: P[Z = z] ∝ exp(−|z|/t); Param is the scale t.
	// Pure DP: ε = Δ/t.
	KindDiscreteLaplace MechanismKind = "discrete_laplace"
)

// Mechanism is a noise mechanism with its exact rational parameter. It
// marshals to JSON as {"kind": …, "param": "a/b"}.
type Mechanism struct {
	Kind MechanismKind `json:"kind"`
	// Param is σ² for the discrete Gaussian, the scale t for the discrete
	// Laplace; > 0.
	Param *big.Rat `json:"param"`
}

// DiscreteGaussian returns the discrete Gaussian mechanism with variance
// parameter σ² (copied).
func DiscreteGaussian(sigma2 *big.Rat) Mechanism {
	return Mechanism{Kind: KindDiscreteGaussian, Param: copyRat(sigma2)}
}

// DiscreteLaplace returns the discrete Laplace mechanism with scale t
// (copied).
func DiscreteLaplace(scale *big.Rat) Mechanism {
	return Mechanism{Kind: KindDiscreteLaplace, Param: copyRat(scale)}
}

func copyRat(r *big.Rat) *big.Rat {
	if r == nil {
		return nil
	}
	return new(big.Rat).Set(r)
}

func (m Mechanism) clone() Mechanism { return Mechanism{Kind: m.Kind, Param: copyRat(m.Param)} }

// Validate checks the kind and that the parameter is a positive rational.
func (m Mechanism) Validate() error {
	switch m.Kind {
	case KindDiscreteGaussian, KindDiscreteLaplace:
	default:
		return fmt.Errorf("privacy: unknown mechanism %q", string(m.Kind))
	}
	if m.Param == nil || m.Param.Sign() <= 0 {
		return fmt.Errorf("privacy: mechanism %s: %s must be > 0", m.Kind, m.ParamName())
	}
	return nil
}

// ParamName is "sigma2" for the discrete Gaussian and "scale" for the
// discrete Laplace.
func (m Mechanism) ParamName() string {
	if m.Kind == KindDiscreteGaussian {
		return "sigma2"
	}
	return "scale"
}

// Equal reports whether m and o are the same mechanism with the same
// parameter value.
func (m Mechanism) Equal(o Mechanism) bool {
	if m.Kind != o.Kind || (m.Param == nil) != (o.Param == nil) {
		return false
	}
	return m.Param == nil || m.Param.Cmp(o.Param) == 0
}

// String returns e.g. "discrete_gaussian(sigma2=9/4)".
func (m Mechanism) String() string {
	p := "<nil>"
	if m.Param != nil {
		p = m.Param.String()
	}
	return fmt.Sprintf("%s(%s=%s)", m.Kind, m.ParamName(), p)
}

// Variance returns the variance of the mechanism's noise in float64, for
// intervals that include the noise.
//
// Discrete Laplace with scale t: with p = exp(−1/t), Var = 2p/(1−p)²
// (exact closed form; 1−p is computed as −expm1(−1/t)).
//
// Discrete Gaussian with parameter σ²: Var = Σ z²·e^{−z²/2σ²} / Σ e^{−z²/2σ²},
// which is < σ² (CKS20). For σ² ≤ 10⁴ the two series are summed term by
// term until the terms no longer change the float64 sums (relative error
// about 1e-15, checked against 60-digit values to 1e-12), and clipped to σ².
// Above that σ² itself is returned: by Poisson summation the relative gap
// (σ² − Var)/σ² is about 8π²σ²·e^{−2π²σ²}, below 1e-80000 there (and
// already about 1e-15 at σ² = 2).
func (m Mechanism) Variance() float64 {
	if m.Validate() != nil {
		return math.NaN()
	}
	x, _ := m.Param.Float64()
	if m.Kind == KindDiscreteLaplace {
		return laplaceVariance(x)
	}
	return gaussianVariance(x)
}

// StdDev is the square root of Variance.
func (m Mechanism) StdDev() float64 { return math.Sqrt(m.Variance()) }

func laplaceVariance(t float64) float64 {
	p := math.Exp(-1 / t)
	q := -math.Expm1(-1 / t)
	return 2 * p / (q * q)
}

func gaussianVariance(sigma2 float64) float64 {
	if sigma2 > 1e4 {
		return sigma2
	}
	s0, s2 := 1.0, 0.0
	for z := 1.0; ; z++ {
		w := math.Exp(-z * z / (2 * sigma2))
		n0, n2 := s0+2*w, s2+2*z*z*w
		if n0 == s0 && n2 == s2 {
			break
		}
		s0, s2 = n0, n2
	}
	return math.Min(s2/s0, sigma2) // Var < σ² exactly; clip float rounding
}

// GaussianRho returns the exact zCDP cost ρ = Δ²/(2σ²) of the discrete
// Gaussian with sensitivity Δ (CKS20 Theorem 4; Bun & Steinke 2016). The
// arguments must be non-nil and σ² > 0; Mechanism.Cost is the checked call.
func GaussianRho(sensitivity *big.Int, sigma2 *big.Rat) *big.Rat {
	d := new(big.Rat).SetInt(sensitivity)
	d.Mul(d, d)
	return d.Quo(d, new(big.Rat).Mul(sigma2, big.NewRat(2, 1)))
}

// LaplaceEpsilon returns the exact pure-DP cost ε = Δ/t of the discrete
// Laplace with sensitivity Δ and scale t. The arguments must be non-nil and
// t > 0; Mechanism.Cost is the checked call.
func LaplaceEpsilon(sensitivity *big.Int, scale *big.Rat) *big.Rat {
	d := new(big.Rat).SetInt(sensitivity)
	return d.Quo(d, scale)
}

// Cost returns what releasing one statistic with sensitivity Δ through m
// costs: ρ (AccountingZCDP) for the discrete Gaussian, ε (AccountingPure)
// for the discrete Laplace.
func (m Mechanism) Cost(sensitivity *big.Int) (*big.Rat, Accounting, error) {
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	if sensitivity == nil || sensitivity.Sign() <= 0 {
		return nil, "", fmt.Errorf("privacy: sensitivity must be ≥ 1")
	}
	if m.Kind == KindDiscreteGaussian {
		return GaussianRho(sensitivity, m.Param), AccountingZCDP, nil
	}
	return LaplaceEpsilon(sensitivity, m.Param), AccountingPure, nil
}

// Sensitivities of the released sums under adding or removing one unit,
// whose clamped value x lies in [lo, hi] (and y in [lo2, hi2]). They are
// L1 = L2 sensitivities of one scalar. A count has sensitivity 1.

// SumSensitivity returns max(|lo|, |hi|), the sensitivity of Σx.
func SumSensitivity(lo, hi *big.Int) *big.Int {
	a, b := new(big.Int).Abs(lo), new(big.Int).Abs(hi)
	if a.Cmp(b) < 0 {
		return b
	}
	return a
}

// SquareSensitivity returns max(lo², hi²), the sensitivity of Σx².
func SquareSensitivity(lo, hi *big.Int) *big.Int {
	m := SumSensitivity(lo, hi)
	return m.Mul(m, m)
}

// ProductSensitivity returns max |x·y| over x in [lo1, hi1] and y in
// [lo2, hi2], the sensitivity of Σxy: max(|lo1|,|hi1|)·max(|lo2|,|hi2|).
func ProductSensitivity(lo1, hi1, lo2, hi2 *big.Int) *big.Int {
	a := SumSensitivity(lo1, hi1)
	return a.Mul(a, SumSensitivity(lo2, hi2))
}

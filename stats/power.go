package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// PowerResult is the minimum detectable effect of a comparison.
type PowerResult struct {
	Alpha, Power float64
	SE           float64 // standard error of the difference, √(v_c + v_t)
	MDE          float64 // minimum detectable absolute effect
	RelMDE       float64 // MDE/|control mean|; 0 when the control mean is 0
	Underpowered bool    // Underpowered(RelMDE, maxRelMDE); true when the control mean is 0
}

// MDE returns the minimum detectable absolute effect of a two-sided test at
// level alpha with the given power, for arms of kind Mean or Proportion with
// their observed n and variances (privacy noise included); see MDEFromSE.
// Zero alpha or power means DefaultAlpha or DefaultPower. Use PowerFor for
// ratio metrics, CUPED and the relative MDE.
func MDE(control, treatment Arm, alpha, power float64) (float64, error) {
	r, err := PowerFor(control, treatment, Mean, Options{Alpha: alpha, Power: power})
	return r.MDE, err
}

// PowerFor returns the MDE of the comparison Compare would make with the
// same arguments (including CUPED), at opts.Power.
func PowerFor(control, treatment Arm, kind Kind, opts Options) (PowerResult, error) {
	o := opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return PowerResult{}, err
	}
	c := Compare(control, treatment, kind, Options{Alpha: o.Alpha, Power: o.Power, MaxRelMDE: o.MaxRelMDE, CUPED: o.CUPED})
	if !c.Valid() {
		return PowerResult{}, fmt.Errorf("power: comparison %s: %w", c.Status, ErrDegenerate)
	}
	return PowerResult{
		Alpha: o.Alpha, Power: o.Power, SE: c.SE,
		MDE: c.MDE, RelMDE: c.RelMDE, Underpowered: c.Underpowered,
	}, nil
}

// MDEFromSE returns the minimum detectable effect δ of a two-sided z-test
// at level alpha with the given power, for an estimator with standard error
// se: the δ > 0 solving the exact two-sided power equation
//
//	Φ(δ/se - z_{1-α/2}) + Φ(-δ/se - z_{1-α/2}) = power,
//
// which is (z_{1-α/2} + z_power)·se up to the (tiny) second term; it equals
// statsmodels' normal_power solved for the effect size.
func MDEFromSE(se, alpha, power float64) (float64, error) {
	if !(alpha > 0 && alpha < 1 && power > alpha && power < 1) {
		return 0, fmt.Errorf("mde: alpha %v, power %v: %w", alpha, power, ErrInvalidInput)
	}
	if !finite(se) || se < 0 {
		return 0, fmt.Errorf("mde: standard error %v: %w", se, ErrInvalidInput)
	}
	if se == 0 {
		return 0, fmt.Errorf("mde: zero standard error: %w", ErrDegenerate)
	}
	z := normalQuantileTwoSided(alpha)
	n := distuv.UnitNormal
	k := z + n.Quantile(power) // Newton from the one-tail solution
	for range 50 {
		g := n.CDF(k-z) + n.CDF(-k-z) - power
		dg := n.Prob(k-z) - n.Prob(k+z)
		step := g / dg
		k -= step
		if math.Abs(step) <= 1e-15*k {
			break
		}
	}
	return k * se, nil
}

// Underpowered reports whether a comparison whose relative minimum
// detectable effect is relMDE is too weak to be informative: relMDE >
// maxRelMDE, the smallest relative effect the experimenter wants to detect
// (zero means DefaultMaxRelMDE, 5%). A non-finite or negative relMDE is
// underpowered.
//
// The rule compares the design's sensitivity with the effect of interest,
// not with the observed effect: "observed |Δ| < MDE" is nearly the same as
// "not significant" (|z| < z_{1-α/2} + z_power) and says nothing new.
func Underpowered(relMDE, maxRelMDE float64) bool {
	if maxRelMDE == 0 {
		maxRelMDE = DefaultMaxRelMDE
	}
	return !(relMDE >= 0 && relMDE <= maxRelMDE)
}

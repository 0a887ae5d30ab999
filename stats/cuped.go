package stats

import (
	"fmt"
	"math"
)

// CUPED is the variance-reduction adjustment applied by Compare (Deng et
// al. 2013, "Improving the sensitivity of online controlled experiments by
// utilizing pre-experiment data"). Each arm's estimate m is replaced by
//
//	m - θ·(c̄ - c̄*)
//
// where c̄ is the arm's covariate mean and c̄* = CovariateMean is the pooled
// covariate mean of all arms; θ and c̄* are treated as fixed, so the per-unit
// variance becomes s² - 2θ·Cov(ℓ, c) + θ²·Var(c). Use NewCUPED to compute
// both from every arm of the experiment (so that every treatment is
// compared against the same adjusted control).
type CUPED struct {
	Theta         float64
	CovariateMean float64
}

// NewCUPED returns θ from CUPEDTheta and the pooled covariate mean from
// PooledCovariateMean, computed over all arms of one metric and cohort.
func NewCUPED(arms []Arm, kind Kind) (CUPED, error) {
	th, err := CUPEDTheta(arms, kind)
	if err != nil {
		return CUPED{}, err
	}
	cm, err := PooledCovariateMean(arms)
	if err != nil {
		return CUPED{}, err
	}
	return CUPED{Theta: th, CovariateMean: cm}, nil
}

// PooledCovariateMean returns c̄* = Σ n_i c̄_i / Σ n_i over the arms with
// units.
func PooledCovariateMean(arms []Arm) (float64, error) {
	var n, s float64
	for i, a := range arms {
		if a.N == 0 {
			continue
		}
		if !a.HasCovariate {
			return 0, fmt.Errorf("arm %d: %w", i, ErrNoCovariate)
		}
		if !(finite(a.N) && finite(a.CovMean)) || a.N < 0 {
			return 0, fmt.Errorf("arm %d: n %v, covariate mean %v: %w", i, a.N, a.CovMean, ErrInvalidInput)
		}
		n += a.N
		s += a.N * a.CovMean
	}
	if n == 0 {
		return 0, fmt.Errorf("pooled covariate mean: no units: %w", ErrDegenerate)
	}
	return s / n, nil
}

// CUPEDTheta returns the CUPED coefficient θ pooled across arms: the
// within-arm regression slope of the metric on its covariate,
//
//	θ = Σ_i (n_i-1)·Cov_i(x, c) / Σ_i (n_i-1)·Var_i(c).
//
// Pooling within arms (rather than over all units together) keeps the
// treatment effect out of θ. For Ratio metrics the metric is linearised
// around the pooled ratio R = Σ n_i x̄_i / Σ n_i ȳ_i, ℓ = (x - R·y)/ȳ* with
// ȳ* = Σ n_i ȳ_i / Σ n_i, which puts θ on the scale of the ratio:
//
//	θ = Σ_i (n_i-1)·(Cov_i(x, c) - R·Cov_i(y, c)) / (ȳ* · Σ_i (n_i-1)·Var_i(c)).
//
// Arms with N = 0 are skipped. Every other arm must have a covariate
// (ErrNoCovariate). A zero pooled covariate variance is ErrDegenerate: the
// caller should then analyse without CUPED.
func CUPEDTheta(arms []Arm, kind Kind) (float64, error) {
	if !kind.valid() {
		return 0, fmt.Errorf("cuped theta: kind %v: %w", kind, ErrInvalidInput)
	}
	var num, den, sumN, sumX, sumY float64
	for i, a := range arms {
		if a.N == 0 {
			continue
		}
		if !a.HasCovariate {
			return 0, fmt.Errorf("cuped theta: arm %d: %w", i, ErrNoCovariate)
		}
		vals := []float64{a.N, a.Mean, a.CovVar, a.CovXC}
		if kind == Ratio {
			vals = append(vals, a.DenMean, a.CovYC)
		}
		for _, v := range vals {
			if !finite(v) {
				return 0, fmt.Errorf("cuped theta: arm %d: non-finite moment: %w", i, ErrInvalidInput)
			}
		}
		if a.N < 0 || a.CovVar < 0 {
			return 0, fmt.Errorf("cuped theta: arm %d: n %v, covariate variance %v: %w", i, a.N, a.CovVar, ErrInvalidInput)
		}
		sumN += a.N
		sumX += a.N * a.Mean
		sumY += a.N * a.DenMean
	}
	if sumN == 0 {
		return 0, fmt.Errorf("cuped theta: no units: %w", ErrDegenerate)
	}
	var r, yBar float64
	if kind == Ratio {
		if sumY == 0 {
			return 0, fmt.Errorf("cuped theta: pooled denominator mean is zero: %w", ErrDegenerate)
		}
		r, yBar = sumX/sumY, sumY/sumN
	}
	for _, a := range arms {
		if a.N == 0 {
			continue
		}
		w := math.Max(a.N-1, 0)
		cov := a.CovXC
		if kind == Ratio {
			cov -= r * a.CovYC
		}
		num += w * cov
		den += w * a.CovVar
	}
	if den == 0 {
		return 0, fmt.Errorf("cuped theta: covariate has zero pooled variance: %w", ErrDegenerate)
	}
	th := num / den
	if kind == Ratio {
		th /= yBar
	}
	if !finite(th) {
		return 0, fmt.Errorf("cuped theta: overflow: %w", ErrInvalidInput)
	}
	return th, nil
}

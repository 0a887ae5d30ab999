package stats

import (
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// SRMNoiseAware is SRMResult.Method of SRMNoisy.
const SRMNoiseAware = "chi_square_noise_aware"

// SRMNoisy tests a sample-ratio mismatch on noisy counts: a private
// release's unit counts Õ_i = O_i + Z_i, where Z_i is independent
// zero-mean noise of known standard deviation noiseSD[i] (the discrete
// Gaussian of the release). Pearson's χ² treats Õ as multinomial and so
// declares a mismatch whenever the noise, not the allocation, moves a
// small cohort's counts: with noise sd 10 on 50 units, a clean 25/25 split
// reads as 41/10 often enough to fail a 0.001 threshold.
//
// Under the null the deviations D_i = Õ_i − p_i·Ñ (Ñ = ΣÕ, p = w/Σw) of the
// first k−1 arms have mean 0 and covariance
//
//	C = N·(diag(p) − p pᵀ) + A·diag(σ²)·Aᵀ,   A = I − p 1ᵀ,
//
// the multinomial part (its N estimated by max(Ñ, 0)) plus the noise
// carried through the deviations; the statistic X² = Dᵀ C⁻¹ D is compared
// with χ²_{k−1}. This is the Wald-type goodness-of-fit test with the
// noise's covariance added to the multinomial one, as in Rogers and Kifer,
// "A New Class of Private Chi-Square Hypothesis Tests" (AISTATS 2017),
// section 3 (Gaussian noise on the counts). With σ = 0 it is
// Pearson's χ² exactly (the Mahalanobis form of the multinomial), which a
// test checks. Being asymptotic, it has no exact small-count variant; the
// noise itself makes small counts approximately normal.
//
// Counts may be negative (noise). The test is degenerate (ErrDegenerate)
// when C is singular — no units and no noise.
func SRMNoisy(observed, expectedShares, noiseSD []float64) (SRMResult, error) {
	k := len(observed)
	if k != len(expectedShares) || k != len(noiseSD) || k < 2 {
		return SRMResult{}, fmt.Errorf("srm: %d counts, %d shares, %d noise sds: %w", k, len(expectedShares), len(noiseSD), ErrLength)
	}
	var total, shareSum, noiseVar float64
	for i := range observed {
		if !finite(observed[i]) {
			return SRMResult{}, fmt.Errorf("srm: arm %d count %v: %w", i, observed[i], ErrInvalidInput)
		}
		if !finite(expectedShares[i]) || !(expectedShares[i] > 0) {
			return SRMResult{}, fmt.Errorf("srm: arm %d share %v: %w", i, expectedShares[i], ErrInvalidInput)
		}
		if !finite(noiseSD[i]) || noiseSD[i] < 0 {
			return SRMResult{}, fmt.Errorf("srm: arm %d noise sd %v: %w", i, noiseSD[i], ErrInvalidInput)
		}
		total += observed[i]
		shareSum += expectedShares[i]
		noiseVar += noiseSD[i] * noiseSD[i]
	}
	p := make([]float64, k)
	for i := range p {
		p[i] = expectedShares[i] / shareSum
	}
	n := max(total, 0)
	r := SRMResult{Method: SRMNoiseAware, DF: k - 1, Observed: append([]float64(nil), observed...), Expected: make([]float64, k), Total: total}
	for i := range p {
		r.Expected[i] = total * p[i]
	}
	m := k - 1
	d := mat.NewVecDense(m, nil)
	c := mat.NewSymDense(m, nil)
	for i := 0; i < m; i++ {
		d.SetVec(i, observed[i]-p[i]*total)
		for j := i; j < m; j++ {
			v := -n * p[i] * p[j]
			if i == j {
				v += n * p[i]
			}
			// (A diag(σ²) Aᵀ)_ij = δ_ij σ_i² − p_j σ_i² − p_i σ_j² + p_i p_j Σσ².
			si, sj := noiseSD[i]*noiseSD[i], noiseSD[j]*noiseSD[j]
			v += -p[j]*si - p[i]*sj + p[i]*p[j]*noiseVar
			if i == j {
				v += si
			}
			c.SetSym(i, j, v)
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(c) {
		return SRMResult{}, fmt.Errorf("srm: no units and no noise: %w", ErrDegenerate)
	}
	var x mat.VecDense
	if err := chol.SolveVecTo(&x, d); err != nil {
		return SRMResult{}, fmt.Errorf("srm: %v: %w", err, ErrDegenerate)
	}
	r.ChiSquare = mat.Dot(d, &x)
	if !finite(r.ChiSquare) || r.ChiSquare < 0 {
		return SRMResult{}, fmt.Errorf("srm: χ² %v: %w", r.ChiSquare, ErrInvalidInput)
	}
	r.PValue = chiSquareSurvival(r.ChiSquare, float64(r.DF))
	r.AdjPValue = r.PValue
	return r, nil
}

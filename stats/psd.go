package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// NearestCovariance returns the covariance matrix closest to a noisy one
// that a vector of bounded variables can have: positive semi-definite, and
// each variance at most maxVar[i] (the largest variance of a variable in
// [lo, hi] is (hi−lo)²/4; a non-positive or infinite maxVar[i] means no
// bound). Differentially private moments are computed from independently
// noised sums, so the matrix built from them can be indefinite — a
// "covariance" of numerator and denominator larger than their standard
// deviations allow, and then a negative delta-method variance. Projecting
// it is post-processing, which costs no privacy.
//
// The projection has three steps:
//
//  1. each diagonal entry is clamped to [0, maxVar[i]];
//  2. the symmetric matrix is replaced by its nearest positive
//     semi-definite matrix in the Frobenius norm, Q·max(Λ, 0)·Qᵀ for the
//     eigendecomposition A = QΛQᵀ (Higham 1988, "Computing a nearest
//     symmetric positive semidefinite matrix", Linear Algebra Appl.
//     103:103–118, Theorem 2.1 for a symmetric A);
//  3. where step 2 pushed a variance above its bound, row and column i are
//     scaled by √(maxVar[i]/A_ii), a congruence D·A·D that keeps the matrix
//     positive semi-definite and each correlation unchanged.
//
// The input is a row-major symmetric k×k matrix (only the lower triangle
// is read); NaN or infinite entries are an error wrapping ErrInvalidInput.
func NearestCovariance(a []float64, maxVar []float64) ([]float64, error) {
	k := len(maxVar)
	if len(a) != k*k || k == 0 {
		return nil, fmt.Errorf("nearest covariance: %d entries for %d variables: %w", len(a), k, ErrLength)
	}
	for _, v := range a {
		if !finite(v) {
			return nil, fmt.Errorf("nearest covariance: entry %v: %w", v, ErrInvalidInput)
		}
	}
	bound := func(i int) (float64, bool) {
		b := maxVar[i]
		return b, b > 0 && finite(b)
	}
	s := mat.NewSymDense(k, nil)
	for i := range k {
		for j := 0; j <= i; j++ {
			s.SetSym(i, j, a[i*k+j])
		}
		d := math.Max(s.At(i, i), 0)
		if b, ok := bound(i); ok && d > b {
			d = b
		}
		s.SetSym(i, i, d)
	}
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("nearest covariance: eigendecomposition failed: %w", ErrInvalidInput)
	}
	vals := eig.Values(nil)
	var q mat.Dense
	eig.VectorsTo(&q)
	out := make([]float64, k*k)
	for i := range k {
		for j := range k {
			var x float64
			for l, lam := range vals {
				if lam > 0 {
					x += q.At(i, l) * lam * q.At(j, l)
				}
			}
			out[i*k+j] = x
		}
	}
	scale := make([]float64, k)
	for i := range k {
		scale[i] = 1
		if b, ok := bound(i); ok && out[i*k+i] > b {
			scale[i] = math.Sqrt(b / out[i*k+i])
		}
	}
	for i := range k {
		for j := range k {
			out[i*k+j] *= scale[i] * scale[j]
		}
		// Symmetric by construction; keep the variances non-negative
		// against rounding in the reconstruction.
		out[i*k+i] = math.Max(out[i*k+i], 0)
	}
	return out, nil
}

package stats

import (
	"errors"
	"fmt"
	"math"
)

// This file holds what the variance-reduction, interaction and anomaly
// estimators share: the per-cell and per-arm moments they take, how such
// moments merge, and the typed error that says which cell was at fault.

// ErrSingular is returned by RegressionAdjust when an arm's covariates are
// collinear (or one is constant within an arm), so that the within-arm
// regression has no unique slope. Drop or combine the covariates.
var ErrSingular = errors.New("stats: singular covariate matrix")

// CellError is a data problem in one cell of a table the caller passed:
// PostStratify reports (stratum, arm), Interaction (arm of A, arm of B),
// RegressionAdjust and LinearizeRatio (arm, −1), NightlyAnomalies
// (night, −1). Err wraps ErrInvalidInput, ErrDegenerate or ErrSingular, so
// errors.Is works through it.
type CellError struct {
	Table    string // "stratum", "cell", "arm" or "night": what Row counts
	Row, Col int    // Col is −1 when the table has one dimension
	Err      error
}

func (e *CellError) Error() string {
	if e.Col < 0 {
		return fmt.Sprintf("%s %d: %v", e.Table, e.Row, e.Err)
	}
	return fmt.Sprintf("%s %d, %d: %v", e.Table, e.Row, e.Col, e.Err)
}

func (e *CellError) Unwrap() error { return e.Err }

// Cell holds the moments of one metric in one cell (a stratum × arm of
// PostStratify, an arm of A × arm of B of Interaction): the number of
// units, the mean and the sample variance (n−1 denominator). The pipeline
// computes them exactly from integer sums. A ratio metric is passed
// linearised: the moments of ℓ = R + (x − R·y)/ȳ* per unit, with the
// experiment's pooled R and ȳ* (as CUPEDTheta linearises), so that
// differences of cell means estimate differences of ratios to first order.
type Cell struct {
	N    float64
	Mean float64
	Var  float64
}

// validate checks that c is finite with non-negative N and Var.
func (c Cell) validate() error {
	if !(finite(c.N) && finite(c.Mean) && finite(c.Var)) || c.N < 0 || c.Var < 0 {
		return fmt.Errorf("n %v, mean %v, variance %v: %w", c.N, c.Mean, c.Var, ErrInvalidInput)
	}
	return nil
}

// MergeCells returns the moments of the union of the cells' units,
//
//	n = Σnᵢ,  m = Σnᵢmᵢ/n,  s² = (Σ(nᵢ−1)sᵢ² + Σnᵢ(mᵢ − m)²)/(n − 1),
//
// exact up to rounding (s² = 0 when n ≤ 1). Cells with N = 0 add nothing.
func MergeCells(cells ...Cell) (Cell, error) {
	var out Cell
	for i, c := range cells {
		if err := c.validate(); err != nil {
			return Cell{}, fmt.Errorf("merge cells: cell %d: %w", i, err)
		}
		out.N += c.N
	}
	if out.N == 0 {
		return Cell{}, nil
	}
	for _, c := range cells {
		out.Mean += c.N / out.N * c.Mean
	}
	if out.N > 1 {
		var ss float64
		for _, c := range cells {
			if c.N == 0 {
				continue
			}
			d := c.Mean - out.Mean
			ss += math.Max(c.N-1, 0)*c.Var + c.N*d*d
		}
		out.Var = ss / (out.N - 1)
	}
	if !(finite(out.Mean) && finite(out.Var)) {
		return Cell{}, fmt.Errorf("merge cells: overflow: %w", ErrInvalidInput)
	}
	return out, nil
}

// ArmMoments are one arm's sample moments of the per-unit vector
// z = (y, x₁, …, x_k): the metric y first, then k pre-exposure covariates.
// Cov is the (k+1)×(k+1) sample covariance matrix (n−1 denominator) in
// row-major order; only its lower triangle is read. The pipeline computes
// them exactly from the integer sums Σz and Σzzᵀ per arm; because moments
// merge exactly (MergeArmMoments), per-cell moments can be combined across
// strata, cohorts or nights.
type ArmMoments struct {
	N    float64
	Mean []float64
	Cov  []float64
}

// Dim returns the length of z, k+1.
func (a ArmMoments) Dim() int { return len(a.Mean) }

// at returns Cov[i][j] from the lower triangle.
func (a ArmMoments) at(i, j int) float64 {
	if j > i {
		i, j = j, i
	}
	return a.Cov[i*len(a.Mean)+j]
}

// validate checks the shape (dim ≥ 1, Cov dim²), finiteness and
// non-negative N and variances.
func (a ArmMoments) validate() error {
	p := len(a.Mean)
	if p == 0 || len(a.Cov) != p*p {
		return fmt.Errorf("%d means, %d covariance entries: %w", p, len(a.Cov), ErrLength)
	}
	if !finite(a.N) || a.N < 0 {
		return fmt.Errorf("n %v: %w", a.N, ErrInvalidInput)
	}
	for i := range p {
		if !finite(a.Mean[i]) {
			return fmt.Errorf("mean %d is %v: %w", i, a.Mean[i], ErrInvalidInput)
		}
		for j := 0; j <= i; j++ {
			if !finite(a.at(i, j)) {
				return fmt.Errorf("covariance (%d, %d) is %v: %w", i, j, a.at(i, j), ErrInvalidInput)
			}
		}
		if a.at(i, i) < 0 {
			return fmt.Errorf("variance %d is %v: %w", i, a.at(i, i), ErrInvalidInput)
		}
	}
	return nil
}

// MergeArmMoments returns the moments of the union of the parts' units
// (the multivariate form of MergeCells):
//
//	n = Σnᵢ,  z̄ = Σnᵢz̄ᵢ/n,  S = (Σ(nᵢ−1)Sᵢ + Σnᵢ(z̄ᵢ − z̄)(z̄ᵢ − z̄)ᵀ)/(n − 1).
//
// All parts must have the same dimension (ErrLength). Parts with N = 0 add
// nothing; S = 0 when n ≤ 1.
func MergeArmMoments(parts ...ArmMoments) (ArmMoments, error) {
	if len(parts) == 0 {
		return ArmMoments{}, fmt.Errorf("merge moments: no parts: %w", ErrLength)
	}
	p := parts[0].Dim()
	out := ArmMoments{Mean: make([]float64, p), Cov: make([]float64, p*p)}
	for i, a := range parts {
		if a.Dim() != p {
			return ArmMoments{}, fmt.Errorf("merge moments: part %d has dimension %d, want %d: %w", i, a.Dim(), p, ErrLength)
		}
		if err := a.validate(); err != nil {
			return ArmMoments{}, fmt.Errorf("merge moments: part %d: %w", i, err)
		}
		out.N += a.N
	}
	if out.N == 0 {
		return out, nil
	}
	for _, a := range parts {
		for i := range p {
			out.Mean[i] += a.N / out.N * a.Mean[i]
		}
	}
	if out.N > 1 {
		for _, a := range parts {
			if a.N == 0 {
				continue
			}
			w := math.Max(a.N-1, 0)
			for i := range p {
				di := a.Mean[i] - out.Mean[i]
				for j := 0; j <= i; j++ {
					dj := a.Mean[j] - out.Mean[j]
					out.Cov[i*p+j] += w*a.at(i, j) + a.N*di*dj
				}
			}
		}
		for i := range p {
			for j := 0; j <= i; j++ {
				v := out.Cov[i*p+j] / (out.N - 1)
				out.Cov[i*p+j], out.Cov[j*p+i] = v, v
			}
		}
	}
	for _, v := range out.Cov {
		if !finite(v) {
			return ArmMoments{}, fmt.Errorf("merge moments: overflow: %w", ErrInvalidInput)
		}
	}
	return out, nil
}

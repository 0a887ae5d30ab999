package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Regression adjustment with several pre-exposure covariates: Lin's
// (2013, "Agnostic notes on regression adjustments to experimental data:
// reexamining Freedman's critique", Ann. Appl. Stat. 7(1):295–318)
// interacted estimator, computed from each arm's moment matrix.
//
// Lin's estimator is the coefficient of the arm in the OLS regression of y
// on the arm indicators, the covariates centred at their mean over all
// units, x − x̄, and their interactions. That regression is saturated in
// the arms, so it is the same as a separate regression in each arm a of y
// on (1, x − x̄), whose intercept is the adjusted mean
//
//	β̂_a = S_xx,a⁻¹·s_xy,a,   μ̂_a = ȳ_a − β̂_aᵀ(x̄_a − x̄),   τ̂ = μ̂_t − μ̂_c,
//
// from the arm's n, means and sample covariance of (y, x) alone. It is
// Eppo's CUPED++ (docs/statistics/cuped.md of Eppo-exp/eppo-docs: a
// regression "separately for each variation", on the pre-period values of
// the experiment's metrics and the assignment properties, citing Lin 2013)
// without Eppo's ridge penalty: Verity fits ordinary least squares, so the
// estimate is unbiased in large samples, never worse asymptotically than
// the unadjusted one, and reproducible from the moments.
//
// Standard error. Heteroskedasticity-consistent (HC0–HC3) standard errors
// need each unit's residual and leverage — HC2 divides each squared
// residual by 1 − h_ii — so none of them is a function of the arm's first
// and second moments. What the moments give exactly is the per-arm OLS
// variance of the intercept, with a separate error variance per arm,
//
//	V_a = σ̂_a²·(1/n_a + d_aᵀ((n_a−1)S_xx,a)⁻¹d_a),   σ̂_a² = (n_a−1)(s_yy − s_xyᵀβ̂_a)/(n_a − k − 1),   d_a = x̄_a − x̄,
//
// (statsmodels' OLS(y_a, [1, x − x̄]).fit().bse[0]² in each arm). It is
// robust to unequal residual variances between the arms — the failure of
// the pooled OLS variance that Freedman and Lin discuss — and, like HC2,
// consistent for Lin's asymptotic variance Σ_a σ²_e,a/n_a: the two differ
// only in the O(n⁻²) term d_aᵀVar(β̂_a)d_a, by O(n^−½) relative to V_a
// under heteroskedasticity (the reference tests measure it against
// statsmodels' HC2). For the population effect Verity adds the variance of
// the covariate mean, which the arm slopes turn into variance of τ̂ when
// they differ (Negi & Wooldridge 2021, Econometric Reviews 40(5)):
//
//	V = V_t + V_c + (β̂_t − β̂_c)ᵀS_x(β̂_t − β̂_c)/N,
//
// S_x the covariance of x over all N units. With stratum indicators as the
// covariates τ̂ and that last term are PostStratify's. The interval is
// τ̂ ± t_{ν,1−α/2}·√V with ν = (V_t + V_c)²/(V_t²/(n_t−k−1) + V_c²/(n_c−k−1));
// with no covariates this is Compare's Welch test exactly.
//
// Relation to CUPED (cuped.go). CUPED adjusts every arm with one pooled
// within-arm slope θ, m_a − θ(c̄_a − c̄*), and a variance that treats θ as
// known, (s² − 2θs_xc + θ²s_cc)/n_a; Lin gives each arm its own slope. With
// k = 1 and equal within-arm slopes the two estimates coincide and V_a is
// CUPED's arm variance times (n_a−1)/(n_a−2) (the residual degree of
// freedom) plus the d_a² term; otherwise Lin's estimate differs by
// Σ ±(β̂_a − θ)(c̄_a − c̄*) and is the more efficient when the slopes differ.
//
// Ratio metrics. Pass the moments of the linearised value (LinearizeRatio):
// τ̂ then estimates the difference of the arms' ratios to first order.
//
// Multi-arm experiments pass every arm; x̄ is over all of them (as CUPED's
// pooled covariate mean is), and each treatment is compared with arm 0.

// SingularCondition is the largest condition number of an arm's
// covariate correlation matrix that RegressionAdjust accepts; beyond it the
// covariates are treated as collinear (ErrSingular).
const SingularCondition = 1e10

// RegressionOptions are the settings of RegressionAdjust.
type RegressionOptions struct {
	// Alpha is the two-sided level; zero means DefaultAlpha.
	Alpha float64
}

// AdjustedArm is one arm of a regression adjustment.
type AdjustedArm struct {
	N            float64
	Mean         float64   // ȳ_a
	AdjustedMean float64   // μ̂_a = ȳ_a − β̂_aᵀ(x̄_a − x̄)
	Var          float64   // V_a, the variance of AdjustedMean given the covariates
	Slopes       []float64 // β̂_a
	ResidualVar  float64   // σ̂_a², on n_a − k − 1 degrees of freedom
	// R2 is the share of the arm's variance of y the covariates explain,
	// 1 − (s_yy − s_xyᵀβ̂_a)/s_yy (0 when s_yy is 0).
	R2 float64
}

// AdjustedEffect is one treatment arm against arm 0.
type AdjustedEffect struct {
	Arm       int     // the treatment arm's index
	Estimate  float64 // τ̂ = μ̂_i − μ̂_0
	SE        float64 // √V, including the covariate-mean term
	DF        float64 // ν
	Statistic float64
	PValue    float64
	Low, High float64
	Critical  float64
	// SEConditional is √(V_i + V_0), without the covariate-mean term.
	SEConditional float64
	// Unadjusted and UnadjustedSE are the Welch comparison of ȳ_i and ȳ_0;
	// VarianceReduction is 1 − SE²/UnadjustedSE² (0 when that SE is 0).
	Unadjusted, UnadjustedSE, VarianceReduction float64
}

// RegressionAdjustment is the result of RegressionAdjust. Every float is
// finite.
type RegressionAdjustment struct {
	Alpha         float64
	Covariates    int       // k
	CovariateMean []float64 // x̄ over all arms
	Arms          []AdjustedArm
	Effects       []AdjustedEffect // arms 1, 2, … against arm 0
}

// RegressionAdjust computes Lin's regression-adjusted comparison of every
// arm with arm 0 from the arms' moments of (y, x₁, …, x_k) (see above).
//
// Errors: ErrLength for fewer than two arms or arms of different
// dimensions; a *CellError (table "arm") wrapping ErrInvalidInput for NaN,
// infinite or negative moments or a covariance that is not positive
// semi-definite, ErrDegenerate for an arm with fewer than k+2 units, and
// ErrSingular for collinear or constant covariates in an arm;
// ErrDegenerate when a comparison has zero variance.
func RegressionAdjust(arms []ArmMoments, opts RegressionOptions) (RegressionAdjustment, error) {
	alpha := opts.Alpha
	if alpha == 0 {
		alpha = DefaultAlpha
	}
	if !(alpha > 0 && alpha < 1) {
		return RegressionAdjustment{}, fmt.Errorf("regression adjust: alpha %v: %w", opts.Alpha, ErrInvalidInput)
	}
	if len(arms) < 2 {
		return RegressionAdjustment{}, fmt.Errorf("regression adjust: %d arms: %w", len(arms), ErrLength)
	}
	p := arms[0].Dim()
	for i, a := range arms {
		if a.Dim() != p {
			return RegressionAdjustment{}, fmt.Errorf("regression adjust: arm %d has dimension %d, arm 0 %d: %w", i, a.Dim(), p, ErrLength)
		}
		if err := a.validate(); err != nil {
			return RegressionAdjustment{}, fmt.Errorf("regression adjust: %w", &CellError{Table: "arm", Row: i, Col: -1, Err: err})
		}
	}
	k := p - 1
	for i, a := range arms {
		if a.N < float64(k+2) {
			return RegressionAdjustment{}, fmt.Errorf("regression adjust: %w", &CellError{Table: "arm", Row: i, Col: -1,
				Err: fmt.Errorf("%v units for %d covariates, need %d: %w", a.N, k, k+2, ErrDegenerate)})
		}
	}
	all, err := MergeArmMoments(arms...)
	if err != nil {
		return RegressionAdjustment{}, fmt.Errorf("regression adjust: %w", err)
	}
	res := RegressionAdjustment{Alpha: alpha, Covariates: k, CovariateMean: append([]float64(nil), all.Mean[1:]...)}
	dfs := make([]float64, len(arms))
	for i, a := range arms {
		arm, err := adjustArm(a, res.CovariateMean)
		if err != nil {
			return RegressionAdjustment{}, fmt.Errorf("regression adjust: %w", &CellError{Table: "arm", Row: i, Col: -1, Err: err})
		}
		res.Arms = append(res.Arms, arm)
		dfs[i] = a.N - float64(k) - 1
	}
	for i := 1; i < len(arms); i++ {
		e, err := adjustedEffect(res.Arms[0], res.Arms[i], dfs[0], dfs[i], arms[0], arms[i], all, alpha)
		if err != nil {
			return RegressionAdjustment{}, fmt.Errorf("regression adjust: arm %d against arm 0: %w", i, err)
		}
		e.Arm = i
		res.Effects = append(res.Effects, e)
	}
	return res, nil
}

// adjustArm fits one arm's regression of y on its centred covariates.
func adjustArm(a ArmMoments, xbar []float64) (AdjustedArm, error) {
	k := len(xbar)
	syy := a.at(0, 0)
	out := AdjustedArm{N: a.N, Mean: a.Mean[0], AdjustedMean: a.Mean[0], Slopes: make([]float64, k)}
	resid := syy // residual variance, n−1 denominator
	var q float64
	if k > 0 {
		sol, err := newCovSolver(a)
		if err != nil {
			return AdjustedArm{}, err
		}
		sxy := make([]float64, k)
		d := make([]float64, k)
		for j := range k {
			sxy[j] = a.at(j+1, 0)
			d[j] = a.Mean[j+1] - xbar[j]
		}
		out.Slopes = sol.solve(sxy)
		for j := range k {
			resid -= sxy[j] * out.Slopes[j]
			out.AdjustedMean -= out.Slopes[j] * d[j]
		}
		q = dot(d, sol.solve(d))
		if resid < 0 {
			// A perfect fit leaves rounding around zero; more is an
			// inconsistent (not positive semi-definite) covariance.
			if resid < -1e-9*syy {
				return AdjustedArm{}, fmt.Errorf("residual variance %v < 0: covariance not positive semi-definite: %w", resid, ErrInvalidInput)
			}
			resid = 0
		}
	}
	if syy > 0 {
		out.R2 = 1 - resid/syy
	}
	out.ResidualVar = (a.N - 1) * resid / (a.N - float64(k) - 1)
	out.Var = out.ResidualVar * (1/a.N + q/(a.N-1))
	for _, v := range append([]float64{out.AdjustedMean, out.Var, out.ResidualVar, out.R2}, out.Slopes...) {
		if !finite(v) {
			return AdjustedArm{}, fmt.Errorf("overflow: %w", ErrInvalidInput)
		}
	}
	return out, nil
}

// adjustedEffect compares treatment arm t with control arm c.
func adjustedEffect(c, t AdjustedArm, dfc, dft float64, mc, mt, all ArmMoments, alpha float64) (AdjustedEffect, error) {
	e := AdjustedEffect{Estimate: t.AdjustedMean - c.AdjustedMean}
	vCond := c.Var + t.Var
	if vCond == 0 {
		return AdjustedEffect{}, fmt.Errorf("zero residual variance in both arms: %w", ErrDegenerate)
	}
	// (β̂_t − β̂_c)ᵀ S_x (β̂_t − β̂_c) / N.
	k := len(c.Slopes)
	var vHet float64
	for i := range k {
		for j := range k {
			vHet += (t.Slopes[i] - c.Slopes[i]) * all.at(i+1, j+1) * (t.Slopes[j] - c.Slopes[j])
		}
	}
	vHet = math.Max(vHet, 0) / all.N
	e.SEConditional = math.Sqrt(vCond)
	e.SE = math.Sqrt(vCond + vHet)
	rc, rt := c.Var/vCond, t.Var/vCond
	e.DF = math.Min(1/(rc*rc/dfc+rt*rt/dft), NoiseOnlyDF)
	e.Statistic = e.Estimate / e.SE
	// gonum panics on a non-finite or zero ν: check before any quantile.
	if !(finite(e.Estimate) && finite(e.SE) && finite(e.Statistic) && e.SE > 0 && e.DF > 0) {
		return AdjustedEffect{}, fmt.Errorf("overflow: %w", ErrInvalidInput)
	}
	e.Critical = tQuantileTwoSided(alpha, e.DF)
	e.PValue = tTwoSidedP(e.Statistic, e.DF)
	e.Low, e.High = e.Estimate-e.Critical*e.SE, e.Estimate+e.Critical*e.SE
	e.Unadjusted = mt.Mean[0] - mc.Mean[0]
	vu := mt.at(0, 0)/mt.N + mc.at(0, 0)/mc.N
	e.UnadjustedSE = math.Sqrt(vu)
	if vu > 0 {
		e.VarianceReduction = 1 - (vCond+vHet)/vu
	}
	for _, v := range [...]float64{e.Estimate, e.SE, e.DF, e.Statistic, e.PValue, e.Low, e.High, e.Critical,
		e.SEConditional, e.Unadjusted, e.UnadjustedSE, e.VarianceReduction} {
		if !finite(v) {
			return AdjustedEffect{}, fmt.Errorf("overflow: %w", ErrInvalidInput)
		}
	}
	return e, nil
}

// covSolver solves S_xx·v = b for an arm's covariate covariance S_xx by
// the Cholesky factor of its correlation matrix (so that covariates on
// very different scales do not look singular).
type covSolver struct {
	sd   []float64
	chol mat.Cholesky
}

func newCovSolver(a ArmMoments) (*covSolver, error) {
	k := a.Dim() - 1
	s := &covSolver{sd: make([]float64, k)}
	for j := range k {
		s.sd[j] = math.Sqrt(a.at(j+1, j+1))
		if !(s.sd[j] > 0) {
			return nil, fmt.Errorf("covariate %d is constant: %w", j+1, ErrSingular)
		}
	}
	r := mat.NewSymDense(k, nil)
	for i := range k {
		for j := 0; j <= i; j++ {
			r.SetSym(i, j, a.at(i+1, j+1)/(s.sd[i]*s.sd[j]))
		}
	}
	if !s.chol.Factorize(r) {
		return nil, fmt.Errorf("covariates are collinear (correlation matrix not positive definite): %w", ErrSingular)
	}
	if c := s.chol.Cond(); !(c <= SingularCondition) {
		return nil, fmt.Errorf("covariates are collinear (condition number %.3g > %.0g): %w", c, SingularCondition, ErrSingular)
	}
	return s, nil
}

// solve returns S_xx⁻¹·b = D⁻¹R⁻¹D⁻¹b.
func (s *covSolver) solve(b []float64) []float64 {
	k := len(s.sd)
	v := mat.NewVecDense(k, nil)
	for j := range k {
		v.SetVec(j, b[j]/s.sd[j])
	}
	var x mat.VecDense
	// The factorisation succeeded and is well conditioned, so SolveVecTo
	// cannot fail.
	_ = s.chol.SolveVecTo(&x, v)
	out := make([]float64, k)
	for j := range k {
		out[j] = x.AtVec(j) / s.sd[j]
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// LinearizeRatio turns each arm's moments of (x, y, c₁, …, c_k) — a ratio
// metric's numerator x and denominator y per unit, then covariates — into
// moments of (ℓ, c₁, …, c_k) with the linearised value
//
//	ℓ = R + (x − R·y)/ȳ*,   R = Σn_a x̄_a / Σn_a ȳ_a,   ȳ* = Σn_a ȳ_a / Σn_a,
//
// pooled over all arms as CUPEDTheta linearises, so that
//
//	ℓ̄_a = R + (x̄_a − R·ȳ_a)/ȳ*,   s²_ℓ = (s²_x − 2R·s_xy + R²·s²_y)/ȳ*²,   s_ℓc = (s_xc − R·s_yc)/ȳ*.
//
// ℓ̄_a equals x̄_a/ȳ_a to first order, so RegressionAdjust on the result
// estimates the difference of the arms' ratios (with the delta method's
// variance). Errors: ErrLength for a dimension below 2 or unequal
// dimensions, a *CellError for invalid moments, ErrDegenerate when ȳ* is 0.
func LinearizeRatio(arms []ArmMoments) ([]ArmMoments, error) {
	if len(arms) == 0 || arms[0].Dim() < 2 {
		return nil, fmt.Errorf("linearize ratio: need (x, y, covariates…): %w", ErrLength)
	}
	p := arms[0].Dim()
	var n, sx, sy float64
	for i, a := range arms {
		if a.Dim() != p {
			return nil, fmt.Errorf("linearize ratio: arm %d has dimension %d, arm 0 %d: %w", i, a.Dim(), p, ErrLength)
		}
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("linearize ratio: %w", &CellError{Table: "arm", Row: i, Col: -1, Err: err})
		}
		n += a.N
		sx += a.N * a.Mean[0]
		sy += a.N * a.Mean[1]
	}
	if n == 0 || sy == 0 {
		return nil, fmt.Errorf("linearize ratio: pooled denominator mean is zero: %w", ErrDegenerate)
	}
	r, ybar := sx/sy, sy/n
	out := make([]ArmMoments, len(arms))
	q := p - 1
	// w maps (x, y, c…) to (ℓ, c…) up to ℓ's constant: row 0 is (1/ȳ*, −R/ȳ*, 0…).
	w := func(row, col int) float64 {
		switch {
		case row == 0 && col == 0:
			return 1 / ybar
		case row == 0 && col == 1:
			return -r / ybar
		case row > 0 && col == row+1:
			return 1
		}
		return 0
	}
	for i, a := range arms {
		m := ArmMoments{N: a.N, Mean: make([]float64, q), Cov: make([]float64, q*q)}
		m.Mean[0] = r + (a.Mean[0]-r*a.Mean[1])/ybar
		copy(m.Mean[1:], a.Mean[2:])
		for u := range q {
			for v := range q {
				var s float64
				for x := range p {
					for y := range p {
						if wx, wy := w(u, x), w(v, y); wx != 0 && wy != 0 {
							s += wx * a.at(x, y) * wy
						}
					}
				}
				m.Cov[u*q+v] = s
			}
		}
		if scale := (a.at(0, 0) + 2*math.Abs(r*a.at(1, 0)) + r*r*a.at(1, 1)) / (ybar * ybar); m.Cov[0] < 0 && m.Cov[0] >= -1e-12*scale {
			m.Cov[0] = 0 // rounding of an (almost) exact ratio
		}
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("linearize ratio: %w", &CellError{Table: "arm", Row: i, Col: -1, Err: err})
		}
		out[i] = m
	}
	return out, nil
}

package stats

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Bayesian engine.
//
// This is GrowthBook's default Bayesian engine (gbstats 0.8.0, read at
// github.com/growthbook/growthbook commit 8f1db4456915a8e7b7faf23d5632ca7219d2f469,
// packages/stats/gbstats/bayesian/tests.py EffectBayesianABTest and
// models/tests.py EffectMoments), written from its formulas: a normal
// likelihood for the effect estimate and a Gaussian prior on the effect,
// so the posterior is normal. For an effect estimate d with standard error
// s (from Compare: Welch's arm estimates, the delta method for ratios,
// CUPED when set) and a prior N(μ₀, σ₀²),
//
//	flat prior:    δ | data ~ N(d, s²)
//	proper prior:  δ | data ~ N(m, v),  1/v = 1/s² + 1/σ₀²,  m = v·(d/s² + μ₀/σ₀²)
//
// On the relative scale (gbstats' default, difference_type "relative") the
// effect is L = (m_t − m_c)/|m_c| with the delta-method variance
//
//	s_L² = v_t/m_c² + m_t²·v_c/m_c⁴                      (gbstats variance_of_ratios)
//
// — Compare's RelDiff and RelSE. Then, with δ ~ N(m, v) the posterior and
// g = δ the gain (g = −δ for a metric whose desired direction is
// Decrease, gbstats' inverse):
//
//	chance to win        P(g > 0) = Φ(±m/√v)
//	credible interval    m ± z_{1−α/2}·√v               (equal-tailed)
//	risk of control      E[max(g, 0)]  = √v·(z·Φ(z) + φ(z)),   z = ±m/√v
//	risk of treatment    E[max(−g, 0)] = √v·(−z·Φ(−z) + φ(z))
//
// The risks are the expected loss of each choice: keeping control forgoes
// the gain when the treatment is better, shipping loses it when it is
// worse. gbstats computes them as P(g>0)·E[g | g>0] with SciPy's truncated
// normal; the closed forms above are the normal partial expectation and
// equal those products exactly (testdata/bayes_reference.py reproduces
// gbstats' own route).
//
// Priors (GaussianPrior{mean, variance, proper} with prior_type "relative"
// or "absolute"): a prior stated on one scale is moved to the other by the
// control mean, mean·|m_c| and variance·m_c² (relative → absolute) or
// mean/|m_c| and variance/m_c² (absolute → relative). Three deliberate
// differences from gbstats 0.8.0, each where gbstats has no answer or a
// slip:
//
//   - gbstats divides by the unadjusted control mean under CUPED (and
//     computes a matching gradient); Verity's relative effect divides by
//     the arm estimate Compare reports (CUPED-adjusted when CUPED is on), as
//     every other relative number of Verity's does. Without CUPED the two
//     are identical.
//   - gbstats never rescales an absolute prior for a relative analysis (its
//     test reads `self.config == "absolute"`, which is never true); Verity
//     rescales it as described.
//   - gbstats returns the prior as the posterior when the data variance is
//     zero; Verity reports StatusZeroVariance.
//
// The log-normal relative model (RelativeLogNormal) is gbstats' earlier
// default for relative effects (GaussianBayesianABTest, gbstats before
// commit 1bfa8046 of 2024-05-13, read at 07561c76a8): the log of each
// arm's estimate is normal, ln m ~ N(ln m̂, v/m̂²) (delta method), so
//
//	λ = ln(m_t/m_c) ~ N(ln m̂_t − ln m̂_c, v_t/m̂_t² + v_c/m̂_c²),
//	expected exp(λ̂) − 1, interval exp(λ̂ ± z·σ_λ) − 1, chance to win P(λ > 0),
//
// valid only when both arms are positive with probability at least
// 1 − 10⁻⁴ (gbstats' epsilon): otherwise StatusLogInexact. Its risks are
// the closed-form log-normal partial expectations of the relative gain
// e^λ − 1 (gbstats reported absolute risks there), with flat prior only.
//
// Under differential privacy Bayes is post-processing of the released
// moments: the privacy-noise variances of the means (Arm.NoiseVarMean and
// the like) are part of s², as in Compare; the noise in the sample
// variances themselves is not modelled (the posterior treats s² as known,
// as gbstats does).

// EffectScale is the scale an effect, a prior or a threshold is stated on.
type EffectScale int

const (
	// ScaleRelative is the relative effect (m_t − m_c)/|m_c|, gbstats'
	// default prior_type.
	ScaleRelative EffectScale = iota
	// ScaleAbsolute is the absolute difference m_t − m_c.
	ScaleAbsolute
)

// String returns "relative" or "absolute".
func (s EffectScale) String() string {
	switch s {
	case ScaleRelative:
		return "relative"
	case ScaleAbsolute:
		return "absolute"
	}
	return fmt.Sprintf("EffectScale(%d)", int(s))
}

// RelativeModel selects how the Bayesian engine treats the relative effect.
type RelativeModel int

const (
	// RelativeDelta is a normal posterior on L = (m_t − m_c)/|m_c| with the
	// delta-method variance (gbstats ≥ 0.6's default, EffectBayesianABTest).
	RelativeDelta RelativeModel = iota
	// RelativeLogNormal is a normal posterior on ln(m_t/m_c) (gbstats'
	// earlier GaussianBayesianABTest); flat prior only.
	RelativeLogNormal
)

// Prior is a Gaussian prior on the effect (gbstats' GaussianPrior and
// prior_type). The zero value is the flat (improper) prior.
type Prior struct {
	// Proper selects the informative prior N(Mean, Variance); when false
	// the prior is flat and Mean and Variance are ignored (gbstats keeps
	// mean 0, variance 1 as placeholders). GrowthBook's UI suggests
	// Mean 0, Variance 0.3² on the relative scale.
	Proper   bool
	Mean     float64
	Variance float64
	// Scale is the scale Mean and Variance are stated on.
	Scale EffectScale
}

// Validate reports whether a proper prior has a finite mean and a positive
// finite variance, and a known scale.
func (p Prior) Validate() error {
	if p.Scale != ScaleRelative && p.Scale != ScaleAbsolute {
		return fmt.Errorf("%w: prior scale %v", ErrInvalidInput, p.Scale)
	}
	if p.Proper && !(finite(p.Mean) && p.Variance > 0 && finite(p.Variance)) {
		return fmt.Errorf("%w: prior mean %v, variance %v (want finite mean and variance > 0)", ErrInvalidInput, p.Mean, p.Variance)
	}
	return nil
}

// BayesOptions are the settings of Bayes. The zero value is gbstats'
// default: flat prior, 95% credible intervals, higher is better, the
// delta-method relative model, no CUPED.
type BayesOptions struct {
	// Alpha sets the credible level 1−Alpha; zero means DefaultAlpha.
	Alpha float64
	Prior Prior
	// Direction is the desired direction of the metric: Decrease is
	// gbstats' inverse (chance to win is P(δ < 0), the risks swap).
	Direction Direction
	// CUPED, when non-nil and both arms have covariates, adjusts the arms
	// as in Compare.
	CUPED         *CUPED
	RelativeModel RelativeModel
}

// Validate reports whether the options are usable.
func (o BayesOptions) Validate() error {
	a := o.Alpha
	if a == 0 {
		a = DefaultAlpha
	}
	if !(a > 0 && a < 1) {
		return fmt.Errorf("%w: alpha %v not in (0, 1)", ErrInvalidInput, o.Alpha)
	}
	if o.Direction != Increase && o.Direction != Decrease {
		return fmt.Errorf("%w: direction %v", ErrInvalidInput, o.Direction)
	}
	if o.RelativeModel != RelativeDelta && o.RelativeModel != RelativeLogNormal {
		return fmt.Errorf("%w: relative model %d", ErrInvalidInput, o.RelativeModel)
	}
	if o.RelativeModel == RelativeLogNormal && o.Prior.Proper {
		return fmt.Errorf("%w: the log-normal relative model takes a flat prior only", ErrInvalidInput)
	}
	if c := o.CUPED; c != nil && !(finite(c.Theta) && finite(c.CovariateMean)) {
		return fmt.Errorf("%w: CUPED theta %v, covariate mean %v", ErrInvalidInput, c.Theta, c.CovariateMean)
	}
	return o.Prior.Validate()
}

// Posterior is the posterior of one effect. Every field is finite.
type Posterior struct {
	// Mean and SD are the normal posterior's parameters: of the effect, or
	// of ln(m_t/m_c) under RelativeLogNormal.
	Mean, SD float64
	// Expected is the reported point estimate: Mean, or exp(Mean) − 1 (the
	// posterior median of the relative effect) under RelativeLogNormal.
	Expected float64
	// Low and High bound the equal-tailed 1−Alpha credible interval of the
	// effect (transformed by exp(·) − 1 under RelativeLogNormal).
	Low, High float64
	// ChanceToWin is the posterior probability that the effect is in the
	// desired direction.
	ChanceToWin float64
	// RiskControl is the expected loss of keeping control, E[max(g, 0)],
	// and RiskTreatment that of shipping the treatment, E[max(−g, 0)],
	// where g is the gain (the effect, negated when Decrease is desired),
	// on the posterior's scale.
	RiskControl, RiskTreatment float64
}

// Statuses of a BayesResult besides Compare's.
const (
	// StatusLogInexact: RelativeLogNormal was asked for, but an arm's
	// estimate is not positive with probability 1 − 10⁻⁴; the absolute
	// posterior is valid.
	StatusLogInexact = "log-normal approximation inexact"
	// StatusInvalidPrior: a proper prior stated on the other scale could
	// not be moved to this one (zero control mean); the other posterior is
	// valid.
	StatusInvalidPrior = "prior cannot be rescaled"
)

// logNormalEpsilon is gbstats' bound on P(arm ≤ 0) for the log-normal model.
const logNormalEpsilon = 1e-4

// BayesResult is the Bayesian comparison of treatment with control.
type BayesResult struct {
	Kind  Kind
	Alpha float64 // credible level is 1 − Alpha
	// Status is StatusOK when both posteriors are valid. StatusControlMeanZero,
	// StatusLogInexact and StatusInvalidPrior (for the relative prior scale)
	// leave Absolute valid and Relative zero; any other status of Compare
	// leaves both zero.
	Status    string
	Direction Direction
	Prior     Prior
	Model     RelativeModel

	ControlMean, TreatmentMean float64 // arm estimates, as in Comparison

	Absolute Posterior // of m_t − m_c
	Relative Posterior // of (m_t − m_c)/|m_c| (see RelativeModel)
	// RelativeStatus is StatusOK when Relative is valid, else why not
	// (StatusControlMeanZero, StatusLogInexact, StatusInvalidPrior, or
	// Compare's status).
	RelativeStatus string
	// AbsoluteStatus is StatusOK when Absolute is valid (it can fail alone
	// when a relative-scale prior cannot be moved to it).
	AbsoluteStatus string
}

// HasAbsolute reports whether Absolute is usable.
func (r BayesResult) HasAbsolute() bool { return r.AbsoluteStatus == StatusOK }

// HasRelative reports whether Relative is usable.
func (r BayesResult) HasRelative() bool { return r.RelativeStatus == StatusOK }

// Bayes computes the posteriors of the absolute and relative effect of
// treatment against control, with the arm estimates and variances of
// Compare (Welch, delta method for ratios, CUPED when opts.CUPED is set and
// both arms have covariates; privacy noise in the variances) and the
// formulas above. It never panics and never returns NaN: degenerate input
// gives a status.
func Bayes(control, treatment Arm, kind Kind, opts BayesOptions) BayesResult {
	o := opts
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	r := BayesResult{Kind: kind, Alpha: o.Alpha, Direction: o.Direction, Prior: o.Prior, Model: o.RelativeModel,
		AbsoluteStatus: StatusInvalidOptions, RelativeStatus: StatusInvalidOptions}
	if err := opts.Validate(); err != nil {
		r.Status = StatusInvalidOptions
		return r
	}
	c := Compare(control, treatment, kind, Options{Alpha: o.Alpha, CUPED: o.CUPED})
	if !c.Valid() {
		r.Status, r.AbsoluteStatus, r.RelativeStatus = c.Status, c.Status, c.Status
		return r
	}
	r.ControlMean, r.TreatmentMean = c.ControlMean, c.TreatmentMean
	mc := c.ControlMean

	// Absolute posterior.
	absPrior, ok := o.Prior, true
	if o.Prior.Proper && o.Prior.Scale == ScaleRelative {
		absPrior, ok = rescalePrior(o.Prior, mc, ScaleAbsolute)
	}
	if !ok {
		r.AbsoluteStatus = StatusInvalidPrior
	} else if p, err := EffectPosterior(c.Diff, c.SE, absPrior, o.Alpha, o.Direction); err != nil {
		r.AbsoluteStatus = StatusOverflow
	} else {
		r.Absolute, r.AbsoluteStatus = p, StatusOK
	}

	// Relative posterior.
	switch {
	case mc == 0:
		r.RelativeStatus = StatusControlMeanZero
	case o.RelativeModel == RelativeLogNormal:
		p, status := logNormalPosterior(c, o.Alpha, o.Direction)
		r.Relative, r.RelativeStatus = p, status
	default:
		relPrior := o.Prior
		if o.Prior.Proper && o.Prior.Scale == ScaleAbsolute {
			relPrior, _ = rescalePrior(o.Prior, mc, ScaleRelative)
		}
		if p, err := EffectPosterior(c.RelDiff, c.RelSE, relPrior, o.Alpha, o.Direction); err != nil {
			r.RelativeStatus = StatusOverflow
		} else {
			r.Relative, r.RelativeStatus = p, StatusOK
		}
	}
	r.Status = StatusOK
	switch {
	case r.AbsoluteStatus != StatusOK:
		r.Status = r.AbsoluteStatus
	case r.RelativeStatus != StatusOK:
		r.Status = r.RelativeStatus
	}
	return r
}

// rescalePrior moves a proper prior to the scale to, through the control
// mean: relative → absolute multiplies the mean by |m_c| and the variance
// by m_c²; absolute → relative divides. ok is false when m_c is zero or
// the result is not finite and positive.
func rescalePrior(p Prior, mc float64, to EffectScale) (Prior, bool) {
	if p.Scale == to || !p.Proper {
		return p, true
	}
	if mc == 0 {
		return Prior{}, false
	}
	a := math.Abs(mc)
	q := Prior{Proper: true, Scale: to}
	if to == ScaleAbsolute {
		q.Mean, q.Variance = p.Mean*a, p.Variance*a*a
	} else {
		q.Mean, q.Variance = p.Mean/a, p.Variance/(a*a)
	}
	if !(finite(q.Mean) && q.Variance > 0 && finite(q.Variance)) {
		return Prior{}, false
	}
	return q, true
}

// EffectPosterior returns the normal posterior of an effect whose estimate
// is est with standard error se > 0, under prior (already on the effect's
// scale; its Scale field is not consulted), with a 1−alpha credible
// interval and dir the desired direction (see the formulas at the top of
// this file). It returns an error wrapping ErrInvalidInput for non-finite
// input, se ≤ 0, alpha outside (0, 1) or an invalid proper prior.
func EffectPosterior(est, se float64, prior Prior, alpha float64, dir Direction) (Posterior, error) {
	if !(finite(est) && finite(se) && se > 0) {
		return Posterior{}, fmt.Errorf("effect posterior: estimate %v, se %v: %w", est, se, ErrInvalidInput)
	}
	if !(alpha > 0 && alpha < 1) || (dir != Increase && dir != Decrease) {
		return Posterior{}, fmt.Errorf("effect posterior: alpha %v, direction %v: %w", alpha, dir, ErrInvalidInput)
	}
	mean, sd := est, se
	if prior.Proper {
		if !(finite(prior.Mean) && prior.Variance > 0 && finite(prior.Variance)) {
			return Posterior{}, fmt.Errorf("effect posterior: prior %+v: %w", prior, ErrInvalidInput)
		}
		// Precision-weighted, with se scaled out of the data precision to
		// keep tiny or huge standard errors in range:
		// v = s²σ₀²/(s² + σ₀²), m = (d·σ₀² + μ₀·s²)/(s² + σ₀²).
		s2, p2 := se*se, prior.Variance
		w := s2 / (s2 + p2) // weight of the prior mean
		if s2 == 0 || math.IsInf(s2, 1) {
			return Posterior{}, fmt.Errorf("effect posterior: se %v out of range: %w", se, ErrInvalidInput)
		}
		mean = est + w*(prior.Mean-est)
		sd = math.Sqrt(p2 * w) // v = σ₀²·s²/(s²+σ₀²)
	}
	p := normalPosterior(mean, sd, alpha, dir)
	for _, v := range [...]float64{p.Mean, p.SD, p.Low, p.High, p.ChanceToWin, p.RiskControl, p.RiskTreatment} {
		if !finite(v) {
			return Posterior{}, fmt.Errorf("effect posterior: overflow: %w", ErrInvalidInput)
		}
	}
	if !(p.SD > 0) {
		return Posterior{}, fmt.Errorf("effect posterior: posterior variance underflow: %w", ErrInvalidInput)
	}
	return p, nil
}

// normalPosterior fills a Posterior from N(mean, sd²).
func normalPosterior(mean, sd, alpha float64, dir Direction) Posterior {
	z := normalQuantileTwoSided(alpha)
	p := Posterior{Mean: mean, SD: sd, Expected: mean, Low: mean - z*sd, High: mean + z*sd}
	gain := mean
	if dir == Decrease {
		gain = -mean
	}
	p.ChanceToWin = normalCDF(gain / sd)
	p.RiskControl, p.RiskTreatment = ExpectedLoss(gain, sd)
	return p
}

// ExpectedLoss returns, for a gain g ~ N(mu, sigma²) with sigma > 0, the
// expected loss of keeping control, E[max(g, 0)], and of shipping the
// treatment, E[max(−g, 0)], in closed form (the normal partial
// expectation, z = mu/sigma):
//
//	E[max(g, 0)]  = sigma·(z·Φ(z) + φ(z)),
//	E[max(−g, 0)] = sigma·(−z·Φ(−z) + φ(z)).
//
// Each is computed from the side where it does not cancel: the larger of
// the two through the identity E[max(g,0)] − E[max(−g,0)] = mu. For
// |z| ≳ 38 the smaller one underflows to 0 (gbstats returns the limit
// max(±mu, 0) beyond |z| = 37). Invalid input gives (0, 0).
func ExpectedLoss(mu, sigma float64) (control, treatment float64) {
	if !(finite(mu) && finite(sigma) && sigma > 0) {
		return 0, 0
	}
	z := mu / sigma
	// The small side, with z·Φ(z) + φ(z) evaluated for z ≤ 0 where both
	// terms are small and of opposite sign.
	small := sigma * partialExpectation(-math.Abs(z))
	if z >= 0 {
		return mu + small, small
	}
	return small, -mu + small
}

// partialExpectation returns E[max(Z + z, 0)] = z·Φ(z) + φ(z) for the
// standard normal Z, for z ≤ 0. Beyond z = −8 it uses the continued
// fraction of the Mills ratio, since z·Φ(z) + φ(z) = φ(z)·(1 − |z|·R(|z|))
// with R(x) = Φ(−x)/φ(x) cancels when evaluated directly.
func partialExpectation(z float64) float64 {
	if z > -8 {
		return z*normalCDF(z) + normalPDF(z)
	}
	x := -z
	// 1 − x·R(x) = R(x)/x·… : with R(x) = 1/(x + 1/(x + 2/(x + 3/(x + …)))),
	// 1 − x·R(x) = (R⁻¹ − x)/R⁻¹ = t/(x + t), t = 1/(x + 2/(x + 3/…)).
	t := 0.0
	for k := 60; k >= 2; k-- {
		t = float64(k-1) / (x + t)
	}
	// Now t = 1/(x + 2/(x + …)) evaluated as (k−1)/(x + …) with k = 2.
	return normalPDF(z) * t / (x + t)
}

// normalCDF returns Φ(x), accurate in both tails.
func normalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// normalPDF returns φ(x).
func normalPDF(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }

// normalQuantile returns Φ⁻¹(p) for 0 < p < 1.
func normalQuantile(p float64) float64 { return distuv.UnitNormal.Quantile(p) }

// logNormalPosterior is the RelativeLogNormal model (see the top of this
// file): λ = ln(m_t/m_c) ~ N(ln m_t − ln m_c, v_t/m_t² + v_c/m_c²).
func logNormalPosterior(c Comparison, alpha float64, dir Direction) (Posterior, string) {
	mc, mt, vc, vt := c.ControlMean, c.TreatmentMean, c.ControlVar, c.TreatmentVar
	if !(mc > 0 && mt > 0) ||
		normalCDF(-mc/math.Sqrt(vc)) > logNormalEpsilon || normalCDF(-mt/math.Sqrt(vt)) > logNormalEpsilon {
		return Posterior{}, StatusLogInexact
	}
	mean := math.Log(mt) - math.Log(mc)
	sd := math.Hypot(math.Sqrt(vt)/mt, math.Sqrt(vc)/mc)
	if !(sd > 0) || !finite(sd) {
		return Posterior{}, StatusOverflow
	}
	z := normalQuantileTwoSided(alpha)
	p := Posterior{Mean: mean, SD: sd, Expected: math.Expm1(mean),
		Low: math.Expm1(mean - z*sd), High: math.Expm1(mean + z*sd)}
	gain := mean
	if dir == Decrease {
		gain = -mean
	}
	p.ChanceToWin = normalCDF(gain / sd)
	// Relative gain G = e^λ − 1 (or 1 − e^λ for Decrease). With
	// a = mean/sd, E[(e^λ − 1)⁺] = e^{mean+sd²/2}·Φ(a + sd) − Φ(a) and
	// E[(1 − e^λ)⁺] = Φ(−a) − e^{mean+sd²/2}·Φ(−a − sd).
	a := mean / sd
	m1 := math.Exp(mean + sd*sd/2)
	up := m1*normalCDF(a+sd) - normalCDF(a)
	down := normalCDF(-a) - m1*normalCDF(-a-sd)
	up, down = math.Max(up, 0), math.Max(down, 0)
	if dir == Increase {
		p.RiskControl, p.RiskTreatment = up, down
	} else {
		p.RiskControl, p.RiskTreatment = down, up
	}
	for _, v := range [...]float64{p.Expected, p.Low, p.High, p.RiskControl, p.RiskTreatment} {
		if !finite(v) {
			return Posterior{}, StatusOverflow
		}
	}
	return p, StatusOK
}

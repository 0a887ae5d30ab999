package stats

import (
	"fmt"
	"math"
)

// Arm holds one arm's moments for one metric in one cohort. The pipeline
// computes them exactly from integer sufficient statistics; variances and
// covariances are sample (co)variances with n-1 denominators. Under
// differential privacy (MomentNoise not zero) they may be the raw noisy
// moments, a variance possibly negative: Compare forms the per-unit
// variance of the compared value from them and truncates it at zero once
// (see noisyPivot), the unbiased route when each moment's noise is
// zero-mean (truncating or projecting each moment first biases the
// variance upward).
type Arm struct {
	N       float64 // units in the arm (an integer count; may be noisy under differential privacy)
	Mean    float64 // per-unit mean of the metric value x (numerator x for ratio metrics)
	Var     float64 // sample variance of x (n-1 denominator)
	DenMean float64 // ratio metrics only: per-unit mean of the denominator y
	DenVar  float64 // ratio metrics only: sample variance of y
	CovXY   float64 // ratio metrics only: sample covariance of x and y

	// CUPED (when HasCovariate): the pre-exposure covariate c of the same metric.
	HasCovariate bool
	CovMean      float64 // mean of c
	CovVar       float64 // sample variance of c
	CovXC        float64 // sample covariance of x and c
	CovYC        float64 // sample covariance of y and c, ratio metrics only

	// Extra variance of the mean estimators from differential-privacy noise,
	// added to the sampling variance (0 when privacy is off).
	NoiseVarMean    float64 // added to Var(x̄) (for ratios, without the count's noise, which cancels in Σx/Σy)
	NoiseVarDenMean float64 // added to Var(ȳ), ratio metrics only (likewise without the count's noise)
	NoiseVarCovMean float64 // added to Var(c̄), CUPED only

	// MomentNoise is the variance of the privacy noise in the sample
	// (co)variances above (all zero without privacy). A variance computed
	// from a noisy Σx² is itself noisy; Compare counts that uncertainty in
	// the degrees of freedom (see Compare).
	MomentNoise MomentNoise
}

// MomentNoise holds, for each sample (co)variance of an Arm, the variance
// of the privacy noise it carries. With independent noise e on the sums
// of n units in fixed-point scale S, to first order
//
//	Var_noise(s²_x) = (σ²_Σx² + 4x̄²·S²·σ²_Σx)/(S⁴(n-1)²),   Var_noise(s_xy) = σ²_Σxy/(S⁴(n-1)²), …
type MomentNoise struct {
	Var, DenVar, CovVar float64 // of Var, DenVar, CovVar
	CovXY, CovXC, CovYC float64 // of CovXY, CovXC, CovYC
}

// Defaults used when the corresponding option is zero.
const (
	DefaultAlpha     = 0.05
	DefaultPower     = 0.8
	DefaultMaxRelMDE = 0.05
)

// Options are the statistical settings of a comparison. The zero value is
// a fixed-horizon Welch comparison at alpha 0.05 without CUPED.
type Options struct {
	// Alpha is the two-sided significance level; intervals have level
	// 1-Alpha. Zero means DefaultAlpha.
	Alpha float64
	// Sequential, when non-nil, replaces the fixed-horizon interval and
	// p-value with an always-valid confidence sequence (see Sequential).
	Sequential *Sequential
	// CUPED, when non-nil and both arms have covariates, adjusts the arms
	// with the caller's θ (see NewCUPED).
	CUPED *CUPED
	// Power is the power at which Compare reports the minimum detectable
	// effect. Zero means DefaultPower (0.8).
	Power float64
	// MaxRelMDE is the largest relative MDE at which a comparison is still
	// adequately powered (see Underpowered). Zero means DefaultMaxRelMDE.
	MaxRelMDE float64
}

// Validate reports whether the options are usable: Alpha and Power in
// [0, 1) (zero meaning the default), Power above Alpha, MaxRelMDE ≥ 0,
// NStar > 0 and a finite θ and covariate mean.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case !(o.Alpha > 0 && o.Alpha < 1):
		return fmt.Errorf("%w: alpha %v not in (0, 1)", ErrInvalidInput, o.Alpha)
	case !(o.Power > o.Alpha && o.Power < 1):
		return fmt.Errorf("%w: power %v not in (alpha, 1)", ErrInvalidInput, o.Power)
	case !(o.MaxRelMDE > 0) || math.IsInf(o.MaxRelMDE, 0):
		return fmt.Errorf("%w: max relative MDE %v", ErrInvalidInput, o.MaxRelMDE)
	}
	if o.Sequential != nil {
		if err := o.Sequential.Validate(); err != nil {
			return err
		}
	}
	if c := o.CUPED; c != nil && !(finite(c.Theta) && finite(c.CovariateMean)) {
		return fmt.Errorf("%w: CUPED theta %v, covariate mean %v", ErrInvalidInput, c.Theta, c.CovariateMean)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.Power == 0 {
		o.Power = DefaultPower
	}
	if o.MaxRelMDE == 0 {
		o.MaxRelMDE = DefaultMaxRelMDE
	}
	return o
}

// Sequential selects always-valid inference: the asymptotic normal-mixture
// confidence sequence of Waudby-Smith et al. (2021, "Time-uniform central
// limit theory and asymptotic confidence sequences") built on Robbins'
// normal mixture (Howard et al. 2021). For a difference with estimated
// variance V = Var(Δ̂) after t = n_c + n_t units,
//
//	Δ̂ ± √V · h,   h = √( 2(tρ²+1)/(tρ²) · ln(√(tρ²+1)/α) ),
//
// which covers Δ at every t simultaneously with probability ≥ 1-α
// (asymptotically). ρ is chosen to make the sequence tightest at t = N*:
//
//	ρ² = (-2 ln α + ln(-2 ln α + 1)) / N*.
//
// The always-valid p-value is the smallest α at which the sequence (with ρ
// fixed by Options.Alpha) excludes 0:
//
//	p = min(1, √(tρ²+1) · exp(-(tρ²/(tρ²+1)) · z²/2)),  z = Δ̂/√V.
//
// The relative lift uses the same h in place of z_{1-α/2}.
type Sequential struct {
	// NStar is the expected number of units in the two compared arms at
	// the end of the experiment, where the interval should be tightest.
	NStar float64
}

// Validate reports whether NStar is positive and finite.
func (s Sequential) Validate() error {
	if !(s.NStar > 0) || math.IsInf(s.NStar, 0) {
		return fmt.Errorf("%w: sequential N* %v must be positive", ErrInvalidInput, s.NStar)
	}
	return nil
}

// Rho returns the mixture parameter ρ = √((-2 ln α + ln(-2 ln α + 1))/N*).
func (s Sequential) Rho(alpha float64) float64 {
	l := -2 * math.Log(alpha)
	return math.Sqrt((l + math.Log(l+1)) / s.NStar)
}

// halfWidthFactor returns h for t units, and the always-valid p-value for
// the standardised statistic z.
func (s Sequential) halfWidthFactor(t, alpha, z float64) (h, p float64) {
	rho := s.Rho(alpha)
	tr := t * rho * rho
	h = math.Sqrt(2 * (tr + 1) / tr * math.Log(math.Sqrt(tr+1)/alpha))
	p = math.Min(1, math.Sqrt(tr+1)*math.Exp(-tr/(tr+1)*z*z/2))
	return h, p
}

// Statuses of a Comparison. StatusOK, StatusControlMeanZero and
// StatusRelativeUnbounded carry a valid absolute comparison; only StatusOK
// carries a relative interval.
const (
	StatusOK = "ok"
	// StatusControlMeanZero: the relative lift is undefined; the absolute
	// difference, its interval and p-value are valid, the relative fields
	// are zero.
	StatusControlMeanZero = "control mean is zero"
	// StatusMissingArm: an arm has N = 0.
	StatusMissingArm = "missing arm"
	// StatusTooFew: an arm has fewer than 2 units, so no variance.
	StatusTooFew = "n<2"
	// StatusZeroVariance: neither arm varies (for example all-zero arms).
	StatusZeroVariance = "zero variance"
	// StatusZeroDenominator: a ratio metric's denominator mean is zero in an arm.
	StatusZeroDenominator = "denominator mean is zero"
	// StatusNegativeVariance: a variance (or the delta-method or CUPED
	// variance built from the moments) is negative, as noisy moments can be.
	StatusNegativeVariance = "negative variance"
	// StatusInvalidInput: a NaN or infinite input, negative N, or an unknown kind.
	StatusInvalidInput = "invalid input"
	// StatusInvalidOptions: Options.Validate failed.
	StatusInvalidOptions = "invalid options"
	// StatusOverflow: a result overflowed float64 (values near 1e150 and beyond).
	StatusOverflow = "overflow"
	// StatusRelativeUnbounded: the absolute comparison is valid, but the
	// control mean is not distinguishable from zero at the interval's level,
	// so Fieller's set for the relative effect is unbounded (see fieller):
	// RelDiff and RelSE are reported, RelLow and RelHigh are zero.
	StatusRelativeUnbounded = "relative interval unbounded"
)

// Comparison is treatment versus control for one metric. Every float field
// is finite, so it encodes as JSON. When Status is neither StatusOK nor
// StatusControlMeanZero, the inferential fields (SE, DF, Statistic,
// intervals, relative fields, MDE) are zero and PValue is 1; the means and
// Diff are filled in when they could be computed, and zero otherwise.
type Comparison struct {
	Kind   Kind
	Status string
	Alpha  float64 // two-sided level of the intervals

	ControlN, TreatmentN       float64
	ControlMean, TreatmentMean float64 // arm estimates (x̄, or x̄/ȳ for ratios), CUPED-adjusted when CUPEDApplied
	ControlVar, TreatmentVar   float64 // variance of each arm estimate, including privacy noise

	Diff      float64 // TreatmentMean - ControlMean
	SE        float64 // √(ControlVar + TreatmentVar)
	DF        float64 // Welch–Satterthwaite degrees of freedom (reported, but unused, when Sequential)
	Statistic float64 // Diff/SE (Welch t; the z of the confidence sequence when Sequential)
	DiffLow   float64
	DiffHigh  float64
	Critical  float64 // the intervals' critical value: DiffHigh = Diff + Critical·SE
	PValue    float64 // two-sided; always-valid when Sequential

	RelDiff float64 // (TreatmentMean - ControlMean)/|ControlMean|: TreatmentMean/ControlMean - 1 for a positive control mean
	RelSE   float64 // delta-method standard error of RelDiff (reported; the interval is Fieller's)
	RelLow  float64 // Fieller interval (see fieller), not symmetric about RelDiff
	RelHigh float64

	CUPEDApplied bool
	CUPEDTheta   float64 // θ used (0 when not applied)
	Sequential   bool    // intervals and p-value are always-valid

	MDE          float64 // minimum detectable absolute effect at Options.Power (fixed horizon)
	RelMDE       float64 // MDE/|ControlMean|
	Underpowered bool    // see Underpowered; true for every status but StatusOK
}

// Valid reports whether the absolute comparison (Diff, its interval and
// PValue) is usable.
func (c Comparison) Valid() bool {
	return c.Status == StatusOK || c.Status == StatusControlMeanZero || c.Status == StatusRelativeUnbounded
}

// HasRelative reports whether RelDiff and RelSE are usable (the relative
// interval is usable only when Status is StatusOK).
func (c Comparison) HasRelative() bool {
	return c.Status == StatusOK || c.Status == StatusRelativeUnbounded
}

// armEstimate is one arm's estimator and its variance.
type armEstimate struct {
	n        float64
	mean     float64 // x̄, x̄/ȳ, CUPED-adjusted when requested
	sampVar  float64 // sampling variance of mean (per-unit variance / n)
	noiseVar float64 // privacy-noise variance of mean
	// sampVarNoise is the variance that privacy noise in the moments adds
	// to the estimate of sampVar: Var_noise(s²)/n².
	sampVarNoise float64
}

// estimateArm computes one arm's estimator. For kind Mean and Proportion
// the per-unit variance is s² = Var; for Ratio it is the delta-method
// (linearised) variance
//
//	s² = (Var - 2R·CovXY + R²·DenVar)/ȳ²,  R = x̄/ȳ.
//
// With CUPED (θ, pooled covariate mean c̄*) the estimate and variance become
//
//	m - θ(c̄ - c̄*),  s² - 2θ·Cov(ℓ, c) + θ²·CovVar,
//
// where Cov(ℓ, c) = CovXC for means and (CovXC - R·CovYC)/ȳ for ratios.
// Noise variance is NoiseVarMean (+R²·NoiseVarDenMean)/ȳ² for ratios,
// plus θ²·NoiseVarCovMean under CUPED.
func estimateArm(a Arm, kind Kind, cuped *CUPED) (armEstimate, string) {
	if a.N == 0 {
		return armEstimate{}, StatusMissingArm
	}
	vals := [...]float64{a.N, a.Mean, a.Var, a.NoiseVarMean}
	for _, v := range vals {
		if !finite(v) {
			return armEstimate{}, StatusInvalidInput
		}
	}
	if kind == Ratio && !(finite(a.DenMean) && finite(a.DenVar) && finite(a.CovXY) && finite(a.NoiseVarDenMean)) {
		return armEstimate{}, StatusInvalidInput
	}
	if cuped != nil && !(finite(a.CovMean) && finite(a.CovVar) && finite(a.CovXC) && finite(a.NoiseVarCovMean) &&
		(kind != Ratio || finite(a.CovYC))) {
		return armEstimate{}, StatusInvalidInput
	}
	if a.N < 0 {
		return armEstimate{}, StatusInvalidInput
	}
	if kind == Ratio && a.DenMean == 0 {
		return armEstimate{n: a.N}, StatusZeroDenominator
	}

	// Point estimate, reported even when the variance is unusable.
	e := armEstimate{n: a.N, mean: a.Mean}
	var r float64
	if kind == Ratio {
		r = a.Mean / a.DenMean
		e.mean = r
	}
	if cuped != nil {
		e.mean -= cuped.Theta * (a.CovMean - cuped.CovariateMean)
	}
	if a.N < 2 {
		return armEstimate{n: a.N, mean: e.mean}, StatusTooFew
	}
	// Noisy moments (privacy) may have negative variances: the estimate
	// of the per-unit variance below is the linear combination of the
	// unprojected moments, truncated at zero once (see noisyPivot).
	noisy := a.MomentNoise != (MomentNoise{})
	if a.NoiseVarMean < 0 || (kind == Ratio && a.NoiseVarDenMean < 0) || (cuped != nil && a.NoiseVarCovMean < 0) ||
		(!noisy && (a.Var < 0 || (kind == Ratio && a.DenVar < 0) || (cuped != nil && a.CovVar < 0))) {
		return armEstimate{n: a.N, mean: e.mean}, StatusNegativeVariance
	}

	s2, scale := a.Var, a.Var // per-unit variance and the size of its terms
	covLC := a.CovXC          // Cov(ℓ, c)
	e.noiseVar = a.NoiseVarMean
	if kind == Ratio {
		y2 := a.DenMean * a.DenMean
		s2 = (a.Var - 2*r*a.CovXY + r*r*a.DenVar) / y2
		scale = (a.Var + 2*math.Abs(r*a.CovXY) + r*r*a.DenVar) / y2
		covLC = (a.CovXC - r*a.CovYC) / a.DenMean
		e.noiseVar = (a.NoiseVarMean + r*r*a.NoiseVarDenMean) / y2
	}
	if cuped != nil {
		th := cuped.Theta
		s2 += -2*th*covLC + th*th*a.CovVar
		scale += 2*math.Abs(th*covLC) + th*th*a.CovVar
		e.noiseVar += th * th * a.NoiseVarCovMean
	}
	if s2 < 0 {
		// Exactly collinear data leaves rounding noise around zero; anything
		// larger is inconsistent (noisy) moments. Noisy moments (privacy)
		// are truncated at zero, as the noisy-variance pivot models (see
		// noisyPivot); without moment noise it is an error.
		if s2 < -1e-12*math.Abs(scale) && !noisy {
			return armEstimate{n: a.N, mean: e.mean}, StatusNegativeVariance
		}
		s2 = 0
	}
	e.sampVar = s2 / a.N
	e.sampVarNoise = momentNoiseVar(a, kind, r, cuped) / (a.N * a.N)
	return e, StatusOK
}

// momentNoiseVar returns the privacy-noise variance of the per-unit
// variance s² = wᵀΣw of the linearised (and CUPED-adjusted) value
// w_x·x + w_y·y + w_c·c, to first order in the noise of each (co)variance
// and treating the noise of different moments as independent:
//
//	Var_noise(s²) = Σ_i w_i⁴·Var_noise(Σ_ii) + Σ_{i<j} 4w_i²w_j²·Var_noise(Σ_ij),
//
// with w = (1, 0, -θ) for means and proportions and (1/ȳ, -R/ȳ, -θ) for
// ratios (w_c = 0 without CUPED).
func momentNoiseVar(a Arm, kind Kind, r float64, cuped *CUPED) float64 {
	mn := a.MomentNoise
	wx, wy, wc := 1.0, 0.0, 0.0
	if kind == Ratio {
		wx, wy = 1/a.DenMean, -r/a.DenMean
	}
	if cuped != nil {
		wc = -cuped.Theta
	}
	sq := func(v float64) float64 { return v * v }
	v := sq(sq(wx))*mn.Var + sq(sq(wy))*mn.DenVar + sq(sq(wc))*mn.CovVar +
		4*sq(wx*wy)*mn.CovXY + 4*sq(wx*wc)*mn.CovXC + 4*sq(wy*wc)*mn.CovYC
	if !(v > 0) || !finite(v) {
		return 0
	}
	return v
}

// Compare compares treatment with control for one metric.
//
// Absolute effect. With arm estimates m_c, m_t and their variances
// v = s²/n + noise (see the kinds and CUPED), the difference Δ = m_t - m_c has
// standard error SE = √(v_c + v_t) and Welch–Satterthwaite degrees of freedom
//
//	ν = (v_c + v_t)² / (s_c⁴/(n_c²(n_c-1)) + s_t⁴/(n_t²(n_t-1))),
//
// where only the sampling parts s²/n enter the denominator (privacy noise has
// known variance, hence infinite degrees of freedom). The interval is
// Δ ± t_{ν,1-α/2}·SE and the p-value 2·P(T_ν ≥ |Δ|/SE); with identical
// inputs these are SciPy's ttest_ind_from_stats(equal_var=False).
//
// Under differential privacy the per-unit variance s² is itself computed
// from noisy sums (Arm.MomentNoise), and truncated at zero by the
// projection of the noisy moments. The critical value and p-value then
// come from the reference distribution of the studentised difference
// under the fitted noise model — a parametric bootstrap computed by
// quadrature (see noisyPivot) — instead of Student's t; ν above (the
// sampling part's Welch–Satterthwaite degrees of freedom, privacy noise
// counting as known) is still reported and enters that distribution.
// Counting the noise in s² in a Satterthwaite ν instead (Satterthwaite
// 1946) made private intervals over-cover (see noisyPivot).
//
// Relative effect. L = (m_t - m_c)/|m_c| (m_t/m_c - 1 for a positive
// control mean, and of the absolute effect's sign for any control mean),
// with the delta-method standard error
//
//	SE_L = √(v_t/m_c² + m_t²·v_c/m_c⁴)
//
// reported, and Fieller's interval at the absolute interval's critical
// value (see fieller). It is not symmetric about L. When the control mean
// is not distinguishable from zero the interval is unbounded: Status is
// StatusRelativeUnbounded and only the absolute comparison is valid.
//
// With opts.Sequential both intervals and the p-value are replaced by the
// always-valid ones (see Sequential). The MDE fields are those of MDEFromSE
// with the comparison's SE (see PowerFor).
//
// Compare never panics and never returns NaN: degenerate input yields a
// status (see the Status constants) with PValue 1.
func Compare(control, treatment Arm, kind Kind, opts Options) Comparison {
	o := opts.withDefaults()
	c := Comparison{Kind: kind, Alpha: o.Alpha, ControlN: control.N, TreatmentN: treatment.N, PValue: 1, Underpowered: true}
	if !finite(c.ControlN) {
		c.ControlN = 0
	}
	if !finite(c.TreatmentN) {
		c.TreatmentN = 0
	}
	if !kind.valid() {
		c.Status = StatusInvalidInput
		return c
	}
	if err := opts.Validate(); err != nil {
		c.Status = StatusInvalidOptions
		return c
	}
	var cuped *CUPED
	if o.CUPED != nil && control.HasCovariate && treatment.HasCovariate {
		cuped = o.CUPED
	}
	ec, sc := estimateArm(control, kind, cuped)
	et, st := estimateArm(treatment, kind, cuped)
	if sc != StatusOK || st != StatusOK {
		c.Status = worstStatus(sc, st)
		// The point estimates are still reported when both arms have one.
		if hasMean(sc) && hasMean(st) {
			c.ControlMean, c.TreatmentMean, c.Diff = ec.mean, et.mean, et.mean-ec.mean
		}
		return c.finiteOr(StatusOverflow)
	}
	c.ControlMean, c.TreatmentMean = ec.mean, et.mean
	c.Diff = et.mean - ec.mean
	if cuped != nil {
		c.CUPEDApplied, c.CUPEDTheta = true, cuped.Theta
	}
	if ec.sampVar == 0 && et.sampVar == 0 && ec.noiseVar == 0 && et.noiseVar == 0 {
		c.Status = StatusZeroVariance
		return c.finiteOr(StatusOverflow)
	}
	c.ControlVar = ec.sampVar + ec.noiseVar
	c.TreatmentVar = et.sampVar + et.noiseVar
	v := c.ControlVar + c.TreatmentVar
	c.SE = math.Sqrt(v)
	// Scaled to avoid overflow: ν = 1/Σ (S_i/v)²/(n_i-1) (see Compare).
	// When only the (known) noise variance remains, ν is infinite: the
	// interval is normal, represented by ν = NoiseOnlyDF.
	rc, rt := ec.sampVar/v, et.sampVar/v
	if den := rc*rc/(ec.n-1) + rt*rt/(et.n-1); den > 0 {
		c.DF = math.Min(1/den, NoiseOnlyDF)
	} else {
		c.DF = NoiseOnlyDF
	}
	c.Statistic = c.Diff / c.SE
	if !(finite(c.SE) && finite(c.DF) && finite(c.Statistic) && finite(c.Diff)) || c.SE == 0 {
		return c.degenerate(StatusOverflow).finiteOr(StatusOverflow)
	}

	var crit float64
	if o.Sequential != nil {
		c.Sequential = true
		crit, c.PValue = o.Sequential.halfWidthFactor(ec.n+et.n, o.Alpha, c.Statistic)
	} else if ec.sampVarNoise > 0 || et.sampVarNoise > 0 {
		// Noisy variance estimate: the pivot's reference distribution
		// (see noisyPivot).
		crit, c.PValue = noisyCritical(o.Alpha, c.DF, ec.noiseVar+et.noiseVar, ec.sampVar+et.sampVar,
			math.Sqrt(ec.sampVarNoise+et.sampVarNoise), c.Statistic)
		if math.IsInf(crit, 1) {
			return c.degenerate(StatusOverflow).finiteOr(StatusOverflow)
		}
	} else {
		crit = tQuantileTwoSided(o.Alpha, c.DF)
		c.PValue = tTwoSidedP(c.Statistic, c.DF)
	}
	c.DiffLow, c.DiffHigh = c.Diff-crit*c.SE, c.Diff+crit*c.SE
	c.Critical = crit

	mde, err := MDEFromSE(c.SE, o.Alpha, o.Power)
	if err == nil {
		c.MDE = mde
	}
	c.Status = StatusOK
	if c.ControlMean == 0 {
		c.Status = StatusControlMeanZero
	} else {
		r := c.TreatmentMean / c.ControlMean
		c.RelDiff = c.Diff / math.Abs(c.ControlMean)
		c.RelSE = math.Sqrt(c.TreatmentVar+r*r*c.ControlVar) / math.Abs(c.ControlMean)
		if lo, hi, ok := fieller(c.ControlMean, c.TreatmentMean, c.ControlVar, c.TreatmentVar, crit); ok {
			c.RelLow, c.RelHigh = lo, hi
		} else {
			c.Status = StatusRelativeUnbounded
		}
		c.RelMDE = c.MDE / math.Abs(c.ControlMean)
		c.Underpowered = Underpowered(c.RelMDE, o.MaxRelMDE)
	}
	return c.finiteOr(StatusOverflow)
}

// NoiseOnlyDF stands for infinite degrees of freedom (a normal interval)
// when a comparison's variance is all known privacy noise; it also caps ν.
const NoiseOnlyDF = 1e12

// finiteOr returns c, or c degraded to status when any field is not finite.
func (c Comparison) finiteOr(status string) Comparison {
	for _, v := range [...]float64{c.ControlMean, c.TreatmentMean, c.ControlVar, c.TreatmentVar, c.Diff,
		c.SE, c.DF, c.Statistic, c.DiffLow, c.DiffHigh, c.Critical, c.PValue, c.RelDiff, c.RelSE, c.RelLow, c.RelHigh,
		c.MDE, c.RelMDE} {
		if !finite(v) {
			c = c.degenerate(status)
			c.ControlMean, c.TreatmentMean, c.Diff = 0, 0, 0
			return c
		}
	}
	return c
}

// hasMean reports whether an arm with this status has a point estimate.
func hasMean(status string) bool {
	return status == StatusOK || status == StatusTooFew || status == StatusNegativeVariance
}

// degenerate clears the inferential fields and sets status.
func (c Comparison) degenerate(status string) Comparison {
	c.Status = status
	c.ControlVar, c.TreatmentVar = 0, 0
	c.SE, c.DF, c.Statistic, c.DiffLow, c.DiffHigh, c.Critical = 0, 0, 0, 0, 0, 0
	c.PValue = 1
	c.RelDiff, c.RelSE, c.RelLow, c.RelHigh = 0, 0, 0, 0
	c.MDE, c.RelMDE, c.Underpowered = 0, 0, true
	return c
}

// statusRank orders statuses so that a comparison reports the most basic
// problem when both arms have one.
func statusRank(s string) int {
	switch s {
	case StatusInvalidInput:
		return 0
	case StatusMissingArm:
		return 1
	case StatusZeroDenominator:
		return 2
	case StatusTooFew:
		return 3
	case StatusNegativeVariance:
		return 4
	}
	return 100
}

func worstStatus(a, b string) string {
	if statusRank(b) < statusRank(a) {
		return b
	}
	return a
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

package stats

import (
	"fmt"
	"math"
)

// Planning: sample size and duration.
//
// Two arms with per-unit variances σ_c², σ_t² (σ_t² = σ_c² unless given),
// a share w of the units in treatment and CUPED with correlation ρ between
// the metric and its covariate (which multiplies each variance by 1 − ρ²,
// Deng et al. 2013). After t units in both arms together the difference
// of the arm means has variance
//
//	Var(Δ̂) = K/t,   K = (1 − ρ²)·(σ_c²/(1 − w) + σ_t²/w).
//
// Fixed horizon. The total t solving the power equation of the test at
// level α for the effect δ (MDE; relative MDEs are δ = MDE·|μ_c|):
//
//	two-sided:  Φ(δ/SE − z_{1−α/2}) + Φ(−δ/SE − z_{1−α/2}) = power
//	one-sided:  Φ(δ/SE − z_{1−α}) = power,          SE = √(K/t),
//
// so t = K·k²/δ² with k the root for SE = 1 (k = z_{1−α} + z_power one-sided).
// The arms need (1 − w)·t and w·t units. This is statsmodels'
// NormalIndPower().solve_power(effect_size = δ/σ, nobs1 = n_c, ratio =
// w/(1−w), alternative = 'two-sided' | 'larger') when σ_c = σ_t = σ and
// ρ = 0 (and R's pwr.norm.test for one arm's equivalent); it is the normal
// (z) approximation that Compare's Welch test attains for large n, and
// slightly optimistic below about 30 units per arm.
//
// Always valid. Compare's confidence sequence (see Sequential) after t
// units has half-width √(K/t)·h(t), h(t) = √(2(tρ_s²+1)/(tρ_s²)·ln(√(tρ_s²+1)/α)),
// ρ_s² = (−2 ln α + ln(−2 ln α + 1))/N*. The plan finds the t at which the
// sequence excludes zero with the given power when the effect is δ,
//
//	Φ(δ/SE(t) − h(t)) + Φ(−δ/SE(t) − h(t)) = power,
//
// the fixed design's equation with h(t) in place of z_{1−α/2}; power ½
// (ignoring the far tail) is the horizon at which the half-width reaches δ
// (see ConfidenceSequenceHorizon). The half-width decreases strictly in t
// (d/dx of (1+x)(½ln(1+x) − ln α)/x² is negative for x > 0 since
// ln(1+x) ≥ 2x/(2+x)), so the root is unique. When N* is not given the
// sequence is tuned at the horizon itself, N* = t: then tρ_s² is the
// constant c = −2 ln α + ln(−2 ln α + 1), h = √(2(c+1)/c·ln(√(c+1)/α)) and
// t = K·k²/δ² in closed form, k the root with h for z. These are the
// formulas of Waudby-Smith et al. (2021) and Howard et al. (2021) that
// Sequential implements.

// Design is an experiment's inferential design.
type Design int

const (
	// FixedHorizon: one analysis at the planned end (Compare without Sequential).
	FixedHorizon Design = iota
	// AlwaysValid: a confidence sequence read at any time (Sequential).
	AlwaysValid
)

// String returns "fixed" or "sequential".
func (d Design) String() string {
	switch d {
	case FixedHorizon:
		return "fixed"
	case AlwaysValid:
		return "sequential"
	}
	return fmt.Sprintf("Design(%d)", int(d))
}

// PlanInput is what a sample-size plan needs, typically measured on a
// pre-period of real traffic.
type PlanInput struct {
	// BaselineMean is the control mean (needed for a relative MDE).
	BaselineMean float64
	// BaselineVar is the per-unit variance of the metric in control (the
	// sample variance; p(1−p) for a proportion; for ratio metrics the
	// delta-method per-unit variance (s²_x − 2R·s_xy + R²·s²_y)/ȳ²).
	BaselineVar float64
	// TreatmentVar is the per-unit variance expected in treatment; zero
	// means BaselineVar.
	TreatmentVar float64
	// MDE is the effect to detect, > 0: absolute, or relative to
	// |BaselineMean| when Relative.
	MDE      float64
	Relative bool
	// Alpha and Power; zero means DefaultAlpha, DefaultPower.
	Alpha, Power float64
	// Alternative is TwoSided (default), or Greater/Less for a one-sided
	// fixed-horizon test (the same sample size either way). Equivalent is
	// not planned here.
	Alternative Alternative
	// TreatmentShare is the share w of units in treatment, in (0, 1);
	// zero means ½.
	TreatmentShare float64
	// CUPEDCorrelation is ρ, |ρ| < 1, the correlation of the metric with
	// its CUPED covariate: variances are multiplied by 1 − ρ².
	CUPEDCorrelation float64
	// DailyUnits is the number of new units per day in both arms
	// together; zero leaves Days zero.
	DailyUnits float64
	Design     Design
	// NStar tunes the always-valid design's sequence (Sequential.NStar);
	// zero tunes it at the planned horizon itself.
	NStar float64
}

// Plan is a sample-size plan. Units are whole; the exact (fractional)
// requirement is TotalN.
type Plan struct {
	Design Design
	MDE    float64 // absolute effect planned for, δ
	// UnitVar is K, Var(Δ̂) times the total number of units.
	UnitVar float64
	// Critical is the critical value the plan used: z_{1−α/2}, z_{1−α}, or
	// the confidence sequence's h at the horizon.
	Critical float64
	// NStar is the N* of the sequence (the horizon when tuned at it).
	NStar float64
	// TotalN is the exact requirement t; ControlN and TreatmentN its split.
	TotalN, ControlN, TreatmentN float64
	// ControlUnits and TreatmentUnits are the split rounded up, TotalUnits their sum.
	ControlUnits, TreatmentUnits, TotalUnits float64
	// Days is the number of whole days until both arms hold their units
	// at DailyUnits a day: ⌈max(ControlUnits/((1−w)·D), TreatmentUnits/(w·D))⌉.
	Days float64
}

// Validate reports whether the plan input is usable.
func (in PlanInput) Validate() error {
	in = in.withDefaults()
	switch {
	case !finite(in.BaselineMean) || !(in.BaselineVar >= 0) || !finite(in.BaselineVar) ||
		!(in.TreatmentVar >= 0) || !finite(in.TreatmentVar):
		return fmt.Errorf("%w: baseline mean %v, variances %v, %v", ErrInvalidInput, in.BaselineMean, in.BaselineVar, in.TreatmentVar)
	case !(in.MDE > 0) || !finite(in.MDE):
		return fmt.Errorf("%w: MDE %v must be positive", ErrInvalidInput, in.MDE)
	case !(in.Alpha > 0 && in.Alpha < 1) || !(in.Power > 0 && in.Power < 1):
		return fmt.Errorf("%w: alpha %v, power %v not in (0, 1)", ErrInvalidInput, in.Alpha, in.Power)
	case in.Alternative != TwoSided && in.Alternative != Greater && in.Alternative != Less:
		return fmt.Errorf("%w: alternative %v cannot be planned", ErrInvalidInput, in.Alternative)
	case in.Alternative != TwoSided && !(in.Alpha < 0.5):
		return fmt.Errorf("%w: alpha %v of a one-sided test not in (0, 0.5)", ErrInvalidInput, in.Alpha)
	case !(in.TreatmentShare > 0 && in.TreatmentShare < 1):
		return fmt.Errorf("%w: treatment share %v not in (0, 1)", ErrInvalidInput, in.TreatmentShare)
	case !(math.Abs(in.CUPEDCorrelation) < 1):
		return fmt.Errorf("%w: CUPED correlation %v not in (-1, 1)", ErrInvalidInput, in.CUPEDCorrelation)
	case !(in.DailyUnits >= 0) || !finite(in.DailyUnits):
		return fmt.Errorf("%w: daily units %v", ErrInvalidInput, in.DailyUnits)
	case in.Design != FixedHorizon && in.Design != AlwaysValid:
		return fmt.Errorf("%w: design %v", ErrInvalidInput, in.Design)
	case in.Design == AlwaysValid && in.Alternative != TwoSided:
		return fmt.Errorf("%w: the always-valid design is two-sided", ErrInvalidInput)
	case !(in.NStar >= 0) || !finite(in.NStar):
		return fmt.Errorf("%w: N* %v", ErrInvalidInput, in.NStar)
	case in.Relative && in.BaselineMean == 0:
		return fmt.Errorf("%w: relative MDE with a zero baseline mean", ErrDegenerate)
	}
	return nil
}

func (in PlanInput) withDefaults() PlanInput {
	if in.Alpha == 0 {
		in.Alpha = DefaultAlpha
	}
	if in.Power == 0 {
		in.Power = DefaultPower
	}
	if in.TreatmentShare == 0 {
		in.TreatmentShare = 0.5
	}
	if in.TreatmentVar == 0 {
		in.TreatmentVar = in.BaselineVar
	}
	return in
}

// PlanSampleSize returns the units (and days) a design needs to detect
// in.MDE (see the formulas at the top of this file). It returns errors
// wrapping ErrInvalidInput for invalid input and ErrDegenerate when the
// metric does not vary (K = 0) or the requirement overflows.
func PlanSampleSize(in PlanInput) (Plan, error) {
	if err := in.Validate(); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	in = in.withDefaults()
	w := in.TreatmentShare
	rho2 := in.CUPEDCorrelation * in.CUPEDCorrelation
	k := (1 - rho2) * (in.BaselineVar/(1-w) + in.TreatmentVar/w)
	if !(k > 0) || !finite(k) {
		return Plan{}, fmt.Errorf("plan: per-unit variance factor %v: %w", k, ErrDegenerate)
	}
	delta := in.MDE
	if in.Relative {
		delta *= math.Abs(in.BaselineMean)
	}
	p := Plan{Design: in.Design, MDE: delta, UnitVar: k}
	switch {
	case in.Design == FixedHorizon && in.Alternative != TwoSided:
		p.Critical = normalQuantileTwoSided(2 * in.Alpha)
		kk := p.Critical + normalQuantile(in.Power)
		p.TotalN = k * kk * kk / (delta * delta)
		if !(kk > 0) {
			return Plan{}, fmt.Errorf("plan: power %v not above alpha %v: %w", in.Power, in.Alpha, ErrInvalidInput)
		}
	case in.Design == FixedHorizon:
		p.Critical = normalQuantileTwoSided(in.Alpha)
		kk, err := powerRoot(p.Critical, in.Power)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		p.TotalN = k * kk * kk / (delta * delta)
	case in.NStar == 0:
		c := mixtureConstant(in.Alpha)
		p.Critical = math.Sqrt(2 * (c + 1) / c * math.Log(math.Sqrt(c+1)/in.Alpha))
		kk, err := powerRoot(p.Critical, in.Power)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		p.TotalN = k * kk * kk / (delta * delta)
		p.NStar = p.TotalN
	default:
		t, err := sequentialHorizon(k, delta, in.Alpha, in.Power, in.NStar)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		p.TotalN, p.NStar = t, in.NStar
		p.Critical, _ = Sequential{NStar: in.NStar}.halfWidthFactor(t, in.Alpha, 0)
	}
	p.ControlN, p.TreatmentN = (1-w)*p.TotalN, w*p.TotalN
	p.ControlUnits, p.TreatmentUnits = math.Ceil(p.ControlN), math.Ceil(p.TreatmentN)
	p.TotalUnits = p.ControlUnits + p.TreatmentUnits
	if in.DailyUnits > 0 {
		p.Days = math.Ceil(math.Max(p.ControlUnits/((1-w)*in.DailyUnits), p.TreatmentUnits/(w*in.DailyUnits)))
	}
	if !(finite(p.TotalUnits) && finite(p.Days) && finite(p.Critical)) || p.TotalUnits > 1<<53 {
		return Plan{}, fmt.Errorf("plan: requirement overflows (MDE %v too small for the variance): %w", in.MDE, ErrDegenerate)
	}
	return p, nil
}

// DaysRemaining returns the whole days until a running experiment that has
// enrolled units (both arms) reaches required units at dailyUnits a day:
// ⌈(required − enrolled)/dailyUnits⌉, and 0 once enrolled ≥ required.
func DaysRemaining(required, enrolled, dailyUnits float64) (float64, error) {
	if !(required >= 0 && enrolled >= 0 && dailyUnits > 0) || !finite(required) || !finite(enrolled) || !finite(dailyUnits) {
		return 0, fmt.Errorf("days remaining: required %v, enrolled %v, daily %v: %w", required, enrolled, dailyUnits, ErrInvalidInput)
	}
	if enrolled >= required {
		return 0, nil
	}
	return math.Ceil((required - enrolled) / dailyUnits), nil
}

// ConfidenceSequenceHorizon returns the number of units t (both arms) at
// which the always-valid half-width √(unitVar/t)·h(t) (see Sequential)
// equals mde, unitVar being K = t·Var(Δ̂). With nstar zero the sequence is
// tuned at t itself (closed form t = K·h²/mde², h constant); otherwise t is
// the unique root, found by bisection on ln t to full precision.
func ConfidenceSequenceHorizon(unitVar, mde, alpha, nstar float64) (float64, error) {
	if !(unitVar > 0 && mde > 0 && alpha > 0 && alpha < 1 && nstar >= 0) ||
		!finite(unitVar) || !finite(mde) || !finite(nstar) {
		return 0, fmt.Errorf("sequence horizon: variance %v, mde %v, alpha %v, N* %v: %w", unitVar, mde, alpha, nstar, ErrInvalidInput)
	}
	if nstar == 0 {
		c := mixtureConstant(alpha)
		h2 := 2 * (c + 1) / c * math.Log(math.Sqrt(c+1)/alpha)
		t := unitVar * h2 / (mde * mde)
		if !finite(t) {
			return 0, fmt.Errorf("sequence horizon: overflow: %w", ErrDegenerate)
		}
		return t, nil
	}
	s := Sequential{NStar: nstar}
	g := func(t float64) float64 { // half-width − mde, decreasing in t
		h, _ := s.halfWidthFactor(t, alpha, 0)
		return math.Sqrt(unitVar/t)*h - mde
	}
	return bisectLog(g, unitVar/(mde*mde))
}

// sequentialHorizon solves the always-valid power equation for t with a
// given N* (see the top of this file).
func sequentialHorizon(k, delta, alpha, power, nstar float64) (float64, error) {
	s := Sequential{NStar: nstar}
	g := func(t float64) float64 { // power at t − target, increasing in t
		h, _ := s.halfWidthFactor(t, alpha, 0)
		a := delta / math.Sqrt(k/t)
		return -(normalCDF(a-h) + normalCDF(-a-h) - power)
	}
	return bisectLog(g, k/(delta*delta))
}

// bisectLog finds the root of g, positive below it and negative above,
// on t > 0, starting the bracket at t0 and bisecting ln t until the
// bracket's ends are adjacent floats.
func bisectLog(g func(float64) float64, t0 float64) (float64, error) {
	if !(t0 > 0) || !finite(t0) {
		return 0, fmt.Errorf("root: start %v: %w", t0, ErrDegenerate)
	}
	lo, hi := t0, t0
	for i := 0; g(lo) <= 0; i++ {
		if i > 2000 || lo < 1e-300 {
			return 0, fmt.Errorf("root: no lower bracket: %w", ErrDegenerate)
		}
		lo /= 2
	}
	for i := 0; g(hi) > 0; i++ {
		if i > 2000 || hi > 1e300 {
			return 0, fmt.Errorf("root: no upper bracket: %w", ErrDegenerate)
		}
		hi *= 2
	}
	for range 200 {
		mid := math.Sqrt(lo) * math.Sqrt(hi)
		if !(mid > lo && mid < hi) {
			break
		}
		if g(mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2, nil
}

// mixtureConstant is tρ_s² at t = N*: −2 ln α + ln(−2 ln α + 1).
func mixtureConstant(alpha float64) float64 {
	l := -2 * math.Log(alpha)
	return l + math.Log(l+1)
}

// powerRoot returns the k > 0 with Φ(k − z) + Φ(−k − z) = power, by Newton
// from the one-tail solution (as MDEFromSE does), for critical value z.
func powerRoot(z, power float64) (float64, error) {
	k := z + normalQuantile(power)
	if !(normalCDF(-z)*2 < power) {
		return 0, fmt.Errorf("power %v not above the test's level %v: %w", power, 2*normalCDF(-z), ErrInvalidInput)
	}
	if k <= 0 {
		k = 1e-3
	}
	for range 100 {
		g := normalCDF(k-z) + normalCDF(-k-z) - power
		dg := normalPDF(k-z) - normalPDF(k+z)
		step := g / dg
		if !finite(step) {
			break
		}
		k -= step
		if k <= 0 {
			k = 1e-6
		}
		if math.Abs(step) <= 1e-15*k {
			break
		}
	}
	return k, nil
}

package stats

import (
	"fmt"
	"math"
)

// Hypotheses beyond "two-sided, no effect".
//
// Compare tests H₀: δ = 0 two-sided. TestHypothesis tests, for the absolute
// effect δ = μ_t − μ_c or the relative effect ℓ = (μ_t − μ_c)/|μ_c|, with a
// null value δ₀ (a margin):
//
//	two-sided   H₀: δ = δ₀   H₁: δ ≠ δ₀    p = P(|T| ≥ |t|)
//	greater     H₀: δ ≤ δ₀   H₁: δ > δ₀    p = P(T ≥ t)
//	less        H₀: δ ≥ δ₀   H₁: δ < δ₀    p = P(T ≤ t)
//	equivalent  H₀: δ ≤ δ₀ or δ ≥ δ₁   H₁: δ₀ < δ < δ₁   p = max(p_greater(δ₀), p_less(δ₁))  (TOST)
//
// with t = (δ̂ − δ₀)/SE and T Student's t with Compare's Welch–Satterthwaite
// ν (or the standard normal when Normal). These are the conventions of
// statsmodels' ttest_ind(x_t, x_c, usevar='unequal', value=δ₀,
// alternative='two-sided'|'larger'|'smaller') and ttost_ind(x_t, x_c, δ₀,
// δ₁, usevar='unequal'), of R's t.test(x_t, x_c, mu = δ₀, alternative =
// "two.sided"|"greater"|"less") (Welch by default), and for Normal of
// statsmodels' CompareMeans.ztest_ind(usevar='unequal'): note the order,
// treatment first, so "greater" means the treatment is higher.
//
// The matching confidence bound at level 1−α is one-sided for a one-sided
// test, δ̂ − t_{ν,1−α}·SE for greater and δ̂ + t_{ν,1−α}·SE for less, and
// the two-sided interval for two-sided; for equivalence it is the 1−2α
// interval (TOST rejects exactly when it lies inside (δ₀, δ₁)).
//
// Superiority and non-inferiority are one-sided tests with a margin m ≥ 0
// in the metric's desired direction (see Superiority, NonInferiority): for
// a metric that should increase, superiority is H₁: δ > m and
// non-inferiority H₁: δ > −m; mirrored for one that should decrease.
//
// Relative effect. Fieller's test (default), the test whose inversion is
// Compare's relative interval (see fieller): with s = sign(m_c) and
// k = 1 + s·ℓ₀ (so that ℓ = ℓ₀ means μ_t = k·μ_c),
//
//	t = (m_t − k·m_c) / √(v_t + k²·v_c),   SE = √(v_t + k²·v_c)/|m_c|,
//
// which has the sign of ℓ̂ − ℓ₀ for either sign of m_c, is the absolute
// test when ℓ₀ = 0, and uses the absolute comparison's ν (as Compare's
// relative interval does, so that the two-sided p ≤ α exactly when ℓ₀ is
// outside Compare's interval). Its bounds are Fieller's at the test's
// critical value, absent (HasLow/HasHigh false) when Fieller's set is
// unbounded there. With DeltaMethod the test is instead the Wald test
// t = (ℓ̂ − ℓ₀)/SE_L on the delta-method SE_L of Compare (RelSE), as
// GrowthBook's frequentist engine does, with bounds ℓ̂ ∓ t_{ν,·}·SE_L.
//
// Each metric may carry its own α (Hypothesis.Alpha). Fixed-horizon only:
// TestHypothesis refuses arms with noisy moments (differential privacy),
// whose reference distribution is not Student's t (see Compare), with
// StatusUnsupported.

// Alternative is the alternative hypothesis of a test.
type Alternative int

const (
	// TwoSided: H₁ δ ≠ δ₀.
	TwoSided Alternative = iota
	// Greater: H₁ δ > δ₀ (statsmodels "larger", R "greater").
	Greater
	// Less: H₁ δ < δ₀ (statsmodels "smaller", R "less").
	Less
	// Equivalent: H₁ δ₀ < δ < δ₁, by two one-sided tests (TOST).
	Equivalent
)

var alternativeNames = [...]string{TwoSided: "two-sided", Greater: "greater", Less: "less", Equivalent: "equivalent"}

// String returns "two-sided", "greater", "less" or "equivalent".
func (a Alternative) String() string {
	if a < 0 || int(a) >= len(alternativeNames) {
		return fmt.Sprintf("Alternative(%d)", int(a))
	}
	return alternativeNames[a]
}

// ParseAlternative is the inverse of Alternative.String.
func ParseAlternative(s string) (Alternative, error) {
	for a, name := range alternativeNames {
		if s == name {
			return Alternative(a), nil
		}
	}
	return 0, fmt.Errorf("stats: unknown alternative %q (want two-sided, greater, less or equivalent)", s)
}

// MarshalText implements encoding.TextMarshaler; it never fails.
func (a Alternative) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Alternative) UnmarshalText(b []byte) error {
	v, err := ParseAlternative(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Hypothesis is a test of the effect of treatment against control. The
// zero value is Compare's two-sided Welch test of δ = 0 at DefaultAlpha.
type Hypothesis struct {
	Alternative Alternative
	// Null is δ₀: the null value (two-sided), the boundary of the null
	// (greater, less), or the lower equivalence bound.
	Null float64
	// NullHigh is δ₁, the upper equivalence bound (Equivalent only).
	NullHigh float64
	// Relative states Null and NullHigh, and tests, the relative effect
	// (μ_t − μ_c)/|μ_c| instead of the absolute difference.
	Relative bool
	// DeltaMethod tests a relative effect by the delta method's Wald test
	// instead of Fieller's.
	DeltaMethod bool
	// Normal uses the standard normal instead of Student's t (infinite ν).
	Normal bool
	// Alpha is the test's level; zero means DefaultAlpha. One-sided and
	// equivalence tests need Alpha < 0.5.
	Alpha float64
}

// Superiority returns the one-sided hypothesis that the effect beats the
// margin m ≥ 0 in the desired direction: H₁ δ > m (Increase) or δ < −m
// (Decrease).
func Superiority(desired Direction, margin float64, relative bool, alpha float64) Hypothesis {
	h := Hypothesis{Alternative: Greater, Null: margin, Relative: relative, Alpha: alpha}
	if desired == Decrease {
		h.Alternative, h.Null = Less, -margin
	}
	return h
}

// NonInferiority returns the one-sided hypothesis that the effect is no
// worse than the margin m ≥ 0 in the desired direction: H₁ δ > −m
// (Increase) or δ < m (Decrease). For a guardrail whose harmful direction
// is h, the desired direction is the other one.
func NonInferiority(desired Direction, margin float64, relative bool, alpha float64) Hypothesis {
	h := Hypothesis{Alternative: Greater, Null: -margin, Relative: relative, Alpha: alpha}
	if desired == Decrease {
		h.Alternative, h.Null = Less, margin
	}
	return h
}

// Validate reports whether the hypothesis is usable.
func (h Hypothesis) Validate() error {
	a := h.Alpha
	if a == 0 {
		a = DefaultAlpha
	}
	switch {
	case h.Alternative < TwoSided || h.Alternative > Equivalent:
		return fmt.Errorf("%w: alternative %v", ErrInvalidInput, h.Alternative)
	case !(a > 0 && a < 1):
		return fmt.Errorf("%w: alpha %v not in (0, 1)", ErrInvalidInput, h.Alpha)
	case h.Alternative != TwoSided && !(a < 0.5):
		return fmt.Errorf("%w: alpha %v of a %v test not in (0, 0.5)", ErrInvalidInput, h.Alpha, h.Alternative)
	case !finite(h.Null) || !finite(h.NullHigh):
		return fmt.Errorf("%w: null value %v, %v", ErrInvalidInput, h.Null, h.NullHigh)
	case h.Alternative == Equivalent && !(h.Null < h.NullHigh):
		return fmt.Errorf("%w: equivalence bounds %v ≥ %v", ErrInvalidInput, h.Null, h.NullHigh)
	}
	return nil
}

// StatusUnsupported: the test is not defined for this input (noisy moments).
const StatusUnsupported = "unsupported"

// HypothesisTest is the result of TestHypothesis. Every float is finite.
// When Status is not StatusOK the inferential fields are zero, PValue is 1
// and Reject is false.
type HypothesisTest struct {
	Status     string
	Hypothesis Hypothesis // with the default Alpha filled in

	Estimate  float64 // δ̂, or ℓ̂ = (m_t − m_c)/|m_c|
	SE        float64 // of the statistic's denominator (Fieller's at ℓ₀ for relative; see TestHypothesis)
	DF        float64 // ν (NoiseOnlyDF when Normal)
	Statistic float64 // (Estimate − Null)/SE; the lower test's for Equivalent
	// StatisticHigh is (Estimate − NullHigh)/SE_high, Equivalent only.
	StatisticHigh float64
	PValue        float64
	Reject        bool // PValue ≤ Alpha: H₁ accepted

	// The confidence set matching the test (see the top of this file):
	// Low is a lower bound when HasLow, High an upper bound when HasHigh.
	Low, High       float64
	HasLow, HasHigh bool
}

// TestHypothesis tests h for treatment against control with the arm
// estimates of Compare (Welch; delta method for ratios; CUPED adjusted
// with cuped when non-nil and both arms have covariates). See the top of
// this file for the statistics and the conventions. It never panics:
// degenerate input gives a status (Compare's, StatusInvalidOptions for an
// invalid h, StatusControlMeanZero for a relative test against a zero
// control mean, StatusUnsupported for noisy moments).
func TestHypothesis(control, treatment Arm, kind Kind, cuped *CUPED, h Hypothesis) HypothesisTest {
	if h.Alpha == 0 {
		h.Alpha = DefaultAlpha
	}
	r := HypothesisTest{Hypothesis: h, PValue: 1}
	if err := h.Validate(); err != nil {
		// Keep the result encodable: no NaN or ±Inf echoed back.
		for _, v := range []*float64{&r.Hypothesis.Null, &r.Hypothesis.NullHigh, &r.Hypothesis.Alpha} {
			if !finite(*v) {
				*v = 0
			}
		}
		r.Status = StatusInvalidOptions
		return r
	}
	if control.MomentNoise != (MomentNoise{}) || treatment.MomentNoise != (MomentNoise{}) {
		r.Status = StatusUnsupported
		return r
	}
	c := Compare(control, treatment, kind, Options{Alpha: h.Alpha, CUPED: cuped})
	if !c.Valid() {
		r.Status = c.Status
		return r
	}
	if h.Relative && c.ControlMean == 0 {
		r.Status = StatusControlMeanZero
		return r
	}
	r.DF = c.DF
	if h.Normal {
		r.DF = NoiseOnlyDF
	}
	r = r.run(c)
	for _, v := range [...]float64{r.Estimate, r.SE, r.Statistic, r.StatisticHigh, r.PValue, r.Low, r.High} {
		if !finite(v) {
			return HypothesisTest{Status: StatusOverflow, Hypothesis: h, PValue: 1}
		}
	}
	r.Status = StatusOK
	return r
}

// run fills the statistics from a valid comparison.
func (r HypothesisTest) run(c Comparison) HypothesisTest {
	h := r.Hypothesis
	nu := r.DF
	if h.Normal {
		nu = math.Inf(1)
	}
	r.Estimate = c.Diff
	if h.Relative {
		r.Estimate = c.RelDiff
	}
	switch h.Alternative {
	case TwoSided:
		var se float64
		r.Statistic, se = r.statistic(c, h.Null)
		r.SE = se
		r.PValue = studentTwoSidedP(r.Statistic, nu)
		q := studentQuantileTwoSided(h.Alpha, nu)
		r.Low, r.HasLow, r.High, r.HasHigh = r.bounds(c, q)
	case Greater, Less:
		r.Statistic, r.SE = r.statistic(c, h.Null)
		r.PValue = studentUpperP(r.Statistic, nu)
		if h.Alternative == Less {
			r.PValue = studentUpperP(-r.Statistic, nu)
		}
		q := studentQuantileTwoSided(2*h.Alpha, nu)
		lo, hasLo, hi, hasHi := r.bounds(c, q)
		if h.Alternative == Greater {
			r.Low, r.HasLow = lo, hasLo
		} else {
			r.High, r.HasHigh = hi, hasHi
		}
	case Equivalent:
		r.Statistic, r.SE = r.statistic(c, h.Null)
		r.StatisticHigh, _ = r.statistic(c, h.NullHigh)
		r.PValue = math.Max(studentUpperP(r.Statistic, nu), studentUpperP(-r.StatisticHigh, nu))
		q := studentQuantileTwoSided(2*h.Alpha, nu)
		r.Low, r.HasLow, r.High, r.HasHigh = r.bounds(c, q)
	}
	r.Reject = r.PValue <= h.Alpha
	return r
}

// statistic returns the test statistic at null value null and its SE (see
// the top of this file).
func (r HypothesisTest) statistic(c Comparison, null float64) (t, se float64) {
	h := r.Hypothesis
	switch {
	case !h.Relative:
		return (c.Diff - null) / c.SE, c.SE
	case h.DeltaMethod:
		return (c.RelDiff - null) / c.RelSE, c.RelSE
	}
	mc, mt := c.ControlMean, c.TreatmentMean
	k := 1 + math.Copysign(1, mc)*null
	// √(v_t + k²v_c) without overflow in k².
	s := math.Hypot(math.Sqrt(c.TreatmentVar), k*math.Sqrt(c.ControlVar))
	return (mt - k*mc) / s, s / math.Abs(mc)
}

// bounds returns the two-sided confidence set at critical value q.
func (r HypothesisTest) bounds(c Comparison, q float64) (lo float64, hasLo bool, hi float64, hasHi bool) {
	h := r.Hypothesis
	switch {
	case !h.Relative:
		return c.Diff - q*c.SE, true, c.Diff + q*c.SE, true
	case h.DeltaMethod:
		return c.RelDiff - q*c.RelSE, true, c.RelDiff + q*c.RelSE, true
	}
	lo, hi, ok := fieller(c.ControlMean, c.TreatmentMean, c.ControlVar, c.TreatmentVar, q)
	if !ok {
		return 0, false, 0, false
	}
	return lo, true, hi, true
}

// studentTwoSidedP is P(|T_ν| ≥ |t|), normal for infinite ν.
func studentTwoSidedP(t, nu float64) float64 {
	if math.IsInf(nu, 1) || nu > normalLimitDF {
		return normalTwoSidedP(t)
	}
	return tTwoSidedP(t, nu)
}

// studentUpperP is P(T_ν ≥ t): half the two-sided tail for t ≥ 0, one
// minus it otherwise.
func studentUpperP(t, nu float64) float64 {
	p := studentTwoSidedP(t, nu) / 2
	if t >= 0 {
		return p
	}
	return 1 - p
}

// studentQuantileTwoSided is the q with P(|T_ν| ≥ q) = alpha.
func studentQuantileTwoSided(alpha, nu float64) float64 {
	if math.IsInf(nu, 1) {
		return normalQuantileTwoSided(alpha)
	}
	return tQuantileTwoSided(alpha, nu)
}

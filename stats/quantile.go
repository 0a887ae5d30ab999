package stats

import (
	"fmt"
	"math"
)

// Quantile tests (issue #20 item 1).
//
// Unit level (EstimateQuantile, CompareQuantiles): the method GrowthBook
// documents for its quantile metrics, from Deng, Knoblich and Lu (2018,
// "Applying the Delta Method in Metric Analytics: A Practical Guide with
// Novel Ideas", KDD; arXiv:1803.06336), the order-statistic form of
// Woodruff's (1952) interval: with n units and level ν,
//
//	q̂ = x_(⌈nν⌉),  δ = z·√(ν(1−ν)/n),  L = ⌈n(ν−δ)⌉,  U = ⌈n(ν+δ)⌉,
//	Var(q̂) = ((x_(U) − x_(L)) / (2z))²,  z = z_0.975,
//
// i.e. [x_(L), x_(U)] is the distribution-free 95% interval of the
// quantile (the ranks n·ν ± z·√(nν(1−ν)) that cover it with probability
// 1−α by the binomial's normal limit), and its half-width over z estimates
// the standard error without estimating the density. The bounds are the
// same definition-1 quantile as q̂ (Histogram.Quantile) at the levels ν ∓ δ.
// Sources read, both in growthbook/growthbook at commit 8f1db445 (gbstats
// 0.8.0): the documentation page "Quantile Testing"
// (docs/statistics/quantile.mdx, section "GrowthBook implementation",
// steps 1, 2 and 6) and QuantileStatistic in
// packages/stats/gbstats/models/statistics.py (the bounds' levels come
// from getQuantileBoundValues in packages/back-end/src/integrations/sql/
// columns/quantile-bound-values.ts). Two deliberate differences from gbstats: Verity ranks
// the exact n (gbstats reads bounds precomputed for the nearest smaller
// n* of a grid 100·2^k and rescales the variance by n*/n, and its variance
// carries an extra factor (n−1)/n), and the bandwidth is always the 95%
// one, as in gbstats, whatever the comparison's alpha.
//
// The comparison is a normal (Welch-like, unpooled) difference of the two
// independent arm estimates,
//
//	Δ = q̂_t − q̂_c,  SE = √(V_c + V_t),  Δ ± z_{1−α/2}·SE,  p = 2Φ(−|Δ|/SE),
//
// (gbstats feeds the same variances to its Welch t with Satterthwaite's
// degrees of freedom, which for the hundreds of units the method needs is
// the normal), and the relative effect L = Δ/|q̂_c| has the delta-method
// interval GrowthBook's lift uses,
//
//	SE_L = √(V_t/q̂_c² + q̂_t²·V_c/q̂_c⁴),  L ± z_{1−α/2}·SE_L,
//
// with Fieller's set (see fieller) reported beside it, the relative
// interval Compare reports for means.
//
// Refusals, as gbstats': an arm whose band ν ± δ leaves (0, 1), that is
// n ≤ z²·max(ν/(1−ν), (1−ν)/ν) (so an arm needs at least 381 units at
// p = 0.99 and 4 at the median, and an arm of one unit never suffices),
// and an arm whose x_(L) = x_(U) (the quantile sits in a tie wider than
// the band: the variance estimate would be 0) are ErrDegenerate.

// quantileBandAlpha is the level of the order-statistic band whose width
// estimates the variance (gbstats fixes it at 0.05 too).
const quantileBandAlpha = 0.05

// QuantileOptions are the settings of a quantile comparison. The zero
// value is a two-sided comparison at alpha DefaultAlpha.
type QuantileOptions struct {
	// Alpha is the two-sided level of the intervals (1−Alpha coverage).
	// Zero means DefaultAlpha.
	Alpha float64
}

// Validate reports whether Alpha is in (0, 1) (zero meaning the default).
func (o QuantileOptions) Validate() error {
	if a := o.alpha(); !(a > 0 && a < 1) {
		return fmt.Errorf("quantile options: alpha %v not in (0, 1): %w", o.Alpha, ErrInvalidInput)
	}
	return nil
}

func (o QuantileOptions) alpha() float64 {
	if o.Alpha == 0 {
		return DefaultAlpha
	}
	return o.Alpha
}

// QuantileEstimate is one arm's quantile and the estimated variance of it.
type QuantileEstimate struct {
	P        float64 // quantile level ν
	N        float64 // units (unit level), events (event level), or the clamped noisy total (private grid)
	Quantile float64 // q̂
	// Lower and Upper are the band's bounds Q̂(ν−δ) and Q̂(ν+δ) whose
	// width estimates the variance: Var = ((Upper−Lower)/(2·z_0.975))².
	Lower, Upper float64
	// BandLevel is δ, the half-width of the band in CDF units.
	BandLevel float64
	// RankLower and RankUpper are the ranks L and U of Lower and Upper
	// (unit and event level; 0 for the private grid).
	RankLower, RankUpper uint64
	Var, SE              float64 // estimated Var(q̂) and its square root
	// Clusters is the number of units K at the event level (0 otherwise).
	Clusters uint64
	// DesignEffect is the event level's clustering factor Var_c(Ī)/Var_iid(Ī)
	// of the fraction of events at or below q̂ (1 at the unit level and on
	// the private grid).
	DesignEffect float64
	// CDFVar is the variance of the estimated CDF at the quantile:
	// ν(1−ν)/n at the unit level (the band's), the cluster-robust Var_c(Ī)
	// at the event level (whose band is the iid one, its variance scaled
	// by DesignEffect), and ν(1−ν)/T plus the count noise's share on the
	// private grid (the band's).
	CDFVar float64
}

// QuantileComparison compares two arms' quantiles (see CompareQuantiles).
type QuantileComparison struct {
	Control, Treatment QuantileEstimate
	Alpha              float64
	Critical           float64 // z_{1−α/2}
	Diff, SE           float64 // Δ = q̂_t − q̂_c and √(V_c + V_t)
	Statistic, PValue  float64 // Δ/SE and 2Φ(−|Δ|/SE)
	DiffLow, DiffHigh  float64 // Δ ∓ z_{1−α/2}·SE
	// HasRelative is false when q̂_c = 0: the relative fields are then zero.
	HasRelative     bool
	RelDiff, RelSE  float64 // L = Δ/|q̂_c| and its delta-method standard error
	RelLow, RelHigh float64 // L ∓ z_{1−α/2}·SE_L (delta method, as GrowthBook)
	// FiellerLow, FiellerHigh and FiellerShape are Fieller's confidence
	// set for L at the same level (see fieller and SetShape): an interval
	// when the control quantile is distinguishable from zero, otherwise
	// the complement of (FiellerLow, FiellerHigh), one of which may then
	// be infinite, or the whole line (both zero).
	FiellerLow, FiellerHigh float64
	FiellerShape            SetShape
}

// EstimateQuantile returns the unit-level p-quantile of h, one value per
// unit, and its order-statistic variance (see the method above). Errors:
// ErrInvalidInput for p outside (0, 1), ErrDegenerate for an empty
// histogram, too few units for the band, or a zero-width band.
func EstimateQuantile(h Histogram, p float64) (QuantileEstimate, error) {
	if err := checkLevel(p); err != nil {
		return QuantileEstimate{}, err
	}
	n := h.N()
	if n == 0 {
		return QuantileEstimate{}, fmt.Errorf("quantile: no values (an empty arm): %w", ErrDegenerate)
	}
	z := normalQuantileTwoSided(quantileBandAlpha)
	nf := float64(n)
	cdfVar := float64(float64(p*(1-p)) / nf)
	delta := float64(z * math.Sqrt(cdfVar))
	lo, hi := p-delta, p+delta
	if !(lo > 0 && hi < 1) {
		return QuantileEstimate{}, fmt.Errorf("quantile: %d values are too few for the order-statistic interval at p = %v (need more than %.4g): %w",
			n, p, z*z*math.Max(p/(1-p), (1-p)/p), ErrDegenerate)
	}
	e := QuantileEstimate{P: p, N: nf, BandLevel: delta, DesignEffect: 1, CDFVar: cdfVar}
	q := h.orderStat(ceilMulDecimal(n, p))
	e.RankLower, e.RankUpper = rankAt(n, lo), rankAt(n, hi)
	xl, xu := h.orderStat(e.RankLower), h.orderStat(e.RankUpper)
	if xl == xu {
		return QuantileEstimate{}, fmt.Errorf("quantile: the order statistics of ranks %d and %d are both %v (a tie wider than the interval), so the variance estimate is zero: %w",
			e.RankLower, e.RankUpper, h.Float(xl), ErrDegenerate)
	}
	e.Quantile, e.Lower, e.Upper = h.Float(q), h.Float(xl), h.Float(xu)
	e.SE = fixedDiff(xu, xl, h.decimals) / (2 * z)
	e.Var = e.SE * e.SE
	if !finite(e.Var) || e.Var == 0 {
		return QuantileEstimate{}, fmt.Errorf("quantile: variance %v out of range: %w", e.Var, ErrOverflow)
	}
	return e, nil
}

// CompareQuantiles compares the unit-level p-quantiles of two arms'
// histograms (one value per unit, one scale): the difference, the relative
// difference and their intervals (see the method above). Errors: those of
// EstimateQuantile (wrapped in an ArmError naming the arm), and
// ErrInvalidInput for invalid options or histograms of different scales.
func CompareQuantiles(control, treatment Histogram, p float64, opts QuantileOptions) (QuantileComparison, error) {
	if err := opts.Validate(); err != nil {
		return QuantileComparison{}, err
	}
	if err := checkLevel(p); err != nil {
		return QuantileComparison{}, err
	}
	if control.decimals != treatment.decimals {
		return QuantileComparison{}, fmt.Errorf("quantile: control has %d decimals, treatment %d: %w", control.decimals, treatment.decimals, ErrInvalidInput)
	}
	c, err := EstimateQuantile(control, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "control", Err: err}
	}
	t, err := EstimateQuantile(treatment, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "treatment", Err: err}
	}
	return compareQuantileEstimates(c, t, opts.alpha())
}

// compareQuantileEstimates forms the normal difference and the relative
// effect of two independent arm estimates with positive variances.
func compareQuantileEstimates(c, t QuantileEstimate, alpha float64) (QuantileComparison, error) {
	r := QuantileComparison{Control: c, Treatment: t, Alpha: alpha}
	z := normalQuantileTwoSided(alpha)
	r.Critical = z
	r.Diff = t.Quantile - c.Quantile
	r.SE = math.Sqrt(c.Var + t.Var)
	r.Statistic = r.Diff / r.SE
	r.PValue = math.Erfc(math.Abs(r.Statistic) / math.Sqrt2)
	r.DiffLow, r.DiffHigh = r.Diff-z*r.SE, r.Diff+z*r.SE
	if c.Quantile != 0 {
		mc := c.Quantile
		ratio := t.Quantile / mc
		r.HasRelative = true
		r.RelDiff = r.Diff / math.Abs(mc)
		r.RelSE = math.Sqrt(t.Var+ratio*ratio*c.Var) / math.Abs(mc)
		r.RelLow, r.RelHigh = r.RelDiff-z*r.RelSE, r.RelDiff+z*r.RelSE
		r.FiellerLow, r.FiellerHigh, r.FiellerShape = fiellerSet(mc, t.Quantile, c.Var, t.Var, z)
	}
	for _, v := range []float64{r.Diff, r.SE, r.Statistic, r.DiffLow, r.DiffHigh, r.RelDiff, r.RelSE, r.RelLow, r.RelHigh} {
		if !finite(v) {
			return QuantileComparison{}, fmt.Errorf("quantile comparison: a result overflowed float64: %w", ErrOverflow)
		}
	}
	return r, nil
}

package stats

import "math"

// Relative effect.
//
// Verity's relative effect is the absolute effect as a share of the size of
// the control mean,
//
//	L = (m_t - m_c) / |m_c|,
//
// which is m_t/m_c - 1 when m_c > 0 and keeps the sign of the absolute
// effect for any sign of m_c: a metric whose control mean is negative (a net
// revenue, a balance change) that gets more negative has L < 0, as its
// absolute effect has. The plain m_t/m_c - 1 flips the sign there, so a
// harmful guardrail move would read as harmless (GrowthBook's gbstats,
// frequentist_diff in packages/stats/gbstats/utils.py at commit cc3c8905,
// divides by the signed control mean and has this flip).
//
// Its interval is Fieller's (Fieller 1954, "Some problems in interval
// estimation", JRSS B 16:175–185), not the symmetric delta-method interval
// L ± z·SE_L. For independent arm estimates with variances v_c, v_t, the
// set of relative effects ℓ = (μ_t - μ_c)/|μ_c| not rejected at level α is
//
//	{ℓ : (Δ - s·ℓ·m_c)² ≤ q²·(v_t + (1 + s·ℓ)²·v_c)},  s = sign(m_c), Δ = m_t - m_c,
//
// where q is the critical value of the absolute interval (t_{ν,1-α/2}, or the
// always-valid half-width factor). With λ = s·ℓ (so that μ_t = (1+λ)μ_c)
// this is the quadratic inequality
//
//	a·λ² - 2b·λ + c ≤ 0,  a = m_c² - q²v_c,  b = Δ·m_c + q²v_c,  c = Δ² - q²(v_c + v_t).
//
// When a > 0 — the control mean differs from zero at level α, |m_c|/√v_c > q
// — the set is the bounded interval between the two roots, which is not
// symmetric about L: it is wider on the side where the ratio estimator is
// skewed, which is what balances the two one-sided miss rates (the
// symmetric interval lies below the truth about three times as often as
// above it in small cohorts). When a ≤ 0 the set is unbounded (the whole line or the
// complement of an interval): the data cannot bound the relative effect,
// and Compare reports StatusRelativeUnbounded with no relative interval.
//
// Fieller's set is the inversion of an exact-in-the-normal-limit test, so it
// needs no log transform and works for either sign of the means (the
// log-ratio delta method needs both means positive).
//
// fieller returns the bounds of L and ok = false when the set is unbounded.
func fieller(mc, mt, vc, vt, q float64) (lo, hi float64, ok bool) {
	lo, hi, shape := fiellerSet(mc, mt, vc, vt, q)
	return lo, hi, shape == SetBounded
}

// SetShape is the shape of Fieller's confidence set for the relative
// effect.
type SetShape int

const (
	// SetBounded is the interval [lo, hi].
	SetBounded SetShape = iota
	// SetExclusive is the complement of the open interval (lo, hi), lo
	// possibly −∞ or hi +∞ (a half-line): the control mean is not
	// distinguishable from zero, the treatment mean is.
	SetExclusive
	// SetWholeLine is every relative effect: neither mean is
	// distinguishable from zero.
	SetWholeLine
)

// RelativeSet returns Fieller's confidence set for the relative effect of
// a comparison whose absolute comparison is valid, at the critical value
// of its intervals (see fieller): the interval [lo, hi] when Status is
// StatusOK, and otherwise the unbounded set a result row reports only as
// StatusRelativeUnbounded. ok is false when the comparison has no
// relative effect (no valid absolute comparison, or a zero control mean).
func (c Comparison) RelativeSet() (lo, hi float64, shape SetShape, ok bool) {
	if !c.HasRelative() || c.ControlMean == 0 {
		return 0, 0, 0, false
	}
	lo, hi, shape = fiellerSet(c.ControlMean, c.TreatmentMean, c.ControlVar, c.TreatmentVar, c.Critical)
	return lo, hi, shape, true
}

// fiellerSet returns Fieller's set for L: [lo, hi], the complement of
// (lo, hi), or the whole line (see fieller and SetShape).
func fiellerSet(mc, mt, vc, vt, q float64) (lo, hi float64, shape SetShape) {
	diff := mt - mc
	q2 := q * q
	a := mc*mc - q2*vc
	b := diff*mc + q2*vc
	c := diff*diff - q2*(vc+vt)
	if !(a > 0) {
		// a·λ² − 2b·λ + c ≤ 0 with a ≤ 0: the whole line when the
		// quadratic has no real roots, else the outside of its roots.
		var l1, l2 float64
		switch disc := b*b - a*c; {
		case a == 0 && b == 0:
			return 0, 0, SetWholeLine
		case a == 0 && b > 0: // λ ≥ c/(2b)
			l1, l2 = math.Inf(-1), c/(2*b)
		case a == 0: // λ ≤ c/(2b)
			l1, l2 = c/(2*b), math.Inf(1)
		case !(disc > 0):
			return 0, 0, SetWholeLine
		default:
			sq := math.Sqrt(disc)
			l1, l2 = (b+sq)/a, (b-sq)/a
			if l1 > l2 {
				l1, l2 = l2, l1
			}
		}
		if mc < 0 {
			return -l2, -l1, SetExclusive
		}
		return l1, l2, SetExclusive
	}
	disc := b*b - a*c
	if disc < 0 {
		// Impossible in exact arithmetic when a > 0 (disc = q²(a·v_t + m_t²·v_c));
		// rounding can only bring it to zero.
		disc = 0
	}
	// Roots without cancellation: r1 = (b + sign(b)√disc)/a, r2 = c/(a·r1).
	sq := math.Sqrt(disc)
	var l1, l2 float64
	if t := b + math.Copysign(sq, b); t != 0 {
		l1, l2 = t/a, c/t
	} else {
		l1, l2 = 0, 0
	}
	if l1 > l2 {
		l1, l2 = l2, l1
	}
	// λ = s·L: for a negative control mean the bounds swap sides.
	if mc < 0 {
		return -l2, -l1, SetBounded
	}
	return l1, l2, SetBounded
}

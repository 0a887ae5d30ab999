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
	diff := mt - mc
	q2 := q * q
	a := mc*mc - q2*vc
	if !(a > 0) {
		return 0, 0, false
	}
	b := diff*mc + q2*vc
	c := diff*diff - q2*(vc+vt)
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
		return -l2, -l1, true
	}
	return l1, l2, true
}

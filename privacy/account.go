package privacy

import (
	"fmt"
	"math"
)

// Conversions between ρ-zCDP and (ε, δ)-DP, in float64. The inverse
// functions are conservative in the direction that protects privacy: their
// bisections keep the safe end, and they aim at δ·(1 − safetyMargin) so
// that float64 rounding in evaluating the δ formula (relative error about
// 1e-14) cannot push the result over the target.
const safetyMargin = 1e-12

func checkNonNeg(name string, v float64) error {
	if math.IsNaN(v) || v < 0 || math.IsInf(v, 0) {
		return fmt.Errorf("privacy: %s = %v: want a finite number ≥ 0", name, v)
	}
	return nil
}

func checkDelta(delta float64) error {
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return fmt.Errorf("privacy: δ = %v: want 0 < δ < 1", delta)
	}
	return nil
}

// CDPDelta returns the δ for which ρ-zCDP implies (ε, δ)-DP, by the tight
// conversion of Canonne, Kamath & Steinke 2020 (Proposition 12, Corollary 13):
//
//	δ = inf_{α>1} exp((α−1)(αρ−ε)) / (α−1) · (1 − 1/α)^α.
//
// The log of the objective is convex in α with derivative
// (2α−1)ρ − ε + ln(1 − 1/α), increasing from −∞ at α→1 to +∞; the minimiser
// is found by bisection on the derivative's sign over
// (1, (ε+1)/(2ρ) + 2]. Any α gives a valid δ, so an inexact minimiser only
// makes δ larger (safe). The result is capped at 1.
func CDPDelta(rho, eps float64) (float64, error) {
	if err := checkNonNeg("ρ", rho); err != nil {
		return 0, err
	}
	if err := checkNonNeg("ε", eps); err != nil {
		return 0, err
	}
	if rho == 0 {
		return 0, nil
	}
	return math.Min(math.Exp(cdpLogDelta(rho, eps)), 1), nil
}

func cdpLogDelta(rho, eps float64) float64 {
	logObj := func(a float64) float64 {
		return (a-1)*(a*rho-eps) + a*math.Log1p(-1/a) - math.Log(a-1)
	}
	lo, hi := 1.0, (eps+1)/(2*rho)+2
	for range 4000 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if (2*mid-1)*rho-eps+math.Log1p(-1/mid) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	best := logObj(hi)
	if lo > 1 {
		best = math.Min(best, logObj(lo))
	}
	return best
}

// CDPEpsilonSimple returns ε = ρ + 2√(ρ·ln(1/δ)), the conversion of Bun &
// Steinke 2016 (Proposition 1.3). It is never smaller than CDPEpsilon.
func CDPEpsilonSimple(rho, delta float64) (float64, error) {
	if err := checkNonNeg("ρ", rho); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	return rho + 2*math.Sqrt(rho*math.Log(1/delta)), nil
}

// CDPEpsilon returns the smallest ε (to float64 bisection precision, rounded
// up) with CDPDelta(ρ, ε) ≤ δ·(1 − 1e-12): the tight ρ → ε conversion.
func CDPEpsilon(rho, delta float64) (float64, error) {
	hi, err := CDPEpsilonSimple(rho, delta)
	if err != nil {
		return 0, err
	}
	if rho == 0 {
		return 0, nil
	}
	target := delta * (1 - safetyMargin)
	ok := func(eps float64) bool { d, _ := CDPDelta(rho, eps); return d <= target }
	for !ok(hi) { // the simple bound is valid, so this is only float slack
		hi = 2*hi + 1
	}
	lo := 0.0
	for range 4000 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// CDPRho returns the largest ρ (to float64 bisection precision, rounded
// down) with CDPDelta(ρ, ε) ≤ δ·(1 − 1e-12): the tight (ε, δ) → ρ
// conversion, the one Budget uses. It allows more ρ than inverting the
// simple bound, ρ = (√(ln(1/δ)+ε) − √ln(1/δ))².
func CDPRho(eps, delta float64) (float64, error) {
	if err := checkNonNeg("ε", eps); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	target := delta * (1 - safetyMargin)
	ok := func(rho float64) bool { d, _ := CDPDelta(rho, eps); return d <= target }
	hi := eps + 1
	for ok(hi) {
		hi *= 2
	}
	lo := 0.0
	for range 4000 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// GaussianDelta returns the δ at which one discrete Gaussian release with
// standard deviation parameter σ (σ² the mechanism's parameter) and
// sensitivity Δ is (ε, δ)-DP, through its zCDP guarantee ρ = Δ²/(2σ²)
// (CKS20 Theorem 4) and CDPDelta.
func GaussianDelta(sigma, sensitivity, eps float64) (float64, error) {
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return 0, fmt.Errorf("privacy: σ = %v: want a finite number > 0", sigma)
	}
	if !(sensitivity > 0) || math.IsInf(sensitivity, 0) {
		return 0, fmt.Errorf("privacy: Δ = %v: want a finite number > 0", sensitivity)
	}
	return CDPDelta(sensitivity*sensitivity/(2*sigma*sigma), eps)
}

// GaussianSigma inverts GaussianDelta: the smallest σ (rounded up) with
// GaussianDelta(σ, Δ, ε) ≤ δ·(1 − 1e-12), found by bisection on σ (δ
// decreases as σ grows).
func GaussianSigma(delta, sensitivity, eps float64) (float64, error) {
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	if err := checkNonNeg("ε", eps); err != nil {
		return 0, err
	}
	target := delta * (1 - safetyMargin)
	f := func(sigma float64) float64 {
		d, _ := GaussianDelta(sigma, sensitivity, eps)
		return d
	}
	if _, err := GaussianDelta(1, sensitivity, eps); err != nil {
		return 0, err
	}
	hi := sensitivity
	for f(hi) > target {
		hi *= 2
	}
	lo := hi
	for f(lo) <= target && lo > 1e-300 {
		lo /= 2
	}
	for range 4000 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if f(mid) <= target {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

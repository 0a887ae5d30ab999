package stats

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Correction is a multiple-testing correction.
type Correction int

const (
	// NoCorrection leaves p-values and alphas unchanged.
	NoCorrection Correction = iota
	// HolmCorrection controls the family-wise error rate (Holm 1979).
	HolmCorrection
	// BHCorrection controls the false discovery rate (Benjamini–Hochberg 1995).
	BHCorrection
)

var correctionNames = [...]string{NoCorrection: "none", HolmCorrection: "holm", BHCorrection: "bh"}

// String returns "none", "holm" or "bh".
func (c Correction) String() string {
	if c < 0 || int(c) >= len(correctionNames) {
		return fmt.Sprintf("Correction(%d)", int(c))
	}
	return correctionNames[c]
}

// ParseCorrection is the inverse of Correction.String.
func ParseCorrection(s string) (Correction, error) {
	for c, name := range correctionNames {
		if s == name {
			return Correction(c), nil
		}
	}
	return 0, fmt.Errorf("stats: unknown correction %q (want none, holm or bh)", s)
}

// Adjust returns the adjusted p-values of the correction (a copy for
// NoCorrection), in input order.
func Adjust(c Correction, p []float64) []float64 {
	switch c {
	case HolmCorrection:
		return Holm(p)
	case BHCorrection:
		return BenjaminiHochberg(p)
	}
	return sanitize(p)
}

// AdjustedAlphas returns, in input order, the per-hypothesis alpha at
// which the matching adjusted interval is computed (interval level
// 1-alpha_i): HolmAlphas, BenjaminiHochbergAlphas, or alpha for every
// hypothesis under NoCorrection.
func AdjustedAlphas(c Correction, p []float64, alpha float64) []float64 {
	switch c {
	case HolmCorrection:
		return HolmAlphas(p, alpha)
	case BHCorrection:
		return BenjaminiHochbergAlphas(p, alpha)
	}
	out := make([]float64, len(p))
	for i := range out {
		out[i] = alpha
	}
	return out
}

// sanitize copies p, mapping NaN and values above 1 to 1 and negative
// values to 0: an unusable p-value never leads to a rejection.
func sanitize(p []float64) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		switch {
		case math.IsNaN(v) || v > 1:
			out[i] = 1
		case v < 0:
			out[i] = 0
		default:
			out[i] = v
		}
	}
	return out
}

// order returns the indices of p sorted by ascending p, ties in input order.
func order(p []float64) []int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(p[a], p[b]) })
	return idx
}

// Bonferroni returns min(1, m·p_i) in input order.
func Bonferroni(p []float64) []float64 {
	out := sanitize(p)
	m := float64(len(p))
	for i, v := range out {
		out[i] = math.Min(1, m*v)
	}
	return out
}

// Holm returns Holm's step-down adjusted p-values in input order. With the
// p-values sorted ascending, p_(1) ≤ … ≤ p_(m),
//
//	p̃_(j) = min(1, max_{i ≤ j} (m-i+1)·p_(i)),
//
// so p̃_j ≤ α exactly when Holm's procedure at level α rejects hypothesis j.
// NaN is treated as 1 and values are clipped to [0, 1]. Matches statsmodels'
// multipletests(method="holm").
func Holm(p []float64) []float64 {
	q := sanitize(p)
	m := len(q)
	out := make([]float64, m)
	running := 0.0
	for rank, i := range order(q) {
		running = math.Max(running, math.Min(1, float64(m-rank)*q[i]))
		out[i] = running
	}
	return out
}

// BenjaminiHochberg returns the Benjamini–Hochberg step-up adjusted
// p-values in input order:
//
//	p̃_(j) = min(1, min_{i ≥ j} m·p_(i)/i),
//
// so p̃_j ≤ α exactly when BH at false-discovery rate α rejects hypothesis j.
// NaN is treated as 1 and values are clipped to [0, 1]. Matches statsmodels'
// multipletests(method="fdr_bh").
func BenjaminiHochberg(p []float64) []float64 {
	q := sanitize(p)
	m := len(q)
	out := make([]float64, m)
	idx := order(q)
	running := 1.0
	for rank := m - 1; rank >= 0; rank-- {
		i := idx[rank]
		running = math.Min(running, float64(m)*q[i]/float64(rank+1))
		out[i] = math.Max(running, q[i]) // m·p/m can round one ulp below p

	}
	return out
}

// HolmAlphas returns, in input order, the per-hypothesis alpha of the
// interval that matches Holm's procedure at family-wise level alpha: the
// Bonferroni-style level of the step at which each hypothesis is decided.
// With the p-values sorted ascending and r the number of rejections,
//
//	α_(j) = α/(m-j+1)   for j ≤ r (rejected at step j),
//	α_(j) = α/(m-r)     for j > r (accepted together at step r+1).
//
// Each interval then agrees with its test: a rejected hypothesis's interval
// excludes 0 (p_(j) ≤ α/(m-j+1)) and an accepted one's includes it
// (p_(j) ≥ p_(r+1) > α/(m-r)). These are not simultaneous intervals for
// the rejected hypotheses (Strassburger & Bretz 2008 give those, at the
// price of uninformative bounds); they are the usual per-step reading.
func HolmAlphas(p []float64, alpha float64) []float64 {
	adj := Holm(p)
	m := len(adj)
	out := make([]float64, m)
	idx := order(sanitize(p))
	r := 0
	for _, i := range idx {
		if adj[i] > alpha {
			break
		}
		r++
	}
	for rank, i := range idx {
		if rank < r {
			out[i] = alpha / float64(m-rank)
		} else {
			out[i] = alpha / float64(m-r)
		}
	}
	return out
}

// BenjaminiHochbergAlphas returns, in input order, the per-hypothesis alpha
// of the false-coverage-rate adjusted intervals of Benjamini & Yekutieli
// (2005) that match BH at level alpha: with R rejections out of m,
//
//	α_i = α·R/m for every hypothesis, or α/m when R = 0.
//
// The rejected (selected) hypotheses' intervals then have FCR ≤ α and
// exclude 0, and the others include 0 (p_(j) > jα/m ≥ Rα/m for j > R).
// With no rejection nothing is selected, and α/m (Bonferroni) is used so
// the intervals stay finite and conservative.
func BenjaminiHochbergAlphas(p []float64, alpha float64) []float64 {
	adj := BenjaminiHochberg(p)
	m := len(adj)
	r := 0
	for _, v := range adj {
		if v <= alpha {
			r++
		}
	}
	a := alpha * float64(max(r, 1)) / float64(m)
	out := make([]float64, m)
	for i := range out {
		out[i] = a
	}
	return out
}

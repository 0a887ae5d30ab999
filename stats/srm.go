package stats

import (
	"fmt"
	"math"
)

// SRM defaults.
const (
	// DefaultSRMThreshold is the p-value below which an allocation is
	// declared mismatched.
	DefaultSRMThreshold = 0.001
	// MinChiSquareExpected is the smallest expected count per arm at which
	// SRM uses Pearson's χ² test; below it (in any arm) the χ² p-value is
	// unreliable — a 0.002 share of 3,000 units expects 6, and 1,500
	// observed gives χ² ≈ 3.7e5, "p = 0" from a tail the approximation
	// does not describe — so SRM uses an exact binomial test instead.
	MinChiSquareExpected = 10
)

// SRM test methods (SRMResult.Method).
const (
	SRMChiSquare = "chi_square"     // Pearson's χ² goodness of fit
	SRMExact     = "exact_binomial" // exact binomial test (arm vs the rest, Bonferroni over arms for k > 2)
)

// SRMResult is a sample-ratio-mismatch test.
type SRMResult struct {
	Method    string    // SRMChiSquare or SRMExact
	ChiSquare float64   // Pearson's χ² = Σ (O_i - E_i)²/E_i (reported for both methods)
	DF        int       // k - 1
	PValue    float64   // P(χ²_{k-1} ≥ ChiSquare), or the exact test's p-value
	AdjPValue float64   // Bonferroni-adjusted across the cohorts tested together, min(1, m·p); PValue for a single test
	Observed  []float64 // units per arm, as given
	Expected  []float64 // E_i = Σ O · share_i
	Total     float64   // Σ O
}

// SRM tests observed allocation counts against the expected shares. When
// every expected count is at least MinChiSquareExpected it is Pearson's χ²
// goodness-of-fit test:
//
//	E_i = N·w_i/Σw,  χ² = Σ (O_i - E_i)²/E_i,  p = P(χ²_{k-1} ≥ χ²).
//
// Otherwise (Method SRMExact) it is an exact test: for two arms the exact
// binomial test of O_1 ~ Binomial(N, w_1/Σw), two-sided by the
// probabilities of the outcomes no more likely than the one observed (as
// SciPy's binomtest); for more arms, each arm against the rest the same
// way, p = min(1, k·min_i p_i) (Bonferroni), which is a valid level-α test
// of the whole allocation. Counts are rounded to integers for the exact
// test (noisy counts are integers already).
//
// The shares need not sum to one (they are normalised) but must be
// positive. Counts may be non-integer (noisy) but not negative. At least
// two arms are required (ErrLength), and some units (ErrDegenerate).
func SRM(observed, expectedShares []float64) (SRMResult, error) {
	if len(observed) != len(expectedShares) || len(observed) < 2 {
		return SRMResult{}, fmt.Errorf("srm: %d counts, %d shares: %w", len(observed), len(expectedShares), ErrLength)
	}
	var total, shareSum float64
	for i := range observed {
		o, w := observed[i], expectedShares[i]
		if !finite(o) || o < 0 {
			return SRMResult{}, fmt.Errorf("srm: arm %d count %v: %w", i, o, ErrInvalidInput)
		}
		if !finite(w) || !(w > 0) {
			return SRMResult{}, fmt.Errorf("srm: arm %d share %v: %w", i, w, ErrInvalidInput)
		}
		total += o
		shareSum += w
	}
	if total == 0 {
		return SRMResult{}, fmt.Errorf("srm: no units: %w", ErrDegenerate)
	}
	r := SRMResult{
		DF:       len(observed) - 1,
		Observed: append([]float64(nil), observed...),
		Expected: make([]float64, len(observed)),
		Total:    total,
	}
	for i, o := range observed {
		e := total * expectedShares[i] / shareSum
		r.Expected[i] = e
		d := o - e
		r.ChiSquare += d * d / e
	}
	if !finite(r.ChiSquare) {
		return SRMResult{}, fmt.Errorf("srm: χ² overflow: %w", ErrInvalidInput)
	}
	r.Method = SRMChiSquare
	r.PValue = chiSquareSurvival(r.ChiSquare, float64(r.DF))
	for _, e := range r.Expected {
		if e < MinChiSquareExpected {
			r.Method = SRMExact
		}
	}
	if r.Method == SRMExact {
		r.PValue = exactSRMPValue(observed, expectedShares, shareSum)
	}
	r.AdjPValue = r.PValue
	return r, nil
}

// exactSRMPValue is the exact test of SRM (see there).
func exactSRMPValue(observed, shares []float64, shareSum float64) float64 {
	n := 0.0
	counts := make([]float64, len(observed))
	for i, o := range observed {
		counts[i] = math.Round(o)
		n += counts[i]
	}
	if len(observed) == 2 {
		return binomTwoSided(counts[0], n, shares[0]/shareSum)
	}
	p := 1.0
	for i := range counts {
		p = math.Min(p, binomTwoSided(counts[i], n, shares[i]/shareSum))
	}
	return math.Min(1, float64(len(counts))*p)
}

// binomTwoSided is the two-sided exact binomial test of k successes in n
// trials with success probability p: the total probability of the outcomes
// whose probability is at most P(X = k)·(1 + 1e-7) (the relative slack
// SciPy's binomtest uses against rounding). The binomial pmf is unimodal,
// so those outcomes are two tails; each is summed outward from its inner
// end with the pmf's ratio recurrence until the terms no longer change
// the sum.
func binomTwoSided(k, n, p float64) float64 {
	if n == 0 {
		return 1
	}
	if p <= 0 {
		if k == 0 {
			return 1
		}
		return 0
	}
	if p >= 1 {
		if k == n {
			return 1
		}
		return 0
	}
	logPMF := func(x float64) float64 {
		a, _ := math.Lgamma(n + 1)
		b, _ := math.Lgamma(x + 1)
		c, _ := math.Lgamma(n - x + 1)
		return a - b - c + x*math.Log(p) + (n-x)*math.Log1p(-p)
	}
	limit := logPMF(k) + math.Log1p(1e-7)
	mode := math.Floor((n + 1) * p)
	if mode > n {
		mode = n
	}
	// The other tail starts at the first outcome beyond the mode, on the
	// far side from k, whose pmf is at most the limit (binary search on
	// the monotone side of the pmf).
	var lowEnd, highStart float64 // the tails are [0, lowEnd] and [highStart, n]
	if k <= mode {
		lowEnd = k
		lo, hi := mode, n+1 // invariant: pmf(lo) > limit (or lo = mode), hi is in the tail or n+1
		if logPMF(mode) <= limit {
			hi = mode
		}
		for hi-lo > 1 {
			mid := math.Floor((lo + hi) / 2)
			if logPMF(mid) <= limit {
				hi = mid
			} else {
				lo = mid
			}
		}
		highStart = hi
	} else {
		highStart = k
		lo, hi := -1.0, mode // lo is in the tail or -1, pmf(hi) > limit (or hi = mode)
		if logPMF(mode) <= limit {
			lo = mode
		}
		for hi-lo > 1 {
			mid := math.Floor((lo + hi) / 2)
			if logPMF(mid) <= limit {
				lo = mid
			} else {
				hi = mid
			}
		}
		lowEnd = lo
	}
	sum := 0.0
	// Lower tail: x = lowEnd, lowEnd-1, …, 0 with pmf(x-1) = pmf(x)·x(1-p)/((n-x+1)p).
	if lowEnd >= 0 {
		t := math.Exp(logPMF(lowEnd))
		for x := lowEnd; x >= 0 && t > 0; x-- {
			sum += t
			if t < sum*1e-17 {
				break
			}
			t *= x * (1 - p) / ((n - x + 1) * p)
		}
	}
	// Upper tail: x = highStart, …, n with pmf(x+1) = pmf(x)·(n-x)p/((x+1)(1-p)).
	if highStart <= n {
		t := math.Exp(logPMF(highStart))
		for x := highStart; x <= n && t > 0; x++ {
			sum += t
			if t < sum*1e-17 {
				break
			}
			t *= (n - x) * p / ((x + 1) * (1 - p))
		}
	}
	return math.Min(1, sum)
}

// SRMCohorts runs SRM for each cohort's counts against the same shares
// and Bonferroni-adjusts across the m cohorts: AdjPValue = min(1, m·p).
// The first failing cohort's error is returned, wrapped with its index.
func SRMCohorts(observed [][]float64, expectedShares []float64) ([]SRMResult, error) {
	out := make([]SRMResult, len(observed))
	m := float64(len(observed))
	for i, obs := range observed {
		r, err := SRM(obs, expectedShares)
		if err != nil {
			return nil, fmt.Errorf("cohort %d: %w", i, err)
		}
		r.AdjPValue = math.Min(1, m*r.PValue)
		out[i] = r
	}
	return out, nil
}

// Invalid reports whether the test invalidates the experiment's verdict:
// AdjPValue < threshold (zero means DefaultSRMThreshold). Small expected
// counts no longer exempt a cohort: SRM uses the exact test there, whose
// p-value is valid at any size (and cannot fall below the threshold for a
// handful of units unless the split is far off).
func (r SRMResult) Invalid(threshold float64) bool {
	if threshold == 0 {
		threshold = DefaultSRMThreshold
	}
	return len(r.Expected) >= 2 && r.AdjPValue < threshold
}

// SRMInvalid reports whether any of the results is Invalid at threshold.
func SRMInvalid(results []SRMResult, threshold float64) bool {
	for _, r := range results {
		if r.Invalid(threshold) {
			return true
		}
	}
	return false
}

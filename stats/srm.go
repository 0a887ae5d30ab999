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
	// MinSRMUnits is the smallest expected count per arm at which an SRM
	// test may invalidate an experiment.
	MinSRMUnits = 8
)

// SRMResult is a sample-ratio-mismatch test.
type SRMResult struct {
	ChiSquare float64   // Pearson's χ² = Σ (O_i - E_i)²/E_i
	DF        int       // k - 1
	PValue    float64   // P(χ²_{k-1} ≥ ChiSquare)
	AdjPValue float64   // Bonferroni-adjusted across the cohorts tested together, min(1, m·p); PValue for a single test
	Observed  []float64 // units per arm, as given
	Expected  []float64 // E_i = Σ O · share_i
	Total     float64   // Σ O
}

// SRM tests observed allocation counts against the expected shares with
// Pearson's χ² goodness-of-fit test:
//
//	E_i = N·w_i/Σw,  χ² = Σ (O_i - E_i)²/E_i,  p = P(χ²_{k-1} ≥ χ²).
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
	r.PValue = chiSquareSurvival(r.ChiSquare, float64(r.DF))
	r.AdjPValue = r.PValue
	return r, nil
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
// AdjPValue < threshold (zero means DefaultSRMThreshold) and every arm's
// expected count is at least MinSRMUnits.
//
// The minimum is applied to the expected counts E_i, which are what the χ²
// approximation needs, rather than to the observed ones: an arm that
// received (almost) no units because of a broken assignment is the clearest
// mismatch of all and must not escape the check.
func (r SRMResult) Invalid(threshold float64) bool {
	if threshold == 0 {
		threshold = DefaultSRMThreshold
	}
	if len(r.Expected) < 2 || !(r.AdjPValue < threshold) {
		return false
	}
	for _, e := range r.Expected {
		if e < MinSRMUnits {
			return false
		}
	}
	return true
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

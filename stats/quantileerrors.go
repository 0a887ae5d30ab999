package stats

import "errors"

// ErrOverflow is returned by NewHistogram, HistogramOf, Histogram.Merge,
// MergeHistograms, PooledQuantile and ClusterSums' methods when a count or
// sum exceeds uint64, and by the quantile comparisons when a result
// overflows float64. The quantile functions also return ErrInvalidInput
// (a level outside (0, 1), NaN, a bad grid, mismatched scales or passes),
// ErrLength (a grid release whose counts do not match its buckets) and
// ErrDegenerate (an empty arm, too few units for the interval, a
// zero-width interval from ties, fewer than two units at the event
// level), each wrapped in an ArmError when it concerns one arm.
var ErrOverflow = errors.New("stats: overflow")

// ArmError says which arm of a quantile comparison an error concerns.
type ArmError struct {
	Arm string // "control" or "treatment"
	Err error
}

func (e *ArmError) Error() string { return e.Arm + ": " + e.Err.Error() }

// Unwrap returns the underlying error (ErrDegenerate, ErrInvalidInput, …).
func (e *ArmError) Unwrap() error { return e.Err }

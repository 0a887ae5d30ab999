package stats

import "errors"

// Sentinel errors. Functions wrap them with context; test with errors.Is.
var (
	// ErrLength is returned by SRM, SRMCohorts when slices that must
	// match in length do not, or hold fewer than two arms.
	ErrLength = errors.New("stats: mismatched or too short input")
	// ErrInvalidInput is returned by CUPEDTheta, NewCUPED, SRM, SRMCohorts,
	// MDE, PowerFor and MDEFromSE for NaN, infinite or out-of-range input
	// (negative counts or variances, alpha or power outside (0, 1)).
	ErrInvalidInput = errors.New("stats: invalid input")
	// ErrDegenerate is returned by CUPEDTheta, NewCUPED, SRM, MDE and
	// PowerFor when the input is valid but carries no information: no units,
	// a covariate with zero pooled variance, a zero standard error.
	ErrDegenerate = errors.New("stats: degenerate input")
	// ErrNoCovariate is returned by CUPEDTheta and NewCUPED when an arm with
	// units has HasCovariate false.
	ErrNoCovariate = errors.New("stats: arm has no covariate")
)

package pipeline

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// Exit codes, from PRODUCT.md. Only cmd/verity exits; pipeline returns
// errors and ExitCode maps them.
const (
	ExitOK        = 0
	ExitTransient = 1  // transient failure: retry
	ExitData      = 65 // a blocking data-quality gate failed, or input data is malformed
	ExitNoInput   = 66 // an input is missing
	ExitMismatch  = 70 // a replay or golden mismatch
	ExitConfig    = 78 // configuration or integrity error
)

// InputError is a problem with one input file: unreadable, corrupt, or not
// matching the input contract. File is the path as the spec named it
// (relative to the spec's folder); Column and Row are set where they apply.
// Run returns it before any output is written; it maps to exit code 65.
type InputError struct {
	File   string
	Column string
	Row    int64 // 0 when not row-specific
	Err    error
}

func (e *InputError) Error() string {
	msg := "input " + e.File
	if e.Column != "" {
		msg += ": column " + e.Column
	}
	if e.Row > 0 {
		msg += fmt.Sprintf(": row %d", e.Row)
	}
	return msg + ": " + e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

// MissingInputError reports a glob that matched no file or a file that does
// not exist. It maps to exit code 66.
type MissingInputError struct {
	Spec string // the spec file
	Glob string // the glob as written in the spec
	Err  error
}

func (e *MissingInputError) Error() string {
	return fmt.Sprintf("spec %s: input %q: %v", e.Spec, e.Glob, e.Err)
}

func (e *MissingInputError) Unwrap() error { return e.Err }

// TransientError wraps a failure that may succeed on retry (resource
// exhaustion, an interrupted run). It maps to exit code 1.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// ErrNoOverwrite is returned by Run when an output folder exists and is not
// a completed Verity run (it has no manifest.json): Verity never deletes a
// folder it did not write.
var ErrNoOverwrite = errors.New("output folder exists and is not a Verity run; refusing to replace it")

// ExitCode maps an error returned by this package to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		specErr     *SpecError
		mismatch    *queries.MismatchError
		inputErr    *InputError
		missingErr  *MissingInputError
		transient   *TransientError
		overflowErr *OverflowError
		gateErr     *GateError
		manifestErr *ManifestError
		dataErr     *DataError
		integrity   *IntegrityError
		hostErr     *HostError
	)
	switch {
	case errors.As(err, &missingErr):
		return ExitNoInput
	case errors.Is(err, ErrReplayMismatch):
		return ExitMismatch
	case errors.As(err, &manifestErr) && errors.Is(err, fs.ErrNotExist):
		return ExitNoInput // the manifest, or an output beside it, is missing
	case errors.As(err, &manifestErr):
		return ExitConfig
	case errors.As(err, &inputErr), errors.As(err, &overflowErr), errors.As(err, &gateErr), errors.As(err, &dataErr):
		return ExitData
	case errors.As(err, &specErr), errors.As(err, &mismatch), errors.As(err, &integrity), errors.As(err, &hostErr), errors.Is(err, queries.ErrNotLocked),
		errors.Is(err, queries.ErrUnknownTemplate), errors.Is(err, ErrNoOverwrite), errors.Is(err, ErrUsage):
		return ExitConfig
	case errors.Is(err, privacy.ErrNoKey), errors.Is(err, privacy.ErrBadKey), errors.Is(err, privacy.ErrKeyTooShort),
		errors.Is(err, privacy.ErrBudgetExhausted):
		return ExitConfig
	case errors.Is(err, ErrLocked):
		return ExitTransient
	case errors.As(err, &transient):
		return ExitTransient
	default:
		return ExitTransient
	}
}

// ErrUsage marks a command-line usage error (exit code 78).
var ErrUsage = errors.New("usage")

// OverflowError reports a sufficient statistic that could exceed the exact
// 128-bit range: the per-unit values are too large for the number of units.
// Clamp the metric or lower statistics.fixed_point_decimals. Exit code 65.
type OverflowError struct {
	Experiment, Cohort, Variant, Metric string
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("experiment %s, cohort %s, variant %s, metric %s: n * max|x|^2 may exceed 2^126, so the exact sums could overflow; clamp the metric or lower statistics.fixed_point_decimals", e.Experiment, e.Cohort, e.Variant, e.Metric)
}

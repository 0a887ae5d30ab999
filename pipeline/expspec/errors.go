package expspec

import (
	"errors"
)

// ErrUsage marks a command-line usage error (exit code 78).
var ErrUsage = errors.New("usage")

// IntegrityError is a template that cannot run as released against the
// inputs or the code (a binder or parser error). Exit code 78.
type IntegrityError struct{ Err error }

func (e *IntegrityError) Error() string { return e.Err.Error() }

func (e *IntegrityError) Unwrap() error { return e.Err }

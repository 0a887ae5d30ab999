package intake

import (
	"fmt"
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
	Spec     string // the spec file
	Resolved string // the spec file with its symlinks resolved, when that differs
	Glob     string // the glob as written in the spec
	Err      error
}

func (e *MissingInputError) Error() string {
	spec := e.Spec
	if e.Resolved != "" {
		spec += " (resolved: " + e.Resolved + ")"
	}
	return fmt.Sprintf("spec %s: input %q: %v", spec, e.Glob, e.Err)
}

func (e *MissingInputError) Unwrap() error { return e.Err }

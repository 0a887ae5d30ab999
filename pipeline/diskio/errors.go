package diskio

import (
	"errors"
	"fmt"
	"regexp"
)

// TransientError wraps a failure that may succeed on retry (resource
// exhaustion, an interrupted run). It maps to exit code 1.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }

func (e *TransientError) Unwrap() error { return e.Err }

// ErrNoOverwrite is returned by Run when an output folder exists and is not
// a completed Verity run (it has no manifest.json): Verity never deletes a
// folder it did not write.
var ErrNoOverwrite = errors.New("output folder exists and is not a Verity run; refusing to replace it")

// URLPathError is a path — a command-line argument, a flag's value or a
// spec's input glob — written as a URL (s3://, gs://, http(s)://, abfs://,
// any scheme://). Verity reads and writes local files only, so it is a
// configuration error (exit 78) naming the argument, never "matched no
// file" (exit 66, which a scheduler reads as "data not landed yet").
type URLPathError struct {
	What   string // the argument: "--out", "spec", "inputs.traces", ...
	Path   string
	Scheme string
}

func (e *URLPathError) Error() string {
	return fmt.Sprintf("%s %q is a URL (%s://): Verity reads and writes local files only and does not read object stores or URLs; copy or mount the data locally and give its path", e.What, e.Path, e.Scheme)
}

// urlSchemeRE matches a URL's scheme (RFC 3986: a letter, then letters,
// digits, +, - or .) followed by ://.
var urlSchemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// CheckLocalPath returns a *URLPathError when path is a URL, naming what
// (the flag or argument that gave it); nil otherwise.
func CheckLocalPath(what, path string) error {
	if m := urlSchemeRE.FindStringSubmatch(path); m != nil {
		return &URLPathError{What: what, Path: path, Scheme: m[1]}
	}
	return nil
}

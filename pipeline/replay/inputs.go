package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// InputChange is one input file that is not what the manifest recorded.
type InputChange struct {
	Role, Path string
	// Kind is "changed", "missing" or "added" (matched by the spec's globs
	// now but not listed in the manifest).
	Kind                 string
	OldSHA256, NewSHA256 string
	OldSize, NewSize     int64
	// OldRows and NewRows are the Parquet row counts, -1 where unknown.
	OldRows, NewRows int64
}

// ReplayInputError stops a replay whose inputs changed since the run. It
// maps to exit code 66 when a file is missing and to 70 otherwise.
type ReplayInputError struct {
	Manifest string
	RunID    string
	Base     string // the folder the input paths are relative to
	Changes  []InputChange
}

func (e *ReplayInputError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replay of run %s stopped: %d input file(s) differ from the manifest (paths relative to %s)", e.RunID, len(e.Changes), e.Base)
	for _, c := range e.Changes {
		fmt.Fprintf(&b, "\n  %s", c.describe())
	}
	return b.String()
}

// describe is one line of a ReplayInputError: the file and how it changed.
func (c InputChange) describe() string {
	rows := func(n int64) string {
		if n < 0 {
			return "?"
		}
		return fmt.Sprint(n)
	}
	switch c.Kind {
	case "missing":
		return fmt.Sprintf("%s %s: missing (recorded sha256 %s, %d bytes, %s rows)", c.Role, c.Path, c.OldSHA256, c.OldSize, rows(c.OldRows))
	case "added":
		return fmt.Sprintf("%s %s: added since the run (not in the manifest; sha256 %s, %d bytes, %s rows)", c.Role, c.Path, c.NewSHA256, c.NewSize, rows(c.NewRows))
	default:
		return fmt.Sprintf("%s %s: changed: sha256 %s -> %s, size %d -> %d bytes, rows %s -> %s", c.Role, c.Path, c.OldSHA256, c.NewSHA256, c.OldSize, c.NewSize, rows(c.OldRows), rows(c.NewRows))
	}
}

func (e *ReplayInputError) Unwrap() error {
	for _, c := range e.Changes {
		if c.Kind == "missing" {
			return &intake.MissingInputError{Spec: e.Manifest, Glob: c.Path, Err: errors.New("input recorded in the manifest is missing")}
		}
	}
	return publish.ErrReplayMismatch
}

// checkInputs re-hashes every input the manifest lists and looks for files
// the spec's globs match now (with the rerun's date pruning) but did not
// then.
func checkInputs(ctx context.Context, manifestPath, runID, base string, m *publish.Manifest, spec *expspec.Spec, date string) error {
	var changes []InputChange
	listed := map[string]bool{}
	// The manifest's paths are relative to the resolved spec folder.
	folder, _ := intake.SpecFolder(spec)
	if abs, err := filepath.Abs(base); err != nil || abs != folder {
		base += " (resolved: " + folder + ")"
	}
	for _, in := range m.Inputs {
		listed[in.Role+"\x00"+in.Path] = true
		f := intake.InputFile{Role: in.Role, Path: in.Path, Abs: inputAbs(folder, in.Path)}
		err := intake.HashFile(ctx, &f)
		var missing *intake.MissingInputError
		switch {
		case errors.As(err, &missing):
			changes = append(changes, InputChange{Role: in.Role, Path: in.Path, Kind: "missing", OldSHA256: in.SHA256, OldSize: in.Size, OldRows: in.Rows, NewRows: -1})
			continue
		case err != nil:
			return err
		}
		if f.SHA256 != in.SHA256 {
			changes = append(changes, InputChange{Role: in.Role, Path: in.Path, Kind: "changed",
				OldSHA256: in.SHA256, NewSHA256: f.SHA256, OldSize: in.Size, NewSize: f.Size,
				OldRows: in.Rows, NewRows: parquetRowCount(f.Abs)})
		}
	}
	if err := ctx.Err(); err != nil {
		return &diskio.TransientError{Err: err}
	}
	for _, role := range []string{"traces", "events"} {
		globs := spec.Inputs.Traces
		if role == "events" {
			globs = spec.Inputs.Events
		}
		found, err := intake.ResolveGlobsAt(spec, role, globs, date)
		if err != nil {
			if len(changes) > 0 {
				break // already stopping; the missing files say more
			}
			return err
		}
		for _, f := range found {
			if listed[role+"\x00"+f.Path] {
				continue
			}
			if err := intake.HashFile(ctx, &f); err != nil {
				return err
			}
			changes = append(changes, InputChange{Role: role, Path: f.Path, Kind: "added", NewSHA256: f.SHA256, NewSize: f.Size, OldRows: -1, NewRows: parquetRowCount(f.Abs)})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	sort.SliceStable(changes, func(i, j int) bool {
		if changes[i].Role != changes[j].Role {
			return changes[i].Role > changes[j].Role // traces before events
		}
		return changes[i].Path < changes[j].Path
	})
	return &ReplayInputError{Manifest: manifestPath, RunID: runID, Base: base, Changes: changes}
}

// inputAbs resolves a manifest input path against the spec folder base (an
// absolute path stays as it is).
func inputAbs(base, p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		return p
	}
	abs, err := filepath.Abs(filepath.Join(base, p))
	if err != nil {
		return filepath.Join(base, p)
	}
	return abs
}

// parquetRowCount reads a Parquet file's row count from its footer, or -1
// when the file is not readable Parquet.
func parquetRowCount(path string) (n int64) {
	defer func() {
		if recover() != nil { // a malformed footer must not crash the account
			n = -1
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return -1
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return -1
	}
	return pf.NumRows()
}

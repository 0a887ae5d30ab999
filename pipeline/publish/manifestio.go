package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// ErrReplayMismatch is wrapped by every error that means "the numbers are
// not the ones recorded": a replay whose outputs differ
// (replay.ReplayMismatchError), an input that changed since the run
// (replay.ReplayInputError without missing files), a run folder whose
// outputs were edited since the run (OutputsModifiedError), and a run that
// disagrees with an external snapshot (replay.AgainstMismatchError). It
// maps to exit code 70 (pipeline.ExitMismatch); see replay.ReplayExitCode.
var ErrReplayMismatch = errors.New("replay mismatch")

// ManifestError is a manifest.json that cannot be used: unreadable, not
// JSON, an unknown format or field, a spec that does not match its
// recorded hash, or an output it lists missing beside it (edited outputs are
// an *OutputsModifiedError).
// It is an integrity error: exit code 78 (66 when the file does not exist).
type ManifestError struct {
	File string
	Err  error
}

func (e *ManifestError) Error() string { return "manifest " + e.File + ": " + e.Err.Error() }

func (e *ManifestError) Unwrap() error { return e.Err }

// OutputsModifiedError reports outputs of a run whose bytes on disk no
// longer match the SHA-256 its manifest records: the run folder was edited
// after it was committed, so its numbers are not the ones the run computed.
// Replay, CompareAgainst and ExportSnapshot return it before they compare
// anything. It wraps ErrReplayMismatch (exit code 70).
type OutputsModifiedError struct {
	Manifest string
	Files    []ModifiedOutput
}

// ModifiedOutput is one output whose bytes differ from the manifest's record.
type ModifiedOutput struct {
	Name             string
	Recorded, OnDisk string // SHA-256
	RecordedSize     int
	Size             int64
}

func (e *OutputsModifiedError) Error() string {
	var parts []string
	for _, f := range e.Files {
		parts = append(parts, fmt.Sprintf("%s (sha256 %s, %d bytes; the manifest records %s, %d bytes)", f.Name, f.OnDisk, f.Size, f.Recorded, f.RecordedSize))
	}
	return fmt.Sprintf("run folder %s: %d output(s) edited since the run: %s; the run's own numbers are not on disk, so nothing was compared (rerun it, or restore the files)",
		filepath.Dir(e.Manifest), len(e.Files), strings.Join(parts, "; "))
}

func (e *OutputsModifiedError) Unwrap() error { return ErrReplayMismatch }

// VerifyOutputs checks the outputs beside the manifest (those named, or
// every output the manifest lists when names is empty) against the recorded
// SHA-256. A missing output is a *ManifestError wrapping fs.ErrNotExist
// (exit 66); outputs that differ are one *OutputsModifiedError (exit 70)
// naming them all. It returns the files' bytes by name.
func VerifyOutputs(m *Manifest, manifestPath string, names ...string) (map[string][]byte, error) {
	out := map[string][]byte{}
	modified := &OutputsModifiedError{Manifest: manifestPath}
	for _, name := range names {
		if !slices.ContainsFunc(m.Outputs, func(o diskio.OutputFile) bool { return o.Name == name }) {
			return nil, &ManifestError{File: manifestPath, Err: fmt.Errorf("lists no %s", name)}
		}
	}
	for _, o := range m.Outputs {
		if len(names) > 0 && !slices.Contains(names, o.Name) {
			continue
		}
		h, b, err := ReplayFileSHA256(filepath.Join(filepath.Dir(manifestPath), o.Name))
		if err != nil {
			return nil, &ManifestError{File: manifestPath, Err: fmt.Errorf("output %s: %w", o.Name, err)}
		}
		if h != o.SHA256 {
			modified.Files = append(modified.Files, ModifiedOutput{Name: o.Name, Recorded: o.SHA256, OnDisk: h, RecordedSize: o.Size, Size: int64(len(b))})
			continue
		}
		out[o.Name] = b
	}
	if len(modified.Files) > 0 {
		return nil, modified
	}
	return out, nil
}

// MaxManifestBytes bounds the size of a manifest.json that Replay reads.
const MaxManifestBytes = 64 << 20

// ReadManifestFile reads and checks a manifest.json. It decodes strictly
// (an unknown field is an error, so a manifest written by a newer binary is
// refused rather than half-understood) and checks what Replay relies on:
// the format, the experiment and date, the spec and its SHA-256, the inputs
// and the outputs. Every problem is a *ManifestError.
func ReadManifestFile(path string) (*Manifest, []byte, error) {
	f, _, err := diskio.OpenRegular(path)
	if err != nil {
		return nil, nil, &ManifestError{File: path, Err: err}
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, nil, &ManifestError{File: path, Err: err}
	}
	if len(raw) > MaxManifestBytes {
		return nil, nil, &ManifestError{File: path, Err: fmt.Errorf("larger than %d bytes", MaxManifestBytes)}
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, nil, &ManifestError{File: path, Err: err}
	}
	return m, raw, nil
}

func DecodeManifest(raw []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a valid manifest: data after the JSON object")
	}
	switch {
	case m.Format != ManifestFormat:
		return nil, fmt.Errorf("format %q, want %q", m.Format, ManifestFormat)
	case m.Experiment == "":
		return nil, errors.New("experiment is empty")
	case !intake.DateRE.MatchString(m.NominalDate):
		return nil, fmt.Errorf("nominal_date %q is not YYYY-MM-DD", m.NominalDate)
	case len(m.Spec) == 0 || string(m.Spec) == "null":
		return nil, errors.New("spec is missing")
	case !expspec.SHA256RE.MatchString(m.SpecSHA256):
		return nil, fmt.Errorf("spec_sha256 %q is not a SHA-256", m.SpecSHA256)
	case len(m.Outputs) == 0:
		return nil, errors.New("outputs is empty")
	}
	for i, in := range m.Inputs {
		if in.Path == "" || strings.ContainsRune(in.Path, 0) {
			return nil, fmt.Errorf("inputs[%d]: empty path", i)
		}
		if !expspec.SHA256RE.MatchString(in.SHA256) {
			return nil, fmt.Errorf("inputs[%d] (%s): sha256 %q is not a SHA-256", i, in.Path, in.SHA256)
		}
	}
	seen := map[string]bool{}
	for i, o := range m.Outputs {
		if !outputNameRE.MatchString(o.Name) || seen[o.Name] {
			return nil, fmt.Errorf("outputs[%d]: %q is not a plain, unique file name", i, o.Name)
		}
		seen[o.Name] = true
		if !expspec.SHA256RE.MatchString(o.SHA256) {
			return nil, fmt.Errorf("outputs[%d] (%s): sha256 %q is not a SHA-256", i, o.Name, o.SHA256)
		}
	}
	return &m, nil
}

func ReplayFileSHA256(path string) (string, []byte, error) {
	b, err := diskio.ReadRegularFile(path)
	if err != nil {
		return "", nil, err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), b, nil
}

func RevisionLabel(b BuildInfo) string {
	s := b.Revision
	if len(s) > 12 {
		s = s[:12]
	}
	if b.Modified {
		s += "+modified"
	}
	return s
}

var outputNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

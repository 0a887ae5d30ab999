package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// Replay: rerun a past analysis from its manifest.json and prove that it
// gives the same bytes, or say precisely which numbers moved and why.
//
// The order is fixed: the manifest is read and checked; every output beside
// it is checked against its recorded SHA-256 (an edited output stops the
// replay: exit 70, naming it); every input it lists is re-hashed (a
// changed, missing or new file stops the replay before any query runs); the
// spec is rebuilt from the manifest's pinned canonical JSON (the spec file
// on disk is not read), with optional template-version pins applied;
// pipeline.Run writes a fresh output folder with the same nominal date and
// ParentRun set to the old run id; and every output the manifest lists is
// compared byte for byte. When bytes differ, the report holds a per-number
// diff of results.csv, the differing quality.json counts and decision
// verdict, and the causes found by comparing the two manifests (inputs,
// templates, spec, build, DuckDB).

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// InputsDir replaces the spec's folder (the folder of the manifest's
	// volatile.spec_file) as the base of the inputs' relative paths.
	InputsDir string
	// Pins override template versions (name → version such as "v3"): this
	// is how an old analysis is tried on a new template.
	Pins map[string]string
	// OutDir is the output root of the rerun; empty means a temporary
	// folder, removed when Replay returns.
	OutDir string
	// Engine, Queries, Logger and Build are passed to pipeline.Run.
	Engine  engine.Engine
	Queries fs.FS
	Logger  *slog.Logger
	Build   publish.BuildInfo
	// MaxDiffs bounds the differing numbers listed; 0 means 200.
	MaxDiffs int
	// Host is the host configuration a private run's replay needs: its
	// restricted record (the inputs) and the ledger its rerun is charged to.
	Host ledgers.Host
}

// Replay reruns the analysis recorded in the manifest at manifestPath and
// compares every output byte for byte. It returns the report and, when an
// output differs, a *ReplayMismatchError. Errors before the rerun: a
// *publish.ManifestError (bad manifest), a *ReplayInputError (inputs
// changed), a *expspec.SpecError (a pin the spec cannot use), or whatever
// pipeline.Run returns.
func Replay(ctx context.Context, manifestPath string, opts ReplayOptions) (*ReplayReport, error) {
	if err := opts.Engine.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", expspec.ErrUsage, err)
	}
	old, err := readReplayedManifest(manifestPath, opts.Host)
	if err != nil {
		return nil, err
	}
	oldRun := manifestRunID(old)
	base, specName, err := locateInputs(manifestPath, old, opts.InputsDir)
	if err != nil {
		return nil, err
	}
	spec, notes, err := rebuildSpec(manifestPath, old, filepath.Join(base, specName))
	if err != nil {
		return nil, err
	}
	pinned, err := applyReplayPins(spec, old, opts.Pins)
	if err != nil {
		return nil, err
	}
	date := replayDate(old)
	if err := checkInputs(ctx, manifestPath, oldRun, base, old, spec, date); err != nil {
		return nil, err
	}
	outRoot, removeOutRoot, err := rerunRoot(manifestPath, old, spec, opts)
	if err != nil {
		return nil, err
	}
	defer removeOutRoot()
	// The replayed run's own timeseries.csv holds the earlier nights its
	// series read (nil when it has none; its bytes were checked above).
	seriesCSV, _ := diskio.ReadRegularFile(filepath.Join(filepath.Dir(manifestPath), "timeseries.csv"))
	newDir, newM, err := rerun(ctx, spec, old, outRoot, date, oldRun, seriesCSV, opts)
	if err != nil {
		return nil, err
	}

	rep := &ReplayReport{ManifestPath: manifestPath, Old: old, New: newM, Pinned: pinned, Notes: notes}
	if opts.OutDir != "" {
		rep.NewDir = newDir
	}
	compareOutputs(rep, filepath.Dir(manifestPath), newDir, maxDiffsOf(opts))
	if old.Privacy.Enabled {
		maskPrivateValues(rep)
	}
	if rep.Identical() {
		return rep, nil
	}
	rep.Causes = replayCauses(old, newM, pinned)
	return rep, &ReplayMismatchError{Report: rep}
}

// readReplayedManifest reads the manifest at manifestPath, checks the
// outputs beside it against their recorded SHA-256 and, for a private
// release, returns the restricted record's manifest, which lists the inputs.
func readReplayedManifest(manifestPath string, host ledgers.Host) (*publish.Manifest, error) {
	old, _, err := publish.ReadManifestFile(manifestPath)
	if err != nil {
		return nil, err
	}
	// The run's files first: an edited output would otherwise be "reproduced"
	// from the manifest's record, and the edit reported as identical.
	if _, err := publish.VerifyOutputs(old, manifestPath); err != nil {
		return nil, err
	}
	if old.Privacy.Enabled {
		// A private release publishes no inputs: they are in its
		// restricted record, which only the host can read.
		if old, err = restrictedManifest(manifestPath, old, host); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// manifestRunID is the run id a manifest records, or "(unknown)".
func manifestRunID(m *publish.Manifest) string {
	if m.Volatile != nil && m.Volatile.RunID != "" {
		return m.Volatile.RunID
	}
	return "(unknown)"
}

// locateInputs returns the folder the manifest's input paths are relative
// to (the spec's folder, unless inputsDir overrides it) and the spec's file
// name there.
func locateInputs(manifestPath string, old *publish.Manifest, inputsDir string) (base, specName string, err error) {
	specName = "spec.yaml"
	base = inputsDir
	if old.Volatile != nil && old.Volatile.SpecFile != "" {
		if n := filepath.Base(old.Volatile.SpecFile); n != "." && n != string(filepath.Separator) {
			specName = n
		}
		if base == "" {
			base = filepath.Dir(old.Volatile.SpecFile)
		}
	}
	if base == "" {
		return "", "", &publish.ManifestError{File: manifestPath, Err: errors.New("volatile.spec_file is not recorded, so the inputs cannot be found; pass --inputs-dir (the folder the input paths are relative to)")}
	}
	return base, specName, nil
}

// rebuildSpec rebuilds the run's spec from the manifest's pinned JSON,
// checks that it names the manifest's experiment, and returns a note when
// this binary resolves it to another hash.
func rebuildSpec(manifestPath string, old *publish.Manifest, specPath string) (*expspec.Spec, []string, error) {
	spec, err := SpecFromManifest(old, specPath)
	if err != nil {
		var se *expspec.SpecError
		if errors.As(err, &se) {
			return nil, nil, err
		}
		return nil, nil, &publish.ManifestError{File: manifestPath, Err: err}
	}
	if spec.Experiment != old.Experiment {
		return nil, nil, &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("experiment %q, but its spec says %q", old.Experiment, spec.Experiment)}
	}
	var notes []string
	if _, h, err := spec.Canonical(); err == nil && h != old.SpecSHA256 {
		notes = append(notes, fmt.Sprintf("this binary resolves the pinned spec to sha256 %s, not %s (a default changed in the code)", h, old.SpecSHA256))
	}
	return spec, notes, nil
}

// applyReplayPins applies the --pin overrides to the rebuilt spec, which a
// private release refuses.
func applyReplayPins(spec *expspec.Spec, old *publish.Manifest, pins map[string]string) ([]string, error) {
	if old.Privacy.Enabled && len(pins) > 0 {
		// Other templates mean other noise streams: a pinned rerun would be
		// a new release, published outside the experiment's ledger.
		return nil, fmt.Errorf("%w: --pin on a private run would publish a new noisy release outside the privacy ledger; pin the versions in the spec and run it (its data source's ledger charges it)", expspec.ErrUsage)
	}
	return applyPins(spec, pins)
}

// rerunRoot returns the output root of the rerun and a function that
// removes it when it is a scratch folder; an --out that would replace the
// run being replayed is refused.
func rerunRoot(manifestPath string, old *publish.Manifest, spec *expspec.Spec, opts ReplayOptions) (string, func(), error) {
	if opts.OutDir == "" {
		// The rerun goes to a scratch folder under --temp-dir when one is
		// given (where the operator wants scratch data), else $TMPDIR.
		tmp, err := os.MkdirTemp(opts.Engine.TempDir, "verity-replay-")
		if err != nil {
			return "", nil, &diskio.TransientError{Err: fmt.Errorf("replay: temporary folder: %w", err)}
		}
		return tmp, func() { os.RemoveAll(tmp) }, nil
	}
	if replaySameDir(filepath.Join(opts.OutDir, spec.OutputName(), old.NominalDate), filepath.Dir(manifestPath)) {
		return "", nil, fmt.Errorf("%w: --out %s would replace the run being replayed; choose another folder", expspec.ErrUsage, opts.OutDir)
	}
	return opts.OutDir, func() {}, nil
}

// rerun runs the rebuilt spec into outRoot as a child of the old run, with
// its baseline and criteria history, and returns the output folder and the
// manifest the rerun committed.
func rerun(ctx context.Context, spec *expspec.Spec, old *publish.Manifest, outRoot, date, oldRun string, seriesCSV []byte, opts ReplayOptions) (string, *publish.Manifest, error) {
	partners, err := partnersOf(old, spec.Path())
	if err != nil {
		return "", nil, err
	}
	outcome, err := pipeline.Run(ctx, spec, pipeline.Options{
		// The interaction partners' specs, as the manifest pinned them.
		Partners:        partners,
		OutDir:          outRoot,
		Date:            date,
		Engine:          opts.Engine,
		Queries:         opts.Queries,
		Logger:          opts.Logger,
		Build:           opts.Build,
		ParentRun:       oldRun,
		Baseline:        old.Baseline,
		BaselinePinned:  true,
		CriteriaHistory: replayCriteriaHistory(old),
		// The earlier nights the series read, rebuilt from the replayed
		// run's timeseries.csv, each by its recorded hash.
		SeriesPinned:  true,
		SeriesHistory: old.SeriesHistory,
		SeriesCSV:     seriesCSV,
		Host:          opts.Host,
	})
	// A blocking quality gate still commits the outputs: compare them.
	var gate *analysis.GateError
	if err != nil && !(errors.As(err, &gate) && outcome != nil) {
		return "", nil, err
	}
	newM, _, err := publish.ReadManifestFile(filepath.Join(outcome.Dir, "manifest.json"))
	if err != nil {
		return "", nil, fmt.Errorf("replay: read the rerun's manifest: %w", err)
	}
	return outcome.Dir, newM, nil
}

// maxDiffsOf is the bound on listed differences: opts.MaxDiffs, else 200.
func maxDiffsOf(opts ReplayOptions) int {
	if opts.MaxDiffs <= 0 {
		return 200
	}
	return opts.MaxDiffs
}

// maskPrivateValues hides the values of a private release's differing
// numbers and leaves their names. The same streams add the same noise, so
// a difference between two noisy numbers would be the exact difference of
// the true ones: name what moved, never the values.
func maskPrivateValues(rep *ReplayReport) {
	for i := range rep.Cells {
		rep.Cells[i].Old, rep.Cells[i].New = "(private)", "(private)"
	}
	for _, d := range [][]ValueDiff{rep.Quality, rep.Decision} {
		for i := range d {
			d[i].Old, d[i].New = "(private)", "(private)"
		}
	}
}

// restrictedManifest returns the exact manifest a private release keeps in
// its restricted record (inputs, input digest, rendered SQL, timings),
// after checking that it describes the same release.
func restrictedManifest(manifestPath string, pub *publish.Manifest, host ledgers.Host) (*publish.Manifest, error) {
	root := host.RestrictedRoot()
	if root == "" {
		return nil, &ledgers.HostError{Err: errors.New("replaying a private release needs the host's restricted area (--state-dir or --restricted-dir): its inputs are recorded only there")}
	}
	path := filepath.Join(ledgers.RestrictedDir(root, pub.Experiment, pub.NominalDate, pub.Privacy.ReleaseDigest), "manifest.json")
	m, _, err := publish.ReadManifestFile(path)
	if err != nil {
		return nil, err
	}
	if m.Privacy.ReleaseDigest != pub.Privacy.ReleaseDigest || m.SpecSHA256 != pub.SpecSHA256 {
		return nil, &publish.ManifestError{File: path, Err: fmt.Errorf("the restricted record does not describe the release of %s", manifestPath)}
	}
	return m, nil
}

// partnersOf rebuilds the interaction partners' specs the manifest pinned,
// each checked against its recorded SHA-256.
func partnersOf(m *publish.Manifest, specPath string) (map[string]*expspec.Spec, error) {
	if m.Interactions == nil {
		return nil, nil
	}
	out := map[string]*expspec.Spec{}
	for _, p := range m.Interactions.Partners {
		if p.Spec == nil {
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, p.Spec); err != nil {
			return nil, &publish.ManifestError{File: specPath, Err: fmt.Errorf("interactions partner %s: spec is not valid JSON: %w", p.Name, err)}
		}
		if got := diskio.SHA256Hex(compact.Bytes()); got != p.SpecSHA256 {
			return nil, &publish.ManifestError{File: specPath, Err: fmt.Errorf("interactions partner %s: spec does not match its spec_sha256 (recorded %s, the spec hashes to %s): the manifest was edited", p.Name, p.SpecSHA256, got)}
		}
		s, err := expspec.DecodePinnedSpec(compact.Bytes(), specPath, nil)
		if err != nil {
			return nil, fmt.Errorf("interactions partner %s: %w", p.Name, err)
		}
		out[p.Name] = s
	}
	return out, nil
}

// SpecFromManifest rebuilds the spec a run used from the manifest's
// canonical spec JSON: it checks the JSON against spec_sha256, decodes it
// strictly and validates it. specPath names the spec for error messages and
// is the base of its relative input globs (the file is not read).
func SpecFromManifest(m *publish.Manifest, specPath string) (*expspec.Spec, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, m.Spec); err != nil {
		return nil, fmt.Errorf("spec is not valid JSON: %w", err)
	}
	if got := diskio.SHA256Hex(compact.Bytes()); got != m.SpecSHA256 {
		return nil, fmt.Errorf("spec does not match spec_sha256 (recorded %s, the spec hashes to %s): the manifest was edited", m.SpecSHA256, got)
	}
	return expspec.DecodePinnedSpec(compact.Bytes(), specPath, m.MetricDefinitions)
}

// applyPins overrides template versions and revalidates the spec.
func applyPins(spec *expspec.Spec, pins map[string]string) ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(pins)) {
		v := pins[name]
		if metric, ok := strings.CutPrefix(name, "metric:"); ok {
			if !expspec.VersionRE.MatchString(v) {
				return nil, fmt.Errorf("%w: --pin %s=%s: want a version such as v2", expspec.ErrUsage, name, v)
			}
			if err := spec.PinMetric(metric, v); err != nil {
				return nil, fmt.Errorf("%w: --pin %s=%s: %v", expspec.ErrUsage, name, v, err)
			}
			out = append(out, name+"="+v)
			continue
		}
		if !slices.Contains(expspec.TemplateNames, name) {
			return nil, fmt.Errorf("%w: --pin %s=%s: unknown template; want one of %s", expspec.ErrUsage, name, v, strings.Join(expspec.TemplateNames, ", "))
		}
		if !expspec.VersionRE.MatchString(v) {
			return nil, fmt.Errorf("%w: --pin %s=%s: want a version such as v2", expspec.ErrUsage, name, v)
		}
		if spec.Templates == nil {
			spec.Templates = map[string]string{}
		}
		spec.Templates[name] = v
		out = append(out, name+"="+v)
	}
	if len(out) > 0 {
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("with --pin %s: %w", strings.Join(out, " --pin "), err)
		}
	}
	return out, nil
}

// replayDate is the Options.Date that reproduces the old run: its nominal
// date when that was given explicitly (the window was cut at it and later
// partitions were not read), else none.
func replayDate(m *publish.Manifest) string {
	if m.DateFromFlag {
		return m.NominalDate
	}
	return ""
}

func replaySameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == ab
}

// replayCriteriaHistory is the history a replay decides with: the one
// the run recorded (none, for a run recorded before criteria were).
func replayCriteriaHistory(old *publish.Manifest) *analysis.CriteriaHistory {
	if old.CriteriaHistory != nil {
		return old.CriteriaHistory
	}
	return &analysis.CriteriaHistory{Segments: []analysis.CriteriaSegment{}}
}

// ReplayExitCode maps an error of Replay or CompareAgainst to an exit
// code; pipeline.ExitCode knows every replay error type.
func ReplayExitCode(err error) int { return pipeline.ExitCode(err) }

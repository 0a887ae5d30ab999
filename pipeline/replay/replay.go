package replay

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/parquet-go/parquet-go"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
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

// ReplayExitCode maps an error of Replay or CompareAgainst to an exit
// code; pipeline.ExitCode knows every replay error type.
func ReplayExitCode(err error) int { return pipeline.ExitCode(err) }

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

// ReplayReport is the outcome of a replay that ran.
type ReplayReport struct {
	ManifestPath string
	Old, New     *publish.Manifest
	// NewDir is the rerun's output folder, empty when it was temporary.
	NewDir string
	// Pinned lists the applied --pin overrides as name=version, sorted.
	Pinned  []string
	Outputs []OutputComparison
	// Extra are outputs the rerun wrote that the old manifest does not list.
	Extra []string
	// Cells are the differing results.csv numbers, sorted by cohort, metric,
	// variant and column order, at most MaxDiffs of CellsTotal.
	Cells      []CellDiff
	CellsTotal int
	// RowsOnlyOld and RowsOnlyNew are result rows present on one side only.
	RowsOnlyOld, RowsOnlyNew []string
	// Quality and Decision hold the differing leaves of quality.json and
	// decisions.json (paths such as counts.event_attributed or verdict).
	Quality, Decision           []ValueDiff
	QualityTotal, DecisionTotal int
	Causes                      []string
	Notes                       []string
}

// OutputComparison is one output of the old run against the rerun.
type OutputComparison struct {
	Name      string
	OldSHA256 string
	NewSHA256 string // empty when the rerun did not write it
	Identical bool
}

// CellDiff is one differing results.csv number.
type CellDiff struct {
	Cohort, Metric, Variant, Column string
	Old, New                        string
}

// ValueDiff is one differing JSON leaf.
type ValueDiff struct {
	Path, Old, New string
}

// Identical reports whether every output of the old run was reproduced
// byte for byte.
func (r *ReplayReport) Identical() bool {
	for _, o := range r.Outputs {
		if !o.Identical {
			return false
		}
	}
	return true
}

func (r *ReplayReport) oldRunID() string {
	if r.Old.Volatile != nil && r.Old.Volatile.RunID != "" {
		return r.Old.Volatile.RunID
	}
	return "(unknown)"
}

// Summary is the one-line outcome.
func (r *ReplayReport) Summary() string {
	if r.Identical() {
		s := fmt.Sprintf("replay identical: %d outputs byte-identical to run %s (%s %s)", len(r.Outputs), r.oldRunID(), r.Old.Experiment, r.Old.NominalDate)
		if len(r.Extra) > 0 {
			s += fmt.Sprintf("; the rerun also wrote %s, which the old run did not", strings.Join(r.Extra, ", "))
		}
		return s
	}
	n := 0
	for _, o := range r.Outputs {
		if !o.Identical {
			n++
		}
	}
	return fmt.Sprintf("replay differs: %d of %d outputs of run %s (%s %s) changed, %d numbers in results.csv", n, len(r.Outputs), r.oldRunID(), r.Old.Experiment, r.Old.NominalDate, r.CellsTotal)
}

// ReplayMismatchError is returned by Replay when an output differs. The
// report says what and why. It wraps publish.ErrReplayMismatch (exit code 70).
type ReplayMismatchError struct{ Report *ReplayReport }

func (e *ReplayMismatchError) Error() string {
	msg := e.Report.Summary()
	if len(e.Report.Causes) > 0 {
		msg += "; causes: " + strings.Join(e.Report.Causes, "; ")
	}
	return msg
}

func (e *ReplayMismatchError) Unwrap() error { return publish.ErrReplayMismatch }

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
		if old, err = restrictedManifest(manifestPath, old, opts.Host); err != nil {
			return nil, err
		}
	}
	oldRun := "(unknown)"
	if old.Volatile != nil && old.Volatile.RunID != "" {
		oldRun = old.Volatile.RunID
	}

	// Where the inputs are: the spec's folder, unless overridden.
	specName := "spec.yaml"
	base := opts.InputsDir
	if old.Volatile != nil && old.Volatile.SpecFile != "" {
		if n := filepath.Base(old.Volatile.SpecFile); n != "." && n != string(filepath.Separator) {
			specName = n
		}
		if base == "" {
			base = filepath.Dir(old.Volatile.SpecFile)
		}
	}
	if base == "" {
		return nil, &publish.ManifestError{File: manifestPath, Err: errors.New("volatile.spec_file is not recorded, so the inputs cannot be found; pass --inputs-dir (the folder the input paths are relative to)")}
	}

	spec, err := SpecFromManifest(old, filepath.Join(base, specName))
	if err != nil {
		var se *expspec.SpecError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, &publish.ManifestError{File: manifestPath, Err: err}
	}
	if spec.Experiment != old.Experiment {
		return nil, &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("experiment %q, but its spec says %q", old.Experiment, spec.Experiment)}
	}
	var notes []string
	if _, h, err := spec.Canonical(); err == nil && h != old.SpecSHA256 {
		notes = append(notes, fmt.Sprintf("this binary resolves the pinned spec to sha256 %s, not %s (a default changed in the code)", h, old.SpecSHA256))
	}
	if old.Privacy.Enabled && len(opts.Pins) > 0 {
		// Other templates mean other noise streams: a pinned rerun would be
		// a new release, published outside the experiment's ledger.
		return nil, fmt.Errorf("%w: --pin on a private run would publish a new noisy release outside the privacy ledger; pin the versions in the spec and run it (its data source's ledger charges it)", expspec.ErrUsage)
	}
	pinned, err := applyPins(spec, opts.Pins)
	if err != nil {
		return nil, err
	}

	date := replayDate(old)
	if err := checkInputs(ctx, manifestPath, oldRun, base, old, spec, date); err != nil {
		return nil, err
	}

	outRoot := opts.OutDir
	if outRoot == "" {
		// The rerun goes to a scratch folder under --temp-dir when one is
		// given (where the operator wants scratch data), else $TMPDIR.
		tmp, err := os.MkdirTemp(opts.Engine.TempDir, "verity-replay-")
		if err != nil {
			return nil, &diskio.TransientError{Err: fmt.Errorf("replay: temporary folder: %w", err)}
		}
		defer os.RemoveAll(tmp)
		outRoot = tmp
	} else if replaySameDir(filepath.Join(outRoot, spec.OutputName(), old.NominalDate), filepath.Dir(manifestPath)) {
		return nil, fmt.Errorf("%w: --out %s would replace the run being replayed; choose another folder", expspec.ErrUsage, outRoot)
	}

	outcome, err := pipeline.Run(ctx, spec, pipeline.Options{
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
		Host:            opts.Host,
	})
	// A blocking quality gate still commits the outputs: compare them.
	var gate *analysis.GateError
	if err != nil && !(errors.As(err, &gate) && outcome != nil) {
		return nil, err
	}
	newM, _, err := publish.ReadManifestFile(filepath.Join(outcome.Dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("replay: read the rerun's manifest: %w", err)
	}

	rep := &ReplayReport{ManifestPath: manifestPath, Old: old, New: newM, Pinned: pinned, Notes: notes}
	if opts.OutDir != "" {
		rep.NewDir = outcome.Dir
	}
	maxDiffs := opts.MaxDiffs
	if maxDiffs <= 0 {
		maxDiffs = 200
	}
	compareOutputs(rep, filepath.Dir(manifestPath), outcome.Dir, maxDiffs)
	if old.Privacy.Enabled {
		// The same streams add the same noise, so a difference between two
		// noisy numbers would be the exact difference of the true ones:
		// name what moved, never the values.
		for i := range rep.Cells {
			rep.Cells[i].Old, rep.Cells[i].New = "(private)", "(private)"
		}
		for _, d := range [][]ValueDiff{rep.Quality, rep.Decision} {
			for i := range d {
				d[i].Old, d[i].New = "(private)", "(private)"
			}
		}
	}
	if rep.Identical() {
		return rep, nil
	}
	rep.Causes = replayCauses(old, newM, pinned)
	return rep, &ReplayMismatchError{Report: rep}
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

// replayDate is the Options.Date that reproduces the old run: its nominal
// date when that was given explicitly (the window was cut at it and later
// partitions were not read), else none.
func replayDate(m *publish.Manifest) string {
	if m.DateFromFlag {
		return m.NominalDate
	}
	return ""
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

// compareOutputs fills the output comparison and, for differing outputs,
// the detailed diffs. oldDir holds the old run's files, newDir the rerun's.
func compareOutputs(rep *ReplayReport, oldDir, newDir string, maxDiffs int) {
	oldFiles := map[string][]byte{}
	newFiles := map[string][]byte{}
	listed := map[string]bool{}
	for _, o := range rep.Old.Outputs {
		listed[o.Name] = true
		c := OutputComparison{Name: o.Name, OldSHA256: o.SHA256}
		if h, b, err := publish.ReplayFileSHA256(filepath.Join(newDir, o.Name)); err == nil {
			c.NewSHA256 = h
			newFiles[o.Name] = b
		}
		c.Identical = c.NewSHA256 == o.SHA256
		rep.Outputs = append(rep.Outputs, c)
		if c.Identical {
			continue
		}
		h, b, err := publish.ReplayFileSHA256(filepath.Join(oldDir, o.Name))
		switch {
		case err != nil:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s of the old run is not readable beside its manifest (%v); its numbers cannot be diffed", o.Name, err))
		case h != o.SHA256:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s beside the manifest has sha256 %s, not the recorded %s: the old run folder was modified; its numbers are not diffed", o.Name, h, o.SHA256))
		default:
			oldFiles[o.Name] = b
		}
	}
	for _, o := range rep.New.Outputs {
		if !listed[o.Name] {
			rep.Extra = append(rep.Extra, o.Name)
		}
	}
	sort.Strings(rep.Extra)

	if o, n := oldFiles["results.csv"], newFiles["results.csv"]; o != nil && n != nil {
		if err := diffResults(rep, o, n, maxDiffs); err != nil {
			rep.Notes = append(rep.Notes, "results.csv could not be diffed: "+err.Error())
		}
	}
	if o, n := oldFiles["quality.json"], newFiles["quality.json"]; o != nil && n != nil {
		d, err := diffJSON(o, n)
		if err != nil {
			rep.Notes = append(rep.Notes, "quality.json could not be diffed: "+err.Error())
		}
		rep.QualityTotal = len(d)
		rep.Quality = replayBoundDiffs(d, maxDiffs)
	}
	if o, n := oldFiles["decisions.json"], newFiles["decisions.json"]; o != nil && n != nil {
		d, err := diffJSON(o, n)
		if err != nil {
			rep.Notes = append(rep.Notes, "decisions.json could not be diffed: "+err.Error())
		}
		// The verdict and its rule first, then the evidence.
		sort.SliceStable(d, func(i, j int) bool { return replayDecisionRank(d[i].Path) < replayDecisionRank(d[j].Path) })
		rep.DecisionTotal = len(d)
		rep.Decision = replayBoundDiffs(d, maxDiffs)
	}
}

func replayDecisionRank(path string) int {
	switch path {
	case "verdict":
		return 0
	case "rule":
		return 1
	case "reason":
		return 2
	}
	return 3
}

func replayBoundDiffs(d []ValueDiff, n int) []ValueDiff {
	if len(d) > n {
		return d[:n]
	}
	return d
}

// resultKeyColumns identify a results.csv row.
var resultKeyColumns = []string{"cohort", "metric", "variant"}

type csvTable struct {
	header []string
	col    map[string]int
	rows   map[string][]string // key -> record
	keys   []string            // in file order
	parts  map[string][3]string
}

func readResultsCSV(b []byte) (*csvTable, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 0
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("empty file")
	}
	t := &csvTable{header: recs[0], col: map[string]int{}, rows: map[string][]string{}, parts: map[string][3]string{}}
	for i, h := range t.header {
		t.col[h] = i
	}
	for _, k := range resultKeyColumns {
		if _, ok := t.col[k]; !ok {
			return nil, fmt.Errorf("no %s column", k)
		}
	}
	for i, rec := range recs[1:] {
		p := [3]string{rec[t.col["cohort"]], rec[t.col["metric"]], rec[t.col["variant"]]}
		key := p[0] + "\x00" + p[1] + "\x00" + p[2]
		if _, dup := t.rows[key]; dup {
			return nil, fmt.Errorf("line %d: row %s / %s / %s appears twice", i+2, p[0], p[1], p[2])
		}
		t.rows[key] = rec
		t.parts[key] = p
		t.keys = append(t.keys, key)
	}
	return t, nil
}

// diffResults compares two results.csv files cell by cell.
func diffResults(rep *ReplayReport, oldB, newB []byte, maxDiffs int) error {
	o, err := readResultsCSV(oldB)
	if err != nil {
		return fmt.Errorf("old: %w", err)
	}
	n, err := readResultsCSV(newB)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	var cols []string
	for _, h := range o.header {
		if _, ok := n.col[h]; ok && !slices.Contains(resultKeyColumns, h) {
			cols = append(cols, h)
		}
	}
	for _, h := range o.header {
		if _, ok := n.col[h]; !ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("results.csv column %s is gone in the rerun", h))
		}
	}
	for _, h := range n.header {
		if _, ok := o.col[h]; !ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("results.csv column %s is new in the rerun", h))
		}
	}
	keys := append([]string{}, o.keys...)
	for _, k := range n.keys {
		if _, ok := o.rows[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	label := func(p [3]string) string { return p[0] + " / " + p[1] + " / " + p[2] }
	for _, k := range keys {
		or, inOld := o.rows[k]
		nr, inNew := n.rows[k]
		switch {
		case !inNew:
			rep.RowsOnlyOld = append(rep.RowsOnlyOld, label(o.parts[k]))
			continue
		case !inOld:
			rep.RowsOnlyNew = append(rep.RowsOnlyNew, label(n.parts[k]))
			continue
		}
		p := o.parts[k]
		for _, c := range cols {
			ov, nv := or[o.col[c]], nr[n.col[c]]
			if ov == nv {
				continue
			}
			rep.CellsTotal++
			if len(rep.Cells) < maxDiffs {
				rep.Cells = append(rep.Cells, CellDiff{Cohort: p[0], Metric: p[1], Variant: p[2], Column: c, Old: ov, New: nv})
			}
		}
	}
	return nil
}

// diffJSON flattens two JSON documents to their leaves and returns the
// leaves that differ, sorted by path. Array elements that are objects with
// a "name" (or "cohort") field are addressed by it, so that an inserted
// check does not shift every later one.
func diffJSON(oldB, newB []byte) ([]ValueDiff, error) {
	var ov, nv any
	if err := json.Unmarshal(oldB, &ov); err != nil {
		return nil, fmt.Errorf("old: %w", err)
	}
	if err := json.Unmarshal(newB, &nv); err != nil {
		return nil, fmt.Errorf("new: %w", err)
	}
	o, n := map[string]string{}, map[string]string{}
	analysis.FlattenJSON("", ov, o)
	analysis.FlattenJSON("", nv, n)
	paths := map[string]bool{}
	for p := range o {
		paths[p] = true
	}
	for p := range n {
		paths[p] = true
	}
	var out []ValueDiff
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		a, inO := o[p]
		b, inN := n[p]
		if inO && inN && a == b {
			continue
		}
		if !inO {
			a = "(absent)"
		}
		if !inN {
			b = "(absent)"
		}
		out = append(out, ValueDiff{Path: p, Old: a, New: b})
	}
	return out, nil
}

// replayCauses compares the old manifest with the rerun's and names every
// recorded difference that can change a number.
func replayCauses(old, cur *publish.Manifest, pinned []string) []string {
	var causes []string
	short := func(h string) string {
		if len(h) > 12 {
			return h[:12]
		}
		return h
	}

	// Inputs.
	if old.InputDigest != cur.InputDigest {
		o, n := map[string]intake.InputFile{}, map[string]intake.InputFile{}
		for _, f := range old.Inputs {
			o[f.Role+" "+f.Path] = f
		}
		for _, f := range cur.Inputs {
			n[f.Role+" "+f.Path] = f
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(o)) {
			nf, ok := n[k]
			switch {
			case !ok:
				parts = append(parts, k+" removed")
			case nf.SHA256 != o[k].SHA256:
				parts = append(parts, fmt.Sprintf("%s sha256 %s -> %s", k, short(o[k].SHA256), short(nf.SHA256)))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n)) {
			if _, ok := o[k]; !ok {
				parts = append(parts, k+" added")
			}
		}
		causes = append(causes, fmt.Sprintf("input change: digest %s -> %s (%s)", short(old.InputDigest), short(cur.InputDigest), strings.Join(parts, ", ")))
	}

	// Templates.
	ot, nt := map[string]engine.TemplateRecord{}, map[string]engine.TemplateRecord{}
	var names []string
	for _, t := range old.Templates {
		ot[t.Name] = t
		names = append(names, t.Name)
	}
	for _, t := range cur.Templates {
		nt[t.Name] = t
		if _, ok := ot[t.Name]; !ok {
			names = append(names, t.Name)
		}
	}
	pinnedSet := map[string]bool{}
	for _, p := range pinned {
		name, _, _ := strings.Cut(p, "=")
		pinnedSet[name] = true
	}
	for _, name := range names {
		o, inO := ot[name]
		n, inN := nt[name]
		suffix := ""
		if pinnedSet[name] {
			suffix = " (--pin)"
		}
		switch {
		case !inN:
			causes = append(causes, fmt.Sprintf("template %s: %s no longer used", name, o.Version))
		case !inO:
			causes = append(causes, fmt.Sprintf("template %s: %s newly used%s", name, n.Version, suffix))
		case o.Version != n.Version:
			causes = append(causes, fmt.Sprintf("template version %s: %s -> %s (sha256 %s -> %s)%s", name, o.Version, n.Version, short(o.SHA256), short(n.SHA256), suffix))
		case o.SHA256 != n.SHA256:
			causes = append(causes, fmt.Sprintf("template hash %s@%s: sha256 %s -> %s (a released template changed)", name, o.Version, short(o.SHA256), short(n.SHA256)))
		case o.RenderedSHA256 != n.RenderedSHA256:
			causes = append(causes, fmt.Sprintf("template %s@%s: rendered SQL sha256 %s -> %s (the input columns or the renderer changed)", name, o.Version, short(o.RenderedSHA256), short(n.RenderedSHA256)))
		}
	}

	// Metric definitions (a library version pinned with --pin metric:NAME=vN).
	causes = append(causes, expspec.MetricDefinitionCauses(old.MetricDefinitions, cur.MetricDefinitions, pinnedSet)...)

	// Spec.
	if old.SpecSHA256 != cur.SpecSHA256 {
		keys := diffTopLevel(old.Spec, cur.Spec, nil)
		suffix := ""
		if len(pinned) > 0 {
			suffix = " (--pin " + strings.Join(pinned, " --pin ") + ")"
		}
		causes = append(causes, fmt.Sprintf("spec change: sha256 %s -> %s; top-level keys that differ: %s%s", short(old.SpecSHA256), short(cur.SpecSHA256), strings.Join(keys, ", "), suffix))
	}

	// Code.
	if old.Build != nil && cur.Build != nil {
		ob, nb := *old.Build, *cur.Build
		var parts []string
		if ob.Module != nb.Module || ob.Version != nb.Version {
			parts = append(parts, fmt.Sprintf("module %s %s -> %s %s", ob.Module, ob.Version, nb.Module, nb.Version))
		}
		if ob.Revision != nb.Revision || ob.Modified != nb.Modified {
			parts = append(parts, fmt.Sprintf("revision %s -> %s", publish.RevisionLabel(ob), publish.RevisionLabel(nb)))
		}
		if ob.GoVersion != nb.GoVersion {
			parts = append(parts, fmt.Sprintf("Go %s -> %s", ob.GoVersion, nb.GoVersion))
		}
		if ob.GOOS != nb.GOOS || ob.GOARCH != nb.GOARCH {
			parts = append(parts, fmt.Sprintf("platform %s/%s -> %s/%s", ob.GOOS, ob.GOARCH, nb.GOOS, nb.GOARCH))
		}
		if ob.ExecutableSHA256 != nb.ExecutableSHA256 {
			parts = append(parts, fmt.Sprintf("executable sha256 %s -> %s", short(orUnknown(ob.ExecutableSHA256)), short(orUnknown(nb.ExecutableSHA256))))
		}
		if len(parts) > 0 {
			causes = append(causes, "code version: "+strings.Join(parts, ", "))
		}
	}

	// DuckDB.
	if old.DuckDB.Version != cur.DuckDB.Version {
		causes = append(causes, fmt.Sprintf("DuckDB version: %s -> %s", old.DuckDB.Version, cur.DuckDB.Version))
	}
	oset, nset := replaySettingsMap(old.DuckDB.Settings), replaySettingsMap(cur.DuckDB.Settings)
	for _, k := range replayUnionKeys(oset, nset) {
		if oset[k] != nset[k] {
			causes = append(causes, fmt.Sprintf("DuckDB setting %s: %q -> %q", k, oset[k], nset[k]))
		}
	}

	// Other recorded settings (statistics, privacy, and fields added later).
	ob, _ := json.Marshal(old.Stable())
	nb, _ := json.Marshal(cur.Stable())
	handled := []string{"format", "experiment", "nominal_date", "spec", "spec_sha256", "templates", "inputs", "input_digest", "duckdb", "checks", "outputs"}
	var om, nm map[string]json.RawMessage
	_ = json.Unmarshal(ob, &om)
	_ = json.Unmarshal(nb, &nm)
	for _, k := range diffTopLevel(ob, nb, handled) {
		c := fmt.Sprintf("manifest %s differs", k)
		if d, err := diffJSON(replayOrNull(om[k]), replayOrNull(nm[k])); err == nil && len(d) > 0 {
			var parts []string
			for i, v := range d {
				if i == 5 {
					parts = append(parts, fmt.Sprintf("and %d more", len(d)-5))
					break
				}
				parts = append(parts, fmt.Sprintf("%s %s -> %s", v.Path, v.Old, v.New))
			}
			c += ": " + strings.Join(parts, ", ")
		}
		causes = append(causes, c)
	}

	if len(causes) == 0 {
		c := "no recorded cause: spec, templates, inputs, DuckDB and build all match"
		sameExe := old.Build != nil && cur.Build != nil && old.Build.ExecutableSHA256 != "" && old.Build.ExecutableSHA256 == cur.Build.ExecutableSHA256
		if !sameExe && cur.Build != nil && (cur.Build.Revision == "unknown" || cur.Build.Modified || old.Build == nil || old.Build.Modified) {
			c += ", but the build revision is unknown or modified, so a code change is the likely cause"
		} else {
			c += " (non-deterministic output?)"
		}
		causes = append(causes, c)
	}
	return causes
}

func replayOrNull(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func replaySettingsMap(s []engine.Setting) map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

func replayUnionKeys(a, b map[string]string) []string {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return slices.Sorted(maps.Keys(u))
}

// diffTopLevel returns the sorted top-level keys whose values differ
// between two JSON objects, leaving out skip.
func diffTopLevel(a, b []byte, skip []string) []string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{"(unreadable)"}
	}
	all := map[string]bool{}
	for k := range ma {
		all[k] = true
	}
	for k := range mb {
		all[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		if slices.Contains(skip, k) {
			continue
		}
		var ca, cb bytes.Buffer
		va, okA := ma[k]
		vb, okB := mb[k]
		if okA {
			_ = json.Compact(&ca, va)
		}
		if okB {
			_ = json.Compact(&cb, vb)
		}
		if okA != okB || !bytes.Equal(ca.Bytes(), cb.Bytes()) {
			out = append(out, k)
		}
	}
	return out
}

// WriteText writes the report for a person: the outcome, then for a
// difference the outputs, causes, and the bounded, sorted diffs.
func (r *ReplayReport) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintln(&b, r.Summary())
	if r.Identical() {
		_, err := w.Write(b.Bytes())
		return err
	}
	newRun := "(unknown)"
	if r.New.Volatile != nil {
		newRun = r.New.Volatile.RunID
	}
	fmt.Fprintf(&b, "  manifest  %s\n", r.ManifestPath)
	where := "a temporary folder, removed"
	if r.NewDir != "" {
		where = r.NewDir
	}
	fmt.Fprintf(&b, "  rerun     run %s in %s\n", newRun, where)
	if len(r.Pinned) > 0 {
		fmt.Fprintf(&b, "  pinned    %s\n", strings.Join(r.Pinned, " "))
	}

	fmt.Fprintln(&b, "\noutputs")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, o := range r.Outputs {
		state := "identical"
		if !o.Identical {
			state = "differs"
			if o.NewSHA256 == "" {
				state = "not written by the rerun"
			}
		}
		nh := o.NewSHA256
		if nh == "" {
			nh = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Name, state, replayShortHash(o.OldSHA256), replayShortHash(nh))
	}
	tw.Flush()

	fmt.Fprintln(&b, "\ncauses")
	for _, c := range r.Causes {
		fmt.Fprintf(&b, "  - %s\n", c)
	}

	if r.CellsTotal > 0 || len(r.RowsOnlyOld) > 0 || len(r.RowsOnlyNew) > 0 {
		fmt.Fprintf(&b, "\nresults.csv: %d numbers differ", r.CellsTotal)
		if len(r.Cells) < r.CellsTotal {
			fmt.Fprintf(&b, " (the first %d are shown)", len(r.Cells))
		}
		fmt.Fprintln(&b)
		if len(r.Cells) > 0 {
			tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  cohort\tmetric\tvariant\tcolumn\told\tnew")
			for _, c := range r.Cells {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Cohort, c.Metric, c.Variant, c.Column, replayEmptyDash(c.Old), replayEmptyDash(c.New))
			}
			tw.Flush()
		}
		for _, k := range r.RowsOnlyOld {
			fmt.Fprintf(&b, "  row %s: only in the old run\n", k)
		}
		for _, k := range r.RowsOnlyNew {
			fmt.Fprintf(&b, "  row %s: only in the rerun\n", k)
		}
	}
	writeValueDiffs(&b, "quality.json", r.Quality, r.QualityTotal)
	writeValueDiffs(&b, "decisions.json", r.Decision, r.DecisionTotal)
	if len(r.Notes) > 0 {
		fmt.Fprintln(&b, "\nnotes")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeValueDiffs(b *bytes.Buffer, name string, d []ValueDiff, total int) {
	if total == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s: %d values differ", name, total)
	if len(d) < total {
		fmt.Fprintf(b, " (the first %d are shown)", len(d))
	}
	fmt.Fprintln(b)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  field\told\tnew")
	for _, v := range d {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Path, v.Old, v.New)
	}
	tw.Flush()
}

func replayEmptyDash(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

func replayShortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// replayCriteriaHistory is the history a replay decides with: the one
// the run recorded (none, for a run recorded before criteria were).
func replayCriteriaHistory(old *publish.Manifest) *analysis.CriteriaHistory {
	if old.CriteriaHistory != nil {
		return old.CriteriaHistory
	}
	return &analysis.CriteriaHistory{Segments: []analysis.CriteriaSegment{}}
}

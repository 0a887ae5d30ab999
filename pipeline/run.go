package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/report"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// Options configures Run. Validate is called before any I/O.
type Options struct {
	// OutDir is the root of the outputs: a run writes
	// OutDir/<experiment>/<nominal date>/.
	OutDir string
	// Date is the nominal date (YYYY-MM-DD). Empty means the last day of
	// the spec's window.
	Date string
	// Engine holds the DuckDB settings.
	Engine engine.Engine
	// Queries is the template file system; nil means the templates
	// compiled into the binary.
	Queries fs.FS
	// Logger receives structured progress logs; nil discards them.
	Logger *slog.Logger
	// Build identifies the binary, for the manifest.
	Build publish.BuildInfo
	// RunID identifies this run in logs and the manifest; empty means a
	// fresh random id.
	RunID string
	// ParentRun is the run a replay reproduces.
	ParentRun string
	// Baseline and BaselinePinned fix the previous night's figures the
	// volume check compares with (a replay passes the manifest's);
	// otherwise they are read from the previous night's run in OutDir.
	Baseline       *analysis.Baseline
	BaselinePinned bool
	// CriteriaHistory fixes the earlier nights' success criteria (a replay
	// passes the manifest's); nil means they are read from OutDir.
	CriteriaHistory *analysis.CriteriaHistory
	// SeriesPinned fixes the earlier nights of the time series: a replay
	// passes the manifest's SeriesHistory and the replayed run's
	// timeseries.csv (nil when it has none); otherwise they are read
	// from OutDir.
	SeriesPinned  bool
	SeriesHistory *analysis.SeriesHistory
	SeriesCSV     []byte
	// Partners are interaction partners' specs by name, for those not in
	// the run (a replay passes the specs its manifest pinned).
	Partners map[string]*expspec.Spec
	// Host is the host configuration of private runs: the state folder
	// with the privacy ledgers, the restricted area, the test-key switch.
	Host ledgers.Host
	// Incremental keeps a state per group in Host.StateDir/incremental and
	// reads only the partitions new since the stored night when the state
	// accounts for everything else exactly (pipeline/incremental.go);
	// otherwise the night runs in full and says why. Replays never set it.
	Incremental bool
	// noHash skips hashing the inputs (a merge takes their identity from
	// the shards' partials).
	noHash bool
	// now is the clock for the volatile timestamps (tests may set it).
	now func() time.Time
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.OutDir == "" {
		return fmt.Errorf("%w: an output folder is required (--out)", expspec.ErrUsage)
	}
	if o.Date != "" {
		if _, err := time.Parse("2006-01-02", o.Date); err != nil || !intake.DateRE.MatchString(o.Date) {
			return fmt.Errorf("%w: --date wants YYYY-MM-DD, got %q", expspec.ErrUsage, o.Date)
		}
	}
	if err := o.Engine.Validate(); err != nil {
		return fmt.Errorf("%w: %v", expspec.ErrUsage, err)
	}
	// The restricted area holds exact data: never inside the release.
	if r := o.Host.RestrictedRoot(); r != "" {
		out, err1 := filepath.Abs(o.OutDir)
		res, err2 := filepath.Abs(r)
		if err1 == nil && err2 == nil {
			if ro, err := filepath.EvalSymlinks(out); err == nil {
				out = ro
			}
			if rr, err := filepath.EvalSymlinks(res); err == nil {
				res = rr
			}
			if ledgers.Within(out, res) || ledgers.Within(res, out) {
				return fmt.Errorf("%w: the restricted area %s and the output folder %s overlap; the restricted area holds exact data and must stay out of every release", expspec.ErrUsage, r, o.OutDir)
			}
		}
	}
	return nil
}

// Outcome describes one finished experiment run.
type Outcome struct {
	Experiment string
	Dir        string // the committed output folder
	Rows       int    // result rows written
	Verdict    string // from decisions.json
	Quality    engine.Quality
	Blocked    []string // blocking quality checks that failed (the run exits 65)
	// Mode is, with Options.Incremental, "incremental" or "full: <why>".
	Mode string
}

// Result is one spec's result in RunAll: an Outcome, an error, or the
// reason it was skipped (an experiment whose window has not started by the
// nominal date).
type Result struct {
	SpecFile   string
	Experiment string
	Name       string // the spec's output name (name:, default the experiment)
	Outcome    *Outcome
	Err        error
	Skipped    string
	// Warnings are findings that do not fail the spec (CheckData).
	Warnings []string
}

// Label names the result in summary lines: its output name, with the
// experiment when the two differ.
func (r Result) Label() string {
	if r.Name == "" || r.Name == r.Experiment {
		return r.Experiment
	}
	return r.Name + " (experiment " + r.Experiment + ")"
}

// Run analyses one spec end to end and commits its outputs. Any error is
// returned before the output folder is renamed into place, so a failed run
// never leaves a folder that looks complete. A blocking quality gate
// commits the outputs (so the on-call engineer can read why) and returns a
// *GateError.
func Run(ctx context.Context, spec *expspec.Spec, opts Options) (*Outcome, error) {
	res := RunAll(ctx, []*expspec.Spec{spec}, opts)[0]
	if res.Skipped != "" {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "window", Err: errors.New(res.Skipped)}
	}
	return res.Outcome, res.Err
}

// job is one spec's run as it moves through the phases.
type job struct {
	spec     *expspec.Spec
	log      *slog.Logger
	mode     string // incremental or full (with the reason), when asked for
	date     string
	key      privacy.Key
	specJSON []byte
	specHash string
	traces   []intake.InputFile
	events   []intake.InputFile
	phases   []engine.Phase
	started  time.Time

	// filled by the shared SQL pass
	cells   []engine.Cell
	quality engine.Quality
	missing []analysis.MissingEvent // metric events with no row in the window (eventnames.go)
	// eventNames counts the event names of a shard's rows (RunShard).
	eventNames map[string]int64
	recs       []engine.TemplateRecord
	duck       publish.DuckDBInfo
	execSet    []engine.Setting
	scan       engine.Scan
	err        error
	skipped    string
	outcome    *Outcome
	groupKey   string
	lock       *diskio.FolderLock // held from prepare to the end of RunAll
	source     ledgers.Source     // a private spec's data source (its ledger)
	// partners are the spec's interaction partners (interactions.go) and
	// ixCells the pass's interaction cells of the experiment.
	partners []partner
	ixCells  []engine.InteractionCell
	// crossCells are the pass's cross-moment cells of the experiment
	// (another metric's pre-period value as a regression covariate).
	crossCells []engine.CrossCell
	// filterCounts are the rows each filter value of the spec's filtered
	// metrics matched (filter_counts@v1), in spec order; nil without filters.
	filterCounts []analysis.FilterCount
	// drill are the pass's drill-down dimensions of the experiment.
	drill []engine.DrillDimension
}

func (j *job) phase(name string, t0 time.Time) {
	j.phases = append(j.phases, engine.Phase{Name: name, Millis: float64(time.Since(t0).Microseconds()) / 1000})
	if j.spec.Privacy.Enabled {
		// A private run's logs carry no timing: how long a phase took
		// depends on the data (the restricted record keeps it).
		j.log.Info("phase done", "phase", name)
		return
	}
	j.log.Info("phase done", "phase", name, "ms", j.phases[len(j.phases)-1].Millis)
}

// withDefaults fills in the options' defaults and validates them, with
// the template file system verified against its lock.
func (o Options) withDefaults() (Options, error) {
	if o.Queries == nil {
		o.Queries = queries.FS()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.RunID == "" {
		o.RunID = newRunID()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	// Integrity first: every template must match the lock.
	if _, err := queries.Verify(o.Queries); err != nil {
		return o, err
	}
	return o, nil
}

// planJobs prepares a job per spec (lock: take each experiment folder's
// lock) and groups the prepared ones by the pass they can share, in spec
// order.
func planJobs(ctx context.Context, specs []*expspec.Spec, opts Options, lock bool) (jobs []*job, groups [][]*job) {
	hashes := map[string]intake.InputFile{}
	dup := duplicateNames(specs)
	index := map[string]int{}
	// Results of a pass are split by experiment, so two specs of the same
	// experiment (under different names) never share a pass.
	seen := map[string]int{}
	jobs = make([]*job, len(specs))
	for i, s := range specs {
		logger := opts.Logger
		if s.Privacy != nil && s.Privacy.Enabled {
			logger = slog.New(untimed{logger.Handler()})
		}
		j := &job{spec: s, started: opts.now(), log: logger.With(jobLogAttrs(opts.RunID, s)...)}
		jobs[i] = j
		if j.err = dup[i]; j.err == nil {
			j.prepare(ctx, opts, hashes, lock)
		}
		if j.err != nil || j.skipped != "" {
			continue
		}
		nth := seen[j.groupKey+"\x00"+s.Experiment]
		seen[j.groupKey+"\x00"+s.Experiment]++
		key := fmt.Sprintf("%s\x00%d", j.groupKey, nth)
		k, ok := index[key]
		if !ok {
			k = len(groups)
			index[key] = k
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], j)
	}
	return jobs, groups
}

// RunAll analyses many specs as a nightly run does. Specs whose inputs,
// column mappings, template pins and fixed-point scale are the same share
// one DuckDB session and one pass of every template over the data: the
// traces and events are scanned once for all of them. Each experiment then
// finishes on its own, so one broken spec or input fails only the
// experiments that depend on it. Results are in spec order.
func RunAll(ctx context.Context, specs []*expspec.Spec, opts Options) []Result {
	results := make([]Result, len(specs))
	for i, s := range specs {
		results[i] = Result{SpecFile: s.Path(), Experiment: s.Experiment, Name: s.OutputName()}
	}
	fail := func(err error) []Result {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return fail(err)
	}
	jobs, groups := planJobs(ctx, specs, opts, true)
	resolvePartners(jobs, opts)
	for _, g := range groups {
		runGroup(ctx, g, opts)
	}
	return finishJobs(ctx, jobs, opts, results)
}

// finishJobs finishes every job whose pass succeeded, releases the
// experiment folders' locks and fills in the results.
func finishJobs(ctx context.Context, jobs []*job, opts Options, results []Result) []Result {
	for _, j := range jobs {
		if j.err == nil && j.skipped == "" {
			j.outcome, j.err = j.finish(ctx, opts)
		}
	}
	for i, j := range jobs {
		if j.lock != nil {
			j.lock.Unlock()
		}
		if j.err != nil && ctx.Err() != nil {
			// Whatever phase the signal reached (even opening DuckDB,
			// whose error is already transient), say it was interrupted.
			var tr *diskio.TransientError
			if !errors.As(j.err, &tr) || !strings.Contains(j.err.Error(), "interrupt") {
				j.err = &diskio.TransientError{Err: fmt.Errorf("interrupted: %w", j.err)}
			}
		}
		results[i].Outcome, results[i].Err, results[i].Skipped = j.outcome, j.err, j.skipped
		if j.err != nil {
			j.log.Error("experiment failed", "phase", "done", "exit_code", ExitCode(j.err), "error", j.err.Error())
		}
	}
	return results
}

// duplicateNames returns, by spec index, an error for every spec whose
// output name (name:, default the experiment) another spec of the same run
// also uses: both would write the same output folder.
func duplicateNames(specs []*expspec.Spec) map[int]error {
	byName := map[string][]int{}
	for i, s := range specs {
		byName[s.OutputName()] = append(byName[s.OutputName()], i)
	}
	out := map[int]error{}
	for name, idx := range byName {
		if len(idx) < 2 {
			continue
		}
		var files []string
		for _, k := range idx {
			files = append(files, specs[k].Path())
		}
		for _, k := range idx {
			key := "experiment"
			if specs[k].Name != "" {
				key = "name"
			}
			out[k] = &expspec.SpecError{File: specs[k].Path(), Key: key, Err: fmt.Errorf("output folder %s is written by %d specs in one run (%s); give each spec its own name: (it defaults to the experiment)", name, len(idx), strings.Join(files, ", "))}
		}
	}
	return out
}

// EffectiveWindow returns the window a nominal date analyses: the spec's
// window cut at the end of the nominal date (never later than the spec's
// end). ok is false when the window has not started by then.
func EffectiveWindow(spec *expspec.Spec, date string) (start, end time.Time, ok bool) {
	start, end = spec.Window.Bounds()
	if date == "" {
		return start, end, true
	}
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return start, end, false
	}
	if cut := d.AddDate(0, 0, 1); cut.Before(end) {
		end = cut
	}
	return start, end, end.After(start)
}

// prepare does everything before SQL that needs only the spec: the
// effective window, the key, the canonical spec, and resolving and hashing
// the inputs (each file once per process, shared through hashes).
func (j *job) prepare(ctx context.Context, opts Options, hashes map[string]intake.InputFile, lock bool) {
	spec := j.spec
	j.date = opts.Date
	if j.date == "" {
		_, end := spec.Window.Bounds()
		j.date = end.Add(-time.Nanosecond).Format("2006-01-02")
	} else {
		_, end, ok := EffectiveWindow(spec, opts.Date)
		if !ok {
			j.skipped = fmt.Sprintf("window starts %s, after the nominal date %s: not active yet", spec.Window.Start, opts.Date)
			j.log.Info("experiment skipped", "phase", "plan", "reason", j.skipped)
			return
		}
		// The resolved spec records the window actually analysed and, when
		// that ends before the design's end, the planned end (horizon.go).
		cut := *spec
		cut.Window = spec.Window.CutAt(end)
		j.spec = &cut
		spec = j.spec
	}
	// A private spec without its key stops here, before any I/O on data.
	if spec.Privacy.Enabled {
		if j.key, j.err = privatize.LoadKey(spec, opts.Host); j.err != nil {
			return
		}
		if j.err = privatize.ReleasedTemplatesOnly(opts.Queries, spec); j.err != nil {
			return
		}
	}
	// One run at a time per experiment folder: a second run fails at once
	// (exit 1, retry) instead of after doing all its work.
	if lock {
		if j.lock, j.err = diskio.LockDir(filepath.Join(opts.OutDir, spec.OutputName())); j.err != nil {
			return
		}
	}
	if j.specJSON, j.specHash, j.err = spec.Canonical(); j.err != nil {
		return
	}
	t0 := time.Now()
	if j.traces, j.err = intake.ResolveGlobsAt(spec, "traces", spec.Inputs.Traces, opts.Date); j.err != nil {
		return
	}
	if j.events, j.err = intake.ResolveGlobsAt(spec, "events", spec.Inputs.Events, opts.Date); j.err != nil {
		return
	}
	var todo []*intake.InputFile
	for _, files := range [][]intake.InputFile{j.traces, j.events} {
		for i := range files {
			if h, ok := hashes[files[i].Abs]; ok {
				files[i].Size, files[i].SHA256, files[i].Ident = h.Size, h.SHA256, h.Ident
				continue
			}
			todo = append(todo, &files[i])
		}
	}
	if opts.noHash {
		todo = nil
	}
	if j.err = intake.HashFiles(ctx, todo); j.err != nil {
		return
	}
	for _, f := range todo {
		hashes[f.Abs] = *f
	}
	j.phase("hash_inputs", t0)
	// A private release needs its data source's ledger and the restricted
	// area: checked before any SQL, so that no outcome of a private run is
	// decided on data it could not be charged for.
	if spec.Privacy.Enabled {
		if j.source, j.err = ledgers.PrivateHostReady(opts.Host, append(append([]intake.InputFile{}, j.traces...), j.events...), j.key); j.err != nil {
			return
		}
	}
	j.groupKey = groupKey(spec, j.traces, j.events)
}

// groupKey identifies the specs that can share one SQL pass.
func groupKey(spec *expspec.Spec, traces, events []intake.InputFile) string {
	h := sha256.New()
	for _, name := range spec.PinnedTemplateNames() {
		fmt.Fprintf(h, "template %s %s\n", name, spec.Templates[name])
	}
	fmt.Fprintf(h, "decimals %d\n", *spec.Statistics.FixedPointDecimals)
	for _, m := range []map[string]string{spec.Inputs.Columns.Traces, spec.Inputs.Columns.Events} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(h, "column %s %s\n", k, m[k])
		}
		fmt.Fprintln(h, "--")
	}
	for _, f := range append(append([]intake.InputFile{}, traces...), events...) {
		fmt.Fprintf(h, "%s %s\n", f.Role, f.Abs)
	}
	// events@v1 and v2 resolve duplicate event_ids among the events the
	// whole pass uses; sharing a pass only between specs that use the same
	// events keeps an experiment's numbers independent of its companions.
	used := map[string]bool{}
	for _, m := range spec.Metrics {
		used[m.Event] = true
		if m.Denominator != nil {
			used[m.Denominator.Event] = true
		}
	}
	for _, e := range slices.Sorted(maps.Keys(used)) {
		fmt.Fprintf(h, "event %q\n", e)
	}
	// drilldown@v1 is rendered with the dimensions' columns: specs share a
	// pass only when they drill down on the same.
	if d := spec.DrillDimensions(); len(d) > 0 {
		fmt.Fprintf(h, "drilldown %q\n", d)
	}
	// A declared sort order is checked once per group: specs share a pass
	// only when they declare the same.
	for _, role := range slices.Sorted(maps.Keys(spec.Inputs.SortedBy)) {
		fmt.Fprintf(h, "sorted_by %s %q\n", role, spec.Inputs.SortedBy[role])
	}
	// Event property columns are rendered into the templates and checked
	// per file: specs share a pass only when they declare the same.
	if len(spec.Inputs.EventProperties) > 0 {
		fmt.Fprintf(h, "event_properties %q\n", spec.Inputs.EventProperties)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// groupState is a group's open session and everything known before the
// templates run: inspected inputs, rendered templates, DuckDB settings.
type groupState struct {
	sess           *engine.Session
	traces, events []intake.InputFile
	tmpls          []engine.Rendered
	recs           []engine.TemplateRecord
	duck           publish.DuckDBInfo
	execSet        []engine.Setting
	// dups are the keys with more than one row of events whose declared
	// order was checked (sorted.go); nil when no order is declared.
	dups *intake.DupKeys
	// ixExp and ixPartner are the pass's interaction pairs (interactions.go).
	ixExp, ixPartner []string
}

// inspectGroup opens the group's DuckDB session, reads every input's
// footer and schema, checks it against the contract, and renders the
// templates. The caller closes st.sess.
func inspectGroup(ctx context.Context, jobs []*job, opts Options) (*groupState, error) {
	first := jobs[0]
	sess, err := engine.OpenSession(ctx, opts.Engine, opts.Queries)
	if err != nil {
		return nil, err
	}
	st := &groupState{sess: sess}
	inputs := append(append([]intake.InputFile{}, first.traces...), first.events...)
	for i := range inputs {
		if err := sess.Inspect(ctx, &inputs[i]); err != nil {
			sess.Close()
			return nil, err
		}
		contract, mapping := intake.TraceContract, first.spec.Inputs.Columns.Traces
		if inputs[i].Role == "events" {
			contract, mapping = intake.EventContract, first.spec.Inputs.Columns.Events
		}
		if err := intake.CheckSchema(&inputs[i], contract, mapping); err != nil {
			sess.Close()
			return nil, err
		}
		if inputs[i].Role == "events" {
			if err := intake.CheckProperties(&inputs[i], first.spec.Inputs.EventProperties); err != nil {
				sess.Close()
				return nil, err
			}
		}
	}
	private := slices.ContainsFunc(jobs, func(j *job) bool { return j.spec.Privacy.Enabled })
	if err := intake.CheckRepeatedContent(inputs, private); err != nil {
		sess.Close()
		return nil, err
	}
	st.traces, st.events = inputs[:len(first.traces)], inputs[len(first.traces):]
	if err := intake.CheckTimestampMix(st.traces, first.spec.Inputs.Columns.Traces); err != nil {
		sess.Close()
		return nil, err
	}
	if err := intake.CheckTimestampMix(st.events, first.spec.Inputs.Columns.Events); err != nil {
		sess.Close()
		return nil, err
	}
	for _, role := range []struct {
		files   []intake.InputFile
		mapping map[string]string
		name    string
	}{{st.traces, first.spec.Inputs.Columns.Traces, "traces"}, {st.events, first.spec.Inputs.Columns.Events, "events"}} {
		for _, contractName := range slices.Sorted(maps.Keys(role.mapping)) {
			src := role.mapping[contractName]
			found := false
			for _, f := range role.files {
				if _, ok := f.Columns[src]; ok {
					found = true
					break
				}
			}
			if !found {
				sess.Close()
				return nil, &expspec.SpecError{File: first.spec.Path(), Key: "inputs.columns." + role.name + "." + contractName,
					Err: fmt.Errorf("maps %s to column %q, which no %s file has", contractName, src, role.name)}
			}
		}
	}
	for i, d := range first.spec.DrillDimensions() {
		if !slices.ContainsFunc(st.traces, func(f intake.InputFile) bool { _, ok := f.Columns[d]; return ok }) {
			sess.Close()
			return nil, &expspec.SpecError{File: first.spec.Path(), Key: fmt.Sprintf("drilldowns.dimensions[%d]", i),
				Err: fmt.Errorf("names column %q, which no traces file has (%s has %s); name a column as the Parquet files spell it", d, st.traces[0].Path, strings.Join(slices.Sorted(maps.Keys(st.traces[0].Columns)), ", "))}
		}
	}
	// A column some files lack is a data error naming the file.
	if err := intake.CheckDrillColumns(st.traces, first.spec.DrillDimensions()); err != nil {
		sess.Close()
		return nil, err
	}
	for _, j := range jobs {
		if key, err := intake.CheckDeclaredDrillValues(st.traces, j.spec.DrillDimensions(), j.spec.DrillValues); err != nil {
			sess.Close()
			return nil, &expspec.SpecError{File: j.spec.Path(), Key: key, Err: err}
		}
	}
	data := engine.RenderData{
		Traces: intake.ColumnsFor(st.traces, intake.TraceContract, first.spec.Inputs.Columns.Traces),
		Events: intake.ColumnsFor(st.events, intake.EventContract, first.spec.Inputs.Columns.Events),
		Props:  first.spec.Inputs.EventProperties,
		Drill:  first.spec.DrillDimensions(),
	}
	if st.tmpls, st.recs, err = engine.LoadTemplates(opts.Queries, first.spec, data); err != nil {
		sess.Close()
		return nil, err
	}
	resultSet, execSet, err := sess.Settings(ctx)
	if err != nil {
		sess.Close()
		return nil, err
	}
	st.execSet = execSet
	for _, s := range resultSet {
		if s.Name == "version" {
			st.duck.Version = s.Value
		} else {
			st.duck.Settings = append(st.duck.Settings, s)
		}
	}
	return st, nil
}

// runGroup runs the SQL once for jobs that share their inputs. An error
// that concerns the shared data fails every job of the group.
func runGroup(ctx context.Context, jobs []*job, opts Options) {
	t0 := time.Now()
	st, err := inspectGroup(ctx, jobs, opts)
	if err != nil {
		failJobs(jobs, err)
		return
	}
	defer func() { st.sess.Close() }()
	if err := checkSortedInputs(ctx, st, jobs); err != nil {
		failJobs(jobs, err)
		return
	}
	specs := make([]*expspec.Spec, len(jobs))
	for i, j := range jobs {
		specs[i] = j.spec
		j.phase("inspect_inputs", t0)
	}
	all := append(append([]intake.InputFile{}, st.traces...), st.events...)
	var inputBytes int64
	for _, f := range all {
		inputBytes += f.Size
	}
	t0 = time.Now()
	progress := passProgress(ctx, jobs, opts, st, inputBytes)
	companions, ixExp, ixPartner := passCompanions(jobs)
	st.ixExp, st.ixPartner = ixExp, ixPartner
	var inc *incremental
	var pass passResult
	if opts.Incremental && len(companions) == 0 {
		inc = planIncremental(st, specs, jobs[0].date, opts)
		defer inc.release()
		if inc.reason == "" {
			progress.Stage("incremental pass")
			pass, err = runIncrementalPass(ctx, st, specs, inc, progress)
			var fb *fallbackError
			if errors.As(err, &fb) {
				inc.reason = fb.reason
				err = st.reopen(ctx, opts)
			} else if err != nil && ctx.Err() == nil {
				// Any other failure of the pass over the state (an
				// unreadable state file the checksums vouched for, an
				// error DuckDB meets only with the carried rows) is the
				// state's or the pass's, not tonight's verdict: the full
				// night decides, with its own exit status.
				inc.reason, inc.damaged = "the incremental pass failed: "+err.Error(), true
				err = st.reopen(ctx, opts)
			}
			progress.Restart()
		}
	}
	if err == nil && (inc == nil || !inc.ranIncr) {
		pass, err = runPass(ctx, st, append(specs, companions...), all, progress)
	}
	if err == nil {
		err = checkInputsUnchanged(all)
	}
	if err == nil && inc != nil {
		inc.report(opts, jobs)
		if inc.eligible && pass.allExact() {
			progress.Stage("incremental state save")
			if serr := inc.save(ctx, st, specs, jobs[0].date, opts.RunID, pass, progress); serr != nil {
				inc.discard(opts.RunID)
				opts.Logger.Warn("incremental state not saved; "+inc.keptState(), "err", serr.Error())
			}
		}
	}
	if err == nil {
		err = findGroupMissingEvents(ctx, st, jobs, pass)
	}
	if err == nil {
		// Close now to see its error; the deferred Close covers early returns.
		if cerr := st.sess.Close(); cerr != nil {
			err = &diskio.TransientError{Err: fmt.Errorf("close duckdb: %w", cerr)}
		}
	}
	if err != nil {
		failJobs(jobs, err)
		return
	}
	scan := scanRecord(st, jobs, len(all), inputBytes)
	inspected := map[string]intake.InputFile{}
	for _, f := range all {
		inspected[f.Abs] = f
	}
	for _, j := range jobs {
		j.phases = append(j.phases, progress.Timings...)
		j.phase("sql", t0)
		j.takePass(st, pass, scan, inspected)
	}
}

// failJobs gives every job of a group the group's error.
func failJobs(jobs []*job, err error) {
	for _, j := range jobs {
		j.err = err
	}
}

// passResult is what a group's shared SQL pass returns, per experiment.
type passResult struct {
	cells   map[string][]engine.Cell
	quality map[string]engine.Quality
	perExp  map[string]error
	ix      map[string][]engine.InteractionCell
	cross   map[string][]engine.CrossCell
	filters []engine.FilterCountRow
	drill   map[string][]engine.DrillDimension
}

// runPass runs the group's templates once for all its experiments and, when
// the pass fails, names the cause: a transient failure, a damaged data page
// behind an intact footer (the file is named), or an overflow.
func runPass(ctx context.Context, st *groupState, specs []*expspec.Spec, all []intake.InputFile, progress *engine.SQLProgress) (passResult, error) {
	p := addDupKeys(engine.MergedParams(specs, st.traces, st.events), st)
	p["ix_exp"], p["ix_partner"] = engine.NonNil(st.ixExp), engine.NonNil(st.ixPartner)
	cells, quality, perExp, err := st.sess.RunSQL(ctx, specs, st.tmpls, p, progress)
	if err == nil {
		return passResult{cells, quality, perExp, st.sess.Interactions, st.sess.CrossMoments, st.sess.FilterCounts, st.sess.Drilldowns}, nil
	}
	if t := engine.TransientOrNil(ctx, err); t != nil {
		return passResult{}, t
	}
	// A scan that fails for another reason is most often a damaged
	// data page behind an intact footer: name the file if one is.
	private := false
	for _, s := range specs {
		private = private || (s.Privacy != nil && s.Privacy.Enabled)
	}
	if damaged := st.sess.FindDamaged(ctx, all, private); damaged != nil {
		return passResult{}, damaged
	}
	err = engine.ExplainOverflow(engine.ClassifySQLError(ctx, err), specs, st.traces)
	var de *engine.DataError
	var oe *engine.OverflowError
	if private && errors.As(err, &de) && !errors.As(err, &oe) {
		// A conversion error quotes the value it could not convert.
		return passResult{}, &engine.DataError{Err: errors.New("a value in the inputs cannot be converted or is out of range (DuckDB's message is not shown: it can quote a private spec's values)")}
	}
	return passResult{}, err
}

// checkInputsUnchanged rechecks every input's identity: the inputs were
// hashed before the queries ran, and a file rewritten in between would be
// analysed under a stale hash.
func checkInputsUnchanged(all []intake.InputFile) error {
	for _, f := range all {
		if err := f.CheckUnchanged(); err != nil {
			return err
		}
	}
	return nil
}

// findGroupMissingEvents finds, per experiment, the metrics whose event has
// no row in the window (cheap test first; the event names are looked up
// only for a metric with a constant value).
func findGroupMissingEvents(ctx context.Context, st *groupState, jobs []*job, pass passResult) error {
	for _, j := range jobs {
		if pass.perExp[j.spec.Experiment] != nil {
			continue
		}
		missing, err := findMissingEvents(ctx, st.sess, j.spec, pass.cells[j.spec.Experiment], st.events)
		if err != nil {
			return engine.ClassifySQLError(ctx, err)
		}
		j.missing = missing
	}
	return nil
}

// scanRecord is the manifest's record of the shared pass.
func scanRecord(st *groupState, jobs []*job, files int, inputBytes int64) engine.Scan {
	scan := engine.Scan{TracesPasses: st.sess.Runs["traces"], EventsPasses: st.sess.Runs["events"], InputFiles: files}
	for _, j := range jobs {
		scan.Experiments = append(scan.Experiments, j.spec.Experiment)
	}
	sort.Strings(scan.Experiments)
	scan.InputBytes = inputBytes
	return scan
}

// takePass gives a job its experiment's share of the pass. Each spec keeps
// its own input list (paths relative to its own folder, so its manifest and
// input digest do not depend on its companions); only what DuckDB read is
// copied in.
func (j *job) takePass(st *groupState, pass passResult, scan engine.Scan, inspected map[string]intake.InputFile) {
	for _, files := range [][]intake.InputFile{j.traces, j.events} {
		for i := range files {
			in := inspected[files[i].Abs]
			files[i].Rows, files[i].CreatedBy, files[i].Columns = in.Rows, in.CreatedBy, in.Columns
		}
	}
	exp := j.spec.Experiment
	j.cells, j.quality, j.err = pass.cells[exp], pass.quality[exp], pass.perExp[exp]
	j.ixCells = pass.ix[exp]
	j.crossCells = pass.cross[exp]
	j.filterCounts = analysis.FilterCountsFor(j.spec, pass.filters)
	j.drill = pass.drill[exp]
	j.recs, j.duck, j.execSet, j.scan = st.recs, st.duck, st.execSet, scan
	for _, f := range j.traces {
		j.quality.TraceRowsRead += f.Rows
	}
	for _, f := range j.events {
		j.quality.EventRowsRead += f.Rows
	}
	j.quality.TraceFiles, j.quality.EventFiles = len(j.traces), len(j.events)
}

// PlannedGroup is one shared pass of a planned run: the experiments it
// serves, the inputs it reads and the templates it runs.
type PlannedGroup struct {
	// Private is true when a private spec shares the pass: the plan then
	// shows no data-dependent figure (sizes, rows, hashes).
	Private     bool
	Experiments []string
	Inputs      []intake.InputFile
	Templates   []engine.TemplateRecord
	DuckDB      publish.DuckDBInfo
	Execution   []engine.Setting
}

// Plan does everything Run does before the first template runs — spec
// checks, keys, input resolution and hashing, Parquet footers and schemas,
// template verification and rendering — and reports the plan. It writes
// nothing. Results carry each spec's error or skip reason (Outcome is nil).
func Plan(ctx context.Context, specs []*expspec.Spec, opts Options) ([]PlannedGroup, []Result) {
	results := make([]Result, len(specs))
	for i, s := range specs {
		results[i] = Result{SpecFile: s.Path(), Experiment: s.Experiment, Name: s.OutputName()}
	}
	if opts.OutDir == "" {
		opts.OutDir = "."
	}
	opts, err := opts.withDefaults()
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return nil, results
	}
	jobs, groups := planJobs(ctx, specs, opts, false)
	var plan []PlannedGroup
	for _, g := range groups {
		st, err := inspectGroup(ctx, g, opts)
		if err != nil {
			for _, j := range g {
				j.err = err
			}
			continue
		}
		st.sess.Close()
		pg := PlannedGroup{Inputs: append(append([]intake.InputFile{}, st.traces...), st.events...), Templates: st.recs, DuckDB: st.duck, Execution: st.execSet}
		for _, j := range g {
			pg.Experiments = append(pg.Experiments, j.spec.Experiment)
			pg.Private = pg.Private || j.spec.Privacy.Enabled
		}
		plan = append(plan, pg)
	}
	for i, j := range jobs {
		results[i].Err, results[i].Skipped = j.err, j.skipped
	}
	return plan, results
}

// finish computes one experiment's statistics and commits its outputs.
func (j *job) finish(ctx context.Context, opts Options) (*Outcome, error) {
	spec, date := j.spec, j.date
	if err := ctx.Err(); err != nil {
		return nil, &diskio.TransientError{Err: fmt.Errorf("interrupted: %w", err)}
	}
	if spec.Privacy.Enabled {
		return j.finishPrivate(ctx, opts)
	}
	t0 := time.Now()
	released, err := analysis.CompleteCells(spec, j.cells)
	if err != nil {
		return nil, err
	}
	var cohorts []analysis.CohortRelease
	for _, c := range analysis.CohortOrder(spec) {
		cohorts = append(cohorts, analysis.CohortRelease{Label: c})
	}
	rows, decisions, err := analysis.Analyse(spec, released, cohorts, nil, date)
	if err != nil {
		return nil, err
	}
	publish.AnnotateRows(spec, rows)
	adjusted, err := analysis.VarianceReductions(spec, released, j.crossCells)
	if err != nil {
		return nil, err
	}
	interactions, err := analysis.Interactions(spec, j.partnerInfos(), j.ixCells)
	if err != nil {
		return nil, err
	}
	drill, err := analysis.Drilldowns(spec, j.drill, date)
	if err != nil {
		return nil, err
	}
	publish.AnnotateDrill(spec, drill)
	j.phase("statistics", t0)

	expDir := filepath.Join(opts.OutDir, spec.OutputName()) // locked since prepare
	baseline := opts.Baseline
	if !opts.BaselinePinned {
		baseline = analysis.ReadBaseline(expDir, date)
	}
	checks, blocked := analysis.EvaluateGates(spec, j.quality, released, baseline, j.missing)
	checks = analysis.ApplyMissingEvents(checks, rows, j.missing, spec.Privacy.Enabled)
	checks, blocked = analysis.ApplyFilterCounts(spec, checks, blocked, rows, decisions.Evidence, j.filterCounts)
	details := invalidateOnBlock(&decisions, checks, blocked)
	// A sample-ratio mismatch invalidates the verdict as a blocking gate
	// does: the same exit status and stdout line.
	blocked, details = analysis.BlockOnSRM(decisions, blocked, details)
	criteria, history, err := analysis.ApplyCriteria(spec, date, expDir, opts.CriteriaHistory, &decisions)
	if err != nil {
		return nil, err
	}
	nightly, err := j.nightly(opts, expDir, rows, &decisions)
	if err != nil {
		return nil, err
	}
	rel := exactRelease{rows: rows, adjusted: adjusted, interactions: interactions, drill: drill, decisions: decisions, checks: checks, baseline: baseline, criteria: criteria, history: history, nightly: nightly,
		privacy: publish.PrivacyInfo{Enabled: false, Note: "not differentially private: privacy is off in the spec, so these are exact numbers"}}
	final := filepath.Join(expDir, date)
	if err := j.commitExact(ctx, opts, final, rel); err != nil {
		return nil, err
	}
	j.log.Info("run committed", "phase", "commit", "dir", final, "rows", len(rows), "verdict", decisions.Verdict)
	out := &Outcome{Experiment: spec.Experiment, Dir: final, Rows: len(rows), Quality: j.quality, Verdict: decisions.Verdict, Blocked: blocked, Mode: j.mode}
	if len(blocked) > 0 {
		return out, &analysis.GateError{Experiment: spec.Experiment, Checks: blocked, Dir: final, Details: details}
	}
	return out, nil
}

// invalidateOnBlock turns the verdict into "invalid" when a blocking
// data-quality check failed, and returns the failed checks' details.
func invalidateOnBlock(decisions *analysis.Decisions, checks []analysis.Check, blocked []string) (details []string) {
	for _, c := range checks {
		if c.Outcome == "block" && c.Detail != "" {
			details = append(details, c.Detail)
		}
	}
	if len(blocked) > 0 {
		decisions.Verdict, decisions.Rule = "invalid", "quality_gate"
		decisions.Reason = "a blocking data-quality check failed (" + strings.Join(blocked, ", ") + "), so no verdict"
		if len(details) > 0 {
			decisions.Reason += ": " + strings.Join(details, "; ")
		}
		decisions.Variants = []string{}
	}
	return details
}

// exactRelease is what an exact run publishes.
type exactRelease struct {
	rows     []analysis.ResultRow
	adjusted []analysis.AdjustedRow // variance-reduced estimates (nil: none listed)
	// interactions are the interaction tests (nil: the spec lists none).
	interactions []analysis.InteractionRow
	// drill are the drill-down rows (nil: the spec has no drilldowns).
	drill     []analysis.DrillRow
	decisions analysis.Decisions
	checks    []analysis.Check
	baseline  *analysis.Baseline
	criteria  json.RawMessage
	history   *analysis.CriteriaHistory
	nightly   *publish.Nightly
	privacy   publish.PrivacyInfo
}

// commitExact renders and encodes an exact run's outputs and commits them
// into final with the manifest written last.
func (j *job) commitExact(ctx context.Context, opts Options, final string, rel exactRelease) error {
	spec, date := j.spec, j.date
	inputs := append(append([]intake.InputFile{}, j.traces...), j.events...)
	digest := intake.InputDigest(inputs)
	page, err := report.Render(publish.BuildReport(publish.ReportInput{
		Spec: spec, Date: date, Rows: rel.rows, Decisions: rel.decisions, Checks: rel.checks, Privacy: rel.privacy,
		Templates: j.recs, Digest: digest, SpecHash: j.specHash, DuckDB: j.duck.Version, Nightly: rel.nightly,
		Adjusted: rel.adjusted, Interactions: rel.interactions, FilterCounts: j.filterCounts, Drilldown: rel.drill,
	}))
	if err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	files, err := publish.EncodeOutputs(publish.RowStamp{Name: spec.OutputName(), Date: date, SpecHash: j.specHash}, rel.rows, publish.QualityReport{Experiment: spec.Experiment, NominalDate: date, Counts: j.quality, Checks: rel.checks, FilterCounts: j.filterCounts}, rel.decisions, page, rel.nightly)
	if err != nil {
		return err
	}
	files, err = publish.WithAdjusted(files, publish.RowStamp{Name: spec.OutputName(), Date: date, SpecHash: j.specHash}, rel.adjusted)
	if err != nil {
		return err
	}
	files, err = publish.WithInteractions(files, publish.RowStamp{Name: spec.OutputName(), Date: date, SpecHash: j.specHash}, rel.interactions)
	if err != nil {
		return err
	}
	files, err = publish.WithDrilldown(files, publish.RowStamp{Name: spec.OutputName(), Date: date, SpecHash: j.specHash}, rel.drill)
	if err != nil {
		return err
	}
	ixRecord, err := j.partnerRecords()
	if err != nil {
		return err
	}
	// An interrupted run (SIGTERM, Ctrl-C) commits nothing it has not
	// committed yet; the next run starts clean.
	if err := ctx.Err(); err != nil {
		return &diskio.TransientError{Err: fmt.Errorf("interrupted before commit: %w", err)}
	}
	specAbs, _ := filepath.Abs(spec.Path())
	build := opts.Build
	err = diskio.CommitFolder(final, files, func(outs []diskio.OutputFile) ([]byte, error) {
		return diskio.MarshalJSON(publish.Manifest{
			Format: publish.ManifestFormat, Experiment: spec.Experiment, NominalDate: date, DateFromFlag: opts.Date != "",
			Spec: j.specJSON, SpecSHA256: j.specHash, Templates: j.recs, Inputs: inputs, InputDigest: digest, DuckDB: j.duck,
			Statistics: analysis.StatisticsInfoOf(spec), Effective: publish.EffectiveOf(spec),
			Criteria: rel.criteria, MetricDefinitions: spec.MetricDefs, CriteriaHistory: rel.history,
			Privacy: rel.privacy, Checks: rel.checks, Baseline: rel.baseline, SeriesHistory: rel.nightly.HistoryOrNil(), Interactions: ixRecord, Outputs: outs, Build: &build,
			Volatile: &publish.Volatile{
				RunID: opts.RunID, ParentRun: opts.ParentRun,
				StartedAt:  j.started.UTC().Format(time.RFC3339Nano),
				FinishedAt: opts.now().UTC().Format(time.RFC3339Nano),
				Phases:     j.phases, Execution: j.execSet, SpecFile: specAbs, Scan: &j.scan,
				Incremental: j.mode,
			},
		})
	})
	if err != nil {
		return fmt.Errorf("commit %s: %w", final, err)
	}
	return nil
}

// untimed drops the time of every record: a private run's log lines carry
// no timestamps, since the time between them depends on the data.
type untimed struct{ slog.Handler }

func (u untimed) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{}
	return u.Handler.Handle(ctx, r)
}
func (u untimed) WithAttrs(a []slog.Attr) slog.Handler { return untimed{u.Handler.WithAttrs(a)} }
func (u untimed) WithGroup(n string) slog.Handler      { return untimed{u.Handler.WithGroup(n)} }

func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "run-unknown"
	}
	return hex.EncodeToString(b[:])
}

// jobLogAttrs are the attributes of every log line about one spec: the
// run, the experiment and, when the spec names itself, its name.
func jobLogAttrs(runID string, s *expspec.Spec) []any {
	attrs := []any{"run_id", runID, "experiment", s.Experiment}
	if s.Name != "" {
		attrs = append(attrs, "name", s.Name)
	}
	return attrs
}

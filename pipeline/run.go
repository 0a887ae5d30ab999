package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"time"

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
	Engine Engine
	// Queries is the template file system; nil means the templates
	// compiled into the binary.
	Queries fs.FS
	// Logger receives structured progress logs; nil discards them.
	Logger *slog.Logger
	// Build identifies the binary, for the manifest.
	Build BuildInfo
	// RunID identifies this run in logs and the manifest; empty means a
	// fresh random id.
	RunID string
	// ParentRun is the run a replay reproduces.
	ParentRun string
	// now is the clock for the volatile timestamps (tests may set it).
	now func() time.Time
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Validate checks the options.
func (o *Options) Validate() error {
	if o.OutDir == "" {
		return fmt.Errorf("%w: an output folder is required (--out)", ErrUsage)
	}
	if o.Date != "" {
		if _, err := time.Parse("2006-01-02", o.Date); err != nil || !dateRE.MatchString(o.Date) {
			return fmt.Errorf("%w: --date wants YYYY-MM-DD, got %q", ErrUsage, o.Date)
		}
	}
	if err := o.Engine.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

// Outcome describes one finished experiment run.
type Outcome struct {
	Experiment string
	Dir        string // the committed output folder
	Rows       int    // result rows written
	Verdict    string // from decisions.json
	Quality    Quality
}

// Run analyses one spec end to end and commits its outputs. Any error is
// returned before the output folder is renamed into place, so a failed run
// never leaves a folder that looks complete.
func Run(ctx context.Context, spec *Spec, opts Options) (*Outcome, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Queries == nil {
		opts.Queries = queries.FS()
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.RunID == "" {
		opts.RunID = newRunID()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("run_id", opts.RunID, "experiment", spec.Experiment)
	started := opts.now()
	var phases []Phase
	phase := func(name string, t0 time.Time) {
		phases = append(phases, Phase{Name: name, Millis: float64(time.Since(t0).Microseconds()) / 1000})
		log.Info("phase done", "phase", name, "ms", phases[len(phases)-1].Millis)
	}

	date := opts.Date
	if date == "" {
		_, end := spec.Window.Bounds()
		date = end.Add(-time.Nanosecond).Format("2006-01-02")
	}

	// A private spec without its key stops here, before any I/O on data.
	var key privacy.Key
	if spec.Privacy.Enabled {
		var err error
		if key, err = loadKey(spec); err != nil {
			return nil, err
		}
	}

	// Integrity first: every template must match the lock.
	t0 := time.Now()
	if _, err := queries.Verify(opts.Queries); err != nil {
		return nil, err
	}
	specJSON, specHash, err := spec.Canonical()
	if err != nil {
		return nil, err
	}

	// Resolve and hash every input before any query runs.
	traces, err := resolveGlobs(spec, "traces", spec.Inputs.Traces)
	if err != nil {
		return nil, err
	}
	events, err := resolveGlobs(spec, "events", spec.Inputs.Events)
	if err != nil {
		return nil, err
	}
	inputs := append(append([]InputFile{}, traces...), events...)
	for i := range inputs {
		if err := hashFile(ctx, &inputs[i]); err != nil {
			return nil, err
		}
	}
	phase("hash_inputs", t0)

	t0 = time.Now()
	sess, err := openSession(ctx, opts.Engine, opts.Queries)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	for i := range inputs {
		if err := sess.inspect(ctx, &inputs[i]); err != nil {
			return nil, err
		}
		contract, mapping := traceContract, spec.Inputs.Columns.Traces
		if inputs[i].Role == "events" {
			contract, mapping = eventContract, spec.Inputs.Columns.Events
		}
		if err := checkSchema(&inputs[i], contract, mapping); err != nil {
			return nil, err
		}
	}
	traces, events = inputs[:len(traces)], inputs[len(traces):]
	phase("inspect_inputs", t0)

	data := renderData{
		Traces: columnsFor(traces, traceContract, spec.Inputs.Columns.Traces),
		Events: columnsFor(events, eventContract, spec.Inputs.Columns.Events),
	}
	tmpls, recs, err := loadTemplates(opts.Queries, spec, data)
	if err != nil {
		return nil, err
	}
	resultSet, execSet, err := sess.settings(ctx)
	if err != nil {
		return nil, err
	}
	duck := DuckDBInfo{}
	for _, s := range resultSet {
		if s.Name == "version" {
			duck.Version = s.Value
		} else {
			duck.Settings = append(duck.Settings, s)
		}
	}

	t0 = time.Now()
	cells, q, err := sess.runSQL(ctx, spec, tmpls, params(spec, traces, events))
	if err != nil {
		if ctx.Err() != nil {
			return nil, &TransientError{Err: fmt.Errorf("interrupted: %w", err)}
		}
		return nil, &TransientError{Err: err}
	}
	if err := sess.Close(); err != nil {
		return nil, &TransientError{Err: fmt.Errorf("close duckdb: %w", err)}
	}
	phase("sql", t0)
	for _, f := range traces {
		q.TraceRowsRead += f.Rows
	}
	for _, f := range events {
		q.EventRowsRead += f.Rows
	}
	q.TraceFiles, q.EventFiles = len(traces), len(events)

	t0 = time.Now()
	digest := inputDigest(inputs)
	var (
		released []Cell
		cohorts  []cohortRelease
		noise    map[string]noiseSD
		private  *privateRelease
	)
	if spec.Privacy.Enabled {
		private, err = privatize(spec, cells, key, analysisHash(specHash, recs), digest)
		if err != nil {
			return nil, err
		}
		released, noise = private.Cells, private.Noise
		cohorts = append(cohorts, cohortRelease{Label: AllCohort})
		for _, c := range private.Cohorts {
			cohorts = append(cohorts, cohortRelease{Label: c.Label, CollapsedFrom: c.CollapsedFrom})
		}
	} else {
		released, err = completeCells(spec, cells)
		if err != nil {
			return nil, err
		}
		for _, c := range cohortOrder(spec) {
			cohorts = append(cohorts, cohortRelease{Label: c})
		}
	}
	rows, decisions, err := analyse(spec, released, cohorts, noise, date)
	if err != nil {
		return nil, err
	}
	phase("statistics", t0)

	checks := qualityChecks(q)
	qualityJSON, err := marshalJSON(QualityReport{Experiment: spec.Experiment, NominalDate: date, Counts: q, Checks: checks})
	if err != nil {
		return nil, err
	}
	decisionsJSON, err := marshalJSON(decisions)
	if err != nil {
		return nil, err
	}
	csvBytes, err := EncodeResultsCSV(rows)
	if err != nil {
		return nil, err
	}
	pq, err := EncodeResultsParquet(rows)
	if err != nil {
		return nil, err
	}

	expDir := filepath.Join(opts.OutDir, spec.Experiment)
	lock, err := lockDir(expDir)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	privInfo := PrivacyInfo{Enabled: false, Note: "not differentially private: privacy is off in the spec, so these are exact numbers"}
	if private != nil {
		ledger, spentNow, err := spendBudget(expDir, spec, date, private)
		if err != nil {
			return nil, err
		}
		privInfo = privacyInfo(spec, key, private, ledger, spentNow)
		log.Info("privacy budget", "phase", "privacy", "spent_this_run", privInfo.SpentThisRun, "ledger_spent", privInfo.LedgerSpent, "ledger_total", privInfo.LedgerTotal, "key_fingerprint", privInfo.KeyFingerprint)
	}
	page, err := report.Render(buildReport(reportInput{
		spec: spec, date: date, rows: rows, decisions: decisions, checks: checks, privacy: privInfo,
		templates: recs, digest: digest, specHash: specHash, duckdb: duck.Version,
	}))
	if err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	final := filepath.Join(expDir, date)
	specAbs, _ := filepath.Abs(spec.Path())
	build := opts.Build
	err = commitFolder(final, []outputFile{
		{Name: "results.csv", Data: csvBytes},
		{Name: "results.parquet", Data: pq},
		{Name: "quality.json", Data: qualityJSON},
		{Name: "decisions.json", Data: decisionsJSON},
		{Name: "report.html", Data: page},
	}, func(outs []OutputFile) ([]byte, error) {
		m := Manifest{
			Format:      ManifestFormat,
			Experiment:  spec.Experiment,
			NominalDate: date,
			Spec:        specJSON,
			SpecSHA256:  specHash,
			Templates:   recs,
			Inputs:      inputs,
			InputDigest: digest,
			DuckDB:      duck,
			Statistics:  statisticsInfo(spec),
			Privacy:     privInfo,
			Checks:      checks,
			Outputs:     outs,
			Build:       &build,
			Volatile: &Volatile{
				RunID:      opts.RunID,
				ParentRun:  opts.ParentRun,
				StartedAt:  started.UTC().Format(time.RFC3339Nano),
				FinishedAt: opts.now().UTC().Format(time.RFC3339Nano),
				Phases:     phases,
				Execution:  execSet,
				SpecFile:   specAbs,
			},
		}
		return marshalJSON(m)
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", final, err)
	}
	log.Info("run committed", "phase", "commit", "dir", final, "rows", len(rows), "verdict", decisions.Verdict)
	return &Outcome{Experiment: spec.Experiment, Dir: final, Rows: len(rows), Quality: q, Verdict: decisions.Verdict}, nil
}

func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "run-unknown"
	}
	return hex.EncodeToString(b[:])
}

// qualityChecks derives the checks reported in quality.json and the
// manifest from the counts. They warn; blocking gates are configured per
// spec (see ARCHITECTURE.md).
func qualityChecks(q Quality) []Check {
	rate := func(num, den int64) float64 {
		if den == 0 {
			return 0
		}
		return float64(num) / float64(den)
	}
	mk := func(name string, observed, threshold float64, rule string) Check {
		c := Check{Name: name, Observed: observed, Threshold: threshold, Rule: rule, Severity: "warn", Outcome: "pass"}
		if observed > threshold {
			c.Outcome = "warn"
		}
		return c
	}
	assigned := q.UnitsAssigned
	return []Check{
		mk("assigned_units_present", boolf(assigned == 0), 0, "1 when no unit was assigned; must be 0"),
		mk("multi_variant_unit_rate", rate(q.UnitsMultiVariant, q.UnitsExposed), 0.01, "multi-variant units / exposed units <= threshold"),
		mk("trace_duplicate_rate", rate(q.TraceDuplicates, q.TraceRows), 0.01, "duplicate trace rows / trace rows <= threshold"),
		mk("event_duplicate_rate", rate(q.EventDuplicates, q.EventRows), 0.01, "duplicate events / events <= threshold"),
		mk("trace_version_mismatch_rate", rate(q.TraceVersionMismatch, q.TraceRows), 0.05, "stale persona-algorithm traces / trace rows <= threshold"),
		mk("trace_null_key_rate", rate(q.TraceNullKeys, q.TraceRows), 0.001, "trace rows with a NULL key / trace rows <= threshold"),
		mk("event_invalid_value_rate", rate(q.EventInvalidValue, q.EventRows), 0.001, "events with NaN, infinite or out-of-range values / events <= threshold"),
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/report"
	"github.com/verity-analytics/verity/privacy"
)

// The release surface of a private run. Everything a private run publishes
// — the files of its output folder, its stdout line, its log fields and its
// exit status — is one of:
//
//   - a charged noisy value (privateRelease: the noisy counts, sums and
//     gate statistics);
//   - a data-independent fact (the spec, the template names, versions and
//     hashes, the code identity, DuckDB's version and settings, the key's
//     fingerprint, the host's ledger source, scope and total, the run id);
//   - a function of those two (statistics, verdicts, gate outcomes, the
//     report, the release digest, the output hashes, the ledger's state).
//
// publishPrivate computes every published byte from exactly these
// (privateFacts and privateRelease); the exact counts, input digests, row
// counts, rendered-SQL hashes, timings and exact gate statistics go to the
// restricted record (writeRestricted), which is never inside --out.

// privateFacts are the data-independent facts a private release shows.
type privateFacts struct {
	Spec         *Spec
	SpecJSON     json.RawMessage
	SpecHash     string
	Date         string
	DateFromFlag bool
	Templates    []TemplateRecord // name, version, SHA-256 (no rendered hash)
	DuckDB       DuckDBInfo
	Build        BuildInfo
	Key          privacy.Key
	Ledger       privacy.Ledger // after this release was charged
	SpentNow     *big.Rat
	Baseline     *Baseline // the previous night's release, if any
	Criteria     *CriteriaHistory
	RunID        string
	ParentRun    string
	Execution    []Setting
	SpecFile     string
}

// publication is what a private run publishes.
type publication struct {
	Files    []outputFile
	Manifest []byte
	Rows     int
	Verdict  string
	Blocked  []string
	Details  []string // what each blocking check found
}

// publishPrivate renders a private release from the noisy release and the
// data-independent facts alone.
func publishPrivate(f privateFacts, rel *privateRelease) (*publication, error) {
	spec, date := f.Spec, f.Date
	cohorts := []cohortRelease{{Label: AllCohort}}
	for _, c := range rel.Cohorts {
		cohorts = append(cohorts, cohortRelease{Label: c.Label, CollapsedFrom: c.CollapsedFrom})
	}
	rows, decisions, err := analyse(spec, rel.Cells, cohorts, rel.Noise, date)
	if err != nil {
		return nil, err
	}
	annotateRows(spec, rows)
	checks, blocked := evaluatePrivateGates(spec, rel, f.Baseline)
	var details []string
	for _, c := range checks {
		if c.Outcome == "block" && c.Detail != "" {
			details = append(details, c.Detail)
		}
	}
	if len(blocked) > 0 {
		decisions.Verdict, decisions.Rule = "invalid", "quality_gate"
		decisions.Reason = "a blocking data-quality check failed on noisy per-unit counts (" + strings.Join(blocked, ", ") + "), so no verdict"
		if len(details) > 0 {
			decisions.Reason += ": " + strings.Join(details, "; ")
		}
		decisions.Variants = []string{}
	}
	// A sample-ratio mismatch invalidates the verdict as a blocking gate
	// does: the same exit status and stdout line.
	blocked, details = blockOnSRM(decisions, blocked, details)
	criteria, history, err := applyCriteria(spec, date, "", f.Criteria, &decisions)
	if err != nil {
		return nil, err
	}
	info, state := privacyInfo(spec, f.Key, rel, f.Ledger, f.SpentNow)
	page, err := report.Render(buildReport(reportInput{
		spec: spec, date: date, rows: rows, decisions: decisions, checks: checks, privacy: info,
		templates: f.Templates, specHash: f.SpecHash, duckdb: f.DuckDB.Version,
	}))
	if err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	files, err := encodeOutputs(rowStamp{spec.OutputName(), date, f.SpecHash}, rows, PrivateQuality{
		Experiment: spec.Experiment, NominalDate: date,
		Note:       "private release: the quality gates are decided on noisy per-unit counts (each statistic's noise sd is given); the exact counts are restricted operator data, not part of this release",
		Statistics: rel.Gates, Checks: checks,
	}, decisions, page)
	if err != nil {
		return nil, err
	}
	var outs []OutputFile
	for _, o := range files {
		outs = append(outs, OutputFile{Name: o.Name, Size: len(o.Data), SHA256: sha256Hex(o.Data)})
	}
	build := f.Build
	m := Manifest{
		Format:            ManifestFormat,
		Experiment:        spec.Experiment,
		NominalDate:       date,
		DateFromFlag:      f.DateFromFlag,
		Spec:              f.SpecJSON,
		SpecSHA256:        f.SpecHash,
		Templates:         f.Templates,
		Inputs:            []InputFile{},
		DuckDB:            f.DuckDB,
		Statistics:        statisticsInfo(spec),
		Effective:         effectiveOf(spec),
		Criteria:          criteria,
		MetricDefinitions: spec.metricDefs,
		CriteriaHistory:   history,
		Privacy:           info,
		Checks:            checks,
		Baseline:          f.Baseline,
		Outputs:           outs,
		Build:             &build,
		Volatile: &Volatile{
			RunID:     f.RunID,
			ParentRun: f.ParentRun,
			Execution: f.Execution,
			SpecFile:  f.SpecFile,
			Ledger:    &state,
		},
	}
	mb, err := marshalJSON(m)
	if err != nil {
		return nil, err
	}
	return &publication{Files: files, Manifest: mb, Rows: len(rows), Verdict: decisions.Verdict, Blocked: blocked, Details: details}, nil
}

// publicTemplates drops the rendered-SQL hashes, which depend on the
// columns the input files carry.
func publicTemplates(recs []TemplateRecord) []TemplateRecord {
	out := make([]TemplateRecord, len(recs))
	for i, r := range recs {
		out[i] = TemplateRecord{Name: r.Name, Version: r.Version, SHA256: r.SHA256}
	}
	return out
}

// finishPrivate computes a private release, charges it to its data
// source's ledger, writes the restricted record, and commits the public
// outputs.
func (j *job) finishPrivate(ctx context.Context, opts Options) (*Outcome, error) {
	spec, date, log := j.spec, j.date, j.log
	t0 := time.Now()
	inputs := append(append([]InputFile{}, j.traces...), j.events...)
	src := j.source // resolved and checked in prepare
	rel, perr := privatize(spec, j.cells, j.quality, j.key, j.specHash, date)
	if rel == nil {
		return nil, perr
	}
	entry := privacy.Entry{Experiment: spec.Experiment, NominalDate: date, ReleaseDigest: rel.Digest, Spent: rel.Allocation.Spent, KeyFingerprint: j.key.Fingerprint()}
	// The charge comes before anything is released, including a failure
	// decided on noisy values.
	ledger, spentNow, err := chargeLedger(opts.Host.StateDir, src, entry, spec.Privacy.budget())
	if err != nil {
		return nil, err
	}
	log.Info("privacy budget", "phase", "privacy", "data_source", src.Name, "spent_this_run", spentNow.RatString(), "key_fingerprint", j.key.Fingerprint())
	if perr != nil {
		return nil, perr
	}
	expDir := filepath.Join(opts.OutDir, spec.OutputName()) // locked since prepare
	baseline := opts.Baseline
	if !opts.BaselinePinned {
		baseline = readBaseline(expDir, date)
	}
	history := opts.CriteriaHistory
	if history == nil {
		h := readCriteriaHistory(expDir, spec.Experiment, spec.Window.Start, date)
		history = &h
	}
	specAbs, _ := filepath.Abs(spec.Path())
	pub, err := publishPrivate(privateFacts{
		Spec: spec, SpecJSON: j.specJSON, SpecHash: j.specHash, Date: date, DateFromFlag: opts.Date != "",
		Templates: publicTemplates(j.recs), DuckDB: j.duck, Build: opts.Build, Key: j.key,
		Ledger: ledger, SpentNow: spentNow, Baseline: baseline, Criteria: history,
		RunID: opts.RunID, ParentRun: opts.ParentRun, Execution: j.execSet, SpecFile: specAbs,
	}, rel)
	if err != nil {
		return nil, err
	}
	j.phase("statistics", t0)
	if err := ctx.Err(); err != nil {
		return nil, &TransientError{Err: fmt.Errorf("interrupted before commit: %w", err)}
	}
	if err := j.writeRestricted(opts, rel, pub, inputs); err != nil {
		return nil, err
	}
	final := filepath.Join(expDir, date)
	if err := commitFolder(final, pub.Files, func([]OutputFile) ([]byte, error) { return pub.Manifest, nil }); err != nil {
		return nil, fmt.Errorf("commit %s: %w", final, err)
	}
	log.Info("run committed", "phase", "commit", "dir", final, "rows", pub.Rows, "verdict", pub.Verdict)
	out := &Outcome{Experiment: spec.Experiment, Dir: final, Rows: pub.Rows, Quality: j.quality, Verdict: pub.Verdict, Blocked: pub.Blocked}
	if len(pub.Blocked) > 0 {
		return out, &GateError{Experiment: spec.Experiment, Checks: pub.Blocked, Dir: final, Details: pub.Details}
	}
	return out, nil
}

// RestrictedRecord is release.json in a private run's restricted record:
// every released number with the exact value behind it, its sensitivity and
// mechanism. The audit reads it; so may an operator; the release never does.
type RestrictedRecord struct {
	Experiment    string           `json:"experiment"`
	NominalDate   string           `json:"nominal_date"`
	ReleaseDigest string           `json:"release_digest"`
	DataDigest    string           `json:"data_digest"`
	Numbers       []releasedNumber `json:"numbers"`
}

// RestrictedDir is where the restricted record of a private release lives:
// <restricted>/<experiment>/<date>/<first 16 hex digits of its digest>/.
func RestrictedDir(root, experiment, date, releaseDigest string) string {
	d := releaseDigest
	if len(d) > 16 {
		d = d[:16]
	}
	return filepath.Join(root, experiment, date, d)
}

// writeRestricted writes the exact operational record of a private run:
// the full manifest (inputs, digests, row counts, rendered SQL, timings),
// the exact quality counts and checks, and every released number's exact
// value. Folders 0700, files 0600.
func (j *job) writeRestricted(opts Options, rel *privateRelease, pub *publication, inputs []InputFile) error {
	dir := RestrictedDir(opts.Host.RestrictedRoot(), j.spec.Experiment, j.date, rel.Digest)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &HostError{Path: dir, Err: err}
	}
	var m Manifest
	if err := json.Unmarshal(pub.Manifest, &m); err != nil {
		return err
	}
	exactCells, _ := completeCells(j.spec, j.cells)
	checks, _ := evaluateGates(j.spec, j.quality, exactCells, nil, nil)
	m.Templates, m.Inputs, m.InputDigest = j.recs, inputs, inputDigest(inputs)
	m.Volatile.StartedAt = j.started.UTC().Format(time.RFC3339Nano)
	m.Volatile.FinishedAt = opts.now().UTC().Format(time.RFC3339Nano)
	m.Volatile.Phases, m.Volatile.Scan = j.phases, &j.scan
	files := map[string]any{
		"manifest.json": m,
		"quality.json":  QualityReport{Experiment: j.spec.Experiment, NominalDate: j.date, Counts: j.quality, Checks: checks},
		"release.json":  RestrictedRecord{Experiment: j.spec.Experiment, NominalDate: j.date, ReleaseDigest: rel.Digest, DataDigest: rel.DataDigest, Numbers: rel.Numbers},
	}
	for _, name := range sortedKeys(files) {
		b, err := marshalJSON(files[name])
		if err != nil {
			return err
		}
		if err := writeAtomicMode(filepath.Join(dir, name), b, 0o600); err != nil {
			return &HostError{Path: dir, Err: err}
		}
	}
	return nil
}

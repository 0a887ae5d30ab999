package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/privacy"
)

// finishPrivate computes a private release, charges it to its data
// source's ledger, writes the restricted record, and commits the public
// outputs.
func (j *job) finishPrivate(ctx context.Context, opts Options) (*Outcome, error) {
	spec, date, log := j.spec, j.date, j.log
	t0 := time.Now()
	inputs := append(append([]intake.InputFile{}, j.traces...), j.events...)
	src := j.source                                         // resolved and checked in prepare
	expDir := filepath.Join(opts.OutDir, spec.OutputName()) // locked since prepare
	// The earlier nights are released files; a replay whose pinned ones
	// changed fails here, before anything is charged.
	series, err := seriesHistory(opts, spec, expDir, date)
	if err != nil {
		return nil, err
	}
	rel, perr := privatize.Privatize(spec, j.cells, j.drill, j.quality, j.key, j.specHash, date)
	if rel == nil {
		return nil, perr
	}
	entry := privacy.Entry{Experiment: spec.Experiment, NominalDate: date, ReleaseDigest: rel.Digest, Spent: rel.Allocation.Spent, KeyFingerprint: j.key.Fingerprint()}
	// The charge comes before anything is released, including a failure
	// decided on noisy values.
	ledger, spentNow, err := ledgers.ChargeLedger(opts.Host.StateDir, src, entry, spec.Privacy.Budget())
	if err != nil {
		return nil, err
	}
	log.Info("privacy budget", "phase", "privacy", "data_source", src.Name, "spent_this_run", spentNow.RatString(), "key_fingerprint", j.key.Fingerprint())
	if perr != nil {
		return nil, perr
	}
	baseline := opts.Baseline
	if !opts.BaselinePinned {
		baseline = analysis.ReadBaseline(expDir, date)
	}
	history := opts.CriteriaHistory
	if history == nil {
		h := analysis.ReadCriteriaHistory(expDir, spec.Experiment, spec.Window.Start, date)
		history = &h
	}
	specAbs, _ := filepath.Abs(spec.Path())
	pub, err := publish.PublishPrivate(publish.PrivateFacts{
		Spec: spec, SpecJSON: j.specJSON, SpecHash: j.specHash, Date: date, DateFromFlag: opts.Date != "",
		Templates: publish.PublicTemplates(j.recs), DuckDB: j.duck, Build: opts.Build, Key: j.key,
		Ledger: ledger, SpentNow: spentNow, Baseline: baseline, Criteria: history, Series: series,
		RunID: opts.RunID, ParentRun: opts.ParentRun, Execution: j.execSet, SpecFile: specAbs,
	}, rel)
	if err != nil {
		return nil, err
	}
	j.phase("statistics", t0)
	if err := ctx.Err(); err != nil {
		return nil, &diskio.TransientError{Err: fmt.Errorf("interrupted before commit: %w", err)}
	}
	if err := j.writeRestricted(opts, rel, pub, inputs); err != nil {
		return nil, err
	}
	final := filepath.Join(expDir, date)
	if err := diskio.CommitFolder(final, pub.Files, func([]diskio.OutputFile) ([]byte, error) { return pub.Manifest, nil }); err != nil {
		return nil, fmt.Errorf("commit %s: %w", final, err)
	}
	log.Info("run committed", "phase", "commit", "dir", final, "rows", pub.Rows, "verdict", pub.Verdict)
	out := &Outcome{Experiment: spec.Experiment, Dir: final, Rows: pub.Rows, Quality: j.quality, Verdict: pub.Verdict, Blocked: pub.Blocked}
	if len(pub.Blocked) > 0 {
		return out, &analysis.GateError{Experiment: spec.Experiment, Checks: pub.Blocked, Dir: final, Details: pub.Details}
	}
	return out, nil
}

// writeRestricted writes the exact operational record of a private run:
// the full manifest (inputs, digests, row counts, rendered SQL, timings),
// the exact quality counts and checks, and every released number's exact
// value. Folders 0700, files 0600.
func (j *job) writeRestricted(opts Options, rel *privatize.PrivateRelease, pub *publish.Publication, inputs []intake.InputFile) error {
	dir := ledgers.RestrictedDir(opts.Host.RestrictedRoot(), j.spec.Experiment, j.date, rel.Digest)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &ledgers.HostError{Path: dir, Err: err}
	}
	var m publish.Manifest
	if err := json.Unmarshal(pub.Manifest, &m); err != nil {
		return err
	}
	exactCells, _ := analysis.CompleteCells(j.spec, j.cells)
	checks, _ := analysis.EvaluateGates(j.spec, j.quality, exactCells, nil, nil)
	m.Templates, m.Inputs, m.InputDigest = j.recs, inputs, intake.InputDigest(inputs)
	m.Volatile.StartedAt = j.started.UTC().Format(time.RFC3339Nano)
	m.Volatile.FinishedAt = opts.now().UTC().Format(time.RFC3339Nano)
	m.Volatile.Phases, m.Volatile.Scan = j.phases, &j.scan
	files := map[string]any{
		"manifest.json": m,
		"quality.json":  publish.QualityReport{Experiment: j.spec.Experiment, NominalDate: j.date, Counts: j.quality, Checks: checks},
		"release.json":  publish.RestrictedRecord{Experiment: j.spec.Experiment, NominalDate: j.date, ReleaseDigest: rel.Digest, DataDigest: rel.DataDigest, Numbers: rel.Numbers},
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b, err := diskio.MarshalJSON(files[name])
		if err != nil {
			return err
		}
		if err := diskio.WriteAtomicMode(filepath.Join(dir, name), b, 0o600); err != nil {
			return &ledgers.HostError{Path: dir, Err: err}
		}
	}
	return nil
}

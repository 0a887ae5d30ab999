package publish

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/report"
	"github.com/verity-analytics/verity/privacy"
)

// The release surface of a private run. Everything a private run publishes
// — the files of its output folder, its stdout line, its log fields and its
// exit status — is one of:
//
//   - a charged noisy value (privatize.PrivateRelease: the noisy counts,
//     sums and gate statistics);
//   - a data-independent fact (the spec, the template names, versions and
//     hashes, the code identity, DuckDB's version and settings, the key's
//     fingerprint, the host's ledger source, scope and total, the run id);
//   - a function of those two (statistics, verdicts, gate outcomes, the
//     report, the release digest, the output hashes, the ledger's state).
//
// PublishPrivate computes every published byte from exactly these
// (PrivateFacts and privatize.PrivateRelease); the exact counts, input
// digests, row counts, rendered-SQL hashes, timings and exact gate
// statistics go to the restricted record (written by package pipeline),
// which is never inside --out.

// PrivateFacts are the data-independent facts a private release shows.
type PrivateFacts struct {
	Spec         *expspec.Spec
	SpecJSON     json.RawMessage
	SpecHash     string
	Date         string
	DateFromFlag bool
	Templates    []engine.TemplateRecord // name, version, SHA-256 (no rendered hash)
	DuckDB       DuckDBInfo
	Build        BuildInfo
	Key          privacy.Key
	Ledger       privacy.Ledger // after this release was charged
	SpentNow     *big.Rat
	Baseline     *analysis.Baseline // the previous night's release, if any
	Criteria     *analysis.CriteriaHistory
	// Series is the earlier nights' released results the time series
	// reads (their noisy values: free post-processing); nil or empty for
	// none.
	Series    *analysis.SeriesHistory
	RunID     string
	ParentRun string
	Execution []engine.Setting
	SpecFile  string
}

// Publication is what a private run publishes.
type Publication struct {
	Files    []diskio.StagedFile
	Manifest []byte
	Rows     int
	Verdict  string
	Blocked  []string
	Details  []string // what each blocking check found
}

// PublishPrivate renders a private release from the noisy release and the
// data-independent facts alone.
func PublishPrivate(f PrivateFacts, rel *privatize.PrivateRelease) (*Publication, error) {
	spec, date := f.Spec, f.Date
	rows, decisions, err := analysis.Analyse(spec, rel.Cells, releasedCohorts(rel), rel.Noise, date)
	if err != nil {
		return nil, err
	}
	AnnotateRows(spec, rows)
	checks, blocked := analysis.EvaluatePrivateGates(spec, rel, f.Baseline)
	details := blockingDetails(checks)
	if len(blocked) > 0 {
		invalidateOnBlockingGates(&decisions, blocked, details)
	}
	// A sample-ratio mismatch invalidates the verdict as a blocking gate
	// does: the same exit status and stdout line.
	blocked, details = analysis.BlockOnSRM(decisions, blocked, details)
	criteria, history, err := analysis.ApplyCriteria(spec, date, "", f.Criteria, &decisions)
	if err != nil {
		return nil, err
	}
	nightly, err := BuildNightly(spec, date, f.SpecHash, f.Series, rows)
	if err != nil {
		return nil, err
	}
	if nightly != nil {
		decisions.Anomalies = nightly.Anomalies
	}
	drill, err := analysis.PrivateDrilldowns(spec, rel.Drill, date)
	if err != nil {
		return nil, err
	}
	AnnotateDrill(spec, drill)
	info, state := privacyInfo(spec, f.Key, rel, f.Ledger, f.SpentNow)
	files, err := encodePrivateOutputs(f, rel, rows, decisions, checks, info, nightly, drill)
	if err != nil {
		return nil, err
	}
	m := privateManifest(f, files, criteria, history, checks, info, state)
	if nightly != nil {
		m.SeriesHistory = nightly.History
	}
	mb, err := diskio.MarshalJSON(m)
	if err != nil {
		return nil, err
	}
	return &Publication{Files: files, Manifest: mb, Rows: len(rows), Verdict: decisions.Verdict, Blocked: blocked, Details: details}, nil
}

// releasedCohorts lists the cohorts a release reports: all units first,
// then each released cohort with the cohorts collapsed into it.
func releasedCohorts(rel *privatize.PrivateRelease) []analysis.CohortRelease {
	cohorts := []analysis.CohortRelease{{Label: expspec.AllCohort}}
	for _, c := range rel.Cohorts {
		cohorts = append(cohorts, analysis.CohortRelease{Label: c.Label, CollapsedFrom: c.CollapsedFrom})
	}
	return cohorts
}

// blockingDetails lists what each blocking check found, where it says.
func blockingDetails(checks []analysis.Check) []string {
	var details []string
	for _, c := range checks {
		if c.Outcome == "block" && c.Detail != "" {
			details = append(details, c.Detail)
		}
	}
	return details
}

// invalidateOnBlockingGates replaces the verdict with "invalid" by the
// quality_gate rule, naming the blocking checks and what they found.
func invalidateOnBlockingGates(decisions *analysis.Decisions, blocked, details []string) {
	decisions.Verdict, decisions.Rule = "invalid", "quality_gate"
	decisions.Reason = "a blocking data-quality check failed on noisy per-unit counts (" + strings.Join(blocked, ", ") + "), so no verdict"
	if len(details) > 0 {
		decisions.Reason += ": " + strings.Join(details, "; ")
	}
	decisions.Variants = []string{}
}

// encodePrivateOutputs renders report.html and encodes the release's
// output files, its quality.json holding the noisy gate statistics.
func encodePrivateOutputs(f PrivateFacts, rel *privatize.PrivateRelease, rows []analysis.ResultRow, decisions analysis.Decisions, checks []analysis.Check, info PrivacyInfo, nightly *Nightly, drill []analysis.DrillRow) ([]diskio.StagedFile, error) {
	spec, date := f.Spec, f.Date
	page, err := report.Render(BuildReport(ReportInput{
		Spec: spec, Date: date, Rows: rows, Decisions: decisions, Checks: checks, Privacy: info,
		Templates: f.Templates, SpecHash: f.SpecHash, DuckDB: f.DuckDB.Version, Nightly: nightly, Drilldown: drill,
	}))
	if err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	st := RowStamp{spec.OutputName(), date, f.SpecHash}
	files, err := EncodeOutputs(st, rows, analysis.PrivateQuality{
		Experiment: spec.Experiment, NominalDate: date,
		Note:       "private release: the quality gates are decided on noisy per-unit counts (each statistic's noise sd is given); the exact counts are restricted operator data, not part of this release",
		Statistics: rel.Gates, Checks: checks,
	}, decisions, page, nightly)
	if err != nil {
		return nil, err
	}
	return WithDrilldown(files, st, drill)
}

// privateManifest is the release's public manifest: data-independent facts,
// the criteria, the noisy release's checks and privacy accounting, and the
// output hashes; no inputs.
func privateManifest(f PrivateFacts, files []diskio.StagedFile, criteria json.RawMessage, history *analysis.CriteriaHistory, checks []analysis.Check, info PrivacyInfo, state LedgerState) Manifest {
	spec := f.Spec
	build := f.Build
	return Manifest{
		Format:            ManifestFormat,
		Experiment:        spec.Experiment,
		NominalDate:       f.Date,
		DateFromFlag:      f.DateFromFlag,
		Spec:              f.SpecJSON,
		SpecSHA256:        f.SpecHash,
		Templates:         f.Templates,
		Inputs:            []intake.InputFile{},
		DuckDB:            f.DuckDB,
		Statistics:        analysis.StatisticsInfoOf(spec),
		Effective:         EffectiveOf(spec),
		Criteria:          criteria,
		MetricDefinitions: spec.MetricDefs,
		CriteriaHistory:   history,
		Privacy:           info,
		Checks:            checks,
		Baseline:          f.Baseline,
		Outputs:           outputRecords(files),
		Build:             &build,
		Volatile: &Volatile{
			RunID:     f.RunID,
			ParentRun: f.ParentRun,
			Execution: f.Execution,
			SpecFile:  f.SpecFile,
			Ledger:    &state,
		},
	}
}

// outputRecords records each output file's name, size and SHA-256.
func outputRecords(files []diskio.StagedFile) []diskio.OutputFile {
	var outs []diskio.OutputFile
	for _, o := range files {
		outs = append(outs, diskio.OutputFile{Name: o.Name, Size: len(o.Data), SHA256: diskio.SHA256Hex(o.Data)})
	}
	return outs
}

// PublicTemplates drops the rendered-SQL hashes, which depend on the
// columns the input files carry.
func PublicTemplates(recs []engine.TemplateRecord) []engine.TemplateRecord {
	out := make([]engine.TemplateRecord, len(recs))
	for i, r := range recs {
		out[i] = engine.TemplateRecord{Name: r.Name, Version: r.Version, SHA256: r.SHA256}
	}
	return out
}

// RestrictedRecord is release.json in a private run's restricted record:
// every released number with the exact value behind it, its sensitivity and
// mechanism. The audit reads it; so may an operator; the release never does.
type RestrictedRecord struct {
	Experiment    string                     `json:"experiment"`
	NominalDate   string                     `json:"nominal_date"`
	ReleaseDigest string                     `json:"release_digest"`
	DataDigest    string                     `json:"data_digest"`
	Numbers       []privatize.ReleasedNumber `json:"numbers"`
}

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/privacy"
)

// The privacy audit: the same private job on two datasets that differ in
// one unit's whole history, and every published byte checked from the
// outside. For each pair it asserts that
//
//  1. every published byte (the five outputs, the manifest, the outcome's
//     verdict, rows and exit status) is recomputed exactly by publishPrivate
//     from the charged noisy numbers of the restricted record and the
//     published data-independent facts — nothing else reached the release;
//  2. the data-independent facts of the published manifest are the same
//     for both datasets;
//  3. every exact value behind a noisy number moves by no more than the
//     sensitivity its noise was calibrated for (numbers of cohorts with the
//     same leaves in both runs).
//
// The neighbours: an ordinary unit; a unit that reuses other units' trace
// and event ids; a unit that trips every quality gate; a unit alone in a
// declared cohort (empty without it); a unit seen in both variants.

const auditSpec = `version: 1
experiment: checkout-button
inputs:
  traces: ["../data/basic/traces/"]
  events: ["../data/basic/events/"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}
cohorts:
  dimension: persona
  taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop, solo/leaf]
  min_units: %d
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal, attribution_hours: 96}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 60}, role: goal, attribution_hours: 96}
  - {name: views, kind: mean, event: page_view, aggregate: count, clamp: {lower: 0, upper: 20}, role: guardrail, guardrail: {harmful: decrease, margin: 0.1, relative: true}}
privacy: {enabled: true, epsilon: 4, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_AUDIT_KEY}
`

func ptr[T any](v T) *T { return &v }

func auditTS(h int) *int64 {
	return ptr(int64(1794873600_000000) + int64(h)*3600_000000) // 2026-11-17T00:00Z + h hours
}

// auditNeighbours returns each neighbour's extra rows. existing holds trace
// and event ids of the fixture, for the id-reusing unit.
func auditNeighbours(traceIDs, eventIDs []string) map[string]func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
	tr := func(u, variant, persona, version, id string, h int) fixtures.TraceRow {
		return fixtures.TraceRow{TS: auditTS(h), UnitID: ptr(u), ExperimentID: ptr("checkout-button"), Variant: ptr(variant),
			Persona: ptr(persona), PersonaAlgoVersion: ptr(version), EventID: ptr(id)}
	}
	ev := func(u, metric string, v *float64, id string, h int) fixtures.EventRow {
		return fixtures.EventRow{TS: auditTS(h), UnitID: ptr(u), Metric: ptr(metric), Value: v, EventID: ptr(id)}
	}
	return map[string]func(u string) ([]fixtures.TraceRow, []fixtures.EventRow){
		"ordinary": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(u, "treatment", "power/mobile", "pa-2", u+"-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(30.0), u+"-e1", 2), ev(u, "page_view", nil, u+"-e2", 3)}
		},
		"reuses other units' ids": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			ts := []fixtures.TraceRow{tr(u, "control", "casual/mobile", "pa-2", u+"-t1", 1)}
			var es []fixtures.EventRow
			for _, id := range traceIDs {
				// Earlier than any fixture row: under event_id-only
				// de-duplication these copies would be kept and the
				// other units' rows dropped.
				ts = append(ts, tr(u, "control", "casual/mobile", "pa-2", id, -40))
			}
			for _, id := range eventIDs {
				es = append(es, ev(u, "purchase", ptr(59.0), id, -30))
			}
			return ts, es
		},
		"trips every gate": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			ts := []fixtures.TraceRow{tr(u, "treatment", "casual/desktop", "pa-2", u+"-t", 1)}
			for i := 0; i < 300; i++ {
				ts = append(ts, tr(u, "treatment", "casual/desktop", "pa-2", u+"-t", 2))                      // duplicates
				ts = append(ts, tr(u, "treatment", "casual/desktop", "pa-1", fmt.Sprintf("%s-v%d", u, i), 3)) // stale version
				ts = append(ts, tr(u, "treatment-x", "casual/desktop", "pa-2", fmt.Sprintf("%s-x%d", u, i), 4))
				r := tr(u, "treatment", "casual/desktop", "pa-2", fmt.Sprintf("%s-n%d", u, i), 5)
				r.TS = nil // NULL ts
				ts = append(ts, r)
			}
			var es []fixtures.EventRow
			for i := 0; i < 300; i++ {
				es = append(es, ev(u, "purchase", ptr(math.NaN()), fmt.Sprintf("%s-bad%d", u, i), 6))
				es = append(es, ev(u, "page_view", ptr(math.Inf(1)), fmt.Sprintf("%s-badv%d", u, i), 6))
				es = append(es, ev(u, "purchase", ptr(10.0), u+"-dup", 7))
				es = append(es, ev(u, "page_view", nil, u+"-dupv", 7))
				n := ev(u, "purchase", nil, fmt.Sprintf("%s-nm%d", u, i), 8)
				n.Metric = nil // no metric name
				es = append(es, n)
				z := ev(u, "page_view", nil, fmt.Sprintf("%s-nt%d", u, i), 9)
				z.TS = nil
				es = append(es, z)
			}
			return ts, es
		},
		"alone in a cohort": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(u, "control", "solo/leaf", "pa-2", u+"-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(60.0), u+"-e1", 2)}
		},
		"only in the events": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			z := ev(u, "purchase", ptr(10.0), u+"-e0", 1)
			z.TS = nil
			return nil, []fixtures.EventRow{z, ev(u, "purchase", ptr(math.NaN()), u+"-e1", 2), ev(u, "purchase", ptr(5.0), u+"-e2", 3), ev(u, "purchase", ptr(5.0), u+"-e2", 3)}
		},
		"an id of non-breaking spaces": func(string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			u := "\u00a0\u00a0"
			return []fixtures.TraceRow{tr(u, "treatment", "casual/mobile", "pa-2", "nbsp-t1", 1)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(12.0), "nbsp-e1", 2)}
		},
		"in both variants": func(u string) ([]fixtures.TraceRow, []fixtures.EventRow) {
			return []fixtures.TraceRow{tr(u, "control", "power/desktop", "pa-2", u+"-t1", 1), tr(u, "treatment", "power/desktop", "pa-2", u+"-t2", 2)},
				[]fixtures.EventRow{ev(u, "purchase", ptr(20.0), u+"-e1", 3)}
		},
	}
}

// auditRun is one private run of the audit: where it published, its
// restricted record, its outcome and the host it was charged to.
type auditRun struct {
	dir, restricted string
	outcome         *pipeline.Outcome
	err             error
	host            ledgers.Host
	spec            *expspec.Spec
	manifest        publish.Manifest
	record          publish.RestrictedRecord
}

func auditDataset(t *testing.T, minUnits int, extraT []fixtures.TraceRow, extraE []fixtures.EventRow) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "data", "basic"), os.DirFS(filepath.Join(filepath.Dir(file), "..", "fixtures", "data", "basic"))); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "specs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "specs", "audit.yaml"), fmt.Appendf(nil, auditSpec, minUnits), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(extraT) > 0 {
		if err := fixtures.WriteTraceFile(filepath.Join(dir, "data", "basic", "traces", "dt=2026-11-17", "part-audit.parquet"), extraT); err != nil {
			t.Fatal(err)
		}
	}
	if len(extraE) > 0 {
		if err := fixtures.WriteEventFile(filepath.Join(dir, "data", "basic", "events", "dt=2026-11-17", "part-audit.parquet"), extraE); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// addNeighbour writes the neighbour's rows into the dataset's partition
// folders, beside the fixture's files.
func addNeighbour(t *testing.T, dir string, extraT []fixtures.TraceRow, extraE []fixtures.EventRow) {
	t.Helper()
	if len(extraT) > 0 {
		if err := fixtures.WriteTraceFile(filepath.Join(dir, "data", "basic", "traces", "dt=2026-11-17", "part-audit.parquet"), extraT); err != nil {
			t.Fatal(err)
		}
	}
	if len(extraE) > 0 {
		if err := fixtures.WriteEventFile(filepath.Join(dir, "data", "basic", "events", "dt=2026-11-17", "part-audit.parquet"), extraE); err != nil {
			t.Fatal(err)
		}
	}
}

// runAudit runs the audit spec of dir with a fresh host and output folder
// named by tag, so that two runs in one folder (a dataset, then its
// neighbour) share every host fact but the data.
func runAudit(t *testing.T, dir, tag string) auditRun {
	t.Helper()
	t.Setenv("VERITY_AUDIT_KEY", "hex:5c0f6a9e21d3b4c78e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f")
	spec, err := expspec.LoadSpec(filepath.Join(dir, "specs", "audit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state-"+tag)
	if _, err := ledgers.LedgerInit(state, "audit", filepath.Join(dir, "data"), privacy.ScopeSource, privacy.Budget{Epsilon: 40, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	r := auditRun{host: ledgers.Host{StateDir: state, RestrictedDir: filepath.Join(dir, "restricted-"+tag)}, spec: spec}
	r.outcome, r.err = pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: filepath.Join(dir, "runs-"+tag), Engine: engine.Engine{Threads: 2},
		Build: publish.BuildInfo{Module: "audit"}, RunID: "audit-run", Host: r.host})
	var gate *analysis.GateError
	if r.err != nil && !errors.As(r.err, &gate) {
		t.Fatalf("private run: %v", r.err)
	}
	r.dir = r.outcome.Dir
	b, err := os.ReadFile(filepath.Join(r.dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.manifest); err != nil {
		t.Fatal(err)
	}
	r.restricted = ledgers.RestrictedDir(r.host.RestrictedRoot(), spec.Experiment, r.manifest.NominalDate, r.manifest.Privacy.ReleaseDigest)
	b, err = os.ReadFile(filepath.Join(r.restricted, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.record); err != nil {
		t.Fatal(err)
	}
	return r
}

// republish recomputes every published byte from the restricted record's
// noisy numbers and the published manifest's facts.
func (r auditRun) republish(t *testing.T, key privacy.Key) {
	t.Helper()
	alloc, err := privatize.Allocate(r.spec)
	if err != nil {
		t.Fatal(err)
	}
	noisy := map[privatize.NumberKey]*big.Int{}
	for _, n := range r.record.Numbers {
		v, ok := new(big.Int).SetString(n.Noisy, 10)
		if !ok {
			t.Fatalf("noisy value %q", n.Noisy)
		}
		noisy[privatize.NumberKey{Cohort: n.Cohort, Variant: n.Variant, Metric: n.Metric, Statistic: n.Statistic}] = v
	}
	rel, err := privatize.AssemblePrivate(r.spec, alloc, noisy)
	if err != nil {
		t.Fatal(err)
	}
	rel.Digest, rel.Count = r.manifest.Privacy.ReleaseDigest, len(r.record.Numbers)
	ledger, err := ledgers.ReadLedger(filepath.Join(r.host.StateDir, "ledgers", "audit.json"))
	if err != nil {
		t.Fatal(err)
	}
	spent, _ := new(big.Rat).SetString(r.manifest.Volatile.Ledger.SpentThisRun)
	m := r.manifest
	pub, err := publish.PublishPrivate(publish.PrivateFacts{
		Spec: r.spec, SpecJSON: m.Spec, SpecHash: m.SpecSHA256, Date: m.NominalDate, DateFromFlag: m.DateFromFlag,
		Templates: m.Templates, DuckDB: m.DuckDB, Build: *m.Build, Key: key, Ledger: ledger, SpentNow: spent,
		Baseline: m.Baseline, Criteria: m.CriteriaHistory, RunID: m.Volatile.RunID, ParentRun: m.Volatile.ParentRun, Execution: m.Volatile.Execution, SpecFile: m.Volatile.SpecFile,
	}, rel)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(pub.Files, diskio.StagedFile{Name: "manifest.json", Data: pub.Manifest}) {
		got, err := os.ReadFile(filepath.Join(r.dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s is not a function of the noisy release and the published facts", f.Name)
		}
	}
	entries, _ := os.ReadDir(r.dir)
	if len(entries) != len(pub.Files)+1 {
		t.Errorf("the release folder holds %d files, the release %d", len(entries), len(pub.Files)+1)
	}
	if r.outcome.Verdict != pub.Verdict || r.outcome.Rows != pub.Rows || strings.Join(r.outcome.Blocked, ",") != strings.Join(pub.Blocked, ",") {
		t.Errorf("outcome %q/%d/%v is not the release's %q/%d/%v", r.outcome.Verdict, r.outcome.Rows, r.outcome.Blocked, pub.Verdict, pub.Rows, pub.Blocked)
	}
	wantExit := pipeline.ExitOK
	if len(pub.Blocked) > 0 {
		wantExit = pipeline.ExitData
	}
	if got := pipeline.ExitCode(r.err); got != wantExit {
		t.Errorf("exit status %d, the release says %d", got, wantExit)
	}
}

// publicFacts is the published manifest without what the noisy values
// decide (checks, cohorts, the number of released numbers, the release
// digest, the output hashes). The two runs of a pair share their folder,
// spec file and a fresh host each, so everything else must be equal.
func publicFacts(m publish.Manifest) string {
	m.Privacy.ReleaseDigest, m.Privacy.Cohorts, m.Privacy.Released = "", nil, 0
	m.Privacy.DrillSlices = nil
	m.Checks, m.Outputs = nil, nil
	var execution []engine.Setting
	for _, s := range m.Volatile.Execution {
		if s.Name != "temp_directory" {
			execution = append(execution, s)
		}
	}
	m.Volatile.Execution = execution
	b, _ := json.Marshal(m)
	return string(b)
}

func TestPrivacyAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen private jobs")
	}
	_, file, _, _ := runtime.Caller(0)
	basic := filepath.Join(filepath.Dir(file), "..", "fixtures", "data", "basic")
	traces, err := parquet.ReadFile[fixtures.TraceRow](filepath.Join(basic, "traces", "dt=2026-11-17", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	events, err := parquet.ReadFile[fixtures.EventRow](filepath.Join(basic, "events", "dt=2026-11-17", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var traceIDs, eventIDs []string
	for _, r := range traces {
		if r.EventID != nil && r.UnitID != nil && r.ExperimentID != nil && *r.ExperimentID == "checkout-button" && len(traceIDs) < 200 {
			traceIDs = append(traceIDs, *r.EventID)
		}
	}
	for _, r := range events {
		if r.EventID != nil && r.UnitID != nil && r.Metric != nil && *r.Metric == "purchase" && len(eventIDs) < 200 {
			eventIDs = append(eventIDs, *r.EventID)
		}
	}
	if len(traceIDs) < 50 || len(eventIDs) < 50 {
		t.Fatalf("fixture has too few ids to reuse: %d traces, %d events", len(traceIDs), len(eventIDs))
	}
	key, err := privacy.ParseKey([]byte("hex:5c0f6a9e21d3b4c78e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"))
	if err != nil {
		t.Fatal(err)
	}
	// Each neighbour pair under the frequentist engine with and without
	// collapsing, and under the Bayesian engine with an informative prior
	// (its posteriors, chances and risks are published too).
	for _, cfg := range []struct {
		name     string
		minUnits int
		extra    string
	}{
		{"min_units=0", 0, ""},
		{"min_units=300", 300, ""},
		{"bayesian", 0, "statistics:\n  engine: bayesian\n  bayesian: {prior: {type: normal, mean: 0, sd: 0.3}, chance_to_win: 0.9, max_risk: 0.01}\n"},
	} {
		minUnits := cfg.minUnits
		for name, extra := range auditNeighbours(traceIDs, eventIDs) {
			t.Run(cfg.name+"/"+name, func(t *testing.T) {
				dir := auditDataset(t, minUnits, nil, nil)
				if cfg.extra != "" {
					f, err := os.OpenFile(filepath.Join(dir, "specs", "audit.yaml"), os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteString(cfg.extra); err != nil {
						t.Fatal(err)
					}
					if err := f.Close(); err != nil {
						t.Fatal(err)
					}
				}
				base := runAudit(t, dir, "a")
				if base.spec.IsBayesian() != (cfg.name == "bayesian") {
					t.Fatalf("spec engine %q, configuration %s", base.spec.Statistics.Engine, cfg.name)
				}
				base.republish(t, key)
				tr, ev := extra("audit-unit-1")
				addNeighbour(t, dir, tr, ev)
				nb := runAudit(t, dir, "b")
				nb.republish(t, key)
				if a, b := publicFacts(base.manifest), publicFacts(nb.manifest); a != b {
					t.Errorf("data-independent facts of the manifest differ between neighbours:\n%s\n%s", a, b)
				}
				checkSensitivity(t, base, nb)
			})
		}
	}
}

// checkSensitivity asserts that every exact value behind a noisy number
// moves by at most its sensitivity between two neighbouring runs.
func checkSensitivity(t *testing.T, a, b auditRun) {
	t.Helper()
	leaves := func(r auditRun) map[string]string {
		m := map[string]string{"*": "*"}
		for _, c := range r.manifest.Privacy.Cohorts {
			m[c.Label] = strings.Join(c.Leaves, ",")
		}
		// A drill-down slice: its dimension and what was merged into it
		// (same collapsed_from, same members).
		for _, d := range r.manifest.Privacy.DrillSlices {
			for _, s := range d.Slices {
				m[drillCohortKey(d.Dimension, s.ID)] = s.ID + ":" + strings.Join(s.CollapsedFrom, ",")
			}
		}
		for _, l := range privatize.PrivateLeaves(r.spec) {
			if _, ok := m[l]; !ok {
				m[l] = l // stage-one counts are per leaf
			}
		}
		return m
	}
	la, lb := leaves(a), leaves(b)
	exact := map[privatize.NumberKey]privatize.ReleasedNumber{}
	for _, n := range a.record.Numbers {
		exact[privatize.NumberKey{Cohort: n.Cohort, Variant: n.Variant, Metric: n.Metric, Statistic: n.Statistic}] = n
	}
	compared, moved := 0, 0
	// A unit touches one cell per statistic: over the cells of one
	// (metric, statistic), Σ (Δ/sensitivity)² ≤ 1, or the allocation's
	// parallel composition (one cell's cost is the run's) does not hold.
	share := map[string]float64{}
	for _, n := range b.record.Numbers {
		k := privatize.NumberKey{Cohort: n.Cohort, Variant: n.Variant, Metric: n.Metric, Statistic: n.Statistic}
		o, ok := exact[k]
		coh := n.Cohort
		if dim, isDrill := drillDimensionOf(n.Metric); isDrill {
			coh = drillCohortKey(dim, n.Cohort)
			if n.Variant == "*" { // a stage-one count: per declared value or other
				la[coh], lb[coh] = coh, coh
			}
		}
		if !ok || la[coh] != lb[coh] {
			continue
		}
		x, _ := new(big.Int).SetString(o.Exact, 10)
		y, _ := new(big.Int).SetString(n.Exact, 10)
		s, _ := new(big.Int).SetString(n.Sensitivity, 10)
		d := new(big.Int).Sub(y, x)
		if d.Sign() != 0 {
			moved++
		}
		if d.Abs(d).Cmp(s) > 0 {
			t.Errorf("%s/%s/%s/%s moved by %s, more than its sensitivity %s", n.Cohort, n.Variant, n.Metric, n.Statistic, d, s)
		}
		r, _ := new(big.Rat).SetFrac(d, s).Float64()
		share[n.Metric+"/"+n.Statistic] += r * r
		compared++
	}
	for k, v := range share {
		if v > 1+1e-12 {
			t.Errorf("%s: one unit moved several cells by Σ(Δ/sensitivity)² = %.3g > 1; the allocation charges one cell", k, v)
		}
	}
	if compared < len(b.record.Numbers)/2 {
		t.Errorf("compared only %d of %d numbers", compared, len(b.record.Numbers))
	}
	if moved == 0 {
		t.Error("no exact value moved: the neighbour did not reach the release, so the audit proves nothing")
	}
}

// drillDimensionOf returns the dimension of a drill-down number's metric
// ("(drill DIM)…").
func drillDimensionOf(metric string) (string, bool) {
	rest, ok := strings.CutPrefix(metric, "(drill ")
	if !ok {
		return "", false
	}
	dim, _, ok := strings.Cut(rest, ")")
	return dim, ok
}

func drillCohortKey(dim, id string) string { return "(drill " + dim + ")" + id }

// TestUnitKeyedDedupBoundsOneUnit runs, without privacy, the neighbour that
// reuses other units' trace and event ids through the single-join set of
// traces@v5/events@v4 (de-duplication by event_id across units) and through
// the unit-keyed set. With the old keys the one unit removes many other
// units' events and traces (its influence is unbounded, which is why a
// private spec must pin the unit-keyed set); with the unit-keyed set no
// other unit's count moves.
func TestUnitKeyedDedupBoundsOneUnit(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	basic := filepath.Join(filepath.Dir(file), "..", "fixtures", "data", "basic")
	events, err := parquet.ReadFile[fixtures.EventRow](filepath.Join(basic, "events", "dt=2026-11-17", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	traces, err := parquet.ReadFile[fixtures.TraceRow](filepath.Join(basic, "traces", "dt=2026-11-17", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	// Distinct ids, so that the neighbour's own rows are no duplicates of
	// each other: every duplicate it causes is another unit's row.
	var traceIDs, eventIDs []string
	seen := map[string]bool{}
	for _, r := range traces {
		if r.EventID != nil && r.ExperimentID != nil && *r.ExperimentID == "checkout-button" && len(traceIDs) < 100 && !seen["t"+*r.EventID] {
			seen["t"+*r.EventID] = true
			traceIDs = append(traceIDs, *r.EventID)
		}
	}
	for _, r := range events {
		if r.EventID != nil && r.Metric != nil && *r.Metric == "purchase" && len(eventIDs) < 100 && !seen["e"+*r.EventID] {
			seen["e"+*r.EventID] = true
			eventIDs = append(eventIDs, *r.EventID)
		}
	}
	tr, ev := auditNeighbours(traceIDs, eventIDs)["reuses other units' ids"]("audit-unit-1")
	run := func(data string, pins string) engine.Quality {
		spec := strings.Replace(fmt.Sprintf(auditSpec, 0), "templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}", pins, 1)
		spec = strings.Replace(spec, "privacy: {enabled: true, epsilon: 4, delta: 1.0e-6, run_share: 0.25, key_env: VERITY_AUDIT_KEY}", "privacy: {enabled: false}", 1)
		if err := os.WriteFile(filepath.Join(data, "specs", "exact.yaml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := expspec.LoadSpec(filepath.Join(data, "specs", "exact.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := pipeline.Run(context.Background(), s, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Quality
	}
	base, nb := auditDataset(t, 0, nil, nil), auditDataset(t, 0, tr, ev)
	old := "templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}"
	keyed := "templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}"
	qo0, qo1 := run(base, old), run(nb, old)
	qk0, qk1 := run(base, keyed), run(nb, keyed)
	if lost := qo0.EventAttributed - qo1.EventAttributed; lost < 20 {
		t.Errorf("event_id-only de-duplication: the neighbour removed %d other units' attributed events; the audit's neighbour should reach them", lost)
	}
	if qk1.EventAttributed != qk0.EventAttributed || qk1.EventDuplicates != qk0.EventDuplicates || qk1.TraceDuplicates != qk0.TraceDuplicates {
		t.Errorf("unit-keyed set: the neighbour changed other units' rows (attributed %d -> %d, event duplicates %d -> %d, trace duplicates %d -> %d)",
			qk0.EventAttributed, qk1.EventAttributed, qk0.EventDuplicates, qk1.EventDuplicates, qk0.TraceDuplicates, qk1.TraceDuplicates)
	}
	if qk1.UnitsAssigned != qk0.UnitsAssigned+1 {
		t.Errorf("unit-keyed set: units assigned %d -> %d, want one more (the neighbour itself)", qk0.UnitsAssigned, qk1.UnitsAssigned)
	}
}

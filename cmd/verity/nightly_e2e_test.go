package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/publish"
)

const nightlySpec = `version: 1
experiment: %s
inputs:
  traces: ["../data/traces/"]
  events: ["../data/events/"]
window: {start: 2026-11-16, end: 2026-11-30}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts: {dimension: persona, taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]}
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 300}}
privacy: {enabled: false}
`

// nightlyDir generates one dataset with four experiments and writes a
// folder of five specs: the four, and one broken spec.
func nightlyDir(t *testing.T) (dir string, exps []string) {
	t.Helper()
	dir = t.TempDir()
	cfg := fixtures.DefaultConfig()
	cfg.Units = 1500
	cfg.Effects = nil
	cfg.Experiments = nil
	for _, e := range []string{"exp-a", "exp-b", "exp-c", "exp-d"} {
		cfg.Experiments = append(cfg.Experiments, fixtures.Experiment{ID: e, FlagKey: e, FlagVersion: 1, Control: "control", Traffic: 1,
			Variants: []fixtures.Variant{{Name: "control", Share: 0.5}, {Name: "treatment", Share: 0.5}}})
		exps = append(exps, e)
	}
	if _, err := fixtures.Generate(context.Background(), cfg, filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	specs := filepath.Join(dir, "specs")
	os.MkdirAll(specs, 0o755)
	for _, e := range exps {
		body := fmt.Sprintf(nightlySpec, e)
		path := filepath.Join(specs, e+".yaml")
		if e == "exp-c" { // a spec in another folder shares the pass too
			os.MkdirAll(filepath.Join(specs, "sub"), 0o755)
			body = strings.ReplaceAll(body, "../data/", "../../data/")
			path = filepath.Join(specs, "sub", e+".yaml")
		}
		os.WriteFile(path, []byte(body), 0o644)
	}
	broken := strings.Replace(fmt.Sprintf(nightlySpec, "exp-e"), "\nmetrics:", "\nmetrix:", 1)
	os.WriteFile(filepath.Join(specs, "exp-e.yaml"), []byte(broken), 0o644)
	return dir, exps
}

func readOutputs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{"results.csv", "results.parquet", "quality.json", "decisions.json", "report.html"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// TestNightlyFolder is the nightly acceptance test: five specs, one broken,
// one date. Four experiments complete, the broken spec is reported with
// exit 78, the traces were scanned once for the four (the manifest's scan
// counter), a rerun reproduces every byte, and an experiment analysed
// alone gives the same bytes as in the shared pass.
func TestNightlyFolder(t *testing.T) {
	dir, exps := nightlyDir(t)
	r := verity(t, dir, "run", "--log", "none", "--date", "2026-11-19", "--out", "runs", "specs", "specs/sub")
	if r.code != pipeline.ExitConfig {
		t.Fatalf("exit %d, want %d (the broken spec)\n%s\n%s", r.code, pipeline.ExitConfig, r.stdout, r.stderr)
	}
	if got := strings.Count("\n"+r.stdout, "\nok "); got != 4 {
		t.Errorf("want 4 ok lines:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "FAIL   specs/exp-e.yaml  exit 78") || !strings.Contains(r.stdout, `unknown key "metrix"`) {
		t.Errorf("broken spec not reported:\n%s", r.stdout)
	}
	first := map[string]map[string][]byte{}
	for _, e := range exps {
		runDir := filepath.Join(dir, "runs", e, "2026-11-19")
		first[e] = readOutputs(t, runDir)
		var m publish.Manifest
		b, _ := os.ReadFile(filepath.Join(runDir, "manifest.json"))
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Volatile == nil || m.Volatile.Scan == nil {
			t.Fatalf("%s: manifest has no scan record", e)
		}
		if s := m.Volatile.Scan; s.TracesPasses != 1 || strings.Join(s.Experiments, ",") != strings.Join(exps, ",") {
			t.Errorf("%s: scan %+v, want one traces pass shared by %v", e, s, exps)
		}
		var resolved struct {
			Window struct{ End string } `json:"window"`
		}
		if err := json.Unmarshal(m.Spec, &resolved); err != nil || resolved.Window.End != "2026-11-20T00:00:00Z" {
			t.Errorf("%s: the nominal date did not cut the window: end %q (%v)", e, resolved.Window.End, err)
		}
	}
	// Rerun: identical bytes.
	verity(t, dir, "run", "--log", "none", "--date", "2026-11-19", "--out", "runs", "specs", "specs/sub")
	for _, e := range exps {
		again := readOutputs(t, filepath.Join(dir, "runs", e, "2026-11-19"))
		for f := range again {
			if !bytes.Equal(again[f], first[e][f]) {
				t.Errorf("%s/%s changed on rerun", e, f)
			}
		}
	}
	// Alone: the same bytes and the same stable manifest (input paths,
	// input digest) as in the shared pass.
	if r := verity(t, dir, "run", "--log", "none", "--date", "2026-11-19", "--out", "solo", "specs/sub/exp-c.yaml"); r.code != 0 {
		t.Fatalf("solo run: %+v", r)
	}
	solo := readOutputs(t, filepath.Join(dir, "solo", "exp-c", "2026-11-19"))
	for f := range solo {
		if !bytes.Equal(solo[f], first["exp-c"][f]) {
			t.Errorf("exp-c %s differs between the shared pass and a solo run", f)
		}
	}
	if a, b := stableManifest(t, filepath.Join(dir, "solo", "exp-c", "2026-11-19")), stableManifest(t, filepath.Join(dir, "runs", "exp-c", "2026-11-19")); !bytes.Equal(a, b) {
		t.Errorf("exp-c's stable manifest differs between the shared pass and a solo run:\n%s\n%s", a, b)
	}
}

func TestNightlyNotStartedAndValidate(t *testing.T) {
	dir, _ := nightlyDir(t)
	os.Remove(filepath.Join(dir, "specs", "exp-e.yaml"))
	r := verity(t, dir, "run", "--log", "none", "--date", "2026-11-10", "--out", "runs", "specs/exp-a.yaml")
	_ = r
	if r.code != 0 || !strings.Contains(r.stdout, "skip   exp-a") || !strings.Contains(r.stdout, "not active yet") {
		t.Fatalf("an experiment before its window should be skipped: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		t.Error("a skipped experiment wrote outputs")
	}
	r = verity(t, dir, "validate", "specs", "specs/sub")
	if r.code != 0 || strings.Count(r.stdout, "valid: spec, key, inputs and schemas") != 4 {
		t.Fatalf("validate: %+v", r)
	}
	r = verity(t, dir, "run", "--dry-run", "--log", "none", "--out", "runs", "specs", "specs/sub")
	if r.code != 0 || !strings.Contains(r.stdout, "pass 1: experiments exp-a, exp-b, exp-d, exp-c") {
		t.Fatalf("dry run: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		t.Error("a dry run wrote outputs")
	}
	os.WriteFile(filepath.Join(dir, "data", "traces", "dt=2026-11-17", "part-00000.parquet"), []byte("garbage"), 0o644)
	r = verity(t, dir, "validate", "specs", "specs/sub")
	if r.code != pipeline.ExitData || !strings.Contains(r.stdout, "dt=2026-11-17/part-00000.parquet") {
		t.Fatalf("validate with a corrupt input: %+v", r)
	}
}

// TestDatePrunesLaterPartitions: a rerun of a past night reads only the
// partitions that night could see.
func TestDatePrunesLaterPartitions(t *testing.T) {
	dir, _ := nightlyDir(t)
	r := verity(t, dir, "run", "--log", "none", "--date", "2026-11-17", "--out", "runs", "specs/exp-a.yaml")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var m publish.Manifest
	b, _ := os.ReadFile(filepath.Join(dir, "runs", "exp-a", "2026-11-17", "manifest.json"))
	json.Unmarshal(b, &m)
	for _, in := range m.Inputs {
		if strings.Contains(in.Path, "dt=2026-11-18") || strings.Contains(in.Path, "dt=2026-11-2") {
			t.Errorf("input after the nominal date was read: %s", in.Path)
		}
	}
	if len(m.Inputs) == 0 {
		t.Fatal("no inputs recorded")
	}
}

// TestBlockingGate: a check above its block threshold exits 65, and the
// outputs are still committed with verdict invalid (rule quality_gate) so
// that the on-call engineer can read quality.json.
func TestBlockingGate(t *testing.T) {
	dir, _ := nightlyDir(t)
	p := filepath.Join(dir, "specs", "exp-a.yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, []byte("quality: {trace_duplicate_rate: {warn: 0.0001, block: 0.0002}}\n")...), 0o644)
	r := verity(t, dir, "run", "--log", "none", "--out", "runs", "specs/exp-a.yaml")
	if r.code != pipeline.ExitData || !strings.Contains(r.stdout, "BLOCK  exp-a") || !strings.Contains(r.stdout, "trace_duplicate_rate") {
		t.Fatalf("want exit 65 naming the check: %+v", r)
	}
	runDir := filepath.Join(dir, "runs", "exp-a", "2026-11-29")
	var d analysis.Decisions
	b, err := os.ReadFile(filepath.Join(runDir, "decisions.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &d)
	if d.Verdict != "invalid" || d.Rule != "quality_gate" {
		t.Errorf("verdict %s rule %s, want invalid quality_gate", d.Verdict, d.Rule)
	}
	var q publish.QualityReport
	b, _ = os.ReadFile(filepath.Join(runDir, "quality.json"))
	json.Unmarshal(b, &q)
	found := false
	for _, c := range q.Checks {
		if c.Name == "trace_duplicate_rate" {
			found = c.Outcome == "block" && c.Threshold == 0.0002 && c.Observed > 0.0002
		}
	}
	if !found {
		t.Errorf("quality.json does not show the blocking check: %+v", q.Checks)
	}
	// A blocked run replays like any other.
	if r := verity(t, dir, "replay", filepath.Join(runDir, "manifest.json")); r.code != 0 || !strings.Contains(r.stdout, "replay identical") {
		t.Errorf("replay of a blocked run: %+v", r)
	}
}

func stableManifest(t *testing.T, runDir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m publish.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(m.Stable())
	return out
}

// TestConsecutiveNightsReplay: the second night's volume check compares
// with the first night's run; the manifest records that baseline, so the
// second night replays byte for byte.
func TestConsecutiveNightsReplay(t *testing.T) {
	dir, _ := nightlyDir(t)
	os.Remove(filepath.Join(dir, "specs", "exp-e.yaml"))
	for _, d := range []string{"2026-11-18", "2026-11-19"} {
		if r := verity(t, dir, "run", "--log", "none", "--date", d, "--out", "runs", "specs/exp-a.yaml"); r.code != 0 {
			t.Fatalf("%s: %+v", d, r)
		}
	}
	var m publish.Manifest
	b, _ := os.ReadFile(filepath.Join(dir, "runs", "exp-a", "2026-11-19", "manifest.json"))
	json.Unmarshal(b, &m)
	if m.Baseline == nil || m.Baseline.Date != "2026-11-18" || m.Baseline.UnitsExposed == 0 {
		t.Fatalf("baseline not recorded: %+v", m.Baseline)
	}
	r := verity(t, dir, "replay", filepath.Join(dir, "runs", "exp-a", "2026-11-19", "manifest.json"))
	if r.code != 0 || !strings.Contains(r.stdout, "replay identical") {
		t.Fatalf("replay of the second night: %+v", r)
	}
}

// TestDuplicateIDsAcrossMetrics: an event_id that appears under two event
// names must not make one experiment's numbers depend on another spec that
// uses the other name.
func TestDuplicateIDsAcrossMetrics(t *testing.T) {
	dir := t.TempDir()
	str := func(v string) *string { return &v }
	ts := func(min int) *int64 { v := int64(1_763_337_600_000_000) + int64(min)*60_000_000; return &v } // 2025-11-17
	var tr []fixtures.TraceRow
	var ev []fixtures.EventRow
	for u := 0; u < 40; u++ {
		unit := str(fmt.Sprintf("u%02d", u))
		for _, e := range []string{"exp-a", "exp-b"} {
			tr = append(tr, fixtures.TraceRow{TS: ts(u), UnitID: unit, ExperimentID: str(e), Variant: str([]string{"control", "treatment"}[u%2]), Persona: str("p")})
		}
		id := str(fmt.Sprintf("E%02d", u))
		ev = append(ev, fixtures.EventRow{TS: ts(100 + u), UnitID: unit, Metric: str("purchase"), EventID: id})
		if u%3 == 0 { // the same id under another name, earlier
			ev = append(ev, fixtures.EventRow{TS: ts(50 + u), UnitID: unit, Metric: str("click"), EventID: id})
		}
	}
	os.MkdirAll(filepath.Join(dir, "t"), 0o755)
	os.MkdirAll(filepath.Join(dir, "e"), 0o755)
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "t", "t.parquet"), tr); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteEventFile(filepath.Join(dir, "e", "e.parquet"), ev); err != nil {
		t.Fatal(err)
	}
	spec := `version: 1
experiment: %s
inputs: {traces: ["t/*.parquet"], events: ["e/*.parquet"]}
window: {start: 2025-11-16, end: 2025-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts: {dimension: persona, taxonomy: [p]}
metrics:
  - {name: m, kind: proportion, event: %s}
quality: {event_duplicate_rate: {block: 2}}
privacy: {enabled: false}
`
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(fmt.Sprintf(spec, "exp-a", "purchase")), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(fmt.Sprintf(spec, "exp-b", "click")), 0o644)
	if r := verity(t, dir, "run", "--log", "none", "--out", "both", "a.yaml", "b.yaml"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if r := verity(t, dir, "run", "--log", "none", "--out", "solo", "a.yaml"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	together := readOutputs(t, filepath.Join(dir, "both", "exp-a", "2025-11-19"))
	alone := readOutputs(t, filepath.Join(dir, "solo", "exp-a", "2025-11-19"))
	for f := range alone {
		if !bytes.Equal(alone[f], together[f]) {
			t.Errorf("exp-a %s depends on whether exp-b ran beside it", f)
		}
	}
}

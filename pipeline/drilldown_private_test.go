package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
	"github.com/verity-analytics/verity/privacy"
)

const testKeyHex = "hex:5c0f6a9e21d3b4c78e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"

// privateDrillSpec writes a private spec over drillData with the given
// drilldowns section and cohorts.min_units.
func privateDrillSpec(t *testing.T, dir, drill, minUnits string) *expspec.Spec {
	t.Helper()
	spec := `version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4, drilldown: v1}
cohorts: {dimension: persona, taxonomy: [a], min_units: ` + minUnits + `}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal, attribution_hours: 96}
  - {name: spend, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 100}, attribution_hours: 96}
drilldowns: ` + drill + `
privacy: {enabled: true, epsilon: 8, delta: 1.0e-6, run_share: 0.5, key_env: VERITY_TEST_KEY}
`
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runPrivateDrill runs spec with a fresh ledger over dir and returns the
// outcome and the restricted record.
func runPrivateDrill(t *testing.T, dir string, spec *expspec.Spec) (*pipeline.Outcome, publish.RestrictedRecord, publish.Manifest) {
	t.Helper()
	t.Setenv("VERITY_TEST_KEY", testKeyHex)
	state := t.TempDir()
	if _, err := ledgers.LedgerInit(state, "drill", dir, privacy.ScopeSource, privacy.Budget{Epsilon: 100, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	host := ledgers.Host{StateDir: state, RestrictedDir: filepath.Join(state, "restricted")}
	o, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}, Host: host, RunID: "drill"})
	var gate *analysis.GateError
	if err != nil && !errors.As(err, &gate) {
		t.Fatalf("private drill-down run: %v", err)
	}
	var m publish.Manifest
	b, err := os.ReadFile(filepath.Join(o.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var rec publish.RestrictedRecord
	b, err = os.ReadFile(filepath.Join(ledgers.RestrictedDir(host.RestrictedRoot(), spec.Experiment, m.NominalDate, m.Privacy.ReleaseDigest), "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return o, rec, m
}

// exactDrillUnits sums the restricted record's exact unit counts of each
// slice of a dimension over the arms.
func exactDrillUnits(t *testing.T, rec publish.RestrictedRecord, dim string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range rec.Numbers {
		if n.Metric == "(drill "+dim+")(cell)" && n.Statistic == "n" {
			v, ok := new(big.Int).SetString(n.Exact, 10)
			if !ok {
				t.Fatalf("exact %q", n.Exact)
			}
			out[n.Cohort] += v.Int64()
		}
	}
	return out
}

// TestPrivateDrilldownSlices: a private drill-down publishes exactly the
// declared values (in spec order, also one absent from the data) and
// other, whatever the data hold. The slice assignment is checked by hand
// against drillData (the exact drill-down's hostile values): ios holds its
// 10 units, the NULL-beside-ios tie and the unit whose later row differs
// (12); "" 4; "(null)" 2 (a value, never NULL); other the undeclared
// android units with the ios/android tie (11) and the 6 NULL units (17).
// Nothing exact is published: no tied units, the declared count as
// dimension_values.
func TestPrivateDrilldownSlices(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	spec := privateDrillSpec(t, dir, `{dimensions: [sdk_version, flag_version], values: {sdk_version: [ios, "", "(null)", absent-value], flag_version: [7]}}`, "0")
	o, rec, m := runPrivateDrill(t, dir, spec)
	type slice struct{ kind, value, values, tied string }
	var got []slice
	for _, r := range drillRows(t, o.Dir) {
		if r["metric"] != "converted" {
			continue
		}
		got = append(got, slice{r["slice_kind"], r["slice"], r["dimension_values"], r["units_tied"]})
		if r["status"] == "too_many_values" || r["status"] == "no_units" {
			t.Errorf("status decided on exact counts: %v", r)
		}
	}
	want := []slice{{"value", "ios", "4", ""}, {"value", "", "4", ""}, {"value", "(null)", "4", ""}, {"value", "absent-value", "4", ""}, {"other", "", "4", ""},
		{"value", "7", "1", ""}, {"other", "", "1", ""}}
	if len(got) != len(want) {
		t.Fatalf("slices %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("slice %d: %v, want %v", i, got[i], want[i])
		}
	}
	for dim, w := range map[string]map[string]int64{
		"sdk_version":  {"v0000": 12, "v0001": 4, "v0002": 2, "v0003": 0, "other": 17},
		"flag_version": {"v0000": 25, "other": 10},
	} {
		g := exactDrillUnits(t, rec, dim)
		for id, n := range w {
			if g[id] != n {
				t.Errorf("%s slice %s: %d exact units, want %d", dim, id, g[id], n)
			}
		}
		if len(g) != len(w) {
			t.Errorf("%s: slices %v, want %v", dim, g, w)
		}
	}
	if m.Privacy.DrillShare != expspec.DefaultDrillBudgetShare || len(m.Privacy.DrillSlices) != 2 {
		t.Errorf("manifest: drill share %v, slices %v", m.Privacy.DrillShare, m.Privacy.DrillSlices)
	}
	drillShares := 0
	for _, sh := range m.Privacy.Allocation {
		if strings.HasPrefix(sh.Metric, "(drill ") {
			drillShares++
		}
	}
	if drillShares == 0 {
		t.Error("the manifest's allocation has no drill-down shares")
	}
}

// TestPrivateDrilldownReplay: a private drill-down release replays byte
// for byte (drilldown.csv among its outputs) without a charge, and a
// replay over an edited drilldown.csv stops with exit 70 naming it.
func TestPrivateDrilldownReplay(t *testing.T) {
	k := sha256.Sum256([]byte("drill key"))
	out := t.TempDir()
	host := fixtureHost(t, 40)
	if _, err := runPrivate(t, host, "../fixtures/specs/checkout-drill-private.yaml", out, k[:], ""); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "checkout-drill-private", "2026-11-19", "manifest.json")
	spent := readSourceLedger(t, host).Spent()
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Host: host})
	if err != nil {
		t.Fatalf("private drill-down replay: %v", err)
	}
	if readSourceLedger(t, host).Spent().Cmp(spent) != 0 {
		t.Error("a byte-identical private replay was charged")
	}
	seen := false
	for _, o := range rep.Outputs {
		seen = seen || o.Name == publish.DrilldownFile
		if !o.Identical {
			t.Errorf("private replay: %s differs", o.Name)
		}
	}
	if !seen {
		t.Errorf("the replay did not compare %s", publish.DrilldownFile)
	}
	p := filepath.Join(filepath.Dir(manifest), publish.DrilldownFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte("ios-4.2.0"), []byte("ios-4.2.1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay.Replay(context.Background(), manifest, replay.ReplayOptions{Host: host})
	if err == nil || pipeline.ExitCode(err) != 70 || !strings.Contains(err.Error(), publish.DrilldownFile) {
		t.Errorf("replay over an edited drilldown.csv: %v (exit %d), want exit 70 naming the file", err, pipeline.ExitCode(err))
	}
}

// TestPrivateDrilldownColumnTypo: a private spec drilling down on a column
// no trace file has fails before any SQL, as an exact one does (exit 78
// naming the key and a file), and nothing is charged.
func TestPrivateDrilldownColumnTypo(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	spec := privateDrillSpec(t, dir, `{dimensions: [sdk_versoin], values: {sdk_versoin: [ios]}}`, "0")
	t.Setenv("VERITY_TEST_KEY", testKeyHex)
	state := t.TempDir()
	if _, err := ledgers.LedgerInit(state, "drill", dir, privacy.ScopeSource, privacy.Budget{Epsilon: 100, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	host := ledgers.Host{StateDir: state, RestrictedDir: filepath.Join(state, "restricted")}
	_, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}, Host: host})
	var se *expspec.SpecError
	if !errors.As(err, &se) || se.Key != "drilldowns.dimensions[0]" || pipeline.ExitCode(err) != 78 || !strings.Contains(err.Error(), "t.parquet") {
		t.Fatalf("typo: %v (exit %d), want a SpecError at drilldowns.dimensions[0] naming t.parquet, exit 78", err, pipeline.ExitCode(err))
	}
	l, err := ledgers.ReadLedger(filepath.Join(state, "ledgers", "drill.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 0 {
		t.Errorf("a refused private run was charged: %d entries", len(l.Entries))
	}
}

// TestPrivateDrilldownDeclaredIntegerText: a declared value for an integer
// column that is not its plain decimal text (07, 7.0, "7 ", +7) could never
// match a unit — a unit's value is compared as text — so it is refused
// before any SQL runs or anything is charged, naming the value's key; 7
// itself runs (TestPrivateDrilldownSlices).
func TestPrivateDrilldownDeclaredIntegerText(t *testing.T) {
	dir := t.TempDir()
	drillData(t, dir)
	t.Setenv("VERITY_TEST_KEY", testKeyHex)
	for _, v := range []string{"07", "7.0", `"7 "`, "+7", "seven"} {
		spec := privateDrillSpec(t, dir, `{dimensions: [sdk_version, flag_version], values: {sdk_version: [ios], flag_version: [7, `+v+`]}}`, "0")
		state := t.TempDir()
		if _, err := ledgers.LedgerInit(state, "drill", dir, privacy.ScopeSource, privacy.Budget{Epsilon: 100, Delta: 1e-6}, nil); err != nil {
			t.Fatal(err)
		}
		host := ledgers.Host{StateDir: state, RestrictedDir: filepath.Join(state, "restricted")}
		_, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 1}, Host: host, RunID: "drill"})
		var se *expspec.SpecError
		if !errors.As(err, &se) || se.Key != "drilldowns.values.flag_version[1]" || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "can never match") {
			t.Errorf("declared %s: got %v (exit %d), want exit 78 naming drilldowns.values.flag_version[1]", v, err, pipeline.ExitCode(err))
		}
		l, err := ledgers.ReadLedger(filepath.Join(state, "ledgers", "drill.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Entries) != 0 {
			t.Errorf("declared %s: the refused run was charged (%d entries)", v, len(l.Entries))
		}
	}
}

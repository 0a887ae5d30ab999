package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/privacy"
)

// replayFixture copies the checkout-button spec and the basic fixture data
// into a temporary folder (so that a test may damage them), runs the spec,
// and returns the folder and the run's manifest path.
func replayFixture(t *testing.T, spec string) (dir, manifest string) {
	t.Helper()
	return replayFixtureAt(t, spec, "")
}

// replayFixtureAt is replayFixture with a nominal date (Options.Date).
func replayFixtureAt(t *testing.T, spec, date string) (dir, manifest string) {
	t.Helper()
	dir, manifest, _ = replayFixtureHost(t, spec, date)
	return dir, manifest
}

// replayFixtureHost also returns the host it ran with: its state folder
// registers the copied data as a source (private specs are charged there).
func replayFixtureHost(t *testing.T, spec, date string) (dir, manifest string, host ledgers.Host) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	fx := filepath.Join(filepath.Dir(file), "..", "..", "fixtures")
	dir = t.TempDir()
	for _, sub := range []string{"specs", filepath.Join("data", "basic"), "keys"} {
		replayCopyTree(t, filepath.Join(fx, sub), filepath.Join(dir, sub))
	}
	s, err := expspec.LoadSpec(filepath.Join(dir, "specs", spec))
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if _, err := ledgers.LedgerInit(state, "copy", filepath.Join(dir, "data"), privacy.ScopeSource, privacy.Budget{Epsilon: 40, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	host = ledgers.Host{StateDir: state, AllowTestKey: true}
	res, err := pipeline.Run(context.Background(), s, pipeline.Options{OutDir: filepath.Join(dir, "runs"), Date: date, Engine: engine.Engine{Threads: 2}, Build: publish.CurrentBuild(), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(res.Dir, "manifest.json"), host
}

func replayCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// eventRow is the events schema, for rewriting a fixture file.
type replayEventRow struct {
	TS      *int64   `parquet:"ts,timestamp(microsecond:utc)"`
	UnitID  *string  `parquet:"unit_id"`
	Metric  *string  `parquet:"metric"`
	Value   *float64 `parquet:"value"`
	EventID *string  `parquet:"event_id"`
}

// flipOneValue changes the first non-NULL value of an events file.
func flipOneValue(t *testing.T, path string) {
	t.Helper()
	rows, err := parquet.ReadFile[replayEventRow](path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].Value != nil {
			v := *rows[i].Value + 1
			rows[i].Value = &v
			break
		}
	}
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
}

func TestReplayIdentical(t *testing.T) {
	for _, tc := range []struct{ spec, date, wantDate string }{
		{"checkout-button.yaml", "", "2026-11-19"},           // every partition read
		{"checkout-button.yaml", "2026-11-19", "2026-11-19"}, // partitions after the date pruned
		{"checkout-button.yaml", "2026-11-17", "2026-11-17"}, // window cut at the date
		{"checkout-button-private.yaml", "", "2026-11-19"},
		{"checkout-button-bayes.yaml", "", "2026-11-19"},       // the Bayesian engine
		{"checkout-button-tests.yaml", "", "2026-11-19"},       // per-metric hypotheses
		{"checkout-button-quantiles.yaml", "", "2026-11-19"},   // quantile metrics (histograms@v1, quantiles.csv)
		{"checkout-button-evquantiles.yaml", "", "2026-11-19"}, // event-level quantile metrics (eventbins@v1)
	} {
		t.Run(tc.spec+"@"+tc.date, func(t *testing.T) {
			_, manifest, host := replayFixtureHost(t, tc.spec, tc.date)
			rep, err := Replay(context.Background(), manifest, ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild(), Host: host})
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if !rep.Identical() || len(rep.Outputs) < 4 {
				t.Fatalf("want every output identical, got %+v", rep.Outputs)
			}
			if strings.Contains(tc.spec, "quantiles") && !slices.ContainsFunc(rep.Outputs, func(o OutputComparison) bool { return o.Name == "quantiles.csv" }) {
				t.Errorf("quantiles.csv was not compared: %+v", rep.Outputs)
			}
			want := "replay identical: " + itoa(len(rep.Outputs)) + " outputs byte-identical to run " + rep.Old.Volatile.RunID + " (checkout-button " + tc.wantDate + ")"
			if got := rep.Summary(); got != want {
				t.Errorf("summary\n got %q\nwant %q", got, want)
			}
			if rep.New.Volatile.ParentRun != rep.Old.Volatile.RunID {
				t.Errorf("parent run %q, want %q", rep.New.Volatile.ParentRun, rep.Old.Volatile.RunID)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestReplayPinMovesNumbers(t *testing.T) {
	_, manifest := replayFixture(t, "checkout-button.yaml")
	keep := t.TempDir()
	rep, err := Replay(context.Background(), manifest, ReplayOptions{
		Pins:   map[string]string{"unit_metrics": "v3", "sufstats": "v2", "quality": "v2"},
		OutDir: keep,
		Build:  publish.CurrentBuild(),
	})
	var mm *ReplayMismatchError
	if !errors.As(err, &mm) || ReplayExitCode(err) != pipeline.ExitMismatch {
		t.Fatalf("want a ReplayMismatchError (exit 70), got %v (exit %d)", err, ReplayExitCode(err))
	}
	if rep.Identical() || rep.CellsTotal == 0 || len(rep.Cells) == 0 {
		t.Fatalf("want moved numbers, got %d", rep.CellsTotal)
	}
	joined := strings.Join(rep.Causes, "\n")
	for _, want := range []string{"template version unit_metrics: v1 -> v3", "template version sufstats: v1 -> v2", "spec change", "top-level keys that differ: templates"} {
		if !strings.Contains(joined, want) {
			t.Errorf("causes lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "input change") || strings.Contains(joined, "code version") {
		t.Errorf("causes name an input or code change that did not happen:\n%s", joined)
	}
	// The diff is sorted by cohort, metric, variant and lists only
	// differing cells.
	sorted := sort.SliceIsSorted(rep.Cells, func(i, j int) bool {
		a, b := rep.Cells[i], rep.Cells[j]
		return a.Cohort+"\x00"+a.Metric+"\x00"+a.Variant < b.Cohort+"\x00"+b.Metric+"\x00"+b.Variant
	})
	if !sorted {
		t.Error("cell diffs are not sorted by cohort, metric, variant")
	}
	for _, c := range rep.Cells {
		if c.Old == c.New {
			t.Errorf("listed an equal cell: %+v", c)
		}
	}
	if rep.NewDir == "" {
		t.Fatal("--out given but no folder kept")
	}
	if _, err := os.Stat(filepath.Join(rep.NewDir, "manifest.json")); err != nil {
		t.Errorf("kept rerun has no manifest: %v", err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "cohort  ") || !strings.Contains(b.String(), "(all)") {
		t.Errorf("text report lacks the diff table:\n%s", b.String())
	}
}

func TestReplayInputChanges(t *testing.T) {
	events := "data/basic/events/dt=2026-11-17/part-00000.parquet"
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		wantCode int
		wantKind string
		wantPath string
	}{
		{"one value flipped", func(t *testing.T, dir string) { flipOneValue(t, filepath.Join(dir, events)) }, pipeline.ExitMismatch, "changed", "../" + events},
		{"file removed", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, events)) }, pipeline.ExitNoInput, "missing", "../" + events},
		{"file added", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, events))
			os.WriteFile(filepath.Join(dir, "data/basic/events/dt=2026-11-17/part-00001.parquet"), b, 0o644)
		}, pipeline.ExitMismatch, "added", "../data/basic/events/dt=2026-11-17/part-00001.parquet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, manifest := replayFixture(t, "checkout-button.yaml")
			old, _, err := publish.ReadManifestFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			_, err = Replay(context.Background(), manifest, ReplayOptions{Build: publish.CurrentBuild()})
			var ie *ReplayInputError
			if !errors.As(err, &ie) {
				t.Fatalf("want a ReplayInputError, got %v", err)
			}
			if got := ReplayExitCode(err); got != tc.wantCode {
				t.Errorf("exit %d, want %d", got, tc.wantCode)
			}
			if len(ie.Changes) != 1 {
				t.Fatalf("want one change, got %+v", ie.Changes)
			}
			c := ie.Changes[0]
			if c.Kind != tc.wantKind || c.Path != tc.wantPath {
				t.Errorf("change %+v, want %s %s", c, tc.wantKind, tc.wantPath)
			}
			if tc.wantKind == "changed" {
				var rec intake.InputFile
				for _, f := range old.Inputs {
					if f.Path == c.Path {
						rec = f
					}
				}
				if c.OldSHA256 != rec.SHA256 || c.NewSHA256 == "" || c.NewSHA256 == c.OldSHA256 || c.OldRows != rec.Rows || c.NewRows != rec.Rows {
					t.Errorf("change %+v does not give both hashes and row counts (recorded %+v)", c, rec)
				}
				for _, want := range []string{c.Path, c.OldSHA256, c.NewSHA256} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message lacks %q: %v", want, err)
					}
				}
			}
		})
	}
}

func TestReplayRefuses(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(t *testing.T, manifest string) (string, ReplayOptions)
		wantCode int
		wantMsg  string
	}{
		{"manifest missing", func(t *testing.T, m string) (string, ReplayOptions) {
			return filepath.Join(filepath.Dir(m), "nope.json"), ReplayOptions{}
		}, pipeline.ExitNoInput, "nope.json"},
		{"manifest not JSON", func(t *testing.T, m string) (string, ReplayOptions) {
			os.WriteFile(m, []byte("{not json"), 0o644)
			return m, ReplayOptions{}
		}, pipeline.ExitConfig, "not a valid manifest"},
		{"spec edited in the manifest", func(t *testing.T, m string) (string, ReplayOptions) {
			b, _ := os.ReadFile(m)
			os.WriteFile(m, []byte(strings.Replace(string(b), `"alpha": 0.05`, `"alpha": 0.01`, 1)), 0o644)
			return m, ReplayOptions{}
		}, pipeline.ExitConfig, "the manifest was edited"},
		{"pin of an unknown template", func(t *testing.T, m string) (string, ReplayOptions) {
			return m, ReplayOptions{Pins: map[string]string{"nosuch": "v1"}}
		}, pipeline.ExitConfig, "unknown template"},
		{"pin that does not fit", func(t *testing.T, m string) (string, ReplayOptions) {
			return m, ReplayOptions{Pins: map[string]string{"unit_metrics": "v3", "quality": "v2"}}
		}, pipeline.ExitConfig, "do not fit together"},
		{"pin of an unreleased version", func(t *testing.T, m string) (string, ReplayOptions) {
			return m, ReplayOptions{Pins: map[string]string{"quality": "v9"}}
		}, pipeline.ExitConfig, "quality"},
		{"out would replace the run", func(t *testing.T, m string) (string, ReplayOptions) {
			return m, ReplayOptions{OutDir: filepath.Dir(filepath.Dir(filepath.Dir(m)))}
		}, pipeline.ExitConfig, "would replace the run being replayed"},
		{"inputs dir without the inputs", func(t *testing.T, m string) (string, ReplayOptions) {
			return m, ReplayOptions{InputsDir: t.TempDir()}
		}, pipeline.ExitNoInput, "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, manifest := replayFixture(t, "checkout-button.yaml")
			path, opts := tc.prepare(t, manifest)
			opts.Build = publish.CurrentBuild()
			_, err := Replay(context.Background(), path, opts)
			if err == nil {
				t.Fatal("replay succeeded")
			}
			if got := ReplayExitCode(err); got != tc.wantCode {
				t.Errorf("exit %d, want %d: %v", got, tc.wantCode, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error lacks %q: %v", tc.wantMsg, err)
			}
		})
	}
}

func TestDecodeManifest(t *testing.T) {
	good := publish.Manifest{
		Format: publish.ManifestFormat, Experiment: "e", NominalDate: "2026-11-19",
		Spec: json.RawMessage(`{"version":1}`), SpecSHA256: strings.Repeat("a", 64),
		Inputs:  []intake.InputFile{{Role: "traces", Path: "t.parquet", SHA256: strings.Repeat("b", 64)}},
		Outputs: []diskio.OutputFile{{Name: "results.csv", SHA256: strings.Repeat("c", 64)}},
	}
	tests := []struct {
		name    string
		edit    func(m map[string]any)
		raw     string
		wantErr string
	}{
		{"valid", func(map[string]any) {}, "", ""},
		{"unknown field", func(m map[string]any) { m["colour"] = "blue" }, "", "unknown field"},
		{"other format", func(m map[string]any) { m["format"] = "verity.manifest/9" }, "", "format"},
		{"bad date", func(m map[string]any) { m["nominal_date"] = "19/11/2026" }, "", "nominal_date"},
		{"no spec", func(m map[string]any) { delete(m, "spec") }, "", "spec is missing"},
		{"bad spec hash", func(m map[string]any) { m["spec_sha256"] = "abc" }, "", "spec_sha256"},
		{"no outputs", func(m map[string]any) { m["outputs"] = []any{} }, "", "outputs is empty"},
		{"output escapes", func(m map[string]any) {
			m["outputs"] = []any{map[string]any{"name": "../x", "size": 1, "sha256": strings.Repeat("c", 64)}}
		}, "", "plain, unique file name"},
		{"input hash", func(m map[string]any) {
			m["inputs"] = []any{map[string]any{"role": "traces", "path": "t", "sha256": "zz"}}
		}, "", "inputs[0]"},
		{"trailing data", nil, "", "after the JSON object"},
		{"array", nil, "[]", "not a valid manifest"},
		{"empty", nil, " ", "not a valid manifest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if tc.raw == "" {
				b, _ := json.Marshal(good)
				var m map[string]any
				json.Unmarshal(b, &m)
				if tc.edit != nil {
					tc.edit(m)
				}
				raw, _ = json.Marshal(m)
				if tc.edit == nil {
					raw = append(raw, []byte(" {}")...)
				}
			}
			_, err := publish.DecodeManifest(raw)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDiffJSON(t *testing.T) {
	old := `{"verdict":"ship","rule":"r","checks":[{"name":"a","observed":1},{"name":"b","observed":2}],"srm":[{"cohort":"(all)","p":0.5}],"list":[1,2]}`
	cur := `{"verdict":"hold","rule":"r","checks":[{"name":"b","observed":2},{"name":"a","observed":3},{"name":"c","observed":0}],"srm":[{"cohort":"(all)","p":0.5}],"list":[1,3]}`
	got, err := diffJSON([]byte(old), []byte(cur))
	if err != nil {
		t.Fatal(err)
	}
	want := []ValueDiff{
		{Path: "checks[name=a].observed", Old: "1", New: "3"},
		{Path: "checks[name=c].name", Old: "(absent)", New: `"c"`},
		{Path: "checks[name=c].observed", Old: "(absent)", New: "0"},
		{Path: "list[1]", Old: "2", New: "3"},
		{Path: "verdict", Old: `"ship"`, New: `"hold"`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diffJSON (-want +got):\n%s", diff)
	}
	if _, err := diffJSON([]byte("{"), []byte("{}")); err == nil {
		t.Error("diffJSON accepted broken JSON")
	}
}

func TestDiffResults(t *testing.T) {
	old := "experiment,cohort,metric,variant,n_control,p_value,status\n" +
		"e,(all),m,t,10,0.5,ok\n" +
		"e,a/x,m,t,4,0.25,ok\n" +
		"e,a/y,m,t,6,,n<2\n"
	cur := "experiment,cohort,metric,variant,n_control,p_value,status\n" +
		"e,(all),m,t,10,0.4,ok\n" +
		"e,a/x,m,t,5,0.3,ok\n" +
		"e,a/z,m,t,6,0.9,ok\n"
	tests := []struct {
		name      string
		max       int
		wantCells []CellDiff
		wantTotal int
	}{
		{"all", 200, []CellDiff{
			{"(all)", "m", "t", "p_value", "0.5", "0.4"},
			{"a/x", "m", "t", "n_control", "4", "5"},
			{"a/x", "m", "t", "p_value", "0.25", "0.3"},
		}, 3},
		{"bounded", 1, []CellDiff{{"(all)", "m", "t", "p_value", "0.5", "0.4"}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &ReplayReport{}
			if err := diffResults(rep, []byte(old), []byte(cur), tc.max); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantCells, rep.Cells); diff != "" {
				t.Errorf("cells (-want +got):\n%s", diff)
			}
			if rep.CellsTotal != tc.wantTotal {
				t.Errorf("total %d, want %d", rep.CellsTotal, tc.wantTotal)
			}
			if diff := cmp.Diff([]string{"a/y / m / t"}, rep.RowsOnlyOld); diff != "" {
				t.Errorf("rows only old: %s", diff)
			}
			if diff := cmp.Diff([]string{"a/z / m / t"}, rep.RowsOnlyNew); diff != "" {
				t.Errorf("rows only new: %s", diff)
			}
		})
	}
	if err := diffResults(&ReplayReport{}, []byte("a,b\n1,2\n"), []byte(cur), 10); err == nil {
		t.Error("accepted a results.csv without key columns")
	}
}

func TestReplayCausesBuildAndDuckDB(t *testing.T) {
	base := publish.Manifest{
		SpecSHA256: "s", Spec: json.RawMessage(`{"a":1}`), InputDigest: "d",
		DuckDB: publish.DuckDBInfo{Version: "v1.4.5", Settings: []engine.Setting{{Name: "preserve_insertion_order", Value: "false"}}},
		Build:  &publish.BuildInfo{Module: "m", Version: "(devel)", Revision: "abc", GoVersion: "go1.26.0", GOOS: "linux", GOARCH: "amd64"},
	}
	cur := base
	cur.DuckDB = publish.DuckDBInfo{Version: "v1.5.0", Settings: []engine.Setting{{Name: "preserve_insertion_order", Value: "true"}}}
	b := *base.Build
	b.Revision, b.GoVersion = "def", "go1.26.1"
	cur.Build = &b
	got := replayCauses(&base, &cur, nil)
	want := []string{
		"code version: revision abc -> def, Go go1.26.0 -> go1.26.1",
		"DuckDB version: v1.4.5 -> v1.5.0",
		`DuckDB setting preserve_insertion_order: "false" -> "true"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
	same := replayCauses(&base, &base, nil)
	if len(same) != 1 || !strings.HasPrefix(same[0], "no recorded cause") {
		t.Errorf("identical manifests: %q", same)
	}

	// Without VCS information (go run, -buildvcs=false) the executable's
	// hash still tells two builds apart, and still proves them the same.
	novcs := base
	nb := *base.Build
	nb.Revision, nb.ExecutableSHA256 = "unknown", strings.Repeat("a", 64)
	novcs.Build = &nb
	other := novcs
	ob := nb
	ob.ExecutableSHA256 = strings.Repeat("b", 64)
	other.Build = &ob
	got = replayCauses(&novcs, &other, nil)
	if want := "code version: executable sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb"; len(got) != 1 || got[0] != want {
		t.Errorf("executables differ: causes %q, want [%q]", got, want)
	}
	got = replayCauses(&novcs, &novcs, nil)
	if len(got) != 1 || strings.Contains(got[0], "likely cause") {
		t.Errorf("same executable without VCS: %q, want no code suspicion", got)
	}
}

// TestReplayOutputsEditedOnDisk: a replay first checks the run's files on
// disk against the output hashes its manifest records. An output edited by
// hand (results.csv, decisions.json) stops the replay with exit 70 naming
// every such file and both hashes, before anything is rerun; the rerun
// would otherwise reproduce the recorded bytes and report the edited run as
// "byte-identical". A missing output is exit 66 naming it.
func TestReplayOutputsEditedOnDisk(t *testing.T) {
	tests := []struct {
		name     string
		edit     []string // outputs to edit, in manifest order
		remove   string
		wantCode int
	}{
		{"results.csv edited", []string{"results.csv"}, "", pipeline.ExitMismatch},
		{"results.csv and decisions.json edited", []string{"results.csv", "decisions.json"}, "", pipeline.ExitMismatch},
		{"report.html removed", nil, "report.html", pipeline.ExitNoInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, manifest := replayFixture(t, "checkout-button.yaml")
			runDir := filepath.Dir(manifest)
			for _, name := range tc.edit {
				p := filepath.Join(runDir, name)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				// One digit changed, as a person editing a number would.
				i := bytes.IndexAny(b[len(b)/2:], "0123456789") + len(b)/2
				if b[i] == '9' {
					b[i] = '1'
				} else {
					b[i]++
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.remove != "" {
				os.Remove(filepath.Join(runDir, tc.remove))
			}
			rep, err := Replay(context.Background(), manifest, ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
			if err == nil {
				t.Fatalf("replay of an edited run succeeded: %s", rep.Summary())
			}
			if got := ReplayExitCode(err); got != tc.wantCode {
				t.Errorf("exit %d, want %d: %v", got, tc.wantCode, err)
			}
			for _, name := range append(append([]string{}, tc.edit...), tc.remove) {
				if name != "" && !strings.Contains(err.Error(), name) {
					t.Errorf("message does not name %s: %v", name, err)
				}
			}
			if len(tc.edit) > 0 {
				var oe *publish.OutputsModifiedError
				if !errors.As(err, &oe) || len(oe.Files) != len(tc.edit) {
					t.Fatalf("want an *OutputsModifiedError listing %v, got %#v", tc.edit, err)
				}
				old, _, _ := publish.ReadManifestFile(manifest)
				for i, f := range oe.Files {
					if f.Name != tc.edit[i] || f.OnDisk == "" || f.OnDisk == f.Recorded {
						t.Errorf("file %d: %+v, want %s with both hashes", i, f, tc.edit[i])
					}
					for _, o := range old.Outputs {
						if o.Name == f.Name && o.SHA256 != f.Recorded {
							t.Errorf("%s: recorded %s, manifest says %s", f.Name, f.Recorded, o.SHA256)
						}
					}
					if !strings.Contains(err.Error(), f.Recorded) || !strings.Contains(err.Error(), f.OnDisk) {
						t.Errorf("message lacks the hashes of %s: %v", f.Name, err)
					}
				}
			}
			if strings.Contains(err.Error(), "byte-identical") {
				t.Errorf("message calls the edited run identical: %v", err)
			}
		})
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

const incrSpec = `version: 1
experiment: checkout-button
inputs:
  traces: ["data/traces/"]
  events: ["data/events/"]
window:
  start: 2026-11-16T00:00:00Z
  end: 2026-11-20T00:00:00Z
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}
cohorts:
  dimension: persona
  taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 500}, role: goal}
  - {name: page_views, kind: mean, event: page_view, aggregate: count, clamp: {lower: 0, upper: 60}}
  - {name: rev_per_view, kind: ratio, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 500}, denominator: {event: page_view, aggregate: count, clamp: {lower: 0, upper: 60}}}
statistics:
  alpha: 0.05
  fixed_point_decimals: 6
  correction: holm
  cuped: {lookback_days: 2}
privacy: {enabled: false}
`

// copyTree copies the committed basic fixture into dir.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// duckExec runs SQL on a fresh in-memory DuckDB (to write test partitions).
func duckExec(t *testing.T, q string) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// duckCount runs a count query on a fresh in-memory DuckDB.
func duckCount(t *testing.T, q string) int64 {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// sameOutputs compares every file of two committed night folders: byte for
// byte, and the manifest without its volatile part; a file only one of
// them wrote is a difference.
func sameOutputs(t *testing.T, night, a, b string) {
	t.Helper()
	files := 0
	filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		ga, _ := os.ReadFile(p)
		gb, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			t.Errorf("%s: %s only in the incremental run", night, rel)
			return nil
		}
		files++
		if rel == "manifest.json" {
			ga, gb = stableManifest(t, ga), stableManifest(t, gb)
		}
		if !bytes.Equal(ga, gb) {
			t.Errorf("%s: %s differs between the incremental and the full run", night, rel)
		}
		return nil
	})
	filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(b, p)
		if _, err := os.Stat(filepath.Join(a, rel)); err != nil {
			t.Errorf("%s: %s only in the full run", night, rel)
		}
		return nil
	})
	if files < 5 {
		t.Fatalf("%s: only %d files compared", night, files)
	}
}

func stableManifest(t *testing.T, b []byte) []byte {
	t.Helper()
	var m publish.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m.Stable())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIncrementalEqualsFull runs a window night by night twice, once with
// --incremental and a state folder and once in full, and compares every
// output file of every night. Between the nights it adds a late-arriving
// event for an old day (a new file in an old partition: still
// incremental) and rewrites an old partition (a changed hash: a full night,
// with its reason). A replay of an incremental night reproduces it.
func TestIncrementalEqualsFull(t *testing.T) { incrementalNights(t, true) }

// TestIncrementalFallsBackOnMultiVariant runs the fixture as committed: its
// units seen in a second variant on a later day make those nights full
// runs (with the reason), equal to the full run's outputs.
func TestIncrementalFallsBackOnMultiVariant(t *testing.T) { incrementalNights(t, false) }

func incrementalNights(t *testing.T, dropMulti bool) {
	// The fixture plants units seen in two variants on different days; a
	// stored unit seen in a second variant makes a night fall back
	// (TestIncrementalFallsBackOnMultiVariant). With dropMulti their
	// traces are dropped so that the nights after the first run
	// incrementally.
	dir, spec := incrFixture(t, dropMulti, incrSpec)
	outI, outF, state := filepath.Join(dir, "incr"), filepath.Join(dir, "full"), filepath.Join(dir, "state")
	night := func(date string, wantMode string) string {
		t.Helper()
		ri, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: outI, Date: date, Engine: engine.Engine{Threads: 2},
			Incremental: true, Host: ledgers.Host{StateDir: state}, Build: publish.CurrentBuild()})
		if err != nil {
			t.Fatalf("%s incremental: %v", date, err)
		}
		rf, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: outF, Date: date, Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
		if err != nil {
			t.Fatalf("%s full: %v", date, err)
		}
		if !dropMulti && wantMode == "incremental" {
			wantMode = "full: a stored single-variant unit is seen in another variant"
		}
		if !strings.HasPrefix(ri.Mode, wantMode) {
			t.Errorf("%s: mode %q, want %q…", date, ri.Mode, wantMode)
		}
		sameOutputs(t, date, ri.Dir, rf.Dir)
		return ri.Dir
	}
	night("2026-11-16", "full: no state")
	night("2026-11-17", "incremental")
	night("2026-11-18", "incremental")

	// A late event for day 17 of a unit exposed on the 16th, in a new file
	// of the old partition: read incrementally.
	ev17 := filepath.Join(dir, "data", "events", "dt=2026-11-17")
	duckExec(t, `COPY (SELECT TIMESTAMPTZ '2026-11-17 12:00:00+00' AS ts, unit_id, 'purchase' AS metric, 42.5::DOUBLE AS value, 'late-1' AS event_id
		FROM read_parquet('`+filepath.Join(dir, "data", "traces", "dt=2026-11-16", "part-00000.parquet")+`') ORDER BY ts, unit_id LIMIT 1)
		TO '`+filepath.Join(ev17, "late.parquet")+`' (FORMAT parquet)`)
	// Late trace rows on the 19th for units whose first-exposure persona is
	// not a leaf (NULL or outside the taxonomy), now carrying a leaf: the
	// unit's cohort stays its first row's (unclassified), as in a full run
	// (the stored state keeps such a persona as NULL, which an aggregate
	// that skips NULLs must not lose).
	tr := filepath.Join(dir, "data", "traces")
	late := filepath.Join(tr, "dt=2026-11-19", "late-personas.parquet")
	duckExec(t, `COPY (SELECT * REPLACE (ts + INTERVAL 2 DAY AS ts, 'power/mobile' AS persona, event_id || '-r' AS event_id)
		FROM read_parquet('`+tr+`/dt=2026-11-17/*.parquet')
		WHERE experiment_id = 'checkout-button' AND unit_id IS NOT NULL AND event_id IS NOT NULL
		  AND (persona IS NULL OR persona NOT IN ('power/mobile', 'power/desktop', 'casual/mobile', 'casual/desktop')))
		TO '`+late+`' (FORMAT parquet)`)
	if n := duckCount(t, `SELECT count(*) FROM read_parquet('`+late+`') AS l
		WHERE l.unit_id IN (SELECT unit_id FROM read_parquet('`+tr+`/dt=2026-11-16/*.parquet') WHERE experiment_id = 'checkout-button' AND unit_id IS NOT NULL)
		   OR l.unit_id IN (SELECT unit_id FROM read_parquet('`+tr+`/dt=2026-11-17/*.parquet') WHERE experiment_id = 'checkout-button' AND unit_id IS NOT NULL)`); n == 0 {
		t.Fatal("no late persona rows for stored units: the case is not exercised")
	}
	d19 := night("2026-11-19", "incremental")

	// Replay of an incremental night (the one that read the late event)
	// runs in full from its manifest and reproduces it byte for byte.
	rep, err := replay.Replay(context.Background(), filepath.Join(d19, "manifest.json"),
		replay.ReplayOptions{Engine: engine.Engine{Threads: 2}, Build: publish.CurrentBuild()})
	if err != nil {
		t.Fatalf("replay of an incremental night: %v", err)
	}
	if !rep.Identical() {
		t.Errorf("replay of an incremental night: %+v", rep.Outputs)
	}

	// Rewrite an old partition (drop its last rows): a full night.
	old := filepath.Join(ev17, "part-00000.parquet")
	duckExec(t, `COPY (SELECT * FROM read_parquet('`+old+`') LIMIT (SELECT count(*) - 5 FROM read_parquet('`+old+`'))) TO '`+old+`.new' (FORMAT parquet)`)
	if err := os.Rename(old+".new", old); err != nil {
		t.Fatal(err)
	}
	night("2026-11-19", "full: a counted partition changed")

}

// TestIncrementalRefusalsAndFingerprint: a private spec never runs
// incrementally (it says why), a spec change that changes the SQL finds
// no state (full, and a new state), and a state whose tables were removed
// falls back instead of failing.
func TestIncrementalRefusalsAndFingerprint(t *testing.T) {
	dir, _ := incrFixture(t, false, incrSpec)
	write := func(name, text string) *expspec.Spec { return writeSpec(t, dir, name, text) }
	state, out := filepath.Join(dir, "state"), filepath.Join(dir, "out")
	opts := pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 2}, Incremental: true, Host: ledgers.Host{StateDir: state}, Build: publish.CurrentBuild()}
	mode := func(s *expspec.Spec, date string) string {
		t.Helper()
		o := opts
		o.Date = date
		res, err := pipeline.Run(context.Background(), s, o)
		if err != nil {
			var ge *analysis.GateError
			if !errors.As(err, &ge) {
				t.Fatalf("%s: %v", date, err)
			}
		}
		if res == nil {
			t.Fatalf("%s: no outcome", date)
		}
		return res.Mode
	}
	spec := write("a.yaml", incrSpec)
	if m := mode(spec, "2026-11-16"); !strings.HasPrefix(m, "full: no state") {
		t.Errorf("first night: %q", m)
	}
	changed := write("a.yaml", strings.Replace(incrSpec, "upper: 500}, role: goal}", "upper: 400}, role: goal}", 1))
	if m := mode(changed, "2026-11-17"); !strings.HasPrefix(m, "full: no state") {
		t.Errorf("a changed clamp should find no state: %q", m)
	}
	gens, _ := filepath.Glob(filepath.Join(state, "incremental", "*", "gen-*"))
	for _, g := range gens {
		os.RemoveAll(g)
	}
	if m := mode(changed, "2026-11-18"); !strings.HasPrefix(m, "full: state tables missing") {
		t.Errorf("removed state tables: %q", m)
	}
	sorted := write("b.yaml", strings.Replace(incrSpec, "templates: {traces: v5, assignment: v4, events: v4,", "templates: {traces: v4, assignment: v4, events: v4,", 1))
	if m := mode(sorted, "2026-11-17"); !strings.Contains(m, "pins traces@v4") {
		t.Errorf("another template version: %q", m)
	}
}

// TestIncrementalDamagedStateNamedByReplay: state files edited between
// nights (still valid Parquet) and resealed — their new SHA-256 recorded
// in state.json with a new digest, a forgery the load's checks cannot
// tell from a real state — make an incremental night differ from a full
// run; the manifest records that the night ran incrementally, and a replay
// (always a full rerun) names the state as the cause instead of "no
// recorded cause". (Damage without a reseal is caught when the state is
// read: TestIncrementalDetectsDamagedState.)
func TestIncrementalDamagedStateNamedByReplay(t *testing.T) {
	dir, spec := incrFixture(t, true, incrSpec)
	state := filepath.Join(dir, "state")
	run := func(date string) *pipeline.Outcome {
		t.Helper()
		o, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: filepath.Join(dir, "incr"), Date: date, Engine: engine.Engine{Threads: 2},
			Incremental: true, Host: ledgers.Host{StateDir: state}, Build: publish.CurrentBuild()})
		if err != nil {
			t.Fatalf("%s: %v", date, err)
		}
		return o
	}
	run("2026-11-16")
	run("2026-11-17")
	unitev, _ := filepath.Glob(filepath.Join(state, "incremental", "*", "gen-*", "unitev.parquet"))
	if len(unitev) == 0 {
		t.Fatal("no unitev.parquet in the state")
	}
	for _, f := range unitev { // every generation's
		duckExec(t, `COPY (SELECT * REPLACE (total * 2 AS total) FROM read_parquet('`+f+`')) TO '`+f+`.new' (FORMAT parquet)`)
		if err := os.Rename(f+".new", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline.ResealIncrementalState(filepath.Dir(filepath.Dir(unitev[0]))); err != nil {
		t.Fatal(err)
	}
	o := run("2026-11-18")
	if o.Mode != "incremental" {
		t.Fatalf("mode %q: the edited state was not used, the case is not exercised", o.Mode)
	}
	b, err := os.ReadFile(filepath.Join(o.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m publish.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Volatile == nil || m.Volatile.Incremental != "incremental" {
		t.Errorf("manifest volatile: %+v, want incremental recorded", m.Volatile)
	}
	// A replay that differs is an error naming the causes.
	_, err = replay.Replay(context.Background(), filepath.Join(o.Dir, "manifest.json"),
		replay.ReplayOptions{Engine: engine.Engine{Threads: 2}, Build: publish.CurrentBuild()})
	if err == nil {
		t.Fatal("replay of a night run from an edited state is identical: the edit changed nothing")
	}
	if !strings.Contains(err.Error(), "ran incrementally") || strings.Contains(err.Error(), "no recorded cause") {
		t.Errorf("replay: %v; want the incremental state named as the cause", err)
	}
}

// incrFixture copies the committed basic fixture into a new folder
// (with dropMulti, without the units seen in more than one variant, so that
// nights after the first can run incrementally) and writes specText there
// as spec.yaml, its inputs data/traces/ and data/events/.
func incrFixture(t *testing.T, dropMulti bool, specText string) (dir string, spec *expspec.Spec) {
	t.Helper()
	dir = t.TempDir()
	copyTree(t, filepath.Join("..", "fixtures", "data", "basic"), filepath.Join(dir, "data"))
	if dropMulti {
		dropMultiVariant(t, filepath.Join(dir, "data", "traces"))
	}
	return dir, writeSpec(t, dir, "spec.yaml", specText)
}

// writeSpec writes a spec's text as dir/name and loads it.
func writeSpec(t *testing.T, dir, name, text string) *expspec.Spec {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dropMultiVariant removes from the trace partitions under traces the rows
// of units seen in more than one variant, so that nights after the first
// can run incrementally.
func dropMultiVariant(t *testing.T, traces string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(traces, "dt=*", "*.parquet"))
	for _, f := range files {
		duckExec(t, `COPY (SELECT * FROM read_parquet('`+f+`') WHERE unit_id IS NULL OR unit_id NOT IN (
			SELECT unit_id FROM read_parquet('`+traces+`/*/*.parquet') WHERE unit_id IS NOT NULL GROUP BY experiment_id, unit_id HAVING count(DISTINCT variant) > 1))
			TO '`+f+`.new' (FORMAT parquet)`)
		if err := os.Rename(f+".new", f); err != nil {
			t.Fatal(err)
		}
	}
}

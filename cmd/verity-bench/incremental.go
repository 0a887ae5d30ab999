package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// incrementalCmd measures issue 18 item 2's target: night N of a window of
// N daily partitions run incrementally (`verity run --incremental`, the
// state built by the nights before) against the same night run in full,
// side by side in one invocation, and checks that every output file is the
// same (the manifest without its volatile part); exit 70 when not.
//
//	verity-bench incremental [--scale 1M] [--days 30] [--from-night 29] ...
//
// --from-night K builds the state with an incremental-mode run of night K
// (a full night, since no state exists), then runs nights K+1 … N
// incrementally, recording each night's mode (incremental, or full and
// why): with K = 1 every night of the window is run as a nightly host
// would, which counts how often the fallback triggers on the bench's data.
func incrementalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("verity-bench incremental", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{Base: benchConfig(), Runs: 1, Templates: "single-join", Scales: []int{1}}
	units := fs.String("scale", "1M", "units of the generated dataset (the generator's --units is ignored)")
	days := fs.Int("days", 30, "daily partitions in the window (the measured night is the last)")
	from := fs.Int("from-night", 0, "the night whose full run builds the state (default days-1)")
	fs.StringVar(&o.Cache, "cache", ".bench", "folder for generated datasets, spill files and scratch runs")
	o.Engine.register(fs)
	fs.StringVar(&o.Verity, "verity", "bin/verity", "the verity binary to measure")
	o.Base.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	n, err := parseScale(*units)
	if err != nil {
		return exitUsage, err
	}
	if *days < 2 || *days > 90 {
		return exitUsage, fmt.Errorf("--days: want 2 to 90, got %d", *days)
	}
	if *from == 0 {
		*from = *days - 1
	}
	if *from < 1 || *from >= *days {
		return exitUsage, fmt.Errorf("--from-night: want 1 to %d", *days-1)
	}
	if err := o.Validate(); err != nil {
		return exitUsage, err
	}
	verity, err := filepath.Abs(o.Verity)
	if err != nil {
		return exitUsage, err
	}
	if err := os.MkdirAll(o.Cache, 0o755); err != nil {
		return exitFailed, err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "verity-bench: "+format+"\n", a...) }

	cfg := o.Base
	cfg.Units = n
	start := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	cfg.WindowStart, cfg.WindowEnd = start, start.AddDate(0, 0, *days)
	cfg.DataStart, cfg.DataEnd = start.Add(-cfg.PrePeriod), cfg.WindowEnd
	cfg.Hive = true
	ds, specs, paths, err := prepare(ctx, o, cfg, logf)
	if err != nil {
		return exitFailed, err
	}
	work, err := os.MkdirTemp(o.Cache, "incr-")
	if err != nil {
		return exitFailed, err
	}
	defer os.RemoveAll(work)
	state, outI, outF := filepath.Join(work, "state"), filepath.Join(work, "incr"), filepath.Join(work, "full")
	night := func(k int) string { return start.AddDate(0, 0, k-1).Format("2006-01-02") }
	runArgs := func(out, date string, incr bool) []string {
		a := verityArgs(o, out, paths[:1])
		a = append(a[:1], append([]string{"--date", date, "--log", "json"}, a[1:]...)...)
		if incr {
			a = append(a[:1], append([]string{"--incremental", "--state-dir", state}, a[1:]...)...)
		}
		return a
	}
	logf("%s units, %d days, %d input rows (%s); experiment %s", scaleLabel(n), *days, ds.Rows(), mib(ds.Bytes()), specs[0].Experiment)
	var modes []string
	var build measurement
	for k := *from; k < *days; k++ {
		m, err := measure(ctx, verity, runArgs(outI, night(k), true)...)
		if err != nil {
			return exitFailed, fmt.Errorf("night %d: %s", k, verityError(m.Stderr, err))
		}
		mode := runMode(m.Stderr)
		modes = append(modes, fmt.Sprintf("%s %s (%s)", night(k), mode, secs(m.Wall)))
		logf("night %d (%s): %s, %s", k, night(k), mode, secs(m.Wall))
		if k == *from {
			build = m
		}
	}
	last := night(*days)
	// The full run's output folder holds the same earlier nights, so the
	// over-time outputs (timeseries.csv, anomalies) have the same history.
	if err := os.CopyFS(outF, os.DirFS(outI)); err != nil {
		return exitFailed, err
	}
	before := loadAvg()
	logf("night %d (%s): full run", *days, last)
	full, err := measure(ctx, verity, runArgs(outF, last, false)...)
	if err != nil {
		return exitFailed, fmt.Errorf("full run: %s", verityError(full.Stderr, err))
	}
	logf("night %d (%s): incremental run", *days, last)
	incr, err := measure(ctx, verity, runArgs(outI, last, true)...)
	if err != nil {
		return exitFailed, fmt.Errorf("incremental run: %s", verityError(incr.Stderr, err))
	}
	after := loadAvg()
	mode := runMode(incr.Stderr)
	diffs, compared, err := compareNight(filepath.Join(outI, specs[0].Experiment, last), filepath.Join(outF, specs[0].Experiment, last))
	if err != nil {
		return exitFailed, err
	}
	cpu := func(m measurement) time.Duration { return m.User + m.Sys }
	fmt.Fprintf(stdout, "## Incremental night %d of %d (%s units, %d input rows, threads %d, memory limit %s; load %s → %s)\n\n",
		*days, *days, scaleLabel(n), ds.Rows(), o.Engine.Threads, o.Engine.MemoryLimit, before, after)
	fmt.Fprintf(stdout, "| run | mode | wall | CPU | peak RSS |\n|---|---|---|---|---|\n")
	fmt.Fprintf(stdout, "| night %d, --incremental (no state yet: builds it) | %s | %s | %s | %s |\n", *from, runMode(build.Stderr), secs(build.Wall), secs(cpu(build)), peak(build))
	fmt.Fprintf(stdout, "| night %d full | full | %s | %s | %s |\n", *days, secs(full.Wall), secs(cpu(full)), peak(full))
	fmt.Fprintf(stdout, "| night %d --incremental | %s | %s | %s | %s |\n\n", *days, mode, secs(incr.Wall), secs(cpu(incr)), peak(incr))
	fmt.Fprintf(stdout, "incremental / full: wall **%.3f ×**, CPU %.3f × (target ≤ 0.15 ×)\n", incr.Wall.Seconds()/full.Wall.Seconds(), cpu(incr).Seconds()/cpu(full).Seconds())
	fmt.Fprintf(stdout, "outputs: %d files compared, %d differ\n", compared, len(diffs))
	if len(modes) > 1 {
		fmt.Fprintf(stdout, "\nnights run with --incremental:\n")
		for _, m := range modes {
			fmt.Fprintf(stdout, "- %s\n", m)
		}
	}
	if len(diffs) > 0 {
		return exitMismatch, fmt.Errorf("incremental and full outputs differ: %s", strings.Join(diffs, ", "))
	}
	if mode != "incremental" {
		return exitFailed, fmt.Errorf("night %d did not run incrementally: %s", *days, mode)
	}
	return exitOK, nil
}

// runMode reads the "incremental" log record of a verity run: "incremental",
// or "full: <reason>".
func runMode(stderr []byte) string {
	for _, line := range strings.Split(string(stderr), "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Mode   string `json:"mode"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "incremental" {
			continue
		}
		if rec.Mode == "incremental" {
			return rec.Mode
		}
		return rec.Mode + ": " + rec.Reason
	}
	return "unknown (no incremental log record)"
}

// compareNight compares every file of two night folders, byte for byte, the
// manifests without their volatile part.
func compareNight(a, b string) (diffs []string, compared int, err error) {
	err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		ga, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		gb, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			diffs = append(diffs, rel+" (missing in the full run)")
			return nil
		}
		compared++
		if rel == "manifest.json" {
			ga, gb = stableJSON(ga), stableJSON(gb)
		}
		if !bytes.Equal(ga, gb) {
			diffs = append(diffs, rel)
		}
		return nil
	})
	if err == nil {
		// A file only the full run wrote is a difference too.
		err = filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(b, p)
			if _, serr := os.Stat(filepath.Join(a, rel)); errors.Is(serr, fs.ErrNotExist) {
				diffs = append(diffs, rel+" (missing in the incremental run)")
			}
			return nil
		})
	}
	if err == nil && compared == 0 {
		err = errors.New("no output files to compare")
	}
	return diffs, compared, err
}

// stableJSON drops a manifest's volatile block.
func stableJSON(b []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	delete(m, "volatile")
	out, _ := json.Marshal(m)
	return out
}

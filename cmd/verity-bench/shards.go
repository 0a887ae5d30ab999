package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/verity-analytics/verity/fixtures"
)

// shardResult compares one run of a spec with the same spec run as K
// shards one after another plus their merge, on this machine.
type shardResult struct {
	Units, K  int
	Rows      int64
	One       measurement
	Shards    []measurement
	Merge     measurement
	Identical bool // the merged results.csv equals the single run's
}

// sum is the shards' total wall time (the work a cluster shares out).
func (r shardResult) sum() time.Duration {
	var d time.Duration
	for _, m := range r.Shards {
		d += m.Wall
	}
	return d
}

// slowest is the longest shard: on K nodes like this one, the shards'
// wall time.
func (r shardResult) slowest() time.Duration {
	var d time.Duration
	for _, m := range r.Shards {
		d = max(d, m.Wall)
	}
	return d
}

// benchShards runs the first spec of the smallest scale (unit-keyed
// templates, which sharding needs) once, then as K shards one after
// another and the merge.
func benchShards(ctx context.Context, o benchOptions, cfg fixtures.Config, verity string, logf func(string, ...any)) (shardResult, error) {
	r := shardResult{Units: cfg.Units, K: o.Shards}
	o.Templates = "unit-keyed"
	ds, _, paths, err := prepare(ctx, o, cfg, logf)
	if err != nil {
		return r, err
	}
	r.Rows = ds.Rows()
	spec := paths[:1]
	work, err := os.MkdirTemp(o.Cache, "shards-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(work)
	engineArgs := []string{"--threads", strconv.Itoa(o.Engine.Threads), "--memory-limit", o.Engine.MemoryLimit, "--temp-dir", o.Engine.TempDir, "--log", "none"}
	run := func(args ...string) (measurement, error) {
		m, err := measure(ctx, verity, append(append(args, engineArgs...), spec...)...)
		if err != nil {
			return m, fmt.Errorf("verity %s: %w: %s", args[0], err, firstLine(string(m.Stderr)))
		}
		return m, nil
	}
	logf("shards: one run of %s", filepath.Base(spec[0]))
	if r.One, err = run("run", "--out", filepath.Join(work, "one")); err != nil {
		return r, err
	}
	for i := 0; i < o.Shards; i++ {
		logf("shards: shard %d/%d", i, o.Shards)
		m, err := run("run", "--shard", fmt.Sprintf("%d/%d", i, o.Shards), "--partials", filepath.Join(work, "partials"))
		if err != nil {
			return r, err
		}
		r.Shards = append(r.Shards, m)
	}
	logf("shards: merge")
	if r.Merge, err = run("merge", "--shards", strconv.Itoa(o.Shards), "--partials", filepath.Join(work, "partials"), "--out", filepath.Join(work, "merged")); err != nil {
		return r, err
	}
	a, _ := filepath.Glob(filepath.Join(work, "one", "*", "*", "results.csv"))
	b, _ := filepath.Glob(filepath.Join(work, "merged", "*", "*", "results.csv"))
	if len(a) == 1 && len(b) == 1 {
		x, err1 := os.ReadFile(a[0])
		y, err2 := os.ReadFile(b[0])
		r.Identical = err1 == nil && err2 == nil && bytes.Equal(x, y)
	}
	return r, nil
}

// printShards writes the sharding table: the overhead of splitting (the
// shards' total against one run) and the projected wall time on K nodes.
func printShards(w io.Writer, r shardResult) {
	fmt.Fprintf(w, "\nSharded: one spec (unit-keyed templates, %s units, %s input rows) as one `verity run` vs %d shards run one after another and `verity merge` (merged results identical: %v):\n\n",
		scaleLabel(r.Units), grouped(r.Rows), r.K, r.Identical)
	fmt.Fprintln(w, "| run | wall | peak RSS | ratio to one run |")
	fmt.Fprintln(w, "|---|---|---|---|")
	one := r.One.Wall.Seconds()
	fmt.Fprintf(w, "| one run | %s | %s | 1.00× |\n", secs(r.One.Wall), peak(r.One))
	var largest measurement
	for _, m := range r.Shards {
		if m.MaxRSS > largest.MaxRSS {
			largest = m
		}
	}
	fmt.Fprintf(w, "| %d shards one after another (sum) | %s | %s (largest) | %.2f× (overhead of splitting) |\n", r.K, secs(r.sum()), peak(largest), r.sum().Seconds()/one)
	fmt.Fprintf(w, "| slowest shard | %s | | %.2f× |\n", secs(r.slowest()), r.slowest().Seconds()/one)
	fmt.Fprintf(w, "| merge | %s | %s | %.2f× |\n", secs(r.Merge.Wall), peak(r.Merge), r.Merge.Wall.Seconds()/one)
	proj := r.slowest() + r.Merge.Wall
	fmt.Fprintf(w, "| projected on %d nodes like this one (slowest shard + merge) | %s | | %.2f× |\n", r.K, secs(proj), proj.Seconds()/one)
}

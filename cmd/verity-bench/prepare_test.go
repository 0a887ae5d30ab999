package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The data is generated (and sorted) in a child process, and the bench
// finds it in the cache by the same configuration hash: the generator
// config survives its JSON trip to the child.
func TestPrepareInChild(t *testing.T) {
	if testing.Short() {
		t.Skip("generates data and runs DuckDB")
	}
	ctx := context.Background()
	o := benchOptions{Cache: t.TempDir(), Templates: sortedSet, Base: benchConfig()}
	o.Engine = duckConfig{Threads: 1, MemoryLimit: "500MB", TempDir: t.TempDir()}
	cfg := nightlyConfig(o.Base, 3)
	cfg.Units = 300
	var lines []string
	logf := func(format string, a ...any) { lines = append(lines, strings.TrimSpace(fmt.Sprintf(format, a...))) }
	t0 := time.Now()
	ds, specs, paths, err := prepare(ctx, o, cfg, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared in %s: %q", time.Since(t0).Round(time.Millisecond), lines)
	if ds.Truth.Config.Units != 300 || ds.Rows() == 0 || len(specs) != 3 || len(paths) != 3 {
		t.Fatalf("dataset %+v, %d specs, %d paths", ds.Truth.Config.Units, len(specs), len(paths))
	}
	if _, err := os.Stat(filepath.Join(ds.Dir, "events-sorted", "done")); err != nil {
		t.Errorf("no sorted copy: %v", err)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "generating 300 units") || !strings.HasPrefix(lines[1], "sorted copy of the events") {
		t.Errorf("the child's log lines did not come through: %q", lines)
	}
	// Second time: cached, nothing generated, nothing logged.
	lines = nil
	if _, _, _, err := prepare(ctx, o, cfg, logf); err != nil || len(lines) != 0 {
		t.Errorf("cached prepare: %v, %q", err, lines)
	}
}

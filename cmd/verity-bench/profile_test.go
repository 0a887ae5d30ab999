package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// profile runs events@v8 as `verity run` does: on the sorted copy, with the
// duplicate keys of its order check bound ($dup_unit, $dup_event), and
// refuses clearly when there is no sorted copy.
func TestProfileSortedSet(t *testing.T) {
	if testing.Short() {
		t.Skip("generates data and runs DuckDB")
	}
	ctx := context.Background()
	cfg := benchConfig()
	cfg.Units = 300
	ds, err := ensureDataset(ctx, t.TempDir(), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	e := duckConfig{Threads: 1, MemoryLimit: "500MB", TempDir: t.TempDir()}
	args := []string{"--data", ds.Dir, "--templates", sortedSet, "--threads", "1", "--memory-limit", "500MB", "--temp-dir", e.TempDir}
	var out, errb bytes.Buffer
	code, err := profileCmd(ctx, args, &out, &errb)
	if code == exitOK || err == nil || !strings.Contains(err.Error(), "no sorted copy of the events") || !strings.Contains(err.Error(), "--templates "+sortedSet) {
		t.Errorf("profile without the sorted copy: exit %d, %v", code, err)
	}
	if err := ensureSortedEvents(ctx, ds.Dir, e, t.Logf); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code, err := profileCmd(ctx, args, &out, &errb); code != exitOK || err != nil {
		t.Fatalf("profile %s: exit %d, %v\n%s", sortedSet, code, err, errb.String())
	}
	for _, want := range []string{"order check of events-sorted/", "events@v8", "sufstats@v3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("profile output has no %q:\n%s", want, out.String())
		}
	}
}

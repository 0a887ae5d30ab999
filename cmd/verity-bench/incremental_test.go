package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCompareNight: the bench's verdict on a night compares the two runs'
// folders both ways: a file only one of them wrote is a difference, a
// manifest differing only in its volatile block is not.
func TestCompareNight(t *testing.T) {
	write := func(dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	incr, full := t.TempDir(), t.TempDir()
	for _, d := range []string{incr, full} {
		write(d, "results.csv", "a,b\n1,2\n")
	}
	write(incr, "manifest.json", `{"spec":"x","volatile":{"phases":[1]}}`)
	write(full, "manifest.json", `{"spec":"x","volatile":{"phases":[2]}}`)
	diffs, n, err := compareNight(incr, full)
	if err != nil || n != 2 || len(diffs) != 0 {
		t.Fatalf("same outputs: diffs %q, compared %d, err %v", diffs, n, err)
	}
	write(full, "timeseries.csv", "day\n")
	write(incr, "extra/only.txt", "x")
	write(incr, "results.csv", "a,b\n1,3\n")
	diffs, _, err = compareNight(incr, full)
	want := []string{"results.csv", "extra/only.txt (missing in the full run)", "timeseries.csv (missing in the incremental run)"}
	slices.Sort(diffs)
	slices.Sort(want)
	if err != nil || !slices.Equal(diffs, want) {
		t.Errorf("diffs %q (err %v), want %q", diffs, err, want)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestPrivateRunDoesNotEchoInvalidUTF8Values documents a review finding
// (branch wt-rev): when an events file holds a string that is not valid
// UTF-8, a private run fails with exit 65 and its stdout line, its stderr
// and its JSON log repeat DuckDB's text, which quotes the column's bytes —
// the malformed unit_id and the unit_id of the valid row before it. A
// private run's stdout/stderr are release surface (docs/PRODUCT.md); unit
// ids are restricted material. Cause: engine.FindDamaged wraps
// cleanDuckErr(err) whatever the privacy of the pass (the same text also
// reaches exact runs, where it is fine).
//
// Skipped until fixed: set VERITY_REVIEW_SHOW_BUGS=1 to see it fail; remove
// the skip with the fix.
func TestPrivateRunDoesNotEchoInvalidUTF8Values(t *testing.T) {
	if os.Getenv("VERITY_REVIEW_SHOW_BUGS") == "" {
		t.Skip("known bug (review wt-rev): a private run echoes invalid-UTF-8 input values in its error; VERITY_REVIEW_SHOW_BUGS=1 shows it")
	}
	root := t.TempDir()
	repo := repoRoot(t)
	data := filepath.Join(root, "data")
	traces, err := filepath.Glob(filepath.Join(repo, "fixtures", "data", "basic", "traces", "dt=*", "*.parquet"))
	if err != nil || len(traces) == 0 {
		t.Fatalf("fixture traces: %v %v", traces, err)
	}
	for _, f := range traces {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(data, "traces", filepath.Base(filepath.Dir(f)), filepath.Base(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type event struct {
		Ts      time.Time `parquet:"ts,timestamp(microsecond)"`
		UnitID  *string   `parquet:"unit_id,optional"`
		Metric  *string   `parquet:"metric,optional"`
		Value   *float64  `parquet:"value,optional"`
		EventID *string   `parquet:"event_id,optional"`
	}
	s := func(x string) *string { return &x }
	ts := time.Date(2026, 11, 17, 10, 0, 0, 0, time.UTC)
	const neighbour, secret = "u-0011da7536dfb90e", "u-SECRET-\xff\xfe-unit"
	rows := []event{
		{Ts: ts, UnitID: s(neighbour), Metric: s("purchase"), EventID: s("e1")},
		{Ts: ts, UnitID: s(secret), Metric: s("purchase"), EventID: s("e2")},
	}
	if err := os.MkdirAll(filepath.Join(data, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := parquet.WriteFile(filepath.Join(data, "events", "part-00000.parquet"), rows); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repo, "fixtures", "specs", "checkout-button-private.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.NewReplacer(
		"../data/basic/traces/", "../data/traces/",
		"../data/basic/events/", "../data/events/",
		"../keys/TEST-ONLY-noise.key", filepath.Join(repo, "fixtures", "keys", "TEST-ONLY-noise.key"),
	).Replace(string(b))
	specPath := filepath.Join(root, "specs", "private.yaml")
	if err := os.MkdirAll(filepath.Dir(specPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "state")
	if r := verity(t, root, "ledger", "init", "--state-dir", state, "--source", "src", "--root", data, "--epsilon", "8", "--delta", "1e-6"); r.code != 0 {
		t.Fatalf("ledger init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r := verity(t, root, "run", "--log", "json", "--out", "out", "--state-dir", state, "--allow-test-key", specPath)
	if r.code != 65 {
		t.Errorf("want exit 65 (an unreadable input), got %d", r.code)
	}
	for _, leak := range []string{neighbour, "SECRET"} {
		if strings.Contains(r.stdout+r.stderr, leak) {
			t.Errorf("a private run publishes the input value %q:\nstdout: %s\nstderr: %s", leak, r.stdout, r.stderr)
		}
	}
}

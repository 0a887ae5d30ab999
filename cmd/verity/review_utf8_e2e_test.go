package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Findings of an adversarial review about strings that are not valid UTF-8
// in an events file (both failed before their fixes).

// TestPrivateRunDoesNotEchoInvalidUTF8Values: a private run over such a
// file fails with exit 65 and its stdout line, its stderr and its JSON log
// repeat DuckDB's text, which quotes the column's bytes — the malformed
// unit_id and the unit_id of the valid row before it (it did: engine.FindDamaged
// wrapped DuckDB's text whatever the privacy of the pass). A private run's
// stdout/stderr are release surface (docs/PRODUCT.md); unit ids are
// restricted material.
func TestPrivateRunDoesNotEchoInvalidUTF8Values(t *testing.T) {
	const neighbour, secret = "u-0011da7536dfb90e", "u-SECRET-\xff\xfe-unit"
	root, spec, state := reviewPrivateSetup(t, [][2]string{{neighbour, "e1"}, {secret, "e2"}}, false)
	r := verity(t, root, "run", "--log", "json", "--out", "out", "--state-dir", state, "--allow-test-key", spec)
	if r.code != 65 {
		t.Errorf("want exit 65 (an unreadable input), got %d", r.code)
	}
	for _, leak := range []string{neighbour, "SECRET"} {
		if strings.Contains(r.stdout+r.stderr, leak) {
			t.Errorf("a private run publishes the input value %q:\nstdout: %s\nstderr: %s", leak, r.stdout, r.stderr)
		}
	}
}

// TestSortedDuplicateInvalidUTF8KeyIsAnError: with inputs.sorted_by and
// events@v8, a duplicated (unit_id, event_id) whose bytes are not valid
// UTF-8 passes intake.CheckSorted (a byte comparison) and is bound as
// $dup_unit; DuckDB's value constructor throws a C++ exception through cgo
// and the process aborts (SIGABRT, exit 2, a Go stack dump) — for every
// spec of the invocation. events@v7 on the same file gives exit 65 naming
// the file. Want: exit 65 naming the file, no abort.
func TestSortedDuplicateInvalidUTF8KeyIsAnError(t *testing.T) {
	const bad = "u-\xff\xfe-unit"
	root, spec, state := reviewPrivateSetup(t, [][2]string{{"u-0011da7536dfb90e", "e1"}, {bad, "e2"}, {bad, "e2"}}, true)
	r := verity(t, root, "run", "--log", "json", "--out", "out", "--state-dir", state, "--allow-test-key", spec)
	if r.code != 65 || strings.Contains(r.stderr, "SIGABRT") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("want exit 65 naming the file, got %d:\nstdout: %s\nstderr: %.2000s", r.code, r.stdout, r.stderr)
	}
}

// reviewPrivateSetup writes a data folder with the fixture's traces and one
// events file of the given (unit_id, event_id) purchase rows, registers it
// as a data source, and writes the fixture's private spec over it; sorted
// pins the unit-keyed set with events@v8 and declares the events order.
func reviewPrivateSetup(t *testing.T, keys [][2]string, sorted bool) (root, spec, state string) {
	t.Helper()
	root = t.TempDir()
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
	var rows []event
	for _, k := range keys {
		rows = append(rows, event{Ts: ts, UnitID: s(k[0]), Metric: s("purchase"), EventID: s(k[1])})
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
	text := strings.NewReplacer(
		"../data/basic/traces/", "../data/traces/",
		"../data/basic/events/", "../data/events/",
		"../keys/TEST-ONLY-noise.key", filepath.Join(repo, "fixtures", "keys", "TEST-ONLY-noise.key"),
	).Replace(string(b))
	if sorted {
		text = strings.NewReplacer(
			`  events: ["../data/events/"]`, "  events: [\"../data/events/\"]\n  sorted_by: {events: [unit_id, event_id]}",
			"templates: {traces: v6, assignment: v5, events: v5,", "templates: {traces: v8, assignment: v5, events: v8,",
		).Replace(text)
		if !strings.Contains(text, "sorted_by") || !strings.Contains(text, "events: v8") {
			t.Fatalf("the fixture spec changed; cannot pin events@v8:\n%s", text)
		}
	}
	spec = filepath.Join(root, "specs", "private.yaml")
	if err := os.MkdirAll(filepath.Dir(spec), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(root, "state")
	if r := verity(t, root, "ledger", "init", "--state-dir", state, "--source", "src", "--root", data, "--epsilon", "8", "--delta", "1e-6"); r.code != 0 {
		t.Fatalf("ledger init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	return root, spec, state
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateRunFromTheCommandLine walks a nightly host through a private
// release with the real binary: no ledger refuses; `ledger init` registers
// the data source; the run publishes; its stdout line and JSON logs carry
// no timing, count or digest of the data; `ledger show` reports the charge;
// a second init is refused; a rerun is free.
func TestPrivateRunFromTheCommandLine(t *testing.T) {
	root := t.TempDir()
	spec := filepath.Join(repoRoot(t), "fixtures", "specs", "checkout-button-private.yaml")
	state := filepath.Join(root, "state")
	run := func(extra ...string) result {
		return verity(t, root, append([]string{"run", "--log", "json", "--out", "out", "--state-dir", state, "--allow-test-key"}, append(extra, spec)...)...)
	}
	if r := run(); r.code != 78 || !strings.Contains(r.stdout+r.stderr, "verity ledger init") {
		t.Fatalf("without a ledger: want exit 78 pointing at ledger init, got %d: %s %s", r.code, r.stdout, r.stderr)
	}
	init := []string{"ledger", "init", "--state-dir", state, "--source", "fixtures", "--root", filepath.Join(repoRoot(t), "fixtures", "data"), "--epsilon", "8", "--delta", "1e-6",
		"--key-file", filepath.Join(repoRoot(t), "fixtures", "keys", "TEST-ONLY-noise.key")}
	if r := verity(t, root, init...); r.code != 0 {
		t.Fatalf("ledger init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := verity(t, root, init...); r.code != 78 || !strings.Contains(r.stderr, "already registered") {
		t.Errorf("second ledger init: want exit 78 (never re-created), got %d: %s", r.code, r.stderr)
	}
	reg, err := os.ReadFile(filepath.Join(state, "sources.json"))
	if err != nil || !strings.Contains(string(reg), `"keys": [`) {
		t.Errorf("ledger init --key-file did not bind the source to the key: %s %v", reg, err)
	}
	r := run()
	if r.code != 0 {
		t.Fatalf("private run: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "ok     checkout-button-private (experiment checkout-button)  ") {
		t.Errorf("stdout %q", r.stdout)
	}
	for i, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %d is not JSON: %q", i, line)
		}
		for _, k := range []string{"time", "ms", "rows_read", "input_digest", "sha256"} {
			if _, ok := rec[k]; ok {
				t.Errorf("a private run's log line has %q: %s", k, line)
			}
		}
	}
	m, err := os.ReadFile(filepath.Join(root, "out", "checkout-button-private", "2026-11-19", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{`"phases"`, `"started_at"`, `"rendered_sha256"`, `"rows":`, `"scan"`} {
		if strings.Contains(string(m), leak) {
			t.Errorf("published manifest contains %s", leak)
		}
	}
	show := verity(t, root, "ledger", "show", "--state-dir", state)
	if show.code != 0 || !strings.Contains(show.stdout, "source fixtures") || !strings.Contains(show.stdout, "2026-11-19  checkout-button") {
		t.Errorf("ledger show: exit %d: %s %s", show.code, show.stdout, show.stderr)
	}
	dry := verity(t, root, "run", "--dry-run", "--log", "none", "--out", "out", "--state-dir", state, "--allow-test-key", spec)
	if dry.code != 0 || strings.Contains(dry.stdout, " bytes, ") || strings.Contains(dry.stdout, "sha256 ") || !strings.Contains(dry.stdout, "private: sizes, rows and hashes are not shown") {
		t.Errorf("dry run of a private spec shows data-dependent figures: exit %d\n%s", dry.code, dry.stdout)
	}
	again := run()
	show2 := verity(t, root, "ledger", "show", "--state-dir", state)
	if again.code != 0 || show2.stdout != show.stdout {
		t.Errorf("a byte-identical rerun changed the ledger:\n%s\n%s", show.stdout, show2.stdout)
	}
}

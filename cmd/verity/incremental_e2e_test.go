package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIncrementalCLI runs `verity run --incremental` as a nightly host
// would: a private spec runs in full and its log says why (its state would
// be restricted material); an exact single-join spec keeps a state in
// --state-dir, so its second night names its mode, and a run without
// --state-dir is refused (it could never run incrementally).
func TestIncrementalCLI(t *testing.T) {
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"run", "--incremental", "--log", "json", "--date", "2026-11-17", "--out", out}, privateHostArgs(t)...)
	r := verity(t, t.TempDir(), append(args, filepath.Join(root, "fixtures", "specs", "checkout-button-private.yaml"))...)
	if r.code != 0 {
		t.Fatalf("private incremental run: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `"msg":"incremental"`) || !strings.Contains(r.stderr, `"mode":"full"`) || !strings.Contains(r.stderr, "private specs run in full") {
		t.Errorf("the private run does not say why it ran in full: %s", r.stderr)
	}

	// --incremental without a state folder could never run incrementally:
	// a usage error (78) before anything is analysed or written.
	out2 := filepath.Join(t.TempDir(), "out2")
	r = verity(t, t.TempDir(), "run", "--incremental", "--log", "json", "--date", "2026-11-17", "--out", out2,
		filepath.Join(root, "fixtures", "specs", "checkout-button.yaml"))
	if r.code != 78 || !strings.Contains(r.stderr, "--incremental keeps its state in the host's state folder") {
		t.Fatalf("exact run with --incremental and no state folder: exit %d, want 78 naming --state-dir: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out2, "checkout-button")); err == nil {
		t.Errorf("a refused --incremental run wrote outputs")
	}
}

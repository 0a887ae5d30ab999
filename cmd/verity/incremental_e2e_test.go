package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestIncrementalCLI runs `verity run --incremental` as a nightly host
// would: a private spec runs in full and its log says why (its state would
// be restricted material); an exact single-join spec keeps a state in
// --state-dir, so its second night names its mode, and a run without
// --state-dir runs in full, saying so.
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

	r = verity(t, t.TempDir(), "run", "--incremental", "--log", "json", "--date", "2026-11-17", "--out", out,
		filepath.Join(root, "fixtures", "specs", "checkout-button.yaml"))
	if r.code != 0 && r.code != 65 {
		t.Fatalf("exact run without a state folder: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "no state folder (--state-dir)") {
		t.Errorf("a run without --state-dir does not say why it ran in full: %s", r.stderr)
	}
}

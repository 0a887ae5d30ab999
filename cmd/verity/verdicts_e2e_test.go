package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMisspeltEventE2E: a goal on a misspelt event fails the run with exit
// 65 and a message that names the metric, the event and the nearest name;
// `verity validate --data` finds the same without writing anything, and
// plain `validate` (no data read) still passes the spec.
func TestMisspeltEventE2E(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	copyTree(t, filepath.Join(root, "fixtures", "data", "basic"), filepath.Join(dir, "data", "basic"))
	if err := os.MkdirAll(filepath.Join(dir, "specs"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "fixtures", "specs", "checkout-button.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typo := strings.Replace(string(b), "event: purchase, role: goal}", "event: purchases, role: goal}", 1)
	if typo == string(b) {
		t.Fatal("the fixture spec changed: no goal on purchase")
	}
	if err := os.WriteFile(filepath.Join(dir, "specs", "typo.yaml"), []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"converted", `"purchases"`, "nearest event names present: purchase"}

	r := verity(t, dir, "validate", "--log", "none", "specs/typo.yaml")
	if r.code != 0 {
		t.Errorf("validate without --data: exit %d (%s), want 0: it reads no data", r.code, r.stdout)
	}
	r = verity(t, dir, "validate", "--log", "none", "--data", "specs/typo.yaml")
	if r.code != 65 {
		t.Errorf("validate --data: exit %d, want 65\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("validate --data stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "checkout-button")); err == nil {
		t.Error("validate --data wrote an output folder")
	}

	r = verity(t, dir, "run", "--log", "none", "--out", "runs", "specs/typo.yaml")
	if r.code != 65 || !strings.HasPrefix(r.stdout, "BLOCK") {
		t.Errorf("run: exit %d, stdout %q; want 65 and a BLOCK line", r.code, r.stdout)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("run stdout lacks %q:\n%s", w, r.stdout)
		}
	}
}

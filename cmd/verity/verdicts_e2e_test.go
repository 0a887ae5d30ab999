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

// TestCheckTruthWindowed: check-truth works on a run of the single-join
// set, whose default 72 h conversion window is shorter than the 4-day
// window: planted effects are not checkable (the truth counts events until
// the window end) and are listed as such; the A/A comparisons and cell
// sizes are checked. It used to fail with "nothing to check".
func TestCheckTruthWindowed(t *testing.T) {
	dir := fixtureCopy(t)
	p := filepath.Join(dir, "specs", "checkout-button.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}"
	if !strings.Contains(string(b), old) {
		t.Fatal("the fixture spec's pins changed")
	}
	b = []byte(strings.Replace(string(b), old, "templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}", 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := runFixture(t, dir, "checkout-button.yaml")
	r := verity(t, dir, "check-truth", "-v", "--truth", filepath.Join(dir, "data", "basic", "truth.json"), manifest)
	if r.code != 0 || !strings.Contains(r.stdout, "check-truth ok") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "A/A 0 of 0") {
		t.Errorf("no A/A comparison checked:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "a 72 h conversion window (unit_metrics@v5)") {
		t.Errorf("the planted effects not checked are not listed with the window:\n%s", r.stdout)
	}
}

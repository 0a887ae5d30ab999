package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuantileSpecs: the quantile fixture runs and writes quantiles.csv;
// the same spec made private is refused before any data is read, with
// exit 78 and a message naming the metric's key (no DP quantile yet).
func TestQuantileSpecs(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "fixtures", "specs", "checkout-button-quantiles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := verity(t, t.TempDir(), "run", "--log", "none", "--out", filepath.Join(t.TempDir(), "out"),
		filepath.Join(root, "fixtures", "specs", "checkout-button-quantiles.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, "ok     checkout-button-quantiles") {
		t.Fatalf("exact quantile run: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	// The same spec, private, in a folder of its own (absolute inputs and
	// key), so that no other test's glob of the fixture specs sees it.
	fx := filepath.Join(root, "fixtures")
	private := strings.Replace(string(src), "privacy: {enabled: false}",
		"privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_file: "+filepath.Join(fx, "keys", "TEST-ONLY-noise.key")+"}", 1)
	private = strings.ReplaceAll(private, "../data/basic/", filepath.Join(fx, "data", "basic")+"/")
	specPath := filepath.Join(t.TempDir(), "private.yaml")
	if err := os.WriteFile(specPath, []byte(private), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"run", "--log", "none", "--out", out}, privateHostArgs(t)...)
	r = verity(t, t.TempDir(), append(args, specPath)...)
	if r.code != 78 {
		t.Fatalf("private quantile spec: exit %d, want 78: %s %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"metrics[1].kind", "no differentially private quantile"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.stderr)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused private spec wrote %s (%v)", out, err)
	}
}

// TestEventQuantileSpecs: the event-level quantile fixture runs through the
// real binary and writes quantiles.csv with its clustered rows; the same
// spec with over misspelled is refused before any data is read, with exit
// 78 naming the key.
func TestEventQuantileSpecs(t *testing.T) {
	root := repoRoot(t)
	spec := filepath.Join(root, "fixtures", "specs", "checkout-button-evquantiles.yaml")
	out := filepath.Join(t.TempDir(), "out")
	r := verity(t, t.TempDir(), "run", "--log", "none", "--out", out, spec)
	if r.code != 0 || !strings.Contains(r.stdout, "ok     checkout-button-evquantiles") {
		t.Fatalf("event-level quantile run: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "checkout-button-evquantiles", "2026-11-19", "quantiles.csv"))
	if err != nil || !strings.Contains(string(b), "clustered_order_statistic") {
		t.Fatalf("quantiles.csv: %v\n%s", err, b)
	}
	src, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	typo := strings.Replace(string(src), "kind: quantile, over: events", "kind: quantile, over: evnts", 1)
	if typo == string(src) {
		t.Fatal("test edit: the fixture has no event-level metric to misspell")
	}
	typo = strings.ReplaceAll(typo, "../data/basic/", filepath.Join(root, "fixtures", "data", "basic")+"/")
	path := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(path, []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(t.TempDir(), "out")
	r = verity(t, t.TempDir(), "run", "--log", "none", "--out", out, path)
	if r.code != 78 || !strings.Contains(r.stderr, "metrics[1].over") || !strings.Contains(r.stderr, `"evnts"`) {
		t.Errorf("over: evnts: exit %d, want 78 naming metrics[1].over and the value: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused spec wrote %s (%v)", out, err)
	}
}

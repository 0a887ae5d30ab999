package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsLock: `verity metrics lock` releases a library's new
// definitions, is idempotent, and refuses (exit 78, naming the definition)
// a released definition edited in place; its help exits 0.
func TestMetricsLock(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "lib", "revenue", "v1.yaml")
	if err := os.MkdirAll(filepath.Dir(def), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(def, []byte("name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 500}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := verity(t, dir, "metrics", "lock", "--dir", "lib"); r.code != 0 || r.stdout != "released revenue@v1\n" {
		t.Fatalf("lock: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "lib", "metrics.lock"))
	if err != nil || !strings.Contains(string(lock), "\nrevenue v1 ") {
		t.Fatalf("metrics.lock: %q %v", lock, err)
	}
	if r := verity(t, dir, "metrics", "lock", "--dir", "lib"); r.code != 0 || r.stdout != "metrics.lock is up to date\n" {
		t.Fatalf("relock: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(def, []byte("name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 50}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := verity(t, dir, "metrics", "lock", "--dir", "lib"); r.code != 78 || !strings.Contains(r.stderr, "revenue@v1 changed after its release") {
		t.Fatalf("lock of an edited release: exit %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"metrics", "-h"}, {"metrics", "lock", "-h"}, {"help", "metrics"}} {
		if r := verity(t, dir, args...); r.code != 0 || !strings.Contains(r.stdout, "metrics lock --dir LIBRARY") {
			t.Errorf("%v: exit %d %q", args, r.code, r.stdout)
		}
	}
	if r := verity(t, dir, "metrics"); r.code != 78 {
		t.Errorf("metrics without a subcommand: exit %d", r.code)
	}
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCodeIdentityWithoutVCS builds verity the way a container build often
// does (VCS stamping off) with a release stamp, runs a fixture, and reads
// the manifest as a user pinning an analysis would: the version names the
// stamp, and the executable's hash — recomputed here from the file on
// disk — and the module versions are recorded although Go knew no revision.
func TestCodeIdentityWithoutVCS(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "verity-novcs")
	build := exec.Command("go", "build", "-buildvcs=false",
		"-ldflags", "-X github.com/verity-analytics/verity/pipeline/publish.stampedVersion=v9.9.9-test", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v: %s", err, out)
	}
	for _, w := range []string{"verity v9.9.9-test revision unknown", "executable sha256 " + want} {
		if !strings.Contains(string(out), w) {
			t.Errorf("version output lacks %q:\n%s", w, out)
		}
	}

	spec := filepath.Join(repoRoot(t), "fixtures", "specs", "onboarding-flow.yaml")
	run := exec.Command(bin, "run", "--log", "none", "--out", filepath.Join(dir, "out"), spec)
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, b)
	}
	mf, err := filepath.Glob(filepath.Join(dir, "out", "onboarding-flow", "*", "manifest.json"))
	if err != nil || len(mf) != 1 {
		t.Fatalf("manifest: %v %v", mf, err)
	}
	var m struct {
		Build struct {
			Version    string   `json:"version"`
			Revision   string   `json:"vcs_revision"`
			Executable string   `json:"executable_sha256"`
			Deps       []string `json:"dependencies"`
		} `json:"build"`
	}
	b, err := os.ReadFile(mf[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Build.Version != "v9.9.9-test" || m.Build.Revision != "unknown" {
		t.Errorf("build version %q revision %q, want the stamp and unknown", m.Build.Version, m.Build.Revision)
	}
	if m.Build.Executable != want {
		t.Errorf("manifest executable_sha256 %q, file on disk hashes to %q", m.Build.Executable, want)
	}
	if !slices.Contains(m.Build.Deps, "github.com/duckdb/duckdb-go/v2 v2.5.6") {
		t.Errorf("dependencies lack duckdb-go v2.5.6: %v", m.Build.Deps)
	}
}

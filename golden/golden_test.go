package golden

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/privacy"
)

var update = flag.Bool("update", false, "rewrite the golden files from a fresh run (review the diff like code)")

// goldenFiles are the outputs pinned per case.
var goldenFiles = []string{"results.csv", "quality.json", "decisions.json", "report.html", "manifest.stable.json"}

func specPaths(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("../fixtures/specs/*.yaml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("want at least two fixture specs, got %v (%v)", paths, err)
	}
	return paths
}

func caseName(specPath string) string {
	return strings.TrimSuffix(filepath.Base(specPath), ".yaml")
}

// runCase runs the spec with the given thread count and returns every
// output's bytes, with the manifest reduced to its stable part.
func runCase(t *testing.T, specPath string, threads int) map[string][]byte {
	t.Helper()
	spec, err := expspec.LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{
		OutDir: out,
		Engine: engine.Engine{Threads: threads, MemoryLimit: "1GB"},
		Build:  publish.CurrentBuild(),
		Host:   fixtureHost(t),
		// A spec's interaction partners are the other fixture specs, as
		// when the folder runs together (interactions_test.go runs them
		// together and compares).
		Partners: fixturePartners(t, spec),
	})
	// A blocking check (or a sample-ratio mismatch) still commits the
	// outputs, which the goldens pin; any other error fails.
	var gate *analysis.GateError
	if err != nil && !(errors.As(err, &gate) && res != nil) {
		t.Fatalf("run %s with %d threads: %v", specPath, threads, err)
	}
	got := map[string][]byte{}
	for _, name := range []string{"results.csv", "results.parquet", "quality.json", "decisions.json", "report.html", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(res.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got[name] = b
	}
	// adjusted.csv exists only for specs that list variance_reduction,
	// quantiles.csv only for specs with a quantile metric.
	for _, name := range []string{publish.AdjustedFile, "quantiles.csv", publish.InteractionsFile, publish.DrilldownFile} {
		b, err := os.ReadFile(filepath.Join(res.Dir, name))
		if err == nil {
			got[name] = b
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	var m publish.Manifest
	if err := json.Unmarshal(got["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if m.Build == nil || m.Volatile == nil {
		t.Fatal("manifest lacks its build or volatile part")
	}
	stable, err := json.MarshalIndent(m.Stable(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got["manifest.stable.json"] = append(stable, '\n')
	delete(got, "manifest.json")
	return got
}

// fixtureHost is a host whose state folder registers the committed
// fixtures' data as one data source (ledger scope: source; ε 40, δ 1e-6) and
// that accepts the committed test-only key.
func fixtureHost(t *testing.T) ledgers.Host {
	t.Helper()
	state := t.TempDir()
	if _, err := ledgers.LedgerInit(state, "fixtures", "../fixtures/data", privacy.ScopeSource, privacy.Budget{Epsilon: 40, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	return ledgers.Host{StateDir: state, AllowTestKey: true}
}

func TestGolden(t *testing.T) {
	for _, p := range specPaths(t) {
		name := caseName(p)
		t.Run(name, func(t *testing.T) {
			one := runCase(t, p, 1)
			four := runCase(t, p, 4)
			for file := range one {
				if !bytes.Equal(one[file], four[file]) {
					t.Errorf("%s differs between 1 and 4 threads (-1 +4):\n%s", file, cmp.Diff(string(one[file]), string(four[file])))
				}
			}
			files := goldenFiles
			// A case pins adjusted.csv and quantiles.csv when it writes them or
			// has a golden of them (then a run that stops writing one fails).
			for _, extra := range []string{publish.AdjustedFile, "quantiles.csv", publish.InteractionsFile, publish.DrilldownFile} {
				if _, err := os.Stat(filepath.Join(name, extra)); one[extra] != nil || err == nil {
					files = append(slices.Clone(files), extra)
				}
			}
			for _, file := range files {
				path := filepath.Join(name, file)
				if *update {
					if err := os.MkdirAll(name, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, one[file], 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("golden %s is missing (%v): create it with `go test ./golden -update` and review it", path, err)
					continue
				}
				if diff := cmp.Diff(string(want), string(one[file])); diff != "" {
					t.Errorf("%s differs from golden (-want +got):\n%s", path, diff)
				}
			}
		})
	}
}

// TestRerunIdentical runs a case twice with the same settings: every output
// byte and the stable manifest must repeat.
func TestRerunIdentical(t *testing.T) {
	p := specPaths(t)[0]
	a, b := runCase(t, p, 2), runCase(t, p, 2)
	for file := range a {
		if !bytes.Equal(a[file], b[file]) {
			t.Errorf("%s differs between two identical runs", file)
		}
	}
}

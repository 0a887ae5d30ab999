package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestSRMExitsLikeABlockingGate: a sample-ratio mismatch invalidates the
// verdict and the run exits 65 with the check named, as a blocking gate
// does, never exit 0; the outputs are committed with rule srm.
func TestSRMExitsLikeABlockingGate(t *testing.T) {
	spec, err := expspec.LoadSpec("../fixtures/specs/pricing-page-srm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := Run(context.Background(), spec, Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}})
	var gate *analysis.GateError
	if !errors.As(err, &gate) || ExitCode(err) != ExitData || !strings.Contains(err.Error(), analysis.SRMCheckName) {
		t.Fatalf("want exit 65 naming %s, got %v (exit %d)", analysis.SRMCheckName, err, ExitCode(err))
	}
	if o == nil || o.Verdict != "invalid" {
		t.Fatalf("outcome %+v", o)
	}
	d, err := os.ReadFile(filepath.Join(o.Dir, "decisions.json"))
	if err != nil || !strings.Contains(string(d), `"rule": "srm"`) {
		t.Errorf("decisions.json should keep rule srm: %v\n%s", err, d)
	}
}

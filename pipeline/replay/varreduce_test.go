package replay

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// TestReplayVarianceReduction: a run with variance-reduced estimates
// (adjusted.csv) replays byte for byte, adjusted.csv included, at another
// thread count; an edited adjusted.csv stops the replay (exit 70) naming it.
func TestReplayVarianceReduction(t *testing.T) {
	_, manifest, host := replayFixtureHost(t, "onboarding-flow-vr.yaml", "")
	rep, err := Replay(context.Background(), manifest, ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild(), Host: host})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !rep.Identical() {
		t.Fatalf("want every output identical, got %+v", rep.Outputs)
	}
	if !slices.ContainsFunc(rep.Outputs, func(o OutputComparison) bool { return o.Name == publish.AdjustedFile && o.Identical }) {
		t.Fatalf("replay did not compare %s: %+v", publish.AdjustedFile, rep.Outputs)
	}

	p := filepath.Join(filepath.Dir(manifest), publish.AdjustedFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), ",cuped,", ",cuped ,", 1)
	if edited == string(b) {
		t.Fatal("adjusted.csv has no cuped row to edit")
	}
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Replay(context.Background(), manifest, ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild(), Host: host})
	if err == nil || ReplayExitCode(err) != pipeline.ExitMismatch || !strings.Contains(err.Error(), publish.AdjustedFile) {
		t.Fatalf("replay of an edited adjusted.csv: %v (exit %d), want exit %d naming it", err, ReplayExitCode(err), pipeline.ExitMismatch)
	}
}

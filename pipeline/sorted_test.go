package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// TestDeclaredOrderIsChecked: a spec that declares its events sorted by
// (unit_id, event_id) when they are not (the committed fixtures are
// written in time order) fails before any output, with exit 65 and an
// error naming the file, the row and the two keys; nothing is committed.
func TestDeclaredOrderIsChecked(t *testing.T) {
	dir := t.TempDir()
	spec := `version: 1
experiment: checkout-button
inputs:
  traces: [` + abs(t, "../fixtures/data/basic/traces/") + `]
  events: [` + abs(t, "../fixtures/data/basic/events/") + `]
  sorted_by: {events: [unit_id, event_id]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v8, assignment: v5, events: v8, unit_metrics: v5, sufstats: v3, quality: v4}
cohorts: {dimension: persona, taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]}
metrics:
  - {name: converted, kind: proportion, event: purchase, attribution_hours: 96}
privacy: {enabled: false}
`
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := expspec.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	o, err := pipeline.Run(context.Background(), s, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 1}})
	var ie *intake.InputError
	if !errors.As(err, &ie) || !errors.Is(err, intake.ErrNotSorted) {
		t.Fatalf("want an InputError for the declared order, got %v (outcome %v)", err, o)
	}
	if code := pipeline.ExitCode(err); code != 65 {
		t.Errorf("exit code %d, want 65 (data error)", code)
	}
	if !strings.Contains(ie.File, "events/dt=") || ie.Row == 0 || !strings.Contains(err.Error(), "comes after (unit_id ") {
		t.Errorf("want the file, row and both keys named, got %v", err)
	}
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "manifest.json" {
			t.Errorf("a failed check committed %s", path)
		}
		return nil
	})
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a + "/"
}

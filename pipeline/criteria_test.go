package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// criteriaNight runs spec for one night into out and returns its
// decisions.json criteria block and report.
func criteriaNight(t *testing.T, spec *expspec.Spec, out, date string) (analysis.CriteriaInfo, string) {
	t.Helper()
	for _, r := range pipeline.RunAll(context.Background(), []*expspec.Spec{spec}, pipeline.Options{OutDir: out, Date: date, Engine: engine.Engine{Threads: 1}}) {
		if r.Err != nil {
			t.Fatalf("%s: %v", date, r.Err)
		}
	}
	dir := filepath.Join(out, spec.OutputName(), date)
	b, err := os.ReadFile(filepath.Join(dir, "decisions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d analysis.Decisions
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	return d.Criteria, string(page)
}

func loadFixtureSpec(t *testing.T, name string, edit func(*expspec.Spec)) *expspec.Spec {
	t.Helper()
	s, err := expspec.LoadSpec(filepath.Join("..", "fixtures", "specs", name))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestCriteriaLockedAndChanged runs an experiment night by night as a
// nightly host would, changing its spec in between, and reads each
// night's decisions.json and report as their reader would: the criteria
// are locked on the first night; a change of a description is no change;
// a change of α and of a goal's role is flagged on the night it happened,
// field by field, and the verdict says it used the changed criteria; going
// back to the locked criteria says so; an unreadable earlier night is
// named; a replay decides with the history its manifest recorded, even
// after the earlier nights are gone.
func TestCriteriaLockedAndChanged(t *testing.T) {
	out := t.TempDir()
	original := loadFixtureSpec(t, "checkout-button.yaml", nil)
	described := loadFixtureSpec(t, "checkout-button.yaml", func(s *expspec.Spec) { s.Description = "reworded, not a criterion" })
	changed := loadFixtureSpec(t, "checkout-button.yaml", func(s *expspec.Spec) {
		s.Statistics.Alpha = 0.1
		s.Metrics[1].Role, s.Metrics[1].Direction = "secondary", "" // revenue stops being a goal
	})

	c16, _ := criteriaNight(t, original, out, "2026-11-16")
	if c16.Changed || c16.LockedNight != "2026-11-16" || len(c16.Changes) != 0 || !strings.Contains(c16.Used, "locked now") {
		t.Fatalf("first night: %+v", c16)
	}
	c17, page17 := criteriaNight(t, described, out, "2026-11-17")
	if c17.Changed || c17.LockedNight != "2026-11-16" || c17.SHA256 != c16.SHA256 || len(c17.Changes) != 0 {
		t.Fatalf("a new description changed the criteria: %+v", c17)
	}
	if !strings.Contains(c17.Used, "unchanged since") || strings.Contains(page17, "changed after launch") {
		t.Errorf("unchanged criteria read as %q", c17.Used)
	}

	c18, page18 := criteriaNight(t, changed, out, "2026-11-18")
	if !c18.Changed || c18.LockedNight != "2026-11-16" || c18.LockedSHA256 != c16.SHA256 || c18.SHA256 == c16.SHA256 {
		t.Fatalf("changed criteria not flagged: %+v", c18)
	}
	want := []analysis.CriteriaChange{{Night: "2026-11-18", From: c16.SHA256, To: c18.SHA256,
		Fields: []string{"metrics[name=revenue]", "statistics.alpha"}}}
	if !reflect.DeepEqual(c18.Changes, want) {
		t.Errorf("changes\n got %+v\nwant %+v", c18.Changes, want)
	}
	if !strings.Contains(c18.Used, "NOT those locked on 2026-11-16") || !strings.Contains(c18.Used, "2026-11-18 (metrics[name=revenue], statistics.alpha)") {
		t.Errorf("the verdict does not say which criteria it used: %q", c18.Used)
	}
	if !strings.Contains(page18, "changed after launch") || !strings.Contains(page18, `role="alert"`) {
		t.Errorf("the report does not flag the change")
	}

	// Night 16's manifest damaged: named, and the lock moves to the first
	// readable night (17, which had the original criteria).
	if err := os.WriteFile(filepath.Join(out, original.OutputName(), "2026-11-16", "manifest.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	c19, _ := criteriaNight(t, original, out, "2026-11-19")
	if c19.Changed || c19.LockedNight != "2026-11-17" || len(c19.Changes) != 2 || !strings.Contains(c19.Used, "restored after a change") {
		t.Fatalf("back to the locked criteria: %+v", c19)
	}
	if !reflect.DeepEqual(c19.Unreadable, []string{"2026-11-16"}) {
		t.Errorf("unreadable nights %v, want [2026-11-16]", c19.Unreadable)
	}
	if c19.Changes[1].Night != "2026-11-19" || !reflect.DeepEqual(c19.Changes[1].Fields, want[0].Fields) {
		t.Errorf("the change back: %+v", c19.Changes[1])
	}

	// Replay of night 18 with the earlier nights gone: same bytes.
	for _, n := range []string{"2026-11-16", "2026-11-17"} {
		if err := os.RemoveAll(filepath.Join(out, original.OutputName(), n)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := replay.Replay(context.Background(), filepath.Join(out, original.OutputName(), "2026-11-18", "manifest.json"),
		replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild(), InputsDir: filepath.Join("..", "fixtures", "specs")})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical() {
		t.Fatalf("replay of a night with changed criteria: %+v", rep.Outputs)
	}
}

// TestChangedFields: fields are named by dotted path, list elements by
// name, and an added or removed element once.
func TestChangedFields(t *testing.T) {
	a := json.RawMessage(`{"statistics":{"alpha":0.05},"metrics":[{"name":"a","role":"goal"},{"name":"b","role":"goal"}]}`)
	b := json.RawMessage(`{"statistics":{"alpha":0.05},"metrics":[{"name":"a","role":"guardrail"},{"name":"c","role":"goal"}]}`)
	got := analysis.ChangedFields(a, b)
	want := []string{"metrics[name=a].role", "metrics[name=b]", "metrics[name=c]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := analysis.ChangedFields(a, a); len(got) != 0 {
		t.Errorf("no change gave %v", got)
	}
}

// TestCriteriaHistoryEdges: what decides which units and events count is
// a criterion (template pins, cohorts); the order of variants and metrics
// is not; a night folder that is a symbolic link is read; a manifest of
// another experiment in the folder is named as unreadable, never taken
// as this experiment's criteria.
func TestCriteriaHistoryEdges(t *testing.T) {
	out := t.TempDir()
	base := loadFixtureSpec(t, "onboarding-flow.yaml", nil)
	reordered := loadFixtureSpec(t, "onboarding-flow.yaml", func(s *expspec.Spec) {
		s.Variants[1], s.Variants[2] = s.Variants[2], s.Variants[1]
	})
	c16, _ := criteriaNight(t, base, out, "2026-11-16")
	if c17, _ := criteriaNight(t, reordered, out, "2026-11-17"); c17.Changed || c17.SHA256 != c16.SHA256 {
		t.Errorf("reordering the variants changed the criteria: %+v", c17)
	}
	taxonomy := loadFixtureSpec(t, "onboarding-flow.yaml", func(s *expspec.Spec) { s.Cohorts.Taxonomy = s.Cohorts.Taxonomy[:1] })
	c18, _ := criteriaNight(t, taxonomy, out, "2026-11-18")
	if !c18.Changed || len(c18.Changes) != 1 || !reflect.DeepEqual(c18.Changes[0].Fields, []string{"cohorts.taxonomy[1]", "cohorts.taxonomy[2]", "cohorts.taxonomy[3]"}) {
		t.Errorf("a cut taxonomy: %+v", c18)
	}

	// Night 17 moved away and linked back: still read. Night 16 replaced
	// by another experiment's run: unreadable.
	exp := filepath.Join(out, base.OutputName())
	archive := filepath.Join(t.TempDir(), "2026-11-17")
	if err := os.Rename(filepath.Join(exp, "2026-11-17"), archive); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(archive, filepath.Join(exp, "2026-11-17")); err != nil {
		t.Fatal(err)
	}
	other := loadFixtureSpec(t, "checkout-button.yaml", nil)
	otherOut := t.TempDir()
	criteriaNight(t, other, otherOut, "2026-11-16")
	if err := os.RemoveAll(filepath.Join(exp, "2026-11-16")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(otherOut, other.OutputName(), "2026-11-16"), filepath.Join(exp, "2026-11-16")); err != nil {
		t.Fatal(err)
	}
	c19, _ := criteriaNight(t, base, out, "2026-11-19")
	if !reflect.DeepEqual(c19.Unreadable, []string{"2026-11-16"}) || c19.LockedNight != "2026-11-17" || c19.Changed {
		t.Errorf("with a foreign night 16 and a linked night 17: %+v", c19)
	}
}

// TestPreviousNightFIFO: FIFOs where the previous night's manifest.json
// and quality.json should be (a hostile or broken output folder) do not
// hang the run: the baseline, the progress estimate and the criteria
// history read only regular files, and the night is named as unreadable.
func TestPreviousNightFIFO(t *testing.T) {
	out := t.TempDir()
	spec := loadFixtureSpec(t, "checkout-button.yaml", nil)
	night := filepath.Join(out, spec.OutputName(), "2026-11-18")
	if err := os.MkdirAll(night, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "quality.json"} {
		if err := syscall.Mkfifo(filepath.Join(night, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan []pipeline.Result, 1)
	go func() {
		done <- pipeline.RunAll(context.Background(), []*expspec.Spec{spec}, pipeline.Options{OutDir: out, Date: "2026-11-19", Engine: engine.Engine{Threads: 1}})
	}()
	select {
	case res := <-done:
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run hung on a FIFO in the previous night's folder")
	}
	c, _ := criteriaNight(t, spec, out, "2026-11-19") // a rerun, same bytes
	if !reflect.DeepEqual(c.Unreadable, []string{"2026-11-18"}) || c.LockedNight != "2026-11-19" {
		t.Errorf("with a FIFO manifest for night 18: %+v", c)
	}
}

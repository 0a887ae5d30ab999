package golden

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
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
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// fixturePartners returns the fixture specs a spec names as interaction
// partners, by name (nil when it names none).
func fixturePartners(t *testing.T, spec *expspec.Spec) map[string]*expspec.Spec {
	t.Helper()
	if spec.Interactions == nil {
		return nil
	}
	out := map[string]*expspec.Spec{}
	for _, p := range specPaths(t) {
		s, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range spec.Interactions.With {
			if s.OutputName() == w {
				out[w] = s
			}
		}
	}
	return out
}

// ixSpecWith parses the checkout-button-ix fixture, or the onboarding-flow
// fixture, with edits (old → new pairs), as if it lived beside them.
func ixSpecWith(t *testing.T, file string, edits ...string) *expspec.Spec {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("%s has no %q to edit", file, edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], 1)
	}
	s, err := expspec.ParseSpec(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const ofSpec = "../fixtures/specs/onboarding-flow.yaml"

// ixRun runs specs together and returns each output folder's files by
// spec name.
func ixRun(t *testing.T, out string, opts pipeline.Options, specs ...*expspec.Spec) map[string]map[string][]byte {
	t.Helper()
	opts.OutDir, opts.Engine, opts.Build = out, engine.Engine{Threads: 2, MemoryLimit: "1GB"}, publish.CurrentBuild()
	got := map[string]map[string][]byte{}
	for _, r := range pipeline.RunAll(context.Background(), specs, opts) {
		var gate *analysis.GateError
		if r.Err != nil && !errors.As(r.Err, &gate) {
			t.Fatalf("%s: %v", r.Name, r.Err)
		}
		if r.Skipped != "" {
			continue
		}
		files := map[string][]byte{}
		entries, err := os.ReadDir(r.Outcome.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(r.Outcome.Dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = b
		}
		got[r.Name] = files
	}
	return got
}

// TestInteractionsRunTogether: the fixture folder's way of running — both
// specs in one `verity run` — gives the golden interactions.csv whether the
// partner joins the pass as a companion (it pins other templates, so its
// own analysis runs in another pass) or shares the pass (a partner spec
// with the same pins and events); the partner's presence changes none of
// the spec's other outputs; and a replay of the night, which reads the
// partner's spec from the manifest, is byte-identical.
func TestInteractionsRunTogether(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("checkout-button-ix", publish.InteractionsFile))
	if err != nil {
		t.Fatal(err)
	}
	a := ixSpecWith(t, ixSpec)
	of := ixSpecWith(t, ofSpec)
	companion := ixRun(t, t.TempDir(), pipeline.Options{}, a, of)
	if got := companion["checkout-button-ix"][publish.InteractionsFile]; !bytes.Equal(got, golden) {
		t.Errorf("run together (partner as companion): interactions.csv differs from golden (-want +got):\n%s", cmp.Diff(string(golden), string(got)))
	}
	// The partner, pinned and measured like the spec (same events), so
	// that the two share one pass.
	shared := ixSpecWith(t, ofSpec,
		"templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}",
		"templates: {traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4}")
	shared.Metrics = nil
	for _, m := range a.Metrics {
		m.Role = "goal"
		shared.Metrics = append(shared.Metrics, m)
	}
	shared.Statistics.CUPED = nil
	if err := shared.Validate(); err != nil {
		t.Fatal(err)
	}
	together := ixRun(t, t.TempDir(), pipeline.Options{}, a, shared)
	if got := together["checkout-button-ix"][publish.InteractionsFile]; !bytes.Equal(got, golden) {
		t.Errorf("run together (one shared pass): interactions.csv differs from golden (-want +got):\n%s", cmp.Diff(string(golden), string(got)))
	}
	// Without the partner every other output is the same.
	alone := ixRun(t, t.TempDir(), pipeline.Options{}, a)
	for _, f := range []string{"results.csv", "quality.json", "decisions.json"} {
		if !bytes.Equal(alone["checkout-button-ix"][f], companion["checkout-button-ix"][f]) {
			t.Errorf("%s differs with and without the partner in the run", f)
		}
	}
	var row []string
	recs, _ := csv.NewReader(bytes.NewReader(alone["checkout-button-ix"][publish.InteractionsFile])).ReadAll()
	if len(recs) > 1 {
		row = recs[1]
	}
	if !slices.Contains(row, "partner_not_in_run") {
		t.Errorf("alone: want status partner_not_in_run, got %q", row)
	}

	// Replay: the partner's spec comes from the manifest.
	out := t.TempDir()
	ixRun(t, out, pipeline.Options{}, a, of)
	manifest := filepath.Join(out, "checkout-button-ix", "2026-11-19", "manifest.json")
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 3}, Build: publish.CurrentBuild()})
	if err != nil || !rep.Identical() {
		t.Fatalf("replay: %v (identical %v)", err, rep != nil && rep.Identical())
	}
	// An edited partner spec in the manifest is refused.
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"name": "guided"`), []byte(`"name": "guidee"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("the manifest does not pin the partner's variants")
	}
	if err := os.WriteFile(manifest, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 2}, Build: publish.CurrentBuild()})
	if err == nil || !strings.Contains(err.Error(), "interactions partner onboarding-flow") {
		t.Errorf("replay of a manifest with an edited partner spec: %v, want a refusal naming the partner", err)
	}
}

// TestInteractionsPartnerStatuses: partners that cannot be tested get a
// row saying why, never numbers — and a typo in a partner's name cannot
// produce a plausible result.
func TestInteractionsPartnerStatuses(t *testing.T) {
	a := ixSpecWith(t, ixSpec, "with: [onboarding-flow]", "with: [onboarding-flow, onboardingflow, late-flow, private-flow, checkout-button]")
	late := ixSpecWith(t, ofSpec, "experiment: onboarding-flow", "experiment: late-flow\nname: late-flow", "start: 2026-11-16", "start: 2026-11-19")
	private := ixSpecWith(t, ofSpec, "experiment: onboarding-flow", "experiment: private-flow\nname: private-flow")
	private.Privacy = &expspec.Privacy{Enabled: true}
	same := ixSpecWith(t, "../fixtures/specs/checkout-button.yaml")
	got := ixRun(t, t.TempDir(), pipeline.Options{Date: "2026-11-17", Partners: map[string]*expspec.Spec{"private-flow": private, "checkout-button": same}},
		a, ixSpecWith(t, ofSpec), late)
	recs, err := csv.NewReader(bytes.NewReader(got["checkout-button-ix"][publish.InteractionsFile])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	want := map[string]string{
		"onboarding-flow": "tested", "onboardingflow": "partner_not_in_run", "late-flow": "partner_not_started",
		"private-flow": "partner_private", "checkout-button": "partner_same_experiment",
	}
	seen := map[string]int{}
	for _, r := range recs[1:] {
		p := r[col["partner"]]
		seen[p]++
		if r[col["status"]] != want[p] {
			t.Errorf("partner %s metric %s: status %q, want %q", p, r[col["metric"]], r[col["status"]], want[p])
		}
		if want[p] != "tested" && (r[col["p_value"]] != "" || r[col["statistic"]] != "" || r[col["flagged"]] != "" || r[col["units_in_both"]] != "0") {
			t.Errorf("partner %s (%s) has numbers: %q", p, want[p], r)
		}
		if want[p] == "tested" && (r[col["p_value"]] == "" || r[col["flagged"]] == "") {
			t.Errorf("partner %s tested without a p-value: %q", p, r)
		}
	}
	for p := range want {
		if seen[p] != len(a.Metrics) {
			t.Errorf("partner %s: %d rows, want one per metric (%d)", p, seen[p], len(a.Metrics))
		}
	}
}

// TestInteractionsRefusals: what a spec cannot ask for is refused before
// any data is read (exit 78), naming the key.
func TestInteractionsRefusals(t *testing.T) {
	b, err := os.ReadFile(ixSpec)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, old, new, key string }{
		{"itself", "with: [onboarding-flow]", "with: [checkout-button-ix]", "interactions.with[0]"},
		{"twice", "with: [onboarding-flow]", "with: [onboarding-flow, onboarding-flow]", "interactions.with[1]"},
		{"empty", "with: [onboarding-flow]", "with: []", "interactions.with"},
		{"bad name", "with: [onboarding-flow]", "with: ['../x']", "interactions.with[0]"},
		{"alpha", "with: [onboarding-flow]", "with: [onboarding-flow]\n  alpha: 0.7", "interactions.alpha"},
		{"typo", "with: [onboarding-flow]", "wiht: [onboarding-flow]", "wiht"},
		{"no pin", ", interactions: v1}", "}", "templates.interactions"},
		{"old layout", "traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4", "traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1", "templates.unit_metrics"},
		{"pin without section", "interactions:\n  with: [onboarding-flow]\n", "", "templates.interactions"},
		{"private", "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 4, delta: 1.0e-6, run_share: 0.25, key_file: ../keys/TEST-ONLY-noise.key}", "interactions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := string(b)
			if !strings.Contains(text, c.old) {
				t.Fatalf("fixture has no %q", c.old)
			}
			_, err := expspec.ParseSpec(ixSpec, []byte(strings.Replace(text, c.old, c.new, 1)))
			if err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), c.key) {
				t.Errorf("got %v (exit %d), want exit 78 naming %s", err, pipeline.ExitCode(err), c.key)
			}
		})
	}
	// A sharded run does not test interactions.
	spec := ixSpecWith(t, ixSpec)
	res := pipeline.RunShard(context.Background(), []*expspec.Spec{spec}, pipeline.Options{OutDir: t.TempDir(), Build: publish.CurrentBuild()}, pipeline.Shard{Index: 0, Count: 2})
	if err := res[0].Err; err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "interactions") {
		t.Errorf("sharded run: %v, want exit 78 naming interactions", err)
	}
}

// TestInteractionsTwoNamesOneExperiment: two partner specs of the same
// experiment (same arms) are one pair of experiments: each row is the
// golden's, not the units counted twice.
func TestInteractionsTwoNamesOneExperiment(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("checkout-button-ix", publish.InteractionsFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := csv.NewReader(bytes.NewReader(golden)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	a := ixSpecWith(t, ixSpec, "with: [onboarding-flow]", "with: [onboarding-flow, onboarding-copy]")
	cp := ixSpecWith(t, ofSpec, "experiment: onboarding-flow", "experiment: onboarding-flow\nname: onboarding-copy")
	got := ixRun(t, t.TempDir(), pipeline.Options{}, a, ixSpecWith(t, ofSpec), cp)
	recs, err := csv.NewReader(bytes.NewReader(got["checkout-button-ix"][publish.InteractionsFile])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if len(recs) != 1+2*(len(want)-1) {
		t.Fatalf("%d rows, want one per partner × metric", len(recs)-1)
	}
	for i, r := range recs[1:] {
		w := want[1+i%(len(want)-1)]
		for _, c := range []string{"metric", "units_in_both", "statistic", "p_value", "status"} {
			if r[col[c]] != w[col[c]] {
				t.Errorf("partner %s metric %s: %s %q, want the golden's %q", r[col["partner"]], r[col["metric"]], c, r[col[c]], w[col[c]])
			}
		}
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// metricLibSpec is checkout-button with its revenue goal taken from a
// metric library (or inline, for comparison), reading the fixture data.
func metricLibSpec(t *testing.T, dir, revenue string) string {
	t.Helper()
	data, err := filepath.Abs(filepath.Join("..", "fixtures", "data", "basic"))
	if err != nil {
		t.Fatal(err)
	}
	spec := `version: 1
experiment: checkout-button
inputs: {traces: ["` + data + `/traces/"], events: ["` + data + `/events/"]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}
cohorts: {dimension: persona, taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]}
metric_library: [metrics]
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - ` + revenue + `
privacy: {enabled: false}
`
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeDefinition(t *testing.T, lib, name, version, body string) string {
	t.Helper()
	path := filepath.Join(lib, name, version+".yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMetricLibrary: a metric referenced from a released library gives
// exactly the numbers of the same definition written inline; the manifest
// names the file and its hash; an edited released definition, an
// unreleased version, a ref that also defines fields and a missing library
// are refused naming what is wrong; a replay reproduces the run, and a
// replay pinned to another version names the definition as a cause.
func TestMetricLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "metrics")
	v1 := writeDefinition(t, lib, "revenue", "v1", "name: revenue\ndescription: purchase value per unit\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 500}\n")
	writeDefinition(t, lib, "revenue", "v2", "name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 60}\n")
	added, err := expspec.LockMetricLibrary(lib)
	if err != nil || !reflect.DeepEqual(added, []string{"revenue@v1", "revenue@v2"}) {
		t.Fatalf("lock: %v %v", added, err)
	}
	if again, err := expspec.LockMetricLibrary(lib); err != nil || len(again) != 0 {
		t.Fatalf("relock: %v %v", again, err)
	}

	run := func(spec *expspec.Spec, out string) (*publish.Manifest, []byte) {
		t.Helper()
		for _, r := range pipeline.RunAll(context.Background(), []*expspec.Spec{spec}, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 1}}) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		runDir := filepath.Join(out, spec.OutputName(), "2026-11-19")
		m, _, err := publish.ReadManifestFile(filepath.Join(runDir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(runDir, "results.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return m, b
	}
	byRef, err := expspec.LoadSpec(metricLibSpec(t, dir, "{ref: revenue@v1, role: goal}"))
	if err != nil {
		t.Fatal(err)
	}
	refManifest, refResults := run(byRef, filepath.Join(dir, "by-ref"))
	inlineDir := t.TempDir()
	os.MkdirAll(filepath.Join(inlineDir, "metrics"), 0o755)
	inline, err := expspec.LoadSpec(metricLibSpec(t, inlineDir, "{name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 500}, role: goal}"))
	if err != nil {
		t.Fatal(err)
	}
	_, inlineResults := run(inline, filepath.Join(inlineDir, "out"))
	if BlankSpecHash(t, refResults) != BlankSpecHash(t, inlineResults) {
		t.Errorf("a library metric gives other numbers than the same definition inline")
	}
	want := []expspec.MetricDefinitionRecord{{Ref: "revenue@v1", Path: "metrics/revenue/v1.yaml", SHA256: fileSHA(t, v1)}}
	if !reflect.DeepEqual(refManifest.MetricDefinitions, want) {
		t.Errorf("manifest metric_definitions %+v, want %+v", refManifest.MetricDefinitions, want)
	}
	if !strings.Contains(string(refManifest.Spec), `"ref": "revenue@v1"`) || !strings.Contains(string(refManifest.Spec), `"upper": 500`) {
		t.Errorf("the resolved spec does not carry the ref and its definition:\n%s", refManifest.Spec)
	}

	// Replay: identical; pinned to v2, the definition is a named cause.
	manifest := filepath.Join(dir, "by-ref", byRef.OutputName(), "2026-11-19", "manifest.json")
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if err != nil || !rep.Identical() {
		t.Fatalf("replay: %v %+v", err, rep)
	}
	_, err = replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild(), Pins: map[string]string{"metric:revenue": "v2"}})
	var mm *replay.ReplayMismatchError
	if !errors.As(err, &mm) || pipeline.ExitCode(err) != pipeline.ExitMismatch {
		t.Fatalf("a replay on another definition (clamp 500 -> 60): want a mismatch (exit 70), got %v", err)
	}
	rep = mm.Report
	found := false
	for _, c := range rep.Causes {
		found = found || strings.HasPrefix(c, "metric definition revenue: revenue@v1 -> revenue@v2 (sha256 ") && strings.HasSuffix(c, "(--pin)")
	}
	if !found {
		t.Errorf("causes do not name the metric definition: %q (old %+v new %+v)", rep.Causes, rep.Old.MetricDefinitions, rep.New.MetricDefinitions)
	}

	// Refusals.
	for _, tc := range []struct {
		name, revenue, want string
		prepare             func()
	}{
		{"unreleased", "{ref: revenue@v3, role: goal}", "revenue@v3 is not released", func() {
			writeDefinition(t, lib, "revenue", "v3", "name: revenue\nkind: mean\nevent: purchase\naggregate: count\nclamp: {lower: 0, upper: 5}\n")
		}},
		{"ref with fields", "{ref: revenue@v1, kind: mean, role: goal}", "may add only role and guardrail", nil},
		{"unknown", "{ref: revenu@v1, role: goal}", "revenu@v1 is in none of the metric libraries", nil},
		{"bad ref", "{ref: revenue, role: goal}", "want name@vN", nil},
		{"no library", "{ref: revenue@v1, role: goal}", "the spec lists none", nil},
		{"URL library", "{ref: revenue@v1, role: goal}", "s3://", nil},
		{"edited release", "{ref: revenue@v1, role: goal}", "changed after its release", func() {
			if err := os.WriteFile(v1, []byte("name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 50}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if tc.prepare != nil {
			tc.prepare()
		}
		path := metricLibSpec(t, dir, tc.revenue)
		if lib := map[string]string{"no library": "", "URL library": "metric_library: [s3://bucket/metrics]\n"}[tc.name]; lib != "" || tc.name == "no library" {
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), "metric_library: [metrics]\n", lib, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := expspec.LoadSpec(path)
		var se *expspec.SpecError
		if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) || pipeline.ExitCode(err) != pipeline.ExitConfig {
			t.Errorf("%s: got %v (exit %d), want a spec error containing %q", tc.name, err, pipeline.ExitCode(err), tc.want)
		}
	}
	if _, err := expspec.LockMetricLibrary(lib); err == nil || !strings.Contains(err.Error(), "revenue@v1 changed after its release") {
		t.Errorf("lock of an edited release: %v", err)
	}
	// A definition file is held to the spec's decoding rules: a fraction
	// for an integer and a null in a list are refused when the library is
	// locked (yaml.v3 alone would truncate 95.5 to 95 and drop the null).
	for body, want := range map[string]string{
		"name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 50}\nattribution_hours: 95.5\n":     "attribution_hours: 95.5 is not a whole number",
		"name: revenue\nkind: mean\nevent: purchase\naggregate: sum\nclamp: {lower: 0, upper: 50}\nfilter: {plan: [null, pro]}\n": "filter.plan[0]: null is YAML's null",
	} {
		other := filepath.Join(t.TempDir(), "metrics")
		writeDefinition(t, other, "revenue", "v1", body)
		if _, err := expspec.LockMetricLibrary(other); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("lock of %q: got %v, want %q", body, err, want)
		}
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return diskio.SHA256Hex(b)
}

// BlankSpecHash returns results.csv with its spec_sha256 column blanked,
// for comparing the results of two specs that must give the same numbers
// (exported to the package's external tests).
func BlankSpecHash(t *testing.T, b []byte) string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("results.csv: %v", err)
	}
	col := slices.Index(rows[0], "spec_sha256")
	if col < 0 {
		t.Fatal("results.csv has no spec_sha256 column")
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	for i, r := range rows {
		if i > 0 {
			r[col] = "-"
		}
		w.Write(r)
	}
	w.Flush()
	return out.String()
}

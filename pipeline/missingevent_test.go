package pipeline_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// TestMissingMetricEvent: a goal or guardrail whose event matches no row
// of the window (a typo) is a blocking data-quality failure that names the
// metric, the event and the nearest event names present, with every
// template set; it is not "zero variance" and a hold.
func TestMissingMetricEvent(t *testing.T) {
	pins := "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}"
	for _, tc := range []struct {
		name   string
		repl   []string
		metric string
		event  string
		near   string
	}{
		{"goal typo, v1", []string{"event: buy, role: goal}", "event: buys, role: goal}"}, "converted", "buys", "buy"},
		{"goal typo, single join", []string{pins, singleJoinPins, "event: buy, role: goal}", "event: buys, role: goal}"}, "converted", "buys", "buy"},
		{"guardrail typo", []string{"  - {name: views, kind: mean, event: view, aggregate: count, clamp: {lower: 0, upper: 50}}",
			"  - {name: views, kind: mean, event: veiw, aggregate: count, clamp: {lower: 0, upper: 50}, role: guardrail, guardrail: {harmful: decrease, margin: 0.1, relative: true}}"},
			"views", "veiw", "view"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			baseData().write(t, dir)
			specVariant(t, dir, tc.repl...)
			err := runIn(t, dir)
			var gate *analysis.GateError
			if !errors.As(err, &gate) || pipeline.ExitCode(err) != pipeline.ExitData {
				t.Fatalf("run returned %v (exit %d), want a blocking quality gate (exit 65)", err, pipeline.ExitCode(err))
			}
			for _, want := range []string{tc.metric, `"` + tc.event + `"`, tc.near} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			final := filepath.Join(dir, "out", badExperiment, badDate)
			d := decisionsOf(t, final)
			if d["verdict"] != "invalid" || d["rule"] != "quality_gate" {
				t.Errorf("verdict %v rule %v, want invalid quality_gate", d["verdict"], d["rule"])
			}
			if r, _ := d["reason"].(string); !strings.Contains(r, tc.metric) || !strings.Contains(r, tc.event) {
				t.Errorf("reason %q does not name the metric and the event", r)
			}
			var qr publish.QualityReport
			b, _ := os.ReadFile(filepath.Join(final, "quality.json"))
			if err := json.Unmarshal(b, &qr); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range qr.Checks {
				if c.Name == "metric_event_missing" {
					found = true
					if c.Outcome != "block" || c.Observed != 1 {
						t.Errorf("check %+v, want observed 1 and outcome block", c)
					}
					if !strings.Contains(c.Detail, tc.near) {
						t.Errorf("check detail %q suggests no nearby name %q", c.Detail, tc.near)
					}
				}
			}
			if !found {
				t.Error("quality.json has no metric_event_missing check")
			}
			res, _ := os.ReadFile(filepath.Join(final, "results.csv"))
			for _, line := range strings.Split(string(res), "\n") {
				if strings.Contains(line, ","+tc.metric+",") && strings.HasSuffix(line, ",zero variance") {
					t.Errorf("row still says zero variance: %s", line)
				}
			}
		})
	}
}

// TestMissingEventCheckNotTriggeredByRareEvents: an event present in the
// window but attributed to no unit (all before exposure) is not a typo:
// no blocking check, the usual hold.
func TestMissingEventNotATypo(t *testing.T) {
	dir := t.TempDir()
	d := baseData()
	// Every view happens before its unit's exposure.
	var evs = d.events["part-0"][:0]
	for _, e := range d.events["part-0"] {
		if *e.Metric == "view" {
			ts := *e.TS - 3600*1_000_000*20
			e.TS = &ts
		}
		evs = append(evs, e)
	}
	d.events["part-0"] = evs
	d.write(t, dir)
	if err := runIn(t, dir); err != nil {
		t.Fatalf("run: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "out", badExperiment, badDate, "quality.json"))
	var qr publish.QualityReport
	if err := json.Unmarshal(b, &qr); err != nil {
		t.Fatal(err)
	}
	for _, c := range qr.Checks {
		if c.Name == "metric_event_missing" && c.Outcome != "pass" {
			t.Errorf("check %+v: the event exists in the window", c)
		}
	}
}

// TestMissingSecondaryEventWarns: a secondary metric cannot change the
// verdict, so its missing event warns (and its rows say why they are
// empty) instead of blocking the run.
func TestMissingSecondaryEventWarns(t *testing.T) {
	dir := t.TempDir()
	baseData().write(t, dir)
	specVariant(t, dir, "event: view, aggregate: count", "event: veiw, aggregate: count")
	if err := runIn(t, dir); err != nil {
		t.Fatalf("run: %v", err)
	}
	final := filepath.Join(dir, "out", badExperiment, badDate)
	var qr publish.QualityReport
	b, _ := os.ReadFile(filepath.Join(final, "quality.json"))
	if err := json.Unmarshal(b, &qr); err != nil {
		t.Fatal(err)
	}
	for _, c := range qr.Checks {
		switch c.Name {
		case "metric_event_missing":
			if c.Outcome != "pass" {
				t.Errorf("%+v: no goal or guardrail is missing its event", c)
			}
		case "secondary_metric_event_missing":
			if c.Outcome != "warn" || !strings.Contains(c.Detail, `"veiw"`) || !strings.Contains(c.Detail, "view") {
				t.Errorf("%+v: want a warning naming veiw and view", c)
			}
		}
	}
	res, _ := os.ReadFile(filepath.Join(final, "results.csv"))
	if n := strings.Count(string(res), ",views,"); n == 0 || n != strings.Count(string(res), "event not in window") {
		t.Errorf("views rows do not all say event not in window:\n%s", res)
	}
}

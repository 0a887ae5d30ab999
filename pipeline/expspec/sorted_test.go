package expspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestSortedBy: inputs.sorted_by declares a producer's order for events
// only, with exactly the duplicate check's key, and events@v8, which
// relies on the checked order, needs it declared.
func TestSortedBy(t *testing.T) {
	unitKeyed := func(events string) func(string) string {
		return func(s string) string {
			return strings.Replace(s, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
				"templates: {traces: v8, assignment: v5, events: "+events+", unit_metrics: v5, sufstats: v3, quality: v4}", 1)
		}
	}
	declare := func(line string) func(string) string {
		return func(s string) string {
			return strings.Replace(s, `  events: ["data/events/*.parquet"]`, `  events: ["data/events/*.parquet"]`+"\n  sorted_by: "+line, 1)
		}
	}
	both := func(fs ...func(string) string) func(string) string {
		return func(s string) string {
			for _, f := range fs {
				s = f(s)
			}
			return s
		}
	}
	tests := []struct {
		name      string
		edit      func(string) string
		wantKey   string // "" = valid
		wantInMsg string
	}{
		{"declared, sorted template", both(unitKeyed("v8"), declare("{events: [unit_id, event_id]}")), "", ""},
		{"declared, hash template (checked, not used)", both(unitKeyed("v7"), declare("{events: [unit_id, event_id]}")), "", ""},
		{"declared with v1 templates", declare("{events: [unit_id, event_id]}"), "", ""},
		{"sorted template undeclared", unitKeyed("v8"), "templates.events", "inputs.sorted_by.events"},
		{"traces", declare("{traces: [experiment_id, unit_id, event_id]}"), "inputs.sorted_by.traces", "not supported"},
		{"unknown role", declare("{metrics: [unit_id]}"), "inputs.sorted_by.metrics", "unknown role"},
		{"other key", declare("{events: [event_id, unit_id]}"), "inputs.sorted_by.events", "want [unit_id, event_id]"},
		{"prefix", declare("{events: [unit_id]}"), "inputs.sorted_by.events", "want [unit_id, event_id]"},
		{"source names", declare("{events: [uid, eid]}"), "inputs.sorted_by.events", "contract names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.edit(baseSpec)
			if text == baseSpec {
				t.Fatal("the edit changed nothing")
			}
			s, err := expspec.ParseSpec("spec.yaml", []byte(text))
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("want a valid spec, got %v", err)
				}
				if _, ok := s.SortedBy("events"); !ok {
					t.Fatal("the declaration was lost")
				}
				return
			}
			var se *expspec.SpecError
			if !errors.As(err, &se) || se.Key != tc.wantKey || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Fatalf("want a SpecError at %s containing %q, got %v", tc.wantKey, tc.wantInMsg, err)
			}
		})
	}
}

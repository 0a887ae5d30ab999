package expspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// filterSpec is a valid spec with filtered metrics on events@v9.
const filterSpec = `version: 1
experiment: checkout-button
inputs:
  traces: ["data/traces/"]
  events: ["data/events/*.parquet"]
  event_properties: [country, plan]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v8, assignment: v5, events: v9, unit_metrics: v5, sufstats: v3, quality: v4, filter_counts: v1}
cohorts: {dimension: persona, taxonomy: [power/mobile, casual/mobile]}
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - {name: revenue_de, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}, filter: {country: [DE, AT], plan: [pro]}}
privacy: {enabled: false}
`

func TestFilterSpecValid(t *testing.T) {
	s, err := expspec.ParseSpec("specs/f.yaml", []byte(filterSpec))
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasFilters() || len(s.Metrics[1].Filter["country"]) != 2 {
		t.Errorf("filter not parsed: %+v", s.Metrics[1])
	}
	if got := strings.Join(s.PinnedTemplateNames(), ","); got != "traces,assignment,events,unit_metrics,sufstats,quality,filter_counts" {
		t.Errorf("pinned templates %s", got)
	}
	b, _, err := s.Canonical()
	if err != nil || !strings.Contains(string(b), `"filter":{"country":["DE","AT"],"plan":["pro"]}`) || !strings.Contains(string(b), `"event_properties":["country","plan"]`) {
		t.Errorf("canonical form lacks the filter or the properties: %s (%v)", b, err)
	}
	// A spec without filters keeps its canonical form.
	plain, err := expspec.ParseSpec("specs/a.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := plain.Canonical(); strings.Contains(string(b), "filter") || strings.Contains(string(b), "event_properties") {
		t.Errorf("a spec without filters has filter keys: %s", b)
	}
	if err := s.ShardableError(); err == nil || !strings.Contains(err.Error(), "metrics[1].filter") {
		t.Errorf("a sharded run of a filtered spec: %v, want a refusal naming metrics[1].filter", err)
	}
}

func TestFilterSpecErrors(t *testing.T) {
	r := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("no " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	private := "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_env: K}"
	cases := []struct {
		name string
		edit func(string) string
		key  string
		msg  string
	}{
		{"empty value list", r("plan: [pro]", "plan: []"), "metrics[1].filter.plan", "empty list would match no event"},
		{"empty filter", r("filter: {country: [DE, AT], plan: [pro]}", "filter: {}"), "metrics[1].filter", "empty"},
		{"undeclared column", r("plan: [pro]", "region: [eu]"), "metrics[1].filter.region", "not a declared event property (inputs.event_properties: country, plan)"},
		{"no properties declared", r("  event_properties: [country, plan]\n", ""), "metrics[1].filter.country", "declare it in inputs.event_properties"},
		{"value twice", r("[DE, AT]", "[DE, DE]"), "metrics[1].filter.country[1]", "listed twice"},
		{"ratio", r("kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}, filter:", "kind: ratio, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}, denominator: {event: session, aggregate: count, clamp: {lower: 0, upper: 10}}, filter:"), "metrics[1].filter", "ratio metrics cannot be filtered"},
		{"events v7", r("events: v9", "events: v7"), "inputs.event_properties", "pin templates.events: v9"},
		{"filter with events v7", func(s string) string {
			return r("  event_properties: [country, plan]\n", "")(r("events: v9", "events: v7")(s))
		}, "templates.events", "has a filter, which events@v9 applies"},
		{"no filter_counts", r(", filter_counts: v1", ""), "templates.filter_counts", "required with filtered metrics"},
		{"filter_counts without filters", r(", filter: {country: [DE, AT], plan: [pro]}", ""), "templates.filter_counts", "no metric has a filter"},
		{"contract column", r("[country, plan]", "[country, metric]"), "inputs.event_properties[1]", "contract column"},
		{"mapped column", func(s string) string {
			return r("  event_properties: [country, plan]\n", "  event_properties: [country, plan]\n  columns: {events: {metric: plan}}\n")(s)
		}, "inputs.event_properties[1]", "mapped to the contract column metric"},
		{"property twice", r("[country, plan]", "[country, country]"), "inputs.event_properties[1]", "listed twice"},
		{"not an identifier", r("[country, plan]", "[country, \"plan tier\"]"), "inputs.event_properties[1]", "plain column name"},
		{"private", r("privacy: {enabled: false}", private), "metrics[1].filter", "private spec cannot filter"},
		{"private properties", func(s string) string {
			return r(", filter: {country: [DE, AT], plan: [pro]}", "")(r(", filter_counts: v1", "")(r("privacy: {enabled: false}", private)(s)))
		}, "inputs.event_properties", "private spec cannot read event property"},
		{"private events v9", func(s string) string {
			s = r(", filter: {country: [DE, AT], plan: [pro]}", "")(r(", filter_counts: v1", "")(r("privacy: {enabled: false}", private)(s)))
			return r("  event_properties: [country, plan]\n", "")(s)
		}, "templates.events", "privacy audit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/f.yaml", []byte(c.edit(filterSpec)))
			var se *expspec.SpecError
			if !errors.As(err, &se) || se.Key != c.key || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v (key %q), want key %q with %q", err, keyOf(se), c.key, c.msg)
			}
		})
	}
}

func keyOf(se *expspec.SpecError) string {
	if se == nil {
		return ""
	}
	return se.Key
}

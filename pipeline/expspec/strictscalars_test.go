package expspec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// A fraction where the spec wants a whole number is refused, naming the
// key: yaml.v3 alone truncates it (drilldowns.max_values: 1.5 became 1, a
// plausible setting from a typo). Whole numbers written as integers parse.
func TestFractionForAnIntegerIsRefused(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "specs", "checkout-drill.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := string(b)
	if _, err := expspec.ParseSpec("specs/x.yaml", b); err != nil {
		t.Fatalf("the fixture: %v", err)
	}
	for _, tc := range []struct{ from, to, key string }{
		{"  dimensions: [sdk_version, rule_id, persona]", "  dimensions: [sdk_version, rule_id, persona]\n  max_values: 1.5", "drilldowns.max_values"},
		{"  fixed_point_decimals: 6", "  fixed_point_decimals: 6.0", "statistics.fixed_point_decimals"},
		{"min_units: 400", "min_units: 4.5e2", "cohorts.min_units"},
		{"attribution_hours: 96}\n  - {name: page_views", "attribution_hours: 95.5}\n  - {name: page_views", "metrics[1].attribution_hours"},
	} {
		if !strings.Contains(base, tc.from) {
			t.Fatalf("fixture has no %q", tc.from)
		}
		_, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(base, tc.from, tc.to, 1)))
		var se *expspec.SpecError
		if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), "not a whole number") {
			t.Errorf("%s: got %v, want a refusal of key %s", tc.to, err, tc.key)
		}
	}
}

// A null element of a list is refused, naming its key: yaml.v3 drops it
// without a word, so filter: {plan: [null, pro]} became [pro] (and [null]
// an empty list, refused with a message about empty lists), and a
// dimension or variant written as ~ would vanish. A quoted "null" is the
// text and parses.
func TestNullInAListIsRefused(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "specs", "checkout-drill.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := string(b)
	for _, tc := range []struct{ from, to, key string }{
		{"dimensions: [sdk_version, rule_id, persona]", "dimensions: [sdk_version, null, persona]", "drilldowns.dimensions[1]"},
		{"dimensions: [sdk_version, rule_id, persona]", "dimensions: [~]", "drilldowns.dimensions[0]"},
		{"taxonomy: [power/mobile, power/desktop,", "taxonomy: [Null, power/mobile, power/desktop,", "cohorts.taxonomy[0]"},
	} {
		if !strings.Contains(base, tc.from) {
			t.Fatalf("fixture has no %q", tc.from)
		}
		_, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(base, tc.from, tc.to, 1)))
		var se *expspec.SpecError
		if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), "would drop from the list") {
			t.Errorf("%s: got %v, want a refusal of key %s", tc.to, err, tc.key)
		}
	}
	f, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "specs", "checkout-button-filtered.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ to, key string }{
		{"filter: {plan: [null]}", "metrics[3].filter.plan[0]"},
		{"filter: {plan: [null, pro]}", "metrics[3].filter.plan[0]"},
		{"filter: {plan: [pro, ~]}", "metrics[3].filter.plan[1]"},
	} {
		_, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(string(f), "filter: {plan: [pro]}", tc.to, 1)))
		var se *expspec.SpecError
		if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), "quote it") {
			t.Errorf("%s: got %v, want a refusal of key %s", tc.to, err, tc.key)
		}
	}
	// A quoted "null" is a value like any other: here it matches no event,
	// which the filter rules report at run time, not a parse error.
	if _, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(string(f), "filter: {plan: [pro]}", `filter: {plan: ["null", pro]}`, 1))); err != nil {
		t.Errorf(`a quoted "null": %v`, err)
	}
}

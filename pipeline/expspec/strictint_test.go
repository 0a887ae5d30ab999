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

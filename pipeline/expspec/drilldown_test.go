package expspec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// A drill-down on the persona-algorithm version of a spec that pins one
// is refused, naming the key: every sliced unit's exposure row carries the
// pinned version, so the "drill-down" would be one slice. Without a pin
// the column is a dimension like any other; mapped to another column, the
// refusal follows the mapping.
func TestDrillOnPinnedVersionIsRefused(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "specs", "checkout-drill.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(string(b), "dimensions: [sdk_version, rule_id, persona]", "dimensions: [sdk_version, persona_algo_version]", 1)
	_, err = expspec.ParseSpec("specs/x.yaml", []byte(base))
	var se *expspec.SpecError
	if !errors.As(err, &se) || se.Key != "drilldowns.dimensions[1]" || !strings.Contains(err.Error(), "one slice") {
		t.Errorf("pinned version: got %v, want a refusal of drilldowns.dimensions[1]", err)
	}
	if _, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(base, "persona_algo_version: pa-2\n", "", 1))); err != nil {
		t.Errorf("no pinned version: %v", err)
	}
	mapped := strings.Replace(base, "dimensions: [sdk_version, persona_algo_version]", "dimensions: [sdk_version, algo]", 1)
	mapped = strings.Replace(mapped, "window:", "  columns: {traces: {persona_algo_version: algo}}\nwindow:", 1)
	_, err = expspec.ParseSpec("specs/x.yaml", []byte(mapped))
	if !errors.As(err, &se) || se.Key != "drilldowns.dimensions[1]" {
		t.Errorf("mapped version column: got %v, want a refusal of drilldowns.dimensions[1]", err)
	}
}

package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestConversionWindowAccounting: with unit_metrics@v3, quality@v2 moves the
// events after the conversion window out of event_attributed into
// event_after_attribution: nothing is lost, nothing counted twice.
func TestConversionWindowAccounting(t *testing.T) {
	run := func(pins map[string]string) engine.Quality {
		spec, err := expspec.LoadSpec("../fixtures/specs/checkout-button.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range pins {
			spec.Templates[k] = v
		}
		if err := spec.Validate(); err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), spec, Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Quality
	}
	v1 := run(nil)
	v3 := run(map[string]string{"unit_metrics": "v3", "sufstats": "v2", "quality": "v2"})
	if v3.EventAfterAttribution == 0 {
		t.Fatal("the fixture has no event after the 72-hour window: the test would prove nothing")
	}
	if v1.EventAfterAttribution != 0 {
		t.Errorf("without a conversion window, %d events counted after it", v1.EventAfterAttribution)
	}
	if got := v3.EventAttributed + v3.EventAfterAttribution; got != v1.EventAttributed {
		t.Errorf("attributed %d + after attribution %d = %d, want v1's attributed %d", v3.EventAttributed, v3.EventAfterAttribution, got, v1.EventAttributed)
	}
	spec, _ := expspec.LoadSpec("../fixtures/specs/checkout-button.yaml")
	spec.Templates["unit_metrics"], spec.Templates["sufstats"] = "v3", "v2"
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "pin quality: v2") {
		t.Errorf("unit_metrics@v3 with quality@v1: want a validation error, got %v", err)
	}
}

package expspec

import (
	"maps"
	"slices"
	"strings"
)

// Gate is one data-quality check's thresholds: above Warn the check warns,
// above Block it blocks the run (exit 65, verdict invalid). Both are
// optional in the spec; an omitted one keeps its default.
type Gate struct {
	Warn  *float64 `yaml:"warn,omitempty" json:"warn,omitempty"`
	Block *float64 `yaml:"block,omitempty" json:"block,omitempty"`
}

// gateDefault is a check's definition: its default thresholds and rule.
type gateDefault struct {
	Name        string `json:"-" yaml:"-"`
	warn, block float64
	Rule        string `json:"-" yaml:"-"`
}

// GateDefaults lists every check in quality.json order. Rates are
// fractions; set block above 1 to make a rate check warn only.
var GateDefaults = []gateDefault{
	{"zero_exposure_arms", 0, 0, "number of variants with no assigned unit"},
	{"metric_event_missing", 0, 0, "goal and guardrail metric events (or their ratio denominator events) with no row in the analysis window: a misspelt name, or events not delivered"},
	{"secondary_metric_event_missing", 0, 1000, "secondary metric events (or their ratio denominator events) with no row in the analysis window; warns only unless block is set (0 blocks on the first)"},
	{"multi_variant_unit_rate", 0.01, 0.05, "units seen in more than one variant / exposed units"},
	{"trace_duplicate_rate", 0.01, 0.25, "duplicate trace rows / trace rows"},
	{"event_duplicate_rate", 0.01, 0.25, "duplicate events / events"},
	{"trace_version_mismatch_rate", 0.05, 0.5, "trace rows with another persona-algorithm version / trace rows"},
	{"trace_null_key_rate", 0.001, 0.05, "trace rows with a NULL ts, unit_id or variant / trace rows"},
	{"event_null_key_rate", 0.001, 0.05, "events with a NULL ts or unit_id / events"},
	{"trace_unknown_variant_rate", 0.001, 0.05, "trace rows with an undeclared variant / trace rows"},
	{"event_invalid_value_rate", 0.001, 0.05, "events with a NaN, infinite or out-of-range value / events"},
	{"event_null_metric_rate", 0.001, 0.05, "events whose metric name is NULL, empty or blank / events read (quality@v4 and later)"},
	{"volume_drop", 0.01, 0.2, "drop in exposed units since the previous night's run (1 - today/yesterday, 0 when it grew)"},
}

// validateGates checks the quality overrides: known checks only, finite
// thresholds >= 0, and warn not above block.
func (s *Spec) validateGates() error {
	known := map[string]bool{}
	for _, g := range GateDefaults {
		known[g.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(s.Quality)) {
		g := s.Quality[name]
		key := "quality." + name
		if !known[name] {
			var names []string
			for _, d := range GateDefaults {
				names = append(names, d.Name)
			}
			return s.errf(key, "unknown check; want one of %s", strings.Join(names, ", "))
		}
		for _, v := range []*float64{g.Warn, g.Block} {
			if v != nil && (!finite(*v) || *v < 0) {
				return s.errf(key, "thresholds must be finite and >= 0, got %v", *v)
			}
		}
		w, b := s.Gate(name)
		if w > b {
			return s.errf(key, "warn %v is above block %v", w, b)
		}
	}
	return nil
}

// Gate returns a check's thresholds: the spec's, else the defaults.
func (s *Spec) Gate(name string) (warn, block float64) {
	for _, d := range GateDefaults {
		if d.Name == name {
			warn, block = d.warn, d.block
		}
	}
	if g, ok := s.Quality[name]; ok {
		if g.Warn != nil {
			warn = *g.Warn
		}
		if g.Block != nil {
			block = *g.Block
		}
	}
	return warn, block
}

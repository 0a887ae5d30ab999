package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
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
	name        string
	warn, block float64
	rule        string
}

// gateDefaults lists every check in quality.json order. Rates are
// fractions; set block above 1 to make a rate check warn only.
var gateDefaults = []gateDefault{
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
	{"volume_drop", 0.01, 0.2, "drop in exposed units since the previous night's run (1 - today/yesterday, 0 when it grew)"},
}

func (s *Spec) validateGates() error {
	known := map[string]bool{}
	for _, g := range gateDefaults {
		known[g.name] = true
	}
	for _, name := range sortedKeys(s.Quality) {
		g := s.Quality[name]
		key := "quality." + name
		if !known[name] {
			var names []string
			for _, d := range gateDefaults {
				names = append(names, d.name)
			}
			return s.errf(key, "unknown check; want one of %s", strings.Join(names, ", "))
		}
		for _, v := range []*float64{g.Warn, g.Block} {
			if v != nil && (!finite(*v) || *v < 0) {
				return s.errf(key, "thresholds must be finite and >= 0, got %v", *v)
			}
		}
		w, b := s.gate(name)
		if w > b {
			return s.errf(key, "warn %v is above block %v", w, b)
		}
	}
	return nil
}

// gate returns a check's thresholds: the spec's, else the defaults.
func (s *Spec) gate(name string) (warn, block float64) {
	for _, d := range gateDefaults {
		if d.name == name {
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

// Baseline is what the volume check compared with: the previous night's
// run of the experiment. It is part of the stable manifest, so a replay
// can use the same baseline instead of whatever is on disk now.
type Baseline struct {
	Date          string `json:"date"`
	UnitsExposed  int64  `json:"units_exposed"`
	QualitySHA256 string `json:"quality_sha256"`
}

// readBaseline reads the previous night's quality.json of the experiment,
// if that run exists.
func readBaseline(expDir, date string) *Baseline {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return nil
	}
	prev := d.AddDate(0, 0, -1).Format("2006-01-02")
	b, err := os.ReadFile(filepath.Join(expDir, prev, "quality.json"))
	if err != nil {
		return nil
	}
	var r QualityReport
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &Baseline{Date: prev, UnitsExposed: r.Counts.UnitsExposed, QualitySHA256: sha256Hex(b)}
}

// evaluateGates computes every check with its thresholds and outcome, and
// returns the names of the checks that block.
func evaluateGates(spec *Spec, q Quality, released []Cell, prev *Baseline, missing []MissingEvent) ([]Check, []string) {
	rate := func(num, den int64) float64 {
		if den == 0 {
			return 0
		}
		return float64(num) / float64(den)
	}
	observed := map[string]float64{
		"multi_variant_unit_rate":     rate(q.UnitsMultiVariant, q.UnitsExposed),
		"trace_duplicate_rate":        rate(q.TraceDuplicates, q.TraceRows),
		"event_duplicate_rate":        rate(q.EventDuplicates, q.EventRows),
		"trace_version_mismatch_rate": rate(q.TraceVersionMismatch, q.TraceRows),
		"trace_null_key_rate":         rate(q.TraceNullKeys, q.TraceRows),
		"event_null_key_rate":         rate(q.EventNullKeys, q.EventRows),
		"trace_unknown_variant_rate":  rate(q.TraceUnknownVariant, q.TraceRows),
		"event_invalid_value_rate":    rate(q.EventInvalidValue, q.EventRows),
	}
	// Arms with no unit, in the released (all) cohort: with privacy these
	// are noisy counts, so only released information decides the gate.
	empty := 0
	for _, v := range spec.Variants {
		n := int64(0)
		for _, c := range released {
			if c.Cohort == AllCohort && c.Variant == v.Name && c.Metric == spec.Metrics[0].Name {
				n = c.N
			}
		}
		if n <= 0 {
			empty++
		}
	}
	observed["zero_exposure_arms"] = float64(empty)
	for _, m := range missing {
		observed[missingEventCheck(m)]++
	}
	var checks []Check
	var blocked []string
	for _, d := range gateDefaults {
		warn, block := spec.gate(d.name)
		c := Check{Name: d.name, Rule: d.rule, Warn: warn, Block: block, Threshold: warn, Severity: "block", Outcome: "pass"}
		if d.name == "volume_drop" {
			if prev == nil || prev.UnitsExposed == 0 {
				c.Outcome, c.Rule = "skipped", d.rule+"; no previous night's run to compare with"
				checks = append(checks, c)
				continue
			}
			observed[d.name] = max(0, 1-float64(q.UnitsExposed)/float64(prev.UnitsExposed))
		}
		c.Observed = observed[d.name]
		switch {
		case c.Observed > block:
			c.Outcome, c.Threshold = "block", block
			blocked = append(blocked, d.name)
		case c.Observed > warn:
			c.Outcome = "warn"
		}
		checks = append(checks, c)
	}
	return checks, blocked
}

// GateError reports blocking data-quality checks. The outputs were written
// (the verdict is invalid, quality.json says why); the exit code is 65.
type GateError struct {
	Experiment string
	Checks     []string
	Dir        string
	// Details says what the failing checks found, where they say more
	// than their name (a metric whose event is missing).
	Details []string
}

func (e *GateError) Error() string {
	details := ""
	if len(e.Details) > 0 {
		details = ": " + strings.Join(e.Details, "; ")
	}
	return fmt.Sprintf("experiment %s: blocking data-quality checks failed: %s%s (see %s)", e.Experiment, strings.Join(e.Checks, ", "), details, filepath.Join(e.Dir, "quality.json"))
}

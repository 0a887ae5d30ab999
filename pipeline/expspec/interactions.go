package expspec

import (
	"fmt"
	"slices"
)

// Interactions between experiments (issue 21 item 4).
//
// A spec lists, by spec name, the analyses of other experiments whose arms
// its own effects are tested against: for the units assigned in both
// (each by its own spec's rules: window cut at the night, variants,
// persona-algorithm version), does this experiment's effect on a metric
// depend on the other's arm? The partner's spec must be one of the specs
// of the same `verity run`; its trace rows are read from this spec's trace
// inputs (the pass classifies them with the partner's parameters even when
// the partner's own analysis runs in another pass). The manifest pins each
// partner's resolved spec, so a replay needs no other file.
//
// Only exact specs test interactions: a private spec listing partners is
// refused, and a private partner gets a status without numbers.

// Interactions is the spec's interactions section.
type Interactions struct {
	// With names the partner analyses (their `name:`, by default their
	// experiment).
	With []string `yaml:"with" json:"with"`
	// Alpha is the family-wise level at which a pair is flagged: Holm's
	// procedure over every (partner, metric) test of the night. Default
	// DefaultInteractionAlpha.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha,omitempty"`
}

// DefaultInteractionAlpha is the flagging level when the spec sets none:
// Eppo's documented threshold for interaction detection (p < 0.01), here
// family-wise over the night's tests.
const DefaultInteractionAlpha = 0.01

// InteractionAlpha returns the flagging level.
func (s *Spec) InteractionAlpha() float64 {
	if s.Interactions == nil || s.Interactions.Alpha == 0 {
		return DefaultInteractionAlpha
	}
	return s.Interactions.Alpha
}

// validateInteractions checks the interactions section: partners named by
// a valid, distinct name other than the spec's own, a level in (0, 0.5],
// the interactions template over the single-join layout, an exact spec.
func (s *Spec) validateInteractions() error {
	v, pinned := s.Templates["interactions"]
	if s.Interactions == nil {
		if pinned {
			return s.errf("templates.interactions", "pinned, but the spec has no interactions section; remove it")
		}
		return nil
	}
	ix := s.Interactions
	if s.Privacy.Enabled {
		return s.errf("interactions", "a private spec cannot test interactions: the cells of units in both experiments would be released exactly, outside the ledger; test them in an exact spec (privacy: {enabled: false})")
	}
	if len(ix.With) == 0 {
		return s.errf("interactions.with", "want at least one partner: the name of another spec of the same run (its name:, by default its experiment)")
	}
	for i, w := range ix.With {
		key := fmt.Sprintf("interactions.with[%d]", i)
		if !keyRE.MatchString(w) || w == "." || w == ".." {
			return s.errf(key, "want a spec name (1-128 letters, digits, '.', '_' or '-'), got %q", w)
		}
		if w == s.OutputName() {
			return s.errf(key, "%q is this spec: a partner is another experiment's analysis", w)
		}
		if slices.Contains(ix.With[:i], w) {
			return s.errf(key, "%q is listed twice", w)
		}
	}
	if ix.Alpha != 0 && !(ix.Alpha > 0 && ix.Alpha <= 0.5) {
		return s.errf("interactions.alpha", "want a level in (0, 0.5] (default %v), got %v", DefaultInteractionAlpha, ix.Alpha)
	}
	if !pinned {
		return s.errf("templates.interactions", "required by the interactions section: pin interactions: v1")
	}
	if v != "v1" {
		return s.errf("templates.interactions", "want v1, got %q", v)
	}
	if um := s.Templates["unit_metrics"]; um != "v4" && um != "v5" {
		return s.errf("templates.unit_metrics", "interactions@v1 reads the per-unit values of unit_metrics@v4 or v5 (the single-join layout), not unit_metrics@%s", um)
	}
	if a := s.Templates["assignment"]; a != "v4" && a != "v5" && a != "v6" {
		return s.errf("templates.assignment", "interactions@v1 joins the units of two experiments in assignment@v4, v5 or v6's table, not assignment@%s", a)
	}
	return nil
}

// ArmsControlFirst returns the variants' names, the control first, the
// others in spec order: the rows and columns of an interaction table.
func (s *Spec) ArmsControlFirst() []string {
	arms := []string{s.Control()}
	for _, v := range s.Variants {
		if !v.Control {
			arms = append(arms, v.Name)
		}
	}
	return arms
}

// InteractionMetric reports whether metric m is tested for interactions,
// and if not, why: proportions and means are; ratios, quantiles and capped
// means are not (a ratio's cells are not means of independent units; a
// quantile or a cap is not a mean of the units' values).
func InteractionMetric(m Metric) (ok bool, why string) {
	switch {
	case m.Kind == KindQuantile:
		return false, "quantile metric: the interaction test compares means"
	case m.Cap != nil:
		return false, "percentile-capped metric: its cap is computed per night from all arms"
	case m.Kind == "ratio":
		return false, "ratio metric: not tested (the test compares per-unit means)"
	}
	return true, ""
}

package expspec

import (
	"fmt"
	"slices"

	"github.com/verity-analytics/verity/queries"
)

// Drill-downs on trace dimensions (issue 21 item 2).
//
// A spec names trace columns (country, platform, app version…); each unit
// is put in the slice of the value on its first-exposure row, and every
// slice is analysed as a cohort is: the same comparisons, SRM per slice
// (Bonferroni over the dimension's slices), the same correction family
// rule (slices join a family only under correction_scope: cohorts, one
// family per dimension), and, with cohorts.min_units, the collapsing a
// private run applies to persona leaves (privacy.Collapse over the
// dimension's values as flat leaves, on exact counts, in exact runs too;
// what collapses goes to the remainder slice). The cells come from
// the pinned template drilldown@v1. Exact specs only: a private spec is
// refused, as is a sharded run.

// Drilldowns is the spec's drilldowns section.
type Drilldowns struct {
	// Dimensions are trace column names, as the Parquet files spell them
	// (not inputs.columns mappings): each must be in every trace file, of
	// a string, integer or boolean type.
	Dimensions []string `yaml:"dimensions" json:"dimensions"`
	// MaxValues caps the distinct values (NULL counted as one) of a
	// dimension over the assigned units: above it the dimension gets one
	// row with status too_many_values and no numbers. Default
	// DefaultDrillMaxValues, at most MaxDrillMaxValues.
	MaxValues int `yaml:"max_values,omitempty" json:"max_values,omitempty"`
}

// DefaultDrillMaxValues and MaxDrillMaxValues bound the slices of one
// dimension.
const (
	DefaultDrillMaxValues = 50
	MaxDrillMaxValues     = 1000
)

// DrillMaxValues returns the cap on a dimension's distinct values.
func (s *Spec) DrillMaxValues() int {
	if s.Drilldowns == nil || s.Drilldowns.MaxValues == 0 {
		return DefaultDrillMaxValues
	}
	return s.Drilldowns.MaxValues
}

// DrillDimensions returns the dimensions (nil without a drilldowns section).
func (s *Spec) DrillDimensions() []string {
	if s.Drilldowns == nil {
		return nil
	}
	return s.Drilldowns.Dimensions
}

// drillReserved are trace columns that cannot be a dimension: the keys
// that define a unit, its experiment and arm, and the row's identity.
var drillReserved = []string{"ts", "unit_id", "experiment_id", "variant", "event_id"}

// DrillMetric reports whether metric m is analysed per slice, and if not,
// why: quantiles and percentile-capped means need histograms per slice,
// which drilldown@v1 does not compute.
func DrillMetric(m Metric) (ok bool, why string) {
	switch {
	case m.Kind == KindQuantile:
		return false, "quantile metric: drilldown@v1 has no per-slice histograms"
	case m.Cap != nil:
		return false, "percentile-capped metric: its cap is computed from the whole experiment's histograms"
	}
	return true, ""
}

// validateDrilldowns checks the drilldowns section: distinct plain column
// names that are not keys, a cap in [1, MaxDrillMaxValues], the template
// pinned over the single-join layout, an exact spec with at least one
// metric analysed per slice.
func (s *Spec) validateDrilldowns() error {
	v, pinned := s.Templates["drilldown"]
	if s.Drilldowns == nil {
		if pinned {
			return s.errf("templates.drilldown", "pinned, but the spec has no drilldowns section; remove it")
		}
		return nil
	}
	d := s.Drilldowns
	if s.Privacy.Enabled {
		return s.errf("drilldowns", "a private spec cannot drill down: drilldown@v1's per-slice cells are exact and no noise or ledger charge is implemented for them; drill down in an exact spec (privacy: {enabled: false}) or remove the section")
	}
	if len(d.Dimensions) == 0 {
		return s.errf("drilldowns.dimensions", "want at least one trace column name")
	}
	for i, c := range d.Dimensions {
		key := fmt.Sprintf("drilldowns.dimensions[%d]", i)
		if !queries.ValidIdent(c) {
			return s.errf(key, "want a trace column name (letters, digits and '_', not starting with a digit, at most 128), got %q", c)
		}
		if slices.Contains(drillReserved, c) || s.mapsKeyTo(c) {
			return s.errf(key, "%q is a key column of the traces (one value per unit, experiment or row), not a dimension", c)
		}
		if slices.Contains(d.Dimensions[:i], c) {
			return s.errf(key, "%q is listed twice", c)
		}
	}
	if d.MaxValues != 0 && (d.MaxValues < 1 || d.MaxValues > MaxDrillMaxValues) {
		return s.errf("drilldowns.max_values", "want 1 to %d (default %d), got %d", MaxDrillMaxValues, DefaultDrillMaxValues, d.MaxValues)
	}
	any := false
	for _, m := range s.Metrics {
		ok, _ := DrillMetric(m)
		any = any || ok
	}
	if !any {
		return s.errf("drilldowns", "no metric of the spec can be analysed per slice (quantile and percentile-capped metrics cannot)")
	}
	if !pinned {
		return s.errf("templates.drilldown", "required by the drilldowns section: pin drilldown: v1")
	}
	if v != "v1" {
		return s.errf("templates.drilldown", "want v1, got %q", v)
	}
	if um := s.Templates["unit_metrics"]; um != "v4" && um != "v5" {
		return s.errf("templates.unit_metrics", "drilldown@v1 reads the per-unit values of unit_metrics@v4 or v5 (the single-join layout), not unit_metrics@%s", um)
	}
	if a := s.Templates["assignment"]; a != "v4" && a != "v5" {
		return s.errf("templates.assignment", "drilldown@v1 reads the units and exposures of assignment@v4 or v5's table, not assignment@%s", a)
	}
	return nil
}

// mapsKeyTo reports whether the spec maps a key column of the traces onto
// the source column c.
func (s *Spec) mapsKeyTo(c string) bool {
	for _, k := range drillReserved {
		if s.Inputs.Columns.Traces[k] == c {
			return true
		}
	}
	return false
}

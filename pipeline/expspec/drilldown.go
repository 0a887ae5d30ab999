package expspec

import (
	"fmt"
	"maps"
	"math"
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
// the pinned template drilldown@v1. A sharded run is refused.
//
// A private spec declares each dimension's slices (Values): the published
// slices are the declared values and one "other" slice (undeclared values
// and NULL), whatever the data hold, so that no slice's existence reveals
// a unit. Its slices get keyed noise from BudgetShare of the run budget
// (privatize.Allocate).

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
	// Values declares, for a private spec, every dimension's slices: a
	// unit whose value is not listed (or NULL) is in the dimension's
	// "other" slice. Required for each dimension of a private spec,
	// refused in an exact one (whose slices are the values the data hold).
	Values map[string][]string `yaml:"values,omitempty" json:"values,omitempty"`
	// BudgetShare is, for a private spec, the fraction of each run's
	// budget spent on the drill-downs, split evenly across the dimensions
	// (default DefaultDrillBudgetShare).
	BudgetShare float64 `yaml:"budget_share,omitempty" json:"budget_share,omitempty"`
}

// DefaultDrillBudgetShare is the fraction of a private run's budget its
// drill-downs get when the spec does not say.
const DefaultDrillBudgetShare = 0.2

// DrillBudgetShare returns the fraction of a private run's budget spent on
// drill-downs: 0 without them (or in an exact spec), BudgetShare, or
// DefaultDrillBudgetShare.
func (s *Spec) DrillBudgetShare() float64 {
	if s.Drilldowns == nil || !s.Privacy.Enabled {
		return 0
	}
	if s.Drilldowns.BudgetShare == 0 {
		return DefaultDrillBudgetShare
	}
	return s.Drilldowns.BudgetShare
}

// DrillValues returns the declared slices of a dimension (private specs).
func (s *Spec) DrillValues(dim string) []string {
	if s.Drilldowns == nil {
		return nil
	}
	return s.Drilldowns.Values[dim]
}

// DefaultDrillMaxValues and MaxDrillMaxValues bound the slices of one
// dimension.
const (
	DefaultDrillMaxValues = 50
	MaxDrillMaxValues     = 1000
)

// DrillMaxValues returns the cap on a dimension's distinct values. A
// private spec has none: its slices are declared, every value's cells are
// read and the undeclared ones summed into "other", so that no dimension
// is dropped on an exact count.
func (s *Spec) DrillMaxValues() int {
	if s.Drilldowns != nil && s.Privacy.Enabled {
		return math.MaxInt64
	}
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
		if s.PersonaAlgoVersion != "" && c == s.versionColumn() {
			return s.errf(key, "%q holds the persona-algorithm version, which the spec pins (%s): every sliced unit's exposure row has it, so there would be one slice", c, s.PersonaAlgoVersion)
		}
	}
	if err := s.validatePrivateDrill(); err != nil {
		return err
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
	if a := s.Templates["assignment"]; a != "v4" && a != "v5" && a != "v6" {
		return s.errf("templates.assignment", "drilldown@v1 reads the units and exposures of assignment@v4, v5 or v6's table, not assignment@%s", a)
	}
	return nil
}

// validatePrivateDrill checks the declared slices and the budget share: in
// a private spec, each dimension has a non-empty list of distinct values
// (at most MaxDrillMaxValues), no other key is declared, max_values is not
// set (there is no cap on exact counts) and the share leaves the cells and
// the gates a part of the budget; in an exact spec neither is set.
func (s *Spec) validatePrivateDrill() error {
	d := s.Drilldowns
	if !s.Privacy.Enabled {
		if d.Values != nil {
			return s.errf("drilldowns.values", "declared slices are for private specs (an exact drill-down slices by the values the data hold); remove it")
		}
		if d.BudgetShare != 0 {
			return s.errf("drilldowns.budget_share", "a budget share is for private specs; remove it")
		}
		return nil
	}
	if d.MaxValues != 0 {
		return s.errf("drilldowns.max_values", "a private drill-down has no cap on distinct values (its slices are the declared values and other, never decided on exact counts); remove it")
	}
	for _, k := range slices.Sorted(maps.Keys(d.Values)) {
		if !slices.Contains(d.Dimensions, k) {
			return s.errf("drilldowns.values."+k, "%q is not one of drilldowns.dimensions %q", k, d.Dimensions)
		}
	}
	for _, c := range d.Dimensions {
		key := "drilldowns.values." + c
		vs, ok := d.Values[c]
		if !ok || len(vs) == 0 {
			return s.errf(key, "a private spec declares each dimension's slices (units with any other value, or NULL, go to the slice other): list the values of %s", c)
		}
		if len(vs) > MaxDrillMaxValues {
			return s.errf(key, "%d values, at most %d", len(vs), MaxDrillMaxValues)
		}
		for i, v := range vs {
			if slices.Contains(vs[:i], v) {
				return s.errf(fmt.Sprintf("%s[%d]", key, i), "%q is listed twice", v)
			}
		}
	}
	if d.BudgetShare != 0 && !(d.BudgetShare > 0 && d.BudgetShare < 1) {
		return s.errf("drilldowns.budget_share", "want a fraction in (0, 1), got %v", d.BudgetShare)
	}
	if g := s.Privacy.EffectiveGateShare(); g+s.DrillBudgetShare() >= 1 {
		return s.errf("drilldowns.budget_share", "%v with privacy.gate_share %v leaves nothing for the cells; want a sum below 1", s.DrillBudgetShare(), g)
	}
	return nil
}

// versionColumn is the trace column that holds the persona-algorithm
// version: the contract name unless the spec maps it.
func (s *Spec) versionColumn() string {
	if c := s.Inputs.Columns.Traces["persona_algo_version"]; c != "" {
		return c
	}
	return "persona_algo_version"
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

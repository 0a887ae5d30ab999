package expspec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// templateFeatures lists what each released template version can compute.
// Released versions never change, so neither do their entries.
var templateFeatures = map[string]map[string][]string{
	"unit_metrics": {"v1": {}, "v2": {"ratio", "cuped"}, "v3": {"ratio", "cuped", "attribution"}, "v4": {"ratio", "cuped", "attribution"}, "v5": {"ratio", "cuped", "attribution"}},
	"sufstats":     {"v1": {}, "v2": {"ratio", "cuped"}, "v3": {"ratio", "cuped"}},
}

// UnitKeyedSet is the single-join set whose de-duplication keys include
// unit_id, whose empty or blank keys are counted exclusions, and whose
// quality counts include the per-unit gate statistics: the only set a
// private spec may pin (no unit's rows can remove or change another's).
var UnitKeyedSet = map[string]string{
	"traces": "v9", "assignment": "v6", "events": "v12", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4",
}

// unitKeyedVersions are the versions of each template that belong to the
// unit-keyed set: its first release (traces@v6, events@v5), the faster
// rewrite with the same results (traces@v7, events@v6; issue 18) and the
// same text planned without DuckDB's build/probe side swap (traces@v8,
// events@v7; issue 18), and events@v8, events@v7 for inputs whose declared
// sort order (inputs.sorted_by) Verity has checked, and events@v9, events@v7
// with metric filters (filter.go; exact specs only), and traces@v9 with
// assignment@v6 and events@v10, which aggregate the (experiment, unit)
// pairs more cheaply for many experiments in one pass (issue 18; traces@v9
// writes trace_units in a layout only assignment@v6 reads), and events@v12,
// events@v7 with DuckDB's join order fixed to the text's. A spec may mix
// them: they read and write the same tables and columns.
var unitKeyedVersions = map[string][]string{
	"traces": {"v6", "v7", "v8", "v9"}, "assignment": {"v5", "v6"}, "events": {"v5", "v6", "v7", "v8", "v9", "v10", "v12"},
	"unit_metrics": {"v5"}, "sufstats": {"v3"}, "quality": {"v4"},
}

// isUnitKeyed reports whether the spec pins a unit-keyed version of name.
func (s *Spec) isUnitKeyed(name string) bool {
	return slices.Contains(unitKeyedVersions[name], s.Templates[name])
}

// unitKeyedPins is UnitKeyedSet as a spec would write it.
func unitKeyedPins() string {
	var parts []string
	for _, name := range TemplateNames {
		parts = append(parts, name+": "+UnitKeyedSet[name])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// unitKeyed reports whether every template the spec pins is unit-keyed.
func (s *Spec) unitKeyed() bool {
	for _, name := range TemplateNames {
		if !s.isUnitKeyed(name) {
			return false
		}
	}
	return true
}

// validateTemplateFeatures checks that the pinned template versions can
// compute what the spec asks for, and that they fit together.
func (s *Spec) validateTemplateFeatures() error {
	if err := s.validateTemplateCapabilities(); err != nil {
		return err
	}
	if err := s.validateConversionWindowQuality(); err != nil {
		return err
	}
	if err := s.validateSortedTemplate(); err != nil {
		return err
	}
	return s.validateTemplateLayout()
}

// templateNeeds lists the features (ratio, cuped, attribution) the spec
// needs from its templates, each with the setting that needs it (the last
// metric, when several do).
func (s *Spec) templateNeeds() map[string]string {
	need := map[string]string{}
	for i, m := range s.Metrics {
		if m.Kind == "ratio" {
			need["ratio"] = fmt.Sprintf("metrics[%d] is a ratio", i)
		}
	}
	if s.Statistics.CUPED != nil {
		need["cuped"] = "statistics.cuped is set"
	}
	for i, m := range s.Metrics {
		if m.AttributionHours > 0 {
			need["attribution"] = fmt.Sprintf("metrics[%d].attribution_hours is set", i)
		}
	}
	return need
}

// validateTemplateCapabilities checks that the pinned unit_metrics and
// sufstats versions can compute every feature the spec needs.
func (s *Spec) validateTemplateCapabilities() error {
	need := s.templateNeeds()
	for _, name := range []string{"unit_metrics", "sufstats"} {
		v := s.Templates[name]
		if name == "sufstats" {
			delete(need, "attribution") // computed upstream of sufstats
		}
		feats, ok := templateFeatures[name][v]
		if !ok {
			// An unknown version is reported when the template is loaded.
			continue
		}
		for _, f := range slices.Sorted(maps.Keys(need)) {
			if !slices.Contains(feats, f) {
				return s.errf("templates."+name, "%s@%s cannot compute %s metrics (%s); pin a version that can, such as v2", name, v, f, need[f])
			}
		}
	}
	return nil
}

// validateConversionWindowQuality checks that unit_metrics@v3 is not
// pinned with quality@v1, which does not know about its conversion window.
func (s *Spec) validateConversionWindowQuality() error {
	// A conversion window needs the quality counts that know about it.
	if s.Templates["unit_metrics"] == "v3" && s.Templates["quality"] == "v1" {
		return s.errf("templates.quality", "quality@v1 would count events after unit_metrics@v3's conversion window as attributed; pin quality: v2")
	}
	return nil
}

// validateTemplateLayout checks that the single-join versions are pinned
// all six or none, then that the versions of the layout pinned fit.
func (s *Spec) validateTemplateLayout() error {
	inSet, outSet := s.singleJoinPins()
	if len(inSet) > 0 && len(outSet) > 0 {
		return s.errf("templates", "%s belong together with %s (the single-join layout); pin all six or none", strings.Join(inSet, ", "), strings.Join(outSet, ", "))
	}
	if len(outSet) == 0 {
		return s.validateSingleJoinVersions()
	}
	return s.validateSufstatsFitsUnitMetrics()
}

// singleJoinPins splits the templates into those pinned to a single-join
// version (name@version) and those that are not (name@ the single-join
// versions they would need).
func (s *Spec) singleJoinPins() (inSet, outSet []string) {
	// The single-join layout is one design across all six templates: each
	// reads the tables and keys the others write. traces@v4 (or v5) with
	// assignment@v4 is a faster pair that replaces traces@v3/assignment@v3;
	// events@v4 writes what events@v3 writes (and events@v11 what v4 does,
	// grouping its per-unit rows once, events@v13 with DuckDB's join order
	// and build sides fixed; issue 18), unit_metrics@v5 what v4 does.
	singleJoin := [][]string{
		{"traces", "v3", "v4", "v5", "v6", "v7", "v8", "v9"}, {"assignment", "v3", "v4", "v5", "v6"}, {"events", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13"},
		{"unit_metrics", "v4", "v5"}, {"sufstats", "v3"}, {"quality", "v3", "v4"},
	}
	inSet, outSet = []string{}, []string{}
	for _, m := range singleJoin {
		if slices.Contains(m[1:], s.Templates[m[0]]) {
			inSet = append(inSet, m[0]+"@"+s.Templates[m[0]])
		} else {
			outSet = append(outSet, m[0]+"@"+strings.Join(m[1:], "/"))
		}
	}
	return inSet, outSet
}

// validateSingleJoinVersions checks, for a spec pinning the single-join
// layout, that the unit-keyed versions are pinned all four or none and
// that traces and assignment are of the same release.
func (s *Spec) validateSingleJoinVersions() error {
	// The unit-keyed versions read and write each other's columns
	// (per-unit gate flags and counts): all four or none.
	var keyed, unkeyed []string
	for _, name := range []string{"traces", "assignment", "events", "quality"} {
		if s.isUnitKeyed(name) {
			keyed = append(keyed, name+"@"+s.Templates[name])
		} else {
			unkeyed = append(unkeyed, name+"@"+s.Templates[name])
		}
	}
	if len(keyed) > 0 && len(unkeyed) > 0 {
		return s.errf("templates", "%s are unit-keyed and do not fit %s; pin the unit-keyed set %s", strings.Join(keyed, ", "), strings.Join(unkeyed, ", "), unitKeyedPins())
	}
	// traces@v9 writes trace_units in a layout only assignment@v6 reads.
	if (s.Templates["traces"] == "v9") != (s.Templates["assignment"] == "v6") {
		return s.errf("templates", "traces@%s and assignment@%s do not fit together: traces@v9 goes with assignment@v6 (their own per-unit layout), traces@v6, v7 and v8 with assignment@v5", s.Templates["traces"], s.Templates["assignment"])
	}
	if (s.Templates["traces"] == "v3") != (s.Templates["assignment"] == "v3") {
		return s.errf("templates", "traces@%s and assignment@%s do not fit together: traces@v4 and v5 go with assignment@v4, traces@v3 with assignment@v3", s.Templates["traces"], s.Templates["assignment"])
	}
	return nil
}

// validateSufstatsFitsUnitMetrics checks, for a spec not pinning the
// single-join layout, that sufstats reads the columns unit_metrics writes.
func (s *Spec) validateSufstatsFitsUnitMetrics() error {
	// sufstats@v2 reads the y and c columns that unit_metrics@v2 and later
	// write; sufstats@v1 reads x only, which every version writes, but is
	// kept with unit_metrics@v1 so that v1 specs stay what they were.
	um, ss := s.Templates["unit_metrics"], s.Templates["sufstats"]
	if (ss == "v2") != (um == "v2" || um == "v3") {
		return s.errf("templates", "sufstats@%s and unit_metrics@%s do not fit together: sufstats@v2 goes with unit_metrics@v2 or later, sufstats@v1 with unit_metrics@v1", ss, um)
	}
	return nil
}

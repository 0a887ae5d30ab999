package expspec

import (
	"maps"
	"slices"
	"strings"
)

// SortedKeys are the keys inputs.sorted_by may declare, per role: the key
// the role's exact duplicate check groups by in the unit-keyed set. Only
// events are supported; the traces' key would be (experiment_id, unit_id,
// event_id), which no template uses yet.
var SortedKeys = map[string][]string{"events": {"unit_id", "event_id"}}

// SortedTemplate is the events template version that relies on the
// checked order (and needs it declared).
const SortedTemplate = "v8"

// validateSortedBy checks inputs.sorted_by: a known role with exactly its
// key, and that a template relying on the order has it declared.
func (s *Spec) validateSortedBy() error {
	for _, role := range slices.Sorted(maps.Keys(s.Inputs.SortedBy)) {
		want, ok := SortedKeys[role]
		if !ok {
			if role == "traces" {
				return s.errf("inputs.sorted_by.traces", "not supported yet: only events may declare a sort order (events: [%s])", strings.Join(SortedKeys["events"], ", "))
			}
			return s.errf("inputs.sorted_by."+role, "unknown role; want events")
		}
		if got := s.Inputs.SortedBy[role]; !slices.Equal(got, want) {
			return s.errf("inputs.sorted_by."+role, "want [%s] (the key of the exact duplicate check, contract names), got [%s]", strings.Join(want, ", "), strings.Join(got, ", "))
		}
	}
	return nil
}

// validateSortedTemplate checks that events@v8, which trusts the checked
// order, is pinned only with the order declared.
func (s *Spec) validateSortedTemplate() error {
	if s.Templates["events"] == SortedTemplate && s.Inputs.SortedBy["events"] == nil {
		return s.errf("templates.events", "events@%s finds duplicates by the order of sorted inputs: declare it with inputs.sorted_by.events: [%s] (Verity checks it), or pin events: v7", SortedTemplate, strings.Join(SortedKeys["events"], ", "))
	}
	return nil
}

// SortedBy returns the declared sort key of a role, if any.
func (s *Spec) SortedBy(role string) ([]string, bool) {
	k, ok := s.Inputs.SortedBy[role]
	return k, ok
}

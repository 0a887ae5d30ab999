package expspec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/verity-analytics/verity/queries"
)

// Filtered metrics (issue 20 item 3).
//
// A spec declares extra event property columns (inputs.event_properties:
// [country, plan]), VARCHAR columns of the events files, checked in every
// events file before any SQL. A proportion, mean or quantile metric may
// then select its events by property values:
//
//	filter: {country: [DE, AT], plan: [pro]}
//
// An event counts for the metric only when, for every listed column, its
// value is one of the listed strings: exact, byte-for-byte equality (no
// trimming, no case folding: "de" and " DE" are not "DE"); a NULL property
// never matches. Columns are ANDed, values within a column ORed. The filter
// applies to the metric's attributed events and to its CUPED pre-period
// events alike; quality counts (duplicates, windows, attribution) stay
// counts of the event name, unfiltered. Every declared value's matching
// rows, and the NULL rows of its column, are counted (engine.FilterCount,
// quality.json → filter_counts); a value that matched no row of the
// metric's event is the check filter_value_unmatched (analysis), which
// blocks for goals and guardrails and warns for secondary metrics — a typo
// such as DEE never gives a plausible number silently.
//
// Filters need events@v9 (unit-keyed, events@v7's rules plus the property
// columns) and filter_counts@v1 (the counts per declared value). Ratio metrics cannot be filtered in this release (a filter
// would have to say which part it selects). Private specs are refused: the
// filter counts are exact counts of rows, not yet a noisy release, and the
// property columns have not been through the privacy audit. Sharded runs
// are refused (the shard partials do not carry the filter counts).

// maxEventProperties bounds inputs.event_properties; maxFilterValue bounds
// one filter value's length in bytes.
const (
	maxEventProperties = 16
	maxFilterValue     = 1024
)

// FilterEventsVersion is the events template version that applies metric
// filters.
const FilterEventsVersion = "v9"

// HasFilters reports whether some metric of the spec has a filter.
func (s *Spec) HasFilters() bool {
	for _, m := range s.Metrics {
		if m.Filter != nil {
			return true
		}
	}
	return false
}

// firstFilter returns the key of the first filtered metric's filter.
func (s *Spec) firstFilter() string {
	for i, m := range s.Metrics {
		if m.Filter != nil {
			return fmt.Sprintf("metrics[%d].filter", i)
		}
	}
	return ""
}

// FilterColumns returns a filter's property columns in byte order (the
// order in which they are bound and reported).
func FilterColumns(f map[string][]string) []string { return slices.Sorted(maps.Keys(f)) }

// validateFilters checks inputs.event_properties and every metric's
// filter: declared plain identifiers that are not contract columns, lists
// of distinct values, the metric kinds that can be filtered, events@v9,
// and no private spec.
func (s *Spec) validateFilters() error {
	props := s.Inputs.EventProperties
	if s.Privacy.Enabled {
		if k := s.firstFilter(); k != "" {
			return s.errf(k, "a private spec cannot filter metrics by event properties in this release: the filter counts are exact row counts (not a noisy release) and the property columns have not been through the privacy audit; analyse the filtered metric in an exact spec (privacy: {enabled: false})")
		}
		if len(props) > 0 {
			return s.errf("inputs.event_properties", "a private spec cannot read event property columns in this release (they are used only by metric filters, which private specs cannot have)")
		}
		if s.Templates["events"] == FilterEventsVersion {
			return s.errf("templates.events", "events@%s (metric filters) has not been through the privacy audit; a private spec pins the unit-keyed set %s", FilterEventsVersion, unitKeyedPins())
		}
	}
	if len(props) > maxEventProperties {
		return s.errf("inputs.event_properties", "at most %d columns, got %d", maxEventProperties, len(props))
	}
	declared := map[string]bool{}
	sources := map[string]string{}
	for c, src := range s.Inputs.Columns.Events {
		sources[src] = c
	}
	for i, p := range props {
		key := fmt.Sprintf("inputs.event_properties[%d]", i)
		if !queries.ValidIdent(p) {
			return s.errf(key, "want a plain column name (letters, digits and underscores, not starting with a digit), got %q", p)
		}
		if slices.Contains(contractE, p) {
			return s.errf(key, "%s is a contract column of the events; list only extra property columns", p)
		}
		if c, ok := sources[p]; ok {
			return s.errf(key, "%s is mapped to the contract column %s (inputs.columns.events); list only extra property columns", p, c)
		}
		if declared[p] {
			return s.errf(key, "%s is listed twice", p)
		}
		declared[p] = true
	}
	if len(props) > 0 && s.Templates["events"] != FilterEventsVersion {
		return s.errf("inputs.event_properties", "property columns are read by events@%s only; pin templates.events: %s", FilterEventsVersion, FilterEventsVersion)
	}
	for i, m := range s.Metrics {
		if err := s.validateFilter(fmt.Sprintf("metrics[%d]", i), m, declared); err != nil {
			return err
		}
	}
	v, pinned := s.Templates["filter_counts"]
	switch {
	case s.HasFilters() && !pinned:
		return s.errf("templates.filter_counts", "required with filtered metrics (%s): pin filter_counts: v1, which counts the rows each filter value matched", strings.TrimSuffix(s.firstFilter(), ".filter"))
	case !s.HasFilters() && pinned:
		return s.errf("templates.filter_counts", "pinned, but no metric has a filter; remove it")
	case pinned && v != "v1":
		return s.errf("templates.filter_counts", "want v1, got %q", v)
	}
	return nil
}

// validateFilter checks one metric's filter against the declared property
// columns.
func (s *Spec) validateFilter(key string, m Metric, declared map[string]bool) error {
	if m.Filter == nil {
		return nil
	}
	key += ".filter"
	if m.Kind == "ratio" {
		return s.errf(key, "ratio metrics cannot be filtered in this release (the filter would have to say whether it selects the numerator's or the denominator's events)")
	}
	if len(m.Filter) == 0 {
		return s.errf(key, "empty: list at least one property column with its values, or remove the filter")
	}
	if s.Templates["events"] != FilterEventsVersion {
		return s.errf("templates.events", "metric %s has a filter, which events@%s applies; pin templates.events: %s (got %s)", m.Name, FilterEventsVersion, FilterEventsVersion, s.Templates["events"])
	}
	for _, col := range FilterColumns(m.Filter) {
		k := key + "." + col
		if !declared[col] {
			if len(declared) == 0 {
				return s.errf(k, "%s is not a declared event property; declare it in inputs.event_properties", col)
			}
			return s.errf(k, "%s is not a declared event property (inputs.event_properties: %s)", col, strings.Join(slices.Sorted(maps.Keys(declared)), ", "))
		}
		vals := m.Filter[col]
		if len(vals) == 0 {
			return s.errf(k, "an empty list would match no event; list the values to keep, or remove the column")
		}
		seen := map[string]bool{}
		for j, v := range vals {
			if len(v) > maxFilterValue {
				return s.errf(fmt.Sprintf("%s[%d]", k, j), "longer than %d bytes", maxFilterValue)
			}
			if seen[v] {
				return s.errf(fmt.Sprintf("%s[%d]", k, j), "%q is listed twice", v)
			}
			seen[v] = true
		}
	}
	return nil
}

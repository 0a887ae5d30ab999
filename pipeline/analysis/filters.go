package analysis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// FilterCount is one entry of quality.json → filter_counts (issue 20 item
// 3): how many rows of the events files whose metric is the filtered
// metric's event have the property Column equal to Value (exact string
// equality), or, with Value null, have it NULL (rows a filter never
// keeps). Counted over the rows read, before de-duplication and windows.
type FilterCount struct {
	Metric string  `json:"metric"`
	Event  string  `json:"event"`
	Column string  `json:"column"`
	Value  *string `json:"value"`
	Rows   int64   `json:"rows"`
}

// FilterValueCheck is the check a goal's or guardrail's filter value that
// matched no row fails (it blocks: the metric would be computed from fewer
// events than the spec asks for, or none); a secondary metric's fails
// secondaryFilterCheck, which warns.
const (
	FilterValueCheck     = "filter_value_unmatched"
	secondaryFilterCheck = "secondary_filter_value_unmatched"
)

// StatusFilterUnmatched starts the results.csv status of a filtered
// metric with a filter value that matched no row.
const StatusFilterUnmatched = "filter value matched no row"

// FilterCountsFor picks the spec's filtered metrics' counts from the
// pass's rows, in spec order: per metric, per column in byte order, each
// declared value in the spec's order, then the column's NULL rows. nil for
// a spec without filters.
func FilterCountsFor(spec *expspec.Spec, rows []engine.FilterCountRow) []FilterCount {
	type key struct {
		event, column string
		null          bool
		value         string
	}
	by := map[key]int64{}
	for _, r := range rows {
		k := key{event: r.Event, column: r.Property, null: r.Value == nil}
		if r.Value != nil {
			k.value = *r.Value
		}
		by[k] = r.Rows
	}
	var out []FilterCount
	for _, m := range spec.Metrics {
		for _, col := range expspec.FilterColumns(m.Filter) {
			for _, v := range m.Filter[col] {
				v := v
				out = append(out, FilterCount{Metric: m.Name, Event: m.Event, Column: col, Value: &v, Rows: by[key{event: m.Event, column: col, value: v}]})
			}
			out = append(out, FilterCount{Metric: m.Name, Event: m.Event, Column: col, Rows: by[key{event: m.Event, column: col, null: true}]})
		}
	}
	return out
}

// ApplyFilterCounts adds, for a spec with filtered metrics, the two checks
// on its filter values: filter_value_unmatched (goals and guardrails;
// blocks) and secondary_filter_value_unmatched (secondary metrics; warns),
// each observing the number of declared values that matched no row of the
// metric's event and naming them. The results rows of a metric with such a
// value say so in their status, and so does the verdict's evidence on it
// (the report's evidence table reads it: a blocked goal must not read
// "ok" there). Specs without filters are left as they were (their
// quality.json keeps its bytes).
func ApplyFilterCounts(spec *expspec.Spec, checks []Check, blocked []string, rows []ResultRow, evidence []stats.Evidence, counts []FilterCount) ([]Check, []string) {
	if !spec.HasFilters() {
		return checks, blocked
	}
	role := map[string]string{}
	for _, m := range spec.Metrics {
		role[m.Name] = m.Role
	}
	unmatched := map[string][]string{} // check name -> details
	byMetric := map[string][]string{}
	for _, c := range counts {
		if c.Value == nil || c.Rows > 0 {
			continue
		}
		name := FilterValueCheck
		if role[c.Metric] == "secondary" {
			name = secondaryFilterCheck
		}
		unmatched[name] = append(unmatched[name], fmt.Sprintf("%s metric %s: filter %s value %s matched no row of event %q (%d rows have %s NULL; values match exactly, without trimming or case folding)",
			role[c.Metric], c.Metric, c.Column, strconv.Quote(*c.Value), c.Event, nullRows(counts, c), c.Column))
		byMetric[c.Metric] = append(byMetric[c.Metric], c.Column+"="+strconv.Quote(*c.Value))
	}
	for _, d := range []struct {
		name, rule string
		block      bool
	}{
		{FilterValueCheck, "declared filter values of goal and guardrail metrics that matched no row of the metric's event (a typo, or a case or whitespace difference: values match exactly); blocks when any", true},
		{secondaryFilterCheck, "declared filter values of secondary metrics that matched no row of the metric's event (values match exactly); warns when any", false},
	} {
		c := Check{Name: d.name, Rule: d.rule, Severity: "warn", Outcome: "pass", Observed: float64(len(unmatched[d.name]))}
		if d.block {
			c.Severity = "block"
		}
		if len(unmatched[d.name]) > 0 {
			c.Detail = strings.Join(unmatched[d.name], "; ")
			c.Outcome = "warn"
			if d.block {
				c.Outcome = "block"
				blocked = append(blocked, d.name)
			}
		}
		checks = append(checks, c)
	}
	// The unmatched value comes first in the status: when every value
	// missed, the comparison's own status ("zero variance", ...) is a
	// consequence, not the cause.
	status := func(metric, was string) (string, bool) {
		vals, ok := byMetric[metric]
		if !ok {
			return was, false
		}
		s := StatusFilterUnmatched + ": " + strings.Join(vals, ", ")
		if was != "ok" && was != "" {
			s += "; " + was
		}
		return s, true
	}
	for i := range rows {
		rows[i].Status, _ = status(rows[i].Metric, rows[i].Status)
	}
	for i := range evidence {
		evidence[i].Status, _ = status(evidence[i].Metric, evidence[i].Status)
	}
	return checks, blocked
}

// nullRows returns the NULL-row count of c's metric and column.
func nullRows(counts []FilterCount, c FilterCount) int64 {
	for _, o := range counts {
		if o.Value == nil && o.Metric == c.Metric && o.Column == c.Column {
			return o.Rows
		}
	}
	return 0
}

package engine

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// FilterCountRow is one row of filter_counts@v1 (issue 20 item 3): the
// number of rows of the events files whose metric is Event and whose
// property column Property equals Value exactly, or, with Value nil, whose
// property is NULL (such rows never match a filter).
type FilterCountRow struct {
	Event, Property string
	Value           *string
	Rows            int64
}

// filterKey is a canonical text of a metric's filter, for the window
// numbering: two metrics with the same filter share a window.
func filterKey(f map[string][]string) string {
	if f == nil {
		return ""
	}
	k := ""
	for _, col := range expspec.FilterColumns(f) {
		k += fmt.Sprintf("%q=%q;", col, f[col])
	}
	return k
}

// propIndex returns the position of column in the spec's declared event
// properties, or -1.
func propIndex(spec *expspec.Spec, column string) int64 {
	for i, p := range spec.Inputs.EventProperties {
		if p == column {
			return int64(i)
		}
	}
	return -1
}

// filterParams adds, for events@v9 and filter_counts@v1, the rows of each
// filtered window's filter (flt_win, flt_prop, flt_value) and the declared
// (event, property, value) triples to count (fc_event, fc_prop, fc_value).
// The specs of one pass declare the same event properties (the group key
// includes them), so a property's position means the same column for all.
func filterParams(p map[string]any, filters map[int64]filterWin) {
	var fWin, fProp, fcProp []int64
	var fVal, fcEvent, fcVal []string
	// Windows are numbered from 1 densely; visit them in order.
	maxWin := int64(0)
	for n := range filters {
		maxWin = max(maxWin, n)
	}
	for n := int64(1); n <= maxWin; n++ {
		fw, ok := filters[n]
		if !ok {
			continue
		}
		for _, col := range expspec.FilterColumns(fw.filter) {
			idx := propIndex(fw.spec, col)
			for _, v := range fw.filter[col] {
				fWin, fProp, fVal = append(fWin, n), append(fProp, idx), append(fVal, v)
				fcEvent, fcProp, fcVal = append(fcEvent, fw.event), append(fcProp, idx), append(fcVal, v)
			}
		}
	}
	p["flt_win"], p["flt_prop"], p["flt_value"] = nonNil64(fWin), nonNil64(fProp), NonNil(fVal)
	p["fc_event"], p["fc_prop"], p["fc_value"] = NonNil(fcEvent), nonNil64(fcProp), NonNil(fcVal)
}

// filterWin is a filtered window: its spec (for the property positions),
// event and filter.
type filterWin struct {
	spec   *expspec.Spec
	event  string
	filter map[string][]string
}

func nonNil64(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// readFilterCounts runs filter_counts@v1 and names each row's property
// column by the spec's declared properties.
func (s *Session) readFilterCounts(ctx context.Context, r Rendered, p map[string]any, spec *expspec.Spec) ([]FilterCountRow, error) {
	var out []FilterCountRow
	props := spec.Inputs.EventProperties
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		var kind, event string
		var prop int64
		var value sql.NullString
		var n int64
		if err := rows.Scan(&kind, &event, &prop, &value, &n); err != nil {
			return fmt.Errorf("filter_counts row: %w", err)
		}
		if prop < 0 || prop >= int64(len(props)) {
			return fmt.Errorf("filter_counts: property position %d outside the %d declared", prop, len(props))
		}
		row := FilterCountRow{Event: event, Property: props[prop], Rows: n}
		switch {
		case kind == "value" && value.Valid:
			v := value.String
			row.Value = &v
		case kind == "null" && !value.Valid:
		default:
			return fmt.Errorf("filter_counts: unexpected row kind %q", kind)
		}
		out = append(out, row)
		return nil
	})
	return out, err
}

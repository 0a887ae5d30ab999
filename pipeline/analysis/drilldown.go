package analysis

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

// Drill-down slice kinds: a value of the column, the units whose value is
// NULL, and the remainder of the small slices collapsed together. A value
// is never confused with NULL or the remainder, whatever its text.
const (
	SliceValue = "value"
	SliceNull  = "null"
	SliceOther = "other"
)

// Drill-down statuses of a whole dimension without numbers.
const (
	DrillOK            = "ok"
	DrillTooMany       = "too_many_values"
	DrillBelowMinimum  = "below_min_units"
	DrillNoUnits       = "no_units"
	DrillMetricSkipped = "metric_not_analysed"
)

// DrillRow is one row of drilldown.csv: a slice of a dimension and, for an
// analysed slice, one metric × treatment comparison (Result, computed by
// Analyse with the slices as cohorts). A dimension that is not analysed
// (too many values, too few units, no units) has one row with its status
// and no Result; a metric that cannot be analysed per slice one row per
// slice with DrillMetricSkipped.
type DrillRow struct {
	Dimension string
	// Values are the dimension's distinct values (NULL counted as one).
	Values int64
	// SliceKind is SliceValue, SliceNull or SliceOther; Slice is the value
	// (empty for the others), CollapsedFrom the slices merged into it
	// (values quoted with %q, NULL as (null)), ";"-joined.
	SliceKind, Slice, CollapsedFrom string
	// Units are the slice's units over every arm, Tied those among them
	// whose first-exposure rows disagreed on the value.
	Units, Tied int64
	// Private marks a private release's row: Units is a noisy count,
	// Values the number of declared values, and Tied is not released.
	Private bool
	Metric  string
	Status  string
	Detail  string
	Result  *ResultRow
}

// drillSlice is one slice before collapsing.
type drillSlice struct {
	null  bool
	value string
	id    string // its leaf id for privacy.Collapse
}

func (s drillSlice) label() string {
	if s.null {
		return "(null)"
	}
	return fmt.Sprintf("%q", s.value)
}

// drillSpec is spec with only the metrics analysed per slice, and the
// names of those it skips (expspec.DrillMetric).
func drillSpec(spec *expspec.Spec) (expspec.Spec, []string) {
	ds := *spec
	ds.Metrics = nil
	var skipped []string
	for _, m := range spec.Metrics {
		if ok, _ := expspec.DrillMetric(m); ok {
			ds.Metrics = append(ds.Metrics, m)
		} else {
			skipped = append(skipped, m.Name)
		}
	}
	return ds, skipped
}

// Drilldowns analyses every dimension of the spec's drilldowns section:
// each slice is a cohort of Analyse over the metrics DrillMetric accepts,
// so that its comparisons, SRM (Bonferroni over the dimension's slices)
// and the family rule (slices join a family, one per dimension, only with
// correction_scope: cohorts) are the cohorts'. With cohorts.min_units,
// slices are collapsed as privacy.Collapse collapses flat leaves, on the
// exact unit counts over every arm: a slice below the minimum goes to the
// remainder (SliceOther), which absorbs the smallest released slices
// until it reaches the minimum. Rows come in the spec's dimension order,
// then slices (values in byte order, NULL, remainder), then metrics and
// treatments in spec order. dims is nil when no unit was sliced.
func Drilldowns(spec *expspec.Spec, dims []engine.DrillDimension, date string) ([]DrillRow, error) {
	if spec.Drilldowns == nil {
		return nil, nil
	}
	ds, skipped := drillSpec(spec)
	rows := []DrillRow{}
	for i, col := range spec.Drilldowns.Dimensions {
		if i >= len(dims) || dims[i].Units == 0 {
			rows = append(rows, DrillRow{Dimension: col, Status: DrillNoUnits, Detail: "no assigned unit to slice"})
			continue
		}
		d := dims[i]
		if d.Column != col {
			return nil, fmt.Errorf("drilldown: dimension %d is %q, want %q", i, d.Column, col)
		}
		if !d.WithinCap {
			rows = append(rows, DrillRow{Dimension: col, Values: d.Values, Units: d.Units, Tied: d.Tied, Status: DrillTooMany,
				Detail: fmt.Sprintf("%d distinct values (NULL counted as one) over %d units, more than drilldowns.max_values %d: choose a coarser column or raise the cap", d.Values, d.Units, spec.DrillMaxValues())})
			continue
		}
		dimRows, err := drillDimension(spec, &ds, d, skipped, date)
		if err != nil {
			return nil, fmt.Errorf("drilldown %s: %w", col, err)
		}
		rows = append(rows, dimRows...)
	}
	return rows, nil
}

// drillDimension analyses the slices of one dimension within its cap.
func drillDimension(spec, ds *expspec.Spec, d engine.DrillDimension, skipped []string, date string) ([]DrillRow, error) {
	slices, cellOf := drillSlices(d)
	first := ds.Metrics[0].Name
	units := map[string]int64{}
	tied := map[string]int64{}
	type key struct{ id, v, m string }
	idx := map[key]engine.Cell{}
	for _, c := range d.Cells {
		idx[key{cellOf[sliceKey{c.Null, c.Value}], c.Variant, c.Metric}] = c.Cell
		if c.Metric == first {
			id := cellOf[sliceKey{c.Null, c.Value}]
			units[id] += c.N
			tied[id] += c.Tied
		}
	}
	// Released cohorts: each slice alone, or collapsed.
	type release struct {
		label   string // cohort label: a slice id or "*"
		members []drillSlice
	}
	var released []release
	byID := map[string]drillSlice{}
	var ids []string
	for _, s := range slices {
		byID[s.id] = s
		ids = append(ids, s.id)
	}
	if spec.Cohorts.MinUnits > 0 {
		cs, err := privacy.Collapse(ids, units, spec.Cohorts.MinUnits)
		if errors.Is(err, privacy.ErrBelowMinimum) {
			return []DrillRow{{Dimension: d.Column, Values: d.Values, Units: d.Units, Tied: d.Tied, Status: DrillBelowMinimum,
				Detail: fmt.Sprintf("all %d units together are fewer than cohorts.min_units %d", d.Units, spec.Cohorts.MinUnits)}}, nil
		}
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			r := release{label: c.Label}
			for _, l := range c.Leaves {
				r.members = append(r.members, byID[l])
			}
			released = append(released, r)
		}
		// Slices first (in their order), the remainder last.
		sort.SliceStable(released, func(i, j int) bool { return released[i].label != "*" && released[j].label == "*" })
	} else {
		for _, s := range slices {
			released = append(released, release{label: s.id, members: []drillSlice{s}})
		}
	}
	// Cells per released cohort, every variant × metric present.
	var cells []engine.Cell
	var cohorts []CohortRelease
	for _, r := range released {
		cohorts = append(cohorts, CohortRelease{Label: r.label})
		for _, v := range ds.Variants {
			for _, m := range ds.Metrics {
				c := engine.NewCell(r.label, v.Name, m.Name)
				for _, s := range r.members {
					o, ok := idx[key{s.id, v.Name, m.Name}]
					if !ok {
						continue
					}
					c.N += o.N
					dst, add := c.Sums(), o.Sums()
					for k := range dst {
						(*dst[k]).Add(*dst[k], *add[k])
					}
				}
				cells = append(cells, c)
			}
		}
	}
	res, _, err := Analyse(ds, cells, cohorts, nil, date)
	if err != nil {
		return nil, err
	}
	byCohort := map[string][]ResultRow{}
	for _, r := range res {
		byCohort[r.Cohort] = append(byCohort[r.Cohort], r)
	}
	var out []DrillRow
	for _, r := range released {
		base := DrillRow{Dimension: d.Column, Values: d.Values, SliceKind: SliceOther, Status: DrillOK}
		if r.label != "*" {
			s := byID[r.label]
			base.SliceKind, base.Slice = SliceValue, s.value
			if s.null {
				base.SliceKind = SliceNull
			}
		}
		var from []string
		for _, s := range r.members {
			base.Units += units[s.id]
			base.Tied += tied[s.id]
			from = append(from, s.label())
		}
		if r.label == "*" {
			base.CollapsedFrom = strings.Join(from, ";")
		}
		for _, rr := range byCohort[r.label] {
			row := base
			rr := rr
			rr.Cohort = ""
			row.Metric, row.Result = rr.Metric, &rr
			out = append(out, row)
		}
		for _, m := range skipped {
			row := base
			row.Metric, row.Status = m, DrillMetricSkipped
			_, row.Detail = expspec.DrillMetric(metricNamed(spec, m))
			out = append(out, row)
		}
	}
	return out, nil
}

// sliceKey is a slice's identity in the SQL's cells.
type sliceKey struct {
	null  bool
	value string
}

// drillSlices lists a dimension's slices (values in byte order, then
// NULL), each with a leaf id that sorts in that order and contains no '/'.
func drillSlices(d engine.DrillDimension) ([]drillSlice, map[sliceKey]string) {
	seen := map[sliceKey]bool{}
	var keys []sliceKey
	for _, c := range d.Cells {
		k := sliceKey{c.Null, c.Value}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].null != keys[j].null {
			return !keys[i].null
		}
		return keys[i].value < keys[j].value
	})
	out := make([]drillSlice, len(keys))
	ids := map[sliceKey]string{}
	for i, k := range keys {
		out[i] = drillSlice{null: k.null, value: k.value, id: fmt.Sprintf("s%06d", i)}
		ids[k] = out[i].id
	}
	return out, ids
}

func metricNamed(spec *expspec.Spec, name string) expspec.Metric {
	for _, m := range spec.Metrics {
		if m.Name == name {
			return m
		}
	}
	return expspec.Metric{}
}

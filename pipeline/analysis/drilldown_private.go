package analysis

import (
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
)

// PrivateDrilldowns analyses a private release's drill-downs from their
// noisy cells alone, as Drilldowns analyses exact ones: each analysed slice
// is a cohort of Analyse with its noise (noise-aware intervals and SRM,
// Bonferroni over the dimension's analysed slices; the same family rule).
// Rows come per dimension in spec order, then slices (declared values in
// spec order, then other), then metrics and treatments. A row's Units is
// the slice's noisy count (post-processing), Values the number of
// declared values; nothing depends on an exact count.
func PrivateDrilldowns(spec *expspec.Spec, drill []privatize.DrillRelease, date string) ([]DrillRow, error) {
	if spec.Drilldowns == nil {
		return nil, nil
	}
	ds, skipped := drillSpec(spec)
	rows := []DrillRow{}
	for _, dr := range drill {
		var cohorts []CohortRelease
		for _, s := range dr.Slices {
			if s.Analysed {
				cohorts = append(cohorts, CohortRelease{Label: s.ID})
			}
		}
		byCohort := map[string][]ResultRow{}
		if len(cohorts) > 0 {
			res, _, err := Analyse(&ds, dr.Cells, cohorts, dr.Noise, date)
			if err != nil {
				return nil, fmt.Errorf("drilldown %s: %w", dr.Dimension, err)
			}
			for _, r := range res {
				byCohort[r.Cohort] = append(byCohort[r.Cohort], r)
			}
		}
		units := map[string]int64{}
		for _, c := range dr.Cells {
			if c.Metric == ds.Metrics[0].Name {
				units[c.Cohort] += c.N
			}
		}
		for _, s := range dr.Slices {
			base := DrillRow{Dimension: dr.Dimension, Values: int64(len(spec.DrillValues(dr.Dimension))), SliceKind: SliceValue, Slice: s.Value,
				Units: units[s.ID], Status: DrillOK, Private: true}
			if s.Kind == privatize.DrillKindOther {
				base.SliceKind, base.Slice = SliceOther, ""
				base.CollapsedFrom = strings.Join(s.CollapsedFrom, ";")
			}
			if !s.Analysed {
				// Not analysed only below min_units, so a stage-one count was drawn.
				var n int64
				if s.NoisyCount != nil {
					n = *s.NoisyCount
				}
				base.Units = max(n, 0)
				base.Status = DrillBelowMinimum
				base.Detail = fmt.Sprintf("noisy count %d below cohorts.min_units %d: not analysed", n, spec.Cohorts.MinUnits)
				rows = append(rows, base)
				continue
			}
			for _, rr := range byCohort[s.ID] {
				row := base
				rr := rr
				rr.Cohort = ""
				row.Metric, row.Result = rr.Metric, &rr
				rows = append(rows, row)
			}
			for _, m := range skipped {
				row := base
				row.Metric, row.Status = m, DrillMetricSkipped
				_, row.Detail = expspec.DrillMetric(metricNamed(spec, m))
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
}

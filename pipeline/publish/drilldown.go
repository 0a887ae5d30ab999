package publish

import (
	"strconv"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/report"
)

// DrilldownFile is the drill-downs' output, written only for specs with a
// drilldowns section (other specs keep their bytes).
const DrilldownFile = "drilldown.csv"

// drillColumns defines drilldown.csv: one row per dimension × slice ×
// metric × treatment (analysis.Drilldowns' order).
var drillColumns = []column[analysis.DrillRow]{
	{"dimension", func(r *analysis.DrillRow) string { return r.Dimension }},
	{"dimension_values", func(r *analysis.DrillRow) string { return strconv.FormatInt(r.Values, 10) }},
	{"slice_kind", func(r *analysis.DrillRow) string { return r.SliceKind }},
	{"slice", func(r *analysis.DrillRow) string { return r.Slice }},
	{"collapsed_from", func(r *analysis.DrillRow) string { return r.CollapsedFrom }},
	{"units", func(r *analysis.DrillRow) string { return strconv.FormatInt(r.Units, 10) }},
	{"units_tied", func(r *analysis.DrillRow) string {
		if r.Private {
			return "" // exact: not released
		}
		return strconv.FormatInt(r.Tied, 10)
	}},
	{"metric", func(r *analysis.DrillRow) string { return r.Metric }},
	{"kind", func(r *analysis.DrillRow) string { return res(r, func(x *analysis.ResultRow) string { return x.Kind }) }},
	{"role", func(r *analysis.DrillRow) string { return res(r, func(x *analysis.ResultRow) string { return x.Role }) }},
	{"variant", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return x.Variant })
	}},
	{"control", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return x.Control })
	}},
	{"n_control", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return strconv.FormatInt(x.NControl, 10) })
	}},
	{"n_variant", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return strconv.FormatInt(x.NVariant, 10) })
	}},
	{"mean_control", resOpt(func(x *analysis.ResultRow) *float64 { return x.MeanControl })},
	{"mean_variant", resOpt(func(x *analysis.ResultRow) *float64 { return x.MeanVariant })},
	{"sd_control", resOpt(func(x *analysis.ResultRow) *float64 { return x.SDControl })},
	{"sd_variant", resOpt(func(x *analysis.ResultRow) *float64 { return x.SDVariant })},
	{"abs_effect", resOpt(func(x *analysis.ResultRow) *float64 { return x.AbsEffect })},
	{"abs_ci_low", resOpt(func(x *analysis.ResultRow) *float64 { return x.AbsCILow })},
	{"abs_ci_high", resOpt(func(x *analysis.ResultRow) *float64 { return x.AbsCIHigh })},
	{"rel_effect", resOpt(func(x *analysis.ResultRow) *float64 { return x.RelEffect })},
	{"rel_ci_low", resOpt(func(x *analysis.ResultRow) *float64 { return x.RelCILow })},
	{"rel_ci_high", resOpt(func(x *analysis.ResultRow) *float64 { return x.RelCIHigh })},
	{"df", resOpt(func(x *analysis.ResultRow) *float64 { return x.DF })},
	{"p_value", resOpt(func(x *analysis.ResultRow) *float64 { return x.PValue })},
	{"p_value_adjusted", resOpt(func(x *analysis.ResultRow) *float64 { return x.PValueAdjusted })},
	{"correction", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return x.Correction })
	}},
	{"ci_level", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return analysis.FormatFloat(x.CILevel) })
	}},
	{"cuped_theta", resOpt(func(x *analysis.ResultRow) *float64 { return x.CUPEDTheta })},
	{"srm_p_value", resOpt(func(x *analysis.ResultRow) *float64 { return x.SRMPValue })},
	{"srm", func(r *analysis.DrillRow) string {
		return res(r, func(x *analysis.ResultRow) string { return strconv.FormatBool(x.SRM) })
	}},
	{"status", func(r *analysis.DrillRow) string {
		if r.Result != nil {
			return r.Result.Status
		}
		return r.Status
	}},
	{"detail", func(r *analysis.DrillRow) string { return r.Detail }},
}

func res(r *analysis.DrillRow, f func(*analysis.ResultRow) string) string {
	if r.Result == nil {
		return ""
	}
	return f(r.Result)
}

func resOpt(f func(*analysis.ResultRow) *float64) func(*analysis.DrillRow) string {
	return func(r *analysis.DrillRow) string {
		if r.Result == nil {
			return ""
		}
		return fmtOpt(f(r.Result))
	}
}

// EncodeDrilldownCSV encodes drilldown.csv, each row stamped like
// results.csv.
func EncodeDrilldownCSV(st RowStamp, rows []analysis.DrillRow) ([]byte, error) {
	return encodeStampedCSV(DrilldownFile, drillColumns, st, rows)
}

// WithDrilldown appends drilldown.csv to a run's staged files when the
// spec drills down (rows non-nil).
func WithDrilldown(files []diskio.StagedFile, st RowStamp, rows []analysis.DrillRow) ([]diskio.StagedFile, error) {
	return withStaged(files, DrilldownFile, rows, func() ([]byte, error) { return EncodeDrilldownCSV(st, rows) })
}

// reportDrilldown is the report's drill-down section.
func reportDrilldown(rows []analysis.DrillRow) *report.Drilldown {
	if rows == nil {
		return nil
	}
	out := &report.Drilldown{}
	for _, r := range rows {
		out.Private = out.Private || r.Private
		v := report.DrillRow{Dimension: r.Dimension, Kind: r.SliceKind, Slice: r.Slice, CollapsedFrom: r.CollapsedFrom,
			Units: r.Units, Tied: r.Tied, Metric: r.Metric, Status: r.Status, Detail: r.Detail}
		if x := r.Result; x != nil {
			v.Variant, v.Effect, v.Low, v.High, v.P, v.PAdj, v.SRM, v.SRMP, v.Status = x.Variant, x.AbsEffect, x.AbsCILow, x.AbsCIHigh, x.PValue, x.PValueAdjusted, x.SRM, x.SRMPValue, x.Status
			v.Analysed = true
		}
		out.Rows = append(out.Rows, v)
	}
	return out
}

// AnnotateDrill stamps each drill-down comparison as AnnotateRows stamps
// results.csv's rows: its conversion window and the correction of its
// family ("nominal" outside it: a slice is in the family only with
// correction_scope: cohorts).
func AnnotateDrill(spec *expspec.Spec, rows []analysis.DrillRow) {
	for i := range rows {
		if r := rows[i].Result; r != nil {
			one := []analysis.ResultRow{*r}
			AnnotateRows(spec, one)
			*r = one[0]
		}
	}
}

package publish

import (
	"bytes"
	"encoding/csv"
	"fmt"
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
var drillColumns = []struct {
	name string
	get  func(*analysis.DrillRow) string
}{
	{"dimension", func(r *analysis.DrillRow) string { return r.Dimension }},
	{"dimension_values", func(r *analysis.DrillRow) string { return strconv.FormatInt(r.Values, 10) }},
	{"slice_kind", func(r *analysis.DrillRow) string { return r.SliceKind }},
	{"slice", func(r *analysis.DrillRow) string { return r.Slice }},
	{"collapsed_from", func(r *analysis.DrillRow) string { return r.CollapsedFrom }},
	{"units", func(r *analysis.DrillRow) string { return strconv.FormatInt(r.Units, 10) }},
	{"units_tied", func(r *analysis.DrillRow) string { return strconv.FormatInt(r.Tied, 10) }},
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
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := make([]string, 0, len(drillColumns)+3)
	for _, c := range drillColumns {
		head = append(head, c.name)
	}
	if err := w.Write(append(head, "name", "nominal_date", "spec_sha256")); err != nil {
		return nil, err
	}
	for i := range rows {
		rec := make([]string, 0, len(head)+3)
		for _, c := range drillColumns {
			rec = append(rec, c.get(&rows[i]))
		}
		if err := w.Write(append(rec, st.Name, st.Date, st.SpecHash)); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("%s: %w", DrilldownFile, err)
	}
	return b.Bytes(), nil
}

// WithDrilldown appends drilldown.csv to a run's staged files when the
// spec drills down (rows non-nil).
func WithDrilldown(files []diskio.StagedFile, st RowStamp, rows []analysis.DrillRow) ([]diskio.StagedFile, error) {
	if rows == nil {
		return files, nil
	}
	b, err := EncodeDrilldownCSV(st, rows)
	if err != nil {
		return nil, err
	}
	return append(files, diskio.StagedFile{Name: DrilldownFile, Data: b}), nil
}

// reportDrilldown is the report's drill-down section.
func reportDrilldown(rows []analysis.DrillRow) *report.Drilldown {
	if rows == nil {
		return nil
	}
	out := &report.Drilldown{}
	for _, r := range rows {
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

package publish

import (
	"strconv"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/report"
)

// AdjustedFile is the variance-reduced estimates' output, written only for
// specs that list variance_reduction (so other specs' outputs and
// manifests keep their bytes).
const AdjustedFile = "adjusted.csv"

// adjustedColumns defines adjusted.csv: one row per metric × treatment ×
// method of the (all) cohort, in analysis.VarianceReductions' order.
var adjustedColumns = []column[analysis.AdjustedRow]{
	{"experiment", func(r *analysis.AdjustedRow) string { return r.Experiment }},
	{"cohort", func(r *analysis.AdjustedRow) string { return r.Cohort }},
	{"metric", func(r *analysis.AdjustedRow) string { return r.Metric }},
	{"kind", func(r *analysis.AdjustedRow) string { return r.Kind }},
	{"variant", func(r *analysis.AdjustedRow) string { return r.Variant }},
	{"control", func(r *analysis.AdjustedRow) string { return r.Control }},
	{"method", func(r *analysis.AdjustedRow) string { return r.Method }},
	{"n_control", func(r *analysis.AdjustedRow) string { return strconv.FormatInt(r.NControl, 10) }},
	{"n_variant", func(r *analysis.AdjustedRow) string { return strconv.FormatInt(r.NVariant, 10) }},
	{"strata", func(r *analysis.AdjustedRow) string { return strconv.Itoa(r.Strata) }},
	{"unadjusted_effect", func(r *analysis.AdjustedRow) string { return fmtOpt(r.Unadjusted) }},
	{"unadjusted_se", func(r *analysis.AdjustedRow) string { return fmtOpt(r.UnadjustedSE) }},
	{"adjusted_effect", func(r *analysis.AdjustedRow) string { return fmtOpt(r.Estimate) }},
	{"adjusted_se", func(r *analysis.AdjustedRow) string { return fmtOpt(r.SE) }},
	{"ci_level", func(r *analysis.AdjustedRow) string { return analysis.FormatFloat(r.CILevel) }},
	{"ci_low", func(r *analysis.AdjustedRow) string { return fmtOpt(r.CILow) }},
	{"ci_high", func(r *analysis.AdjustedRow) string { return fmtOpt(r.CIHigh) }},
	{"df", func(r *analysis.AdjustedRow) string { return fmtOpt(r.DF) }},
	{"p_value", func(r *analysis.AdjustedRow) string { return fmtOpt(r.PValue) }},
	{"variance_reduction", func(r *analysis.AdjustedRow) string { return fmtOpt(r.VarianceReduction) }},
	{"interval", func(*analysis.AdjustedRow) string { return "fixed_horizon" }},
	{"estimator", func(r *analysis.AdjustedRow) string { return r.Estimator }},
	{"status", func(r *analysis.AdjustedRow) string { return r.Status }},
}

// EncodeAdjustedCSV encodes adjusted.csv, each row stamped with the
// spec's name, the nominal date and the spec's hash (as results.csv).
func EncodeAdjustedCSV(st RowStamp, rows []analysis.AdjustedRow) ([]byte, error) {
	return encodeStampedCSV(AdjustedFile, adjustedColumns, st, rows)
}

// WithAdjusted appends adjusted.csv to a run's staged files when the spec
// listed variance-reduced estimates (rows non-nil).
func WithAdjusted(files []diskio.StagedFile, st RowStamp, rows []analysis.AdjustedRow) ([]diskio.StagedFile, error) {
	return withStaged(files, AdjustedFile, rows, func() ([]byte, error) { return EncodeAdjustedCSV(st, rows) })
}

// reportAdjusted is the report's variance-reduction section.
func reportAdjusted(rows []analysis.AdjustedRow) []report.AdjustedEstimate {
	var out []report.AdjustedEstimate
	for _, r := range rows {
		out = append(out, report.AdjustedEstimate{
			Metric: r.Metric, Kind: r.Kind, Variant: r.Variant, Control: r.Control, Method: r.Method,
			Estimator: r.Estimator, Status: r.Status, Strata: r.Strata, NControl: r.NControl, NVariant: r.NVariant,
			Unadjusted: r.Unadjusted, UnadjustedSE: r.UnadjustedSE, Estimate: r.Estimate, SE: r.SE,
			Low: r.CILow, High: r.CIHigh, P: r.PValue, Reduction: r.VarianceReduction,
		})
	}
	return out
}

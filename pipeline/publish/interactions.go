package publish

import (
	"encoding/json"
	"strconv"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/report"
)

// InteractionsFile is the interaction tests' output, written only for
// specs with an interactions section (other specs keep their bytes).
const InteractionsFile = "interactions.csv"

// InteractionsRecord is the manifest's interactions block.
type InteractionsRecord struct {
	Alpha    float64         `json:"alpha"`
	Partners []PartnerRecord `json:"partners"`
}

// PartnerRecord is one partner: its name and experiment, its status when
// it was not tested (analysis.Ix*), and, when it was, its resolved spec
// (window cut at the night) and that spec's SHA-256.
type PartnerRecord struct {
	Name       string          `json:"name"`
	Experiment string          `json:"experiment,omitempty"`
	Status     string          `json:"status,omitempty"`
	SpecSHA256 string          `json:"spec_sha256,omitempty"`
	Spec       json.RawMessage `json:"spec,omitempty"`
}

// interactionColumns defines interactions.csv: one row per partner ×
// metric, in the spec's order.
var interactionColumns = []column[analysis.InteractionRow]{
	{"experiment", func(r *analysis.InteractionRow) string { return r.Experiment }},
	{"metric", func(r *analysis.InteractionRow) string { return r.Metric }},
	{"kind", func(r *analysis.InteractionRow) string { return r.Kind }},
	{"partner", func(r *analysis.InteractionRow) string { return r.Partner }},
	{"partner_experiment", func(r *analysis.InteractionRow) string { return r.PartnerExperiment }},
	{"arms", func(r *analysis.InteractionRow) string { return strconv.Itoa(r.Arms) }},
	{"partner_arms", func(r *analysis.InteractionRow) string { return strconv.Itoa(r.PartnerArms) }},
	{"units_in_both", func(r *analysis.InteractionRow) string { return strconv.FormatInt(r.Units, 10) }},
	{"method", func(r *analysis.InteractionRow) string { return r.Method }},
	{"estimate", func(r *analysis.InteractionRow) string { return fmtOpt(r.Estimate) }},
	{"se", func(r *analysis.InteractionRow) string { return fmtOpt(r.SE) }},
	{"ci_level", func(r *analysis.InteractionRow) string {
		if r.Estimate == nil {
			return ""
		}
		return analysis.FormatFloat(r.CILevel)
	}},
	{"ci_low", func(r *analysis.InteractionRow) string { return fmtOpt(r.CILow) }},
	{"ci_high", func(r *analysis.InteractionRow) string { return fmtOpt(r.CIHigh) }},
	{"statistic", func(r *analysis.InteractionRow) string { return fmtOpt(r.Statistic) }},
	{"df", func(r *analysis.InteractionRow) string { return fmtOpt(r.DF) }},
	{"df_denominator", func(r *analysis.InteractionRow) string { return fmtOpt(r.DFDenominator) }},
	{"p_value", func(r *analysis.InteractionRow) string { return fmtOpt(r.PValue) }},
	{"p_value_holm", func(r *analysis.InteractionRow) string { return fmtOpt(r.PAdjusted) }},
	{"flagged", func(r *analysis.InteractionRow) string {
		if r.Status != analysis.IxTested {
			return ""
		}
		return strconv.FormatBool(r.Flagged)
	}},
	{"status", func(r *analysis.InteractionRow) string { return r.Status }},
	{"detail", func(r *analysis.InteractionRow) string { return r.Detail }},
}

// EncodeInteractionsCSV encodes interactions.csv, each row stamped like
// results.csv.
func EncodeInteractionsCSV(st RowStamp, rows []analysis.InteractionRow) ([]byte, error) {
	return encodeStampedCSV(InteractionsFile, interactionColumns, st, rows)
}

// WithInteractions appends interactions.csv to a run's staged files when
// the spec tests interactions (rows non-nil).
func WithInteractions(files []diskio.StagedFile, st RowStamp, rows []analysis.InteractionRow) ([]diskio.StagedFile, error) {
	return withStaged(files, InteractionsFile, rows, func() ([]byte, error) { return EncodeInteractionsCSV(st, rows) })
}

// reportInteractions is the report's interactions section.
func reportInteractions(rows []analysis.InteractionRow, alpha float64) *report.Interactions {
	if rows == nil {
		return nil
	}
	out := &report.Interactions{Alpha: alpha}
	for _, r := range rows {
		out.Rows = append(out.Rows, report.InteractionRow{
			Metric: r.Metric, Partner: r.Partner, PartnerExperiment: r.PartnerExperiment, Arms: r.Arms, PartnerArms: r.PartnerArms,
			Units: r.Units, Method: r.Method, Estimate: r.Estimate, Low: r.CILow, High: r.CIHigh, P: r.PValue, PHolm: r.PAdjusted,
			Flagged: r.Flagged, Status: r.Status, Detail: r.Detail,
		})
	}
	return out
}

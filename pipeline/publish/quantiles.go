package publish

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"

	"github.com/verity-analytics/verity/pipeline/analysis"
)

// quantiles.csv (issue 20): written beside results.csv only when the spec
// has a quantile metric, one row per cohort × quantile metric × treatment
// in results.csv's order. Columns are documented in README.md.
var quantileColumns = []struct {
	name string
	get  func(*analysis.QuantileRow) string
}{
	{"experiment", func(r *analysis.QuantileRow) string { return r.Experiment }},
	{"cohort", func(r *analysis.QuantileRow) string { return r.Cohort }},
	{"metric", func(r *analysis.QuantileRow) string { return r.Metric }},
	{"level", func(r *analysis.QuantileRow) string { return analysis.FormatFloat(r.Level) }},
	{"method", func(r *analysis.QuantileRow) string { return r.Method() }},
	{"variant", func(r *analysis.QuantileRow) string { return r.Variant }},
	{"control", func(r *analysis.QuantileRow) string { return r.Control }},
	{"n_control", func(r *analysis.QuantileRow) string { return strconv.FormatInt(r.NControl, 10) }},
	{"n_variant", func(r *analysis.QuantileRow) string { return strconv.FormatInt(r.NVariant, 10) }},
	{"quantile_control", func(r *analysis.QuantileRow) string { return fmtOpt(r.QuantileControl) }},
	{"quantile_variant", func(r *analysis.QuantileRow) string { return fmtOpt(r.QuantileVariant) }},
	{"se_control", func(r *analysis.QuantileRow) string { return fmtOpt(r.SEControl) }},
	{"se_variant", func(r *analysis.QuantileRow) string { return fmtOpt(r.SEVariant) }},
	{"band_low_control", func(r *analysis.QuantileRow) string { return fmtOpt(r.BandLowControl) }},
	{"band_high_control", func(r *analysis.QuantileRow) string { return fmtOpt(r.BandHighControl) }},
	{"band_low_variant", func(r *analysis.QuantileRow) string { return fmtOpt(r.BandLowVariant) }},
	{"band_high_variant", func(r *analysis.QuantileRow) string { return fmtOpt(r.BandHighVariant) }},
	{"abs_effect", func(r *analysis.QuantileRow) string { return fmtOpt(r.AbsEffect) }},
	{"abs_ci_low", func(r *analysis.QuantileRow) string { return fmtOpt(r.AbsCILow) }},
	{"abs_ci_high", func(r *analysis.QuantileRow) string { return fmtOpt(r.AbsCIHigh) }},
	{"p_value", func(r *analysis.QuantileRow) string { return fmtOpt(r.PValue) }},
	{"rel_effect", func(r *analysis.QuantileRow) string { return fmtOpt(r.RelEffect) }},
	{"rel_delta_ci_low", func(r *analysis.QuantileRow) string { return fmtOpt(r.RelDeltaLow) }},
	{"rel_delta_ci_high", func(r *analysis.QuantileRow) string { return fmtOpt(r.RelDeltaHigh) }},
	{"rel_fieller_low", func(r *analysis.QuantileRow) string { return fmtOpt(r.RelFiellerLow) }},
	{"rel_fieller_high", func(r *analysis.QuantileRow) string { return fmtOpt(r.RelFiellerHigh) }},
	{"fieller_shape", func(r *analysis.QuantileRow) string { return r.FiellerShape }},
	{"ci_level", func(r *analysis.QuantileRow) string { return analysis.FormatFloat(r.CILevel) }},
	{"status", func(r *analysis.QuantileRow) string { return r.Status }},
}

// eventQuantileColumns are appended to quantileColumns when a row is an
// event-level quantile metric's (over: events), so that the specs without
// one keep their bytes: the arms' events, their units with at least one
// event, and the design effects of the clustering (empty on unit-level
// rows and where no interval was computed).
var eventQuantileColumns = []struct {
	name string
	get  func(*analysis.QuantileRow) string
}{
	{"over", func(r *analysis.QuantileRow) string {
		if r.Over == "" {
			return "units"
		}
		return r.Over
	}},
	{"events_control", func(r *analysis.QuantileRow) string { return eventCount(r, r.EventsControl) }},
	{"events_variant", func(r *analysis.QuantileRow) string { return eventCount(r, r.EventsVariant) }},
	{"units_with_events_control", func(r *analysis.QuantileRow) string { return eventCount(r, r.UnitsWithEventsControl) }},
	{"units_with_events_variant", func(r *analysis.QuantileRow) string { return eventCount(r, r.UnitsWithEventsVariant) }},
	{"design_effect_control", func(r *analysis.QuantileRow) string { return fmtOpt(r.DesignEffectControl) }},
	{"design_effect_variant", func(r *analysis.QuantileRow) string { return fmtOpt(r.DesignEffectVariant) }},
}

// eventCount is an event-level row's count (empty on a unit-level row).
func eventCount(r *analysis.QuantileRow, n int64) string {
	if r.Over == "" {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// EncodeQuantilesCSV writes the quantile rows of rows as quantiles.csv; ok
// is false when no row is a quantile metric's (the file is then not
// written).
func EncodeQuantilesCSV(rows []analysis.ResultRow) (b []byte, ok bool, err error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	cols := quantileColumns
	for i := range rows {
		if q := rows[i].Quantile; q != nil && q.Over != "" {
			cols = append(slices.Clone(quantileColumns), eventQuantileColumns...)
			break
		}
	}
	rec := make([]string, len(cols))
	for i, c := range cols {
		rec[i] = c.name
	}
	if err := w.Write(rec); err != nil {
		return nil, false, err
	}
	for i := range rows {
		q := rows[i].Quantile
		if q == nil {
			continue
		}
		ok = true
		for j, c := range cols {
			rec[j] = c.get(q)
		}
		if err := w.Write(rec); err != nil {
			return nil, false, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil || !ok {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}

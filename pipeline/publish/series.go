package publish

import (
	"bytes"
	"encoding/csv"
	"strconv"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/report"
)

// Nightly is a night's view of the experiment over time: the series of
// every cohort × metric × variant (timeseries.csv, the report's time
// series section) and tonight's anomaly flags. It exists only when some
// earlier night of the window had a committed run, so a first night's
// outputs are what they were before the series existed.
type Nightly struct {
	History   *analysis.SeriesHistory
	Nights    []string
	Lines     []analysis.SeriesLine
	Anomalies *analysis.AnomalyInfo
	CSV       []byte // timeseries.csv
}

// SeriesColumns are timeseries.csv's columns (documented in README.md).
var SeriesColumns = []string{"name", "cohort", "metric", "variant", "control", "night", "status", "n_control", "n_variant",
	"mean_control", "abs_effect", "abs_ci_low", "abs_ci_high", "interval", "results_sha256", "note"}

// BuildNightly builds the series from the earlier nights in hist and
// tonight's rows (stamped as results.csv will be, and encoded exactly as
// it is, so tonight's points are the bytes tonight publishes), and checks
// tonight for anomalies. It returns nil when hist is empty.
func BuildNightly(spec *expspec.Spec, date, specHash string, hist *analysis.SeriesHistory, rows []analysis.ResultRow) (*Nightly, error) {
	if hist.Empty() {
		return nil, nil
	}
	if err := (RowStamp{Name: spec.OutputName(), Date: date, SpecHash: specHash}).apply(rows); err != nil {
		return nil, err
	}
	tonight, err := EncodeResultsCSV(rows)
	if err != nil {
		return nil, err
	}
	lines, err := analysis.BuildSeries(spec.Window.Start, date, hist, tonight)
	if err != nil {
		return nil, err
	}
	nights, err := analysis.WindowNights(spec.Window.Start, date)
	if err != nil {
		return nil, err
	}
	anomalies, err := analysis.NightAnomalies(lines, nights)
	if err != nil {
		return nil, err
	}
	b, err := encodeSeriesCSV(spec.OutputName(), lines, hist, diskio.SHA256Hex(tonight))
	if err != nil {
		return nil, err
	}
	return &Nightly{History: hist, Nights: nights, Lines: lines, Anomalies: anomalies, CSV: b}, nil
}

// encodeSeriesCSV writes one row per line × night: every night of the
// window so far, gaps and excluded nights included (their numbers empty,
// the reason in note).
func encodeSeriesCSV(name string, lines []analysis.SeriesLine, hist *analysis.SeriesHistory, tonightSHA string) ([]byte, error) {
	sha := map[string]string{}
	for _, r := range hist.Releases {
		sha[r.Night] = r.ResultsSHA256
	}
	why := map[string]string{}
	for _, e := range hist.Excluded {
		why[e.Night] = e.Reason
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(SeriesColumns); err != nil {
		return nil, err
	}
	for _, l := range lines {
		for _, p := range l.Points {
			h, note := sha[p.Night], why[p.Night]
			switch p.Status {
			case "tonight":
				h = tonightSHA
			case "gap":
				note = "no committed run this night"
			}
			rec := []string{name, l.Cohort, l.Metric, l.Variant, l.Control, p.Night, p.Status, p.NControl, p.NVariant,
				p.MeanControl, p.AbsEffect, p.AbsCILow, p.AbsCIHigh, p.Interval, h, note}
			if err := w.Write(rec); err != nil {
				return nil, err
			}
		}
	}
	w.Flush()
	return b.Bytes(), w.Error()
}

// seriesNote is what a nightly reader of the series may conclude, for
// the design.
func seriesNote(spec *expspec.Spec) (bool, string) {
	if spec.Statistics.Sequential != nil {
		return true, "Always-valid design: every interval here is a confidence sequence that holds at every night at once, so this view is safe to read every night: acting on the first night an interval excludes zero keeps the error rate at alpha."
	}
	return false, "Fixed-horizon design: each interval is valid for one reading, at the planned end. Reading this series every night and acting on the first night an interval excludes zero (peeking) inflates the false-positive rate well beyond alpha; watch it for data problems and decide at the planned end."
}

// reportSeries is the report's time series section: the (all) cohort's
// lines and tonight's anomaly checks.
func reportSeries(spec *expspec.Spec, n *Nightly) *report.Series {
	if n == nil {
		return nil
	}
	s := &report.Series{AllLines: len(n.Lines)}
	s.AlwaysValid, s.Note = seriesNote(spec)
	for _, e := range n.History.Excluded {
		s.Excluded = append(s.Excluded, report.SeriesExcluded{Night: e.Night, Reason: e.Reason})
	}
	for _, l := range n.Lines {
		if l.Cohort != expspec.AllCohort {
			continue
		}
		rl := report.SeriesLine{Metric: l.Metric, Variant: l.Variant}
		for _, p := range l.Points {
			rl.Points = append(rl.Points, report.SeriesPoint{Night: p.Night, Status: p.Status, NControl: p.NControl, NVariant: p.NVariant,
				Effect: parseOpt(p.AbsEffect), Low: parseOpt(p.AbsCILow), High: parseOpt(p.AbsCIHigh)})
		}
		s.Lines = append(s.Lines, rl)
	}
	if a := n.Anomalies; a != nil {
		ra := &report.Anomalies{Gating: a.Gating, Model: a.Model, Alpha: a.Alpha, Level: a.LevelPerCheck, Checks: a.Checks}
		for _, r := range a.Series {
			ra.Rows = append(ra.Rows, report.AnomalyRow{Label: r.Label, Status: r.Status, Value: r.Value, Predicted: r.Predicted, Statistic: r.Statistic,
				PValue: r.PValue, History: r.History, Flagged: r.Flagged, Earlier: r.EarlierFlags})
		}
		s.Anomalies = ra
	}
	return s
}

func parseOpt(s string) *float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	return &v
}

// HistoryOrNil is the history for the manifest: nil without a series.
func (n *Nightly) HistoryOrNil() *analysis.SeriesHistory {
	if n == nil {
		return nil
	}
	return n.History
}

package analysis

import (
	"fmt"
	"math"
	"strconv"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Night-over-night anomaly flags (stats.NightlyAnomalies) on the
// experiment's own history, read from the time series (so from released
// values only): for each arm, the units newly exposed that night (the
// (all) cohort's cumulative n minus the previous night's, on the log
// scale, ln(n + ½)); for each metric, the (all) cohort's cumulative
// control mean. Each is predicted from its last AnomalyWindow usable
// nights by a least-squares line in the night index with equal weights
// (cumulative means move smoothly; their night-to-night residuals, not
// their standard errors, set the scale), and tonight is flagged when its
// two-sided p-value is at most α/checks, checks being the arms plus the
// metrics: at most α = 0.01 false alarms per night under the model.
// Flags inform: they never change the verdict, a gate or the exit status.

// AnomalyGating says what a flag does.
const AnomalyGating = "informational: a flag never changes the verdict, a quality gate or the exit status; it asks a person to look at the data of that night"

// AnomalyInfo is decisions.json's anomalies block (only when earlier
// nights were released).
type AnomalyInfo struct {
	Gating        string          `json:"gating"`
	Model         string          `json:"model"`
	Alpha         float64         `json:"alpha"`
	Checks        int             `json:"checks"`
	LevelPerCheck float64         `json:"level_per_check"`
	Flagged       []string        `json:"flagged"`
	Series        []AnomalySeries `json:"series"`
}

// AnomalySeries is tonight's check of one series. The numbers are on the
// checked scale (log units for daily_units) and omitted unless checked
// (the p-value too: a night too early to check has none, not p = 1).
type AnomalySeries struct {
	Kind      string   `json:"kind"` // daily_units or control_mean
	Metric    string   `json:"metric,omitempty"`
	Arm       string   `json:"arm"`
	Label     string   `json:"label"`
	Value     *float64 `json:"value,omitempty"`
	Status    string   `json:"status"`
	History   int      `json:"history"`
	Predicted *float64 `json:"predicted,omitempty"`
	PredSE    *float64 `json:"pred_se,omitempty"`
	Statistic *float64 `json:"statistic,omitempty"`
	DF        *float64 `json:"df,omitempty"`
	PValue    *float64 `json:"p_value,omitempty"`
	Flagged   bool     `json:"flagged"`
	// EarlierFlags are the earlier nights the same rule flags on this
	// series (recomputed from the history, so every night's flags agree).
	EarlierFlags []string `json:"earlier_flagged_nights"`
}

// AnomalyModel describes the check in words.
var AnomalyModel = fmt.Sprintf("each series is predicted from its last %d usable nights (at least %d) by a least-squares line in the night index; "+
	"tonight is flagged when the two-sided p-value of (value − prediction)/prediction se, Student's t with history − 2 df, is at most alpha/checks",
	stats.DefaultAnomalyWindow, stats.DefaultAnomalyMinHistory)

// anomalyInput is one series to check.
type anomalyInput struct {
	kind, metric, arm string
	nights            []stats.Night
}

// NightAnomalies checks tonight (the last night of the lines) of every
// arm's daily units and every metric's control mean.
func NightAnomalies(lines []SeriesLine, nights []string) (*AnomalyInfo, error) {
	inputs := anomalyInputs(lines)
	opts := stats.AnomalyOptions{Trend: true, Checks: max(len(inputs), 1)}
	info := &AnomalyInfo{Gating: AnomalyGating, Model: AnomalyModel, Alpha: stats.DefaultAnomalyAlpha, Checks: opts.Checks,
		LevelPerCheck: stats.DefaultAnomalyAlpha / float64(opts.Checks), Flagged: []string{}, Series: []AnomalySeries{}}
	for _, in := range inputs {
		checks, err := stats.NightlyAnomalies(in.nights, opts)
		if err != nil {
			return nil, fmt.Errorf("anomaly check of %s %s %s: %w", in.kind, in.metric, in.arm, err)
		}
		s := anomalySeriesOf(in, checks, nights)
		if s.Flagged {
			info.Flagged = append(info.Flagged, s.Label)
		}
		info.Series = append(info.Series, s)
	}
	return info, nil
}

func anomalySeriesOf(in anomalyInput, checks []stats.AnomalyCheck, nights []string) AnomalySeries {
	last := len(checks) - 1
	c := checks[last]
	s := AnomalySeries{Kind: in.kind, Metric: in.metric, Arm: in.arm, Status: c.Status, History: c.History, Flagged: c.Flagged, EarlierFlags: []string{}}
	s.Label = "daily units of " + in.arm
	if in.kind == "control_mean" {
		s.Label = "control mean of " + in.metric
	}
	if !in.nights[last].Missing {
		s.Value = fptr(in.nights[last].Value)
	}
	if c.Status == stats.AnomalyChecked || c.Status == stats.AnomalyFlatHistory {
		s.Predicted, s.PredSE, s.Statistic, s.DF, s.PValue = fptr(c.Predicted), fptr(c.PredSE), fptr(c.Statistic), fptr(c.DF), fptr(c.PValue)
	}
	for _, e := range checks[:last] {
		if e.Flagged {
			s.EarlierFlags = append(s.EarlierFlags, nights[e.Night])
		}
	}
	return s
}

// anomalyInputs builds the series from the (all) cohort's lines: the
// arms' daily units from the first metric's lines, then each metric's
// control mean.
func anomalyInputs(lines []SeriesLine) []anomalyInput {
	var all []SeriesLine
	for _, l := range lines {
		if l.Cohort == expspec.AllCohort {
			all = append(all, l)
		}
	}
	if len(all) == 0 {
		return nil
	}
	var out []anomalyInput
	first := all[0].Metric
	for i, l := range all {
		if l.Metric != first {
			break
		}
		if i == 0 {
			out = append(out, anomalyInput{kind: "daily_units", arm: l.Control, nights: dailyUnits(l.Points, func(p SeriesPoint) string { return p.NControl })})
		}
		out = append(out, anomalyInput{kind: "daily_units", arm: l.Variant, nights: dailyUnits(l.Points, func(p SeriesPoint) string { return p.NVariant })})
	}
	seen := map[string]bool{}
	for _, l := range all {
		if seen[l.Metric] {
			continue
		}
		seen[l.Metric] = true
		nights := make([]stats.Night, len(l.Points))
		for t, p := range l.Points {
			v, ok := parseFinite(p.MeanControl)
			nights[t] = stats.Night{Value: v, Missing: !ok}
		}
		out = append(out, anomalyInput{kind: "control_mean", metric: l.Metric, arm: l.Control, nights: nights})
	}
	return out
}

// dailyUnits turns an arm's cumulative units into units newly exposed each
// night (the first night of the window: all of them), missing when that
// night or the one before is. A negative difference (noisy counts of a
// private release) counts as zero.
func dailyUnits(points []SeriesPoint, n func(SeriesPoint) string) []stats.Night {
	out := make([]stats.Night, len(points))
	prev, prevOK := 0.0, true
	for t, p := range points {
		v, ok := parseFinite(n(p))
		if !ok || !prevOK {
			out[t] = stats.Night{Missing: true}
		} else {
			night, _ := stats.VolumeNight(math.Max(v-prev, 0))
			out[t] = night
		}
		prev, prevOK = v, ok
	}
	return out
}

func parseFinite(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

func fptr(v float64) *float64 { return &v }

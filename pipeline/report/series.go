package report

import (
	"math"
	"strconv"
	"strings"
)

// Series is the report's time series section: the (all) cohort's
// cumulative absolute effect and interval of each metric × variant on
// every night of the window so far, and tonight's anomaly flags. Nil: no
// earlier night was released, and the section is not shown.
type Series struct {
	AlwaysValid bool
	Note        string // what a nightly reader of the series may conclude
	Lines       []SeriesLine
	// AllLines is how many cohort × metric × variant series
	// timeseries.csv holds (the report shows the (all) cohort's).
	AllLines  int
	Excluded  []SeriesExcluded
	Anomalies *Anomalies
}

// SeriesLine is one metric × variant of the (all) cohort.
type SeriesLine struct {
	Metric, Variant string
	Points          []SeriesPoint
}

// SeriesPoint is one night: Status released, tonight, gap, excluded or
// not released; the numbers are nil unless released.
type SeriesPoint struct {
	Night, Status      string
	Effect, Low, High  *float64
	NControl, NVariant string
}

// SeriesExcluded is an earlier night the series could not use, and why.
type SeriesExcluded struct{ Night, Reason string }

// Anomalies is tonight's anomaly check of every series.
type Anomalies struct {
	Gating, Model string
	Alpha, Level  float64
	Checks        int
	Rows          []AnomalyRow
}

// AnomalyRow is one series' check tonight.
type AnomalyRow struct {
	Label, Status                       string
	Value, Predicted, Statistic, PValue *float64
	History                             int
	Flagged                             bool
	Earlier                             []string
}

// Time-series plot geometry (SVG user units).
const (
	tsWidth  = 960.0
	tsX0     = 90.0
	tsX1     = 930.0
	tsTop    = 16.0
	tsBottom = 176.0
	tsHeight = 230.0
)

type seriesView struct {
	Note      string
	Plots     []seriesPlot
	AllLines  int
	Excluded  []SeriesExcluded
	Anomalies *anomaliesView
}

type seriesPlot struct {
	ID, Metric, Variant, Desc  string
	Width, Height              string
	X0, X1, Top, Bottom, AxisY string
	Ticks                      []seriesTick
	Marks                      []seriesMark
	Rows                       []seriesRow
}

type seriesTick struct{ Y, Label string }

type seriesMark struct {
	X, Y, Y1, Y2, LabelY string
	Label                string // night label (every k-th night)
	Point, Interval      bool
	Gap                  string // "no run", "excluded", "not released"
}

type seriesRow struct {
	Night, Status, Effect, Interval, N string
}

type anomaliesView struct {
	Gating, Model, Alpha, Level, Checks string
	Flagged                             int
	Rows                                []anomalyRowView
}

type anomalyRowView struct {
	Label, Status, Value, Predicted, Statistic, PValue, History, Earlier string
	Flagged                                                              bool
}

func buildSeries(s *Series, ciLabel string) *seriesView {
	if s == nil {
		return nil
	}
	v := &seriesView{Note: s.Note, AllLines: s.AllLines, Excluded: s.Excluded}
	for i, l := range s.Lines {
		v.Plots = append(v.Plots, buildSeriesPlot(i, l, ciLabel))
	}
	if a := s.Anomalies; a != nil {
		av := &anomaliesView{Gating: a.Gating, Model: a.Model, Alpha: numTrim(a.Alpha, 4), Level: numTrim(a.Level, 4), Checks: strconv.Itoa(a.Checks)}
		for _, r := range a.Rows {
			if r.Flagged {
				av.Flagged++
			}
			av.Rows = append(av.Rows, anomalyRowView{Label: r.Label, Status: r.Status, Value: optNum(r.Value), Predicted: optNum(r.Predicted),
				Statistic: optNum(r.Statistic), PValue: optP(r.PValue), History: strconv.Itoa(r.History), Earlier: strings.Join(r.Earlier, ", "), Flagged: r.Flagged})
		}
		v.Anomalies = av
	}
	return v
}

func optNum(p *float64) string {
	if v, ok := get(p); ok {
		return num(v, 4)
	}
	return na
}

func optP(p *float64) string {
	if v, ok := get(p); ok {
		return pval(v)
	}
	return na
}

// seriesScale maps effects onto the plot's height.
type seriesScale struct{ lo, hi float64 }

func (s seriesScale) y(v float64) float64 {
	f := float64((v - s.lo) / (s.hi - s.lo))
	return tsBottom - float64(f*(tsBottom-tsTop))
}

// buildSeriesPlot lays out one line: a point and interval per released
// night, a grey mark for a night without one.
func buildSeriesPlot(i int, l SeriesLine, ciLabel string) seriesPlot {
	lo, hi := 0.0, 0.0
	for _, p := range l.Points {
		for _, q := range []*float64{p.Effect, p.Low, p.High} {
			if v, ok := get(q); ok {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi-lo < 1e-12 {
		lo, hi = lo-1, hi+1
	}
	step := niceStep(hi-lo, 4)
	sc := seriesScale{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step}
	p := seriesPlot{ID: "ts-" + strconv.Itoa(i), Metric: l.Metric, Variant: l.Variant, Width: coord(tsWidth), Height: coord(tsHeight),
		X0: coord(tsX0), X1: coord(tsX1), Top: coord(tsTop), Bottom: coord(tsBottom), AxisY: coord(sc.y(0))}
	for k := math.Floor(lo / step); k*step <= sc.hi+step/2; k++ {
		p.Ticks = append(p.Ticks, seriesTick{Y: coord(sc.y(k * step)), Label: numTrim(k*step, 3)})
	}
	n := len(l.Points)
	every := (n + 11) / 12
	var shown, gaps int
	for j, pt := range l.Points {
		x := tsX0 + (float64(j)+0.5)*(tsX1-tsX0)/float64(n)
		m := seriesMark{X: coord(x), LabelY: coord(tsBottom + 18)}
		if j%every == 0 || j == n-1 {
			m.Label = pt.Night[5:]
		}
		row := seriesRow{Night: pt.Night, Status: pt.Status, Effect: optSigned(pt.Effect), Interval: "[" + optSigned(pt.Low) + ", " + optSigned(pt.High) + "]", N: pt.NControl + " / " + pt.NVariant}
		if e, ok := get(pt.Effect); ok {
			m.Point, m.Y = true, coord(sc.y(e))
			shown++
			if a, ok1 := get(pt.Low); ok1 {
				if b, ok2 := get(pt.High); ok2 {
					m.Interval, m.Y1, m.Y2 = true, coord(sc.y(a)), coord(sc.y(b))
				}
			}
		} else {
			gaps++
			m.Y, row.Effect, row.Interval, row.N = coord(tsBottom-6), na, "", ""
			switch pt.Status {
			case "gap":
				m.Gap = "no run"
			case "excluded":
				m.Gap = "excluded"
			default:
				m.Gap = "not released"
			}
		}
		p.Marks = append(p.Marks, m)
		p.Rows = append(p.Rows, row)
	}
	p.Desc = l.Metric + ", " + l.Variant + " vs control, cohort (all): cumulative absolute effect with its " + ciLabel + " interval on each of " +
		strconv.Itoa(n) + " nights; " + strconv.Itoa(shown) + " with a released estimate, " + strconv.Itoa(gaps) + " without (gaps marked ×)."
	return p
}

func optSigned(p *float64) string {
	if v, ok := get(p); ok {
		return signed(v, 4)
	}
	return na
}

package report

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// Forest-plot geometry, in SVG user units (the SVG scales to the page
// width through its viewBox).
const (
	fpWidth     = 960.0
	fpLabelX    = 12.0  // left edge of the cohort · variant labels
	fpPlotX0    = 330.0 // left edge of the plotting area
	fpPlotX1    = 730.0 // right edge of the plotting area
	fpValueX    = 748.0 // left edge of the effect [interval] text
	fpTop       = 34.0  // first row's top
	fpRowH      = 30.0  // a row
	fpRowHSub   = 44.0  // a row with a "← collapsed from" line
	fpBottom    = 50.0  // room below the rows for the axis
	fpLabelRune = 34    // longest label shown in full (the <title> has all of it)
	fpSubRune   = 46
	// wideFactor: intervals wider than this many times the median width
	// do not stretch the axis; they are clipped with an arrow.
	wideFactor = 5.0
)

type forestPlot struct {
	ID        string // unique within the page: "fp-0", "fp-1", …
	Metric    string
	Width     string
	Height    string
	Title     string // <title>: short name
	Desc      string // <desc>: what the plot shows
	GridTop   string
	GridBot   string
	GridH     string // GridBot − GridTop
	AxisY     string // y of the axis line
	TickY     string // y of tick labels
	AxisTextY string // y of the axis title
	HeadY     string // y of the column headings
	PlotX0    string
	PlotX1    string
	PlotMid   string
	LabelX    string
	ValueX    string
	ZeroX     string
	Ticks     []tick
	Margin    *marginLine // relative guardrail margin, drawn across all rows
	AbsMargin string      // note for an absolute margin, drawn per row
	Rows      []forestRow
	Clipped   bool // some interval runs beyond the axis
}

type tick struct {
	X     string
	Label string
}

type marginLine struct {
	X       string
	Label   string
	RegionX string // the harmful region beyond the margin
	RegionW string
}

type forestRow struct {
	Key      string // data-row: "cohort|variant"
	Tooltip  string
	Y        string // top of the row band
	H        string
	Mid      string // baseline of the row's centre
	SubY     string // baseline of the collapsed line
	Stripe   bool
	Label    string
	Sub      string // "← a, b" when collapsed
	Sig      bool
	SigLabel string // "★ sig." (corrected) or "☆ nominal"
	PtClass  string // the marker's classes: pt, sig or nom, tone
	Point    bool
	X        string
	CI       bool
	X1       string
	X2       string
	CapMid   string // y of the point and the interval
	CapY1    string
	CapY2    string
	ArrowLo  string // SVG path of the arrow when the interval is clipped at the axis's low end
	ArrowHi  string
	NA       string // "n/a (status)" when there is no point
	Value    string // "+2.31% [+0.42%, +4.20%]"
	MarginX  string // per-row absolute margin tick, "" for none
	MarginY1 string
	MarginY2 string
}

// scale maps relative effects onto the plotting area.
type scale struct {
	lo, hi float64
}

func (s scale) x(v float64) float64 {
	// The conversions keep the compiler from fusing into FMA on some
	// architectures, so coordinates do not depend on GOARCH.
	f := float64((v - s.lo) / (s.hi - s.lo))
	return fpPlotX0 + float64(f*(fpPlotX1-fpPlotX0))
}

// niceStep returns a step of 1, 2 or 5 × 10^k near span/target. The
// power of ten comes from strconv, not math.Log10, so it is exact.
func niceStep(span float64, target int) float64 {
	raw := span / float64(target)
	e := strconv.FormatFloat(raw, 'e', 17, 64)
	mant, _ := strconv.ParseFloat(e[:strings.IndexByte(e, 'e')], 64)
	exp := e[strings.IndexByte(e, 'e')+1:]
	mag, _ := strconv.ParseFloat("1e"+exp, 64)
	switch {
	case mant <= 1:
		return mag
	case mant <= 2:
		return 2 * mag
	case mant <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// axis computes the domain and ticks covering vals (fractions) and zero.
func axis(vals []float64) (scale, []float64, int) {
	lo, hi := 0.0, 0.0
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-0.01, hi+0.01
	}
	pad := float64((hi - lo) * 0.04)
	lo, hi = lo-pad, hi+pad
	step := niceStep(hi-lo, 5)
	kLo, kHi := math.Floor(lo/step), math.Ceil(hi/step)
	var ticks []float64
	for k := kLo; k <= kHi; k++ {
		ticks = append(ticks, float64(k*step))
	}
	// Decimals of the percentage labels: enough to tell ticks apart.
	dec := 0
	for p := step * 100; p < 1 && dec < 6; p *= 10 {
		dec++
	}
	return scale{lo: float64(kLo * step), hi: float64(kHi * step)}, ticks, dec
}

func tickLabel(v float64, dec int) string {
	s := strconv.FormatFloat(v*100, 'f', dec, 64)
	if strings.Trim(s, "-0.") == "" {
		return "0%"
	}
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return minus(s) + "%"
}

// buildForest lays out one metric's forest plot.
func buildForest(id int, metric string, rows []Row, g *Guardrail, ciLabel string) forestPlot {
	relMargin, rowMargin := guardrailMargins(g, rows)
	sc, ticks, dec := axis(axisValues(rows, rowMargin, relMargin))
	fp := forestFrame(id, metric, sc, ticks, dec)
	var bottom float64
	fp.Rows, bottom, fp.Clipped = layoutForestRows(rows, rowMargin, sc, ciLabel)
	placeAxis(&fp, bottom)
	fp.Margin, fp.AbsMargin = marginMarks(g, relMargin, sc)
	fp.Desc = forestDesc(rows, g, ciLabel, fp)
	return fp
}

// guardrailMargins returns a guardrail's relative margin (signed in the
// harmful direction), or, for an absolute margin, each row's margin
// converted to the relative scale with its control mean.
func guardrailMargins(g *Guardrail, rows []Row) (*float64, []*float64) {
	var relMargin *float64
	rowMargin := make([]*float64, len(rows))
	if g != nil && finite(g.Margin) && g.Margin >= 0 {
		m := g.Margin
		if g.Harmful == "decrease" {
			m = -m
		}
		if g.Relative {
			relMargin = &m
		} else {
			for i, r := range rows {
				if mc, ok := get(r.MeanControl); ok && mc != 0 {
					rm := float64(m / mc)
					rowMargin[i] = &rm
				}
			}
		}
	}
	return relMargin, rowMargin
}

// axisValues are the values the axis must cover: every point, every
// margin, and every interval that is not much wider than the typical one.
// A few very wide intervals (tiny cohorts) would otherwise squash all
// other rows; those are clipped at the axis and drawn with an arrow, and
// their text shows the full interval.
func axisValues(rows []Row, rowMargin []*float64, relMargin *float64) []float64 {
	limit := wideIntervalLimit(rows)
	var vals []float64
	for i, r := range rows {
		for _, p := range []*float64{r.RelEffect, rowMargin[i]} {
			if v, ok := get(p); ok {
				vals = append(vals, v)
			}
		}
		lo, okL := get(r.RelLow)
		hi, okH := get(r.RelHigh)
		if okL && okH && hi-lo <= limit {
			vals = append(vals, lo, hi)
		}
	}
	if relMargin != nil {
		vals = append(vals, *relMargin)
	}
	return vals
}

// wideIntervalLimit is the widest interval that may stretch the axis:
// wideFactor times the median width, or no limit below three intervals.
func wideIntervalLimit(rows []Row) float64 {
	var widths []float64
	for _, r := range rows {
		lo, okL := get(r.RelLow)
		hi, okH := get(r.RelHigh)
		if okL && okH {
			widths = append(widths, hi-lo)
		}
	}
	limit := math.Inf(1)
	if len(widths) >= 3 {
		sorted := append([]float64(nil), widths...)
		sort.Float64s(sorted)
		limit = float64(wideFactor * sorted[len(sorted)/2])
	}
	return limit
}

// forestFrame is the plot's fixed geometry, title and ticks, before its
// rows are laid out.
func forestFrame(id int, metric string, sc scale, ticks []float64, dec int) forestPlot {
	fp := forestPlot{
		ID:      "fp-" + strconv.Itoa(id),
		Metric:  metric,
		Width:   coord(fpWidth),
		Title:   "Forest plot: relative effect on " + metric + " by cohort and variant",
		HeadY:   coord(fpTop - 12),
		PlotX0:  coord(fpPlotX0),
		PlotX1:  coord(fpPlotX1),
		PlotMid: coord((fpPlotX0 + fpPlotX1) / 2),
		LabelX:  coord(fpLabelX),
		ValueX:  coord(fpValueX),
		ZeroX:   coord(sc.x(0)),
		GridTop: coord(fpTop),
	}
	for _, t := range ticks {
		fp.Ticks = append(fp.Ticks, tick{X: coord(sc.x(t)), Label: tickLabel(t, dec)})
	}
	return fp
}

// layoutForestRows lays the rows out top to bottom from fpTop. It returns
// them, the y below the last one, and whether any interval was clipped at
// the axis.
func layoutForestRows(rows []Row, rowMargin []*float64, sc scale, ciLabel string) ([]forestRow, float64, bool) {
	var out []forestRow
	y := fpTop
	clipped := false
	for i, r := range rows {
		fr, h, c := layoutForestRow(i, r, y, sc, rowMargin[i], ciLabel)
		clipped = clipped || c
		out = append(out, fr)
		y += h
	}
	return out, y, clipped
}

// layoutForestRow lays out row i with its top at y: its band and labels,
// its point and interval (or n/a), its absolute-margin tick and its
// tooltip. It returns the row, its height, and whether its interval was
// clipped at the axis.
func layoutForestRow(i int, r Row, y float64, sc scale, rowMargin *float64, ciLabel string) (forestRow, float64, bool) {
	fr, h := forestRowBand(i, r, y)
	cy := y + fpRowH/2
	fr.CapMid = coord(cy)
	clipped := false
	if est, ok := get(r.RelEffect); ok {
		clipped = plotEstimate(&fr, r, est, sc, cy)
	} else {
		markNoEstimate(&fr, r)
	}
	if rowMargin != nil {
		fr.MarginX = coord(sc.x(*rowMargin))
		fr.MarginY1, fr.MarginY2 = coord(y+3), coord(y+h-3)
	}
	fr.Tooltip = forestRowTooltip(r, fr, ciLabel)
	return fr, h, clipped
}

// forestRowBand is a row's band at y (taller when the row lists collapsed
// cohorts), its labels and its significance marks; it returns the row and
// its height.
func forestRowBand(i int, r Row, y float64) (forestRow, float64) {
	h := fpRowH
	sub := ""
	if len(r.CollapsedFrom) > 0 {
		h = fpRowHSub
		sub = "← " + strings.Join(r.CollapsedFrom, ", ")
	}
	label := r.Cohort + " · " + r.Variant
	fr := forestRow{
		Key:    r.Cohort + "|" + r.Variant,
		Y:      coord(y),
		H:      coord(h),
		Mid:    coord(y + fpRowH/2 + 4),
		SubY:   coord(y + fpRowH/2 + 18),
		Stripe: i%2 == 1,
		Label:  truncate(label, fpLabelRune),
		Sub:    truncate(sub, fpSubRune),
		Sig:    r.Significant,
	}
	fr.PtClass = "pt"
	if r.Significant {
		fr.SigLabel, fr.PtClass = "★ sig.", "pt sig"
		if !r.Corrected {
			fr.SigLabel, fr.PtClass = "☆ nominal", "pt nom"
		}
		if r.Tone == "worse" {
			fr.PtClass += " worse"
		}
	}
	return fr, h
}

// plotEstimate draws a row's point at est and its interval, clipped with
// an arrow where it runs beyond the axis, and writes its value text. It
// reports whether the interval was clipped.
func plotEstimate(fr *forestRow, r Row, est float64, sc scale, cy float64) bool {
	fr.Point = true
	fr.X = coord(sc.x(est))
	fr.Value = pct(est, sigEffect)
	lo, okL := get(r.RelLow)
	hi, okH := get(r.RelHigh)
	if !okL || !okH {
		fr.Value += " (no interval)"
		return false
	}
	clipped := false
	fr.CI = true
	x1, x2 := sc.x(max(lo, sc.lo)), sc.x(min(hi, sc.hi))
	fr.X1, fr.X2 = coord(x1), coord(x2)
	fr.CapY1, fr.CapY2 = coord(cy-5), coord(cy+5)
	if lo < sc.lo {
		fr.ArrowLo = "M" + coord(x1) + " " + coord(cy) + "l7 -5v10z"
		clipped = true
	}
	if hi > sc.hi {
		fr.ArrowHi = "M" + coord(x2) + " " + coord(cy) + "l-7 -5v10z"
		clipped = true
	}
	fr.Value += " [" + pct(lo, sigEffect) + ", " + pct(hi, sigEffect) + "]"
	return clipped
}

// markNoEstimate marks a row without an estimate "n/a (status)".
func markNoEstimate(fr *forestRow, r Row) {
	status := r.Status
	if status == "" || status == "ok" {
		status = "no estimate"
	}
	fr.NA = na + " (" + status + ")"
	fr.Value = na
}

// forestRowTooltip is a row's <title>: the comparison, the cohorts
// collapsed into it, and its effect and significance or why it has none.
func forestRowTooltip(r Row, fr forestRow, ciLabel string) string {
	tip := []string{r.Cohort + " · " + r.Variant + " vs " + r.Control}
	if len(r.CollapsedFrom) > 0 {
		tip = append(tip, "collapsed from "+strings.Join(r.CollapsedFrom, ", "))
	}
	if !fr.Point {
		return strings.Join(append(tip, fr.NA), "; ")
	}
	tip = append(tip, "relative effect "+fr.Value+" ("+ciLabel+" CI)")
	switch {
	case r.Significant && r.Corrected:
		tip = append(tip, "significant after correction")
	case r.Significant:
		tip = append(tip, "nominally significant (not corrected)")
	}
	if r.Significant && r.Tone == "worse" {
		tip = append(tip, "in the harmful direction")
	}
	return strings.Join(tip, "; ")
}

// placeAxis puts the grid's bottom, the axis, its tick labels and title
// below the last row (bottom), and sizes the plot to fit.
func placeAxis(fp *forestPlot, bottom float64) {
	y := bottom
	fp.GridBot = coord(y)
	fp.GridH = coord(y - fpTop)
	fp.AxisY = coord(y)
	fp.TickY = coord(y + 16)
	fp.AxisTextY = coord(y + 38)
	fp.Height = coord(y + fpBottom)
}

// marginMarks draws a guardrail's margin: a relative one as a line across
// the plot with its harmful region shaded; an absolute one only as a note,
// its ticks being drawn per row.
func marginMarks(g *Guardrail, relMargin *float64, sc scale) (*marginLine, string) {
	if relMargin != nil {
		mx := sc.x(*relMargin)
		ml := &marginLine{X: coord(mx), Label: "margin " + pct(*relMargin, sigEffect)}
		if *relMargin >= 0 {
			ml.RegionX, ml.RegionW = coord(mx), coord(fpPlotX1-mx)
		} else {
			ml.RegionX, ml.RegionW = coord(fpPlotX0), coord(mx-fpPlotX0)
		}
		return ml, ""
	}
	if g != nil {
		return nil, "margin " + signedMargin(g) + " (absolute), drawn per row relative to its control mean"
	}
	return nil, ""
}

// forestDesc is the plot's <desc>: what a row shows, how many rows are
// significant, nominal or without an estimate, and the guardrail.
func forestDesc(rows []Row, g *Guardrail, ciLabel string, fp forestPlot) string {
	nSig, nNom, nNA := 0, 0, 0
	for _, r := range rows {
		switch _, ok := get(r.RelEffect); {
		case !ok:
			nNA++
		case r.Significant && r.Corrected:
			nSig++
		case r.Significant:
			nNom++
		}
	}
	desc := []string{
		strconv.Itoa(len(rows)) + " rows, one per cohort and treatment variant: the relative effect (variant minus control, over control) with its " + ciLabel + " confidence interval; the vertical line is zero.",
		strconv.Itoa(nSig) + " significant after correction (filled marker, ★ sig.).",
	}
	if nNom > 0 {
		desc = append(desc, strconv.Itoa(nNom)+" nominally significant, outside the correction family (half-filled marker, ☆ nominal).")
	}
	if nNA > 0 {
		desc = append(desc, strconv.Itoa(nNA)+" without an estimate (n/a).")
	}
	if g != nil {
		desc = append(desc, "Guardrail: harmful "+g.Harmful+", "+strings.TrimPrefix(fp.marginText(g), "margin ")+".")
	}
	return strings.Join(desc, " ")
}

func (fp forestPlot) marginText(g *Guardrail) string {
	if fp.Margin != nil {
		return fp.Margin.Label + " (relative)"
	}
	return fp.AbsMargin
}

// signedMargin formats a guardrail's margin signed in its harmful direction.
func signedMargin(g *Guardrail) string {
	m := g.Margin
	if g.Harmful == "decrease" {
		m = -m
	}
	if g.Relative {
		return pct(m, sigEffect)
	}
	return signed(m, sigEffect)
}

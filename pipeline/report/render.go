package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strconv"
	"strings"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Parse(pageSource))

// Render returns the report as one self-contained HTML page: inline CSS and
// inline SVG, no scripts, no fonts, no URLs, and a Content-Security-Policy
// that blocks any fetch. Every string from d is escaped by html/template.
// The bytes depend on d alone (no clock, no paths, no map iteration, floats
// formatted with strconv), so a rerun produces the same page.
func Render(d Data) ([]byte, error) {
	v := build(d)
	var b bytes.Buffer
	if err := page.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return b.Bytes(), nil
}

// view is the page's model: every number already formatted.
type view struct {
	Title       string // the spec's name, else the experiment
	Experiment  string
	NominalDate string
	Window      string
	CILabel     string
	Correction  string
	Family      string // "over goal metrics × treatments in cohort (all)"
	Nominal     string // which rows are nominal (not corrected)
	Alpha       string
	Settings    []Setting
	Design      string
	Progress    string // "day 3 of 4 · 1 day remaining (planned end …)"; empty when unknown

	SRM        srmView
	Verdict    verdictView
	Alerts     []evidenceView // fired, or guardrails showing harm
	Evidence   []evidenceView
	Issues     []checkView // warned or blocked
	Checks     []checkView
	NChecks    int
	Privacy    privacyView
	Provenance provenanceView
	Plots      []forestPlot
	Tables     []tableView
	// Sensitivity rows and their caption ("to detect a 5% relative
	// effect at 80% power, fixed horizon").
	Sensitivity        []sensitivityView
	SensitivityCaption string
	// Bayesian engine and hypothesis tests (empty for other specs).
	Engine        string
	BayesRule     string
	BayesEvidence []bayesEvidenceView
	Bayes         []inferenceView // rows with a posterior
	Tests         []inferenceView // rows with a test
	// Series is the time series section (nil: not shown).
	Series *seriesView
	// VarReduce is the variance-reduction section (empty: not shown).
	VarReduce []adjustedView
	// VarReduceSequential: the design is always-valid, but the adjusted
	// estimates' intervals are fixed-horizon (the section warns).
	VarReduceSequential bool
	// Interactions is the interactions section (nil: not shown).
	Interactions *interactionsView
	// Drilldown is the drill-down section (nil: not shown).
	Drilldown *drilldownView
}

type sensitivityView struct {
	Metric, Variant, RelMDE, Units, UnitsNeeded, DaysNeeded, Status string
}

type srmView struct {
	Invalid   bool
	Tested    bool
	State     string // "ok", "INVALID", "not tested"
	PValue    string
	PExpr     string // "p = 0.41" or "p < 0.0001"
	ChiSquare string
	Threshold string
	Note      string
	Arms      []srmArmView
}

type srmArmView struct {
	Variant  string
	Observed string
	Expected string // expected share, as a percentage
}

type verdictView struct {
	Word     string
	Class    string // ship, hold, rollback, invalid, progress or unknown
	Rule     string
	Reason   string
	Variants string
	// Criteria and CriteriaChanged: see Verdict.
	Criteria        string
	CriteriaChanged bool
}

type evidenceView struct {
	Role     string
	Metric   string
	Cohort   string
	Variant  string
	Estimate string
	Interval string
	Scale    string
	// ScaleShort is "abs." or "rel.".
	ScaleShort string
	Margin     string
	PValue     string // raw
	PAdjusted  string // after correction (goals); "not corrected" for guardrails
	Outcome    string
	Status     string
	Fired      bool
	Harm       bool
}

type checkView struct {
	Name     string
	Observed string
	Warn     string
	Block    string
	Rule     string
	Severity string
	Outcome  string
	Class    string // pass, warn, block, skipped or unknown
	Detail   string
}

type privacyView struct {
	Enabled        bool
	Mechanism      string
	Unit           string // ρ or ε
	Spent          string
	Total          string
	Remaining      string
	Guarantee      string
	KeyFingerprint string
	KeyFull        string
	Noise          []noiseView
	Bar            *budgetBar
}

// budgetBar draws the budget as a 200-unit bar: spent by earlier runs,
// spent by this run, and what is left (the rest).
type budgetBar struct {
	Before string
	Run    string
	Label  string
}

type noiseView struct {
	Metric string
	Range  string
}

type provenanceView struct {
	Templates   []templateView
	InputDigest string
	InputFull   string
	Spec        string
	SpecFull    string
	DuckDB      string
	Code        string
}

type templateView struct {
	Name string
	Hash string
	Full string
}

type tableView struct {
	ID        string
	Metric    string
	Kind      string
	Guardrail string
	// ValueHead heads the arms' values: means, or a quantile metric's
	// quantiles.
	ValueHead string
	// NHead heads the arms' sizes: "n" (units), or what n counts where a
	// reader could take it for something else.
	NHead string
	Rows  []tableRow
}

type tableRow struct {
	Cohort       string
	Collapsed    string
	Variant      string
	Control      string
	NControl     string
	NVariant     string
	MeanControl  string
	MeanVariant  string
	Abs          string
	AbsCI        string
	Rel          string
	RelCI        string
	P            string
	PAdj         string
	MDE          string
	Noise        string
	Sig          bool
	SigLabel     string // "★ sig. (corrected)" or "☆ nominal p ≤ α"
	SigClass     string // flag-sig or flag-nominal, then the tone
	SigTitle     string
	Underpowered bool
	// PowerNote explains an underpowered row; for a significant one, why
	// both at once is possible and what it means.
	PowerNote string
	SRM       bool
	Status    string
	StatusOK  bool
}

// levelLabel is a confidence level as a percentage ("95%", "97.5%"), or
// "" when it is not a level.
func levelLabel(level float64) string {
	if !(finite(level) && level > 0 && level < 1) {
		return ""
	}
	l := num(level*100, 3)
	return strings.TrimRight(strings.TrimRight(l, "0"), ".") + "%"
}

func build(d Data) view {
	ciLabel := levelLabel(d.CILevel)
	if ciLabel == "" {
		ciLabel = "CI"
	}
	title := d.Experiment
	if d.Name != "" {
		title = d.Name
	}
	v := view{
		Title:       title,
		Experiment:  d.Experiment,
		NominalDate: d.NominalDate,
		Window:      d.WindowStart + " → " + d.WindowEnd,
		CILabel:     ciLabel,
		Correction:  correctionName(d.Correction),
		Family:      d.Family,
		Nominal:     d.Nominal,
		Alpha:       "α",
		Settings:    d.Settings,
		Design:      "fixed horizon",
		SRM:         buildSRM(d.SRM),
		Verdict:     buildVerdict(d.Verdict),
		NChecks:     len(d.Checks),
		Privacy:     buildPrivacy(d),
		Provenance:  buildProvenance(d.Provenance),
	}
	v.Progress = progress(d.Horizon)
	v.Series = buildSeries(d.Series, ciLabel)
	v.VarReduce = buildAdjusted(d.VarianceReduction)
	v.VarReduceSequential = d.Sequential.Enabled && len(v.VarReduce) > 0
	v.Interactions = buildInteractions(d.Interactions)
	v.Drilldown = buildDrilldown(d.Drilldown)
	v.Engine, v.BayesRule = d.Engine, d.BayesRule
	for _, e := range d.BayesEvidence {
		v.BayesEvidence = append(v.BayesEvidence, buildBayesEvidence(e))
	}
	for _, r := range d.Inference {
		iv := buildInference(r)
		if r.Prior != "" {
			v.Bayes = append(v.Bayes, iv)
		}
		if r.Test != "" {
			v.Tests = append(v.Tests, iv)
		}
	}
	v.Sensitivity, v.SensitivityCaption = sensitivity(d)
	if finite(d.Alpha) && d.Alpha > 0 {
		v.Alpha = "α = " + numTrim(d.Alpha, sigStat)
	}
	if d.Sequential.Enabled {
		v.Design = "sequential (always-valid intervals)"
		if d.Sequential.Description != "" {
			v.Design = "sequential: " + d.Sequential.Description
		}
	}
	for _, e := range d.Verdict.Evidence {
		ev := buildEvidence(e)
		v.Evidence = append(v.Evidence, ev)
		if ev.Fired || ev.Harm {
			v.Alerts = append(v.Alerts, ev)
		}
	}
	// Blocking checks first, then warnings, each in the given order.
	for _, want := range []string{"block", "warn"} {
		for _, c := range d.Checks {
			if c.Outcome == want {
				v.Issues = append(v.Issues, buildCheck(c))
			}
		}
	}
	for _, c := range d.Checks {
		v.Checks = append(v.Checks, buildCheck(c))
	}

	for i, m := range metricsOf(d.Rows) {
		rows := rowsOf(d.Rows, m)
		g := guardrailOf(d.Guardrails, m)
		v.Plots = append(v.Plots, buildForest(i, m, rows, g, ciLabel))
		v.Tables = append(v.Tables, buildTable(i, m, rows, g, d))
	}
	return v
}

// metricsOf returns the metrics in order of first appearance.
func metricsOf(rows []Row) []string {
	var out []string
	for _, r := range rows {
		seen := false
		for _, m := range out {
			if m == r.Metric {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, r.Metric)
		}
	}
	return out
}

func rowsOf(rows []Row, metric string) []Row {
	var out []Row
	for _, r := range rows {
		if r.Metric == metric {
			out = append(out, r)
		}
	}
	return out
}

func guardrailOf(gs []Guardrail, metric string) *Guardrail {
	for i := range gs {
		if gs[i].Metric == metric {
			return &gs[i]
		}
	}
	return nil
}

func correctionName(c string) string {
	switch c {
	case "holm":
		return "Holm (family-wise error)"
	case "bh":
		return "Benjamini–Hochberg (false discovery rate)"
	case "none", "":
		return "none"
	}
	return c
}

func buildSRM(s SRM) srmView {
	v := srmView{Invalid: s.Invalid, Note: s.Note, State: "ok", Threshold: numTrim(s.Threshold, sigStat), PExpr: "p = " + na}
	if p, ok := get(s.PValue); ok {
		v.Tested = true
		v.PValue = pval(p)
		v.PExpr = "p = " + v.PValue
		if strings.HasPrefix(v.PValue, "<") {
			v.PExpr = "p " + v.PValue
		}
	}
	if c, ok := get(s.ChiSquare); ok {
		v.ChiSquare = numTrim(c, sigStat)
	}
	switch {
	case s.Invalid:
		v.State = "INVALID"
	case !v.Tested:
		v.State = "not tested"
	}
	var total float64
	for _, a := range s.Arms {
		if finite(a.ExpectedShare) && a.ExpectedShare > 0 {
			total += a.ExpectedShare
		}
	}
	for _, a := range s.Arms {
		av := srmArmView{Variant: a.Variant, Observed: countf(a.Observed), Expected: na}
		if total > 0 && finite(a.ExpectedShare) && a.ExpectedShare > 0 {
			av.Expected = numTrim(float64(a.ExpectedShare/total)*100, sigStat) + "%"
		}
		v.Arms = append(v.Arms, av)
	}
	return v
}

// dayWord is "1 day" or "n days".
func dayWord(n float64) string {
	if n == 1 {
		return "1 day"
	}
	return numTrim(n, sigStat) + " days"
}

// progress describes the horizon: "day 3 of 4 · 1 day remaining (planned
// end …)", or "complete: 4 of 4 days".
func progress(h Horizon) string {
	if !(h.DaysPlanned > 0) {
		return ""
	}
	if h.Reached {
		return "complete: " + numTrim(h.DaysElapsed, sigStat) + " of " + dayWord(h.DaysPlanned)
	}
	s := "day " + numTrim(h.DaysElapsed, sigStat) + " of " + numTrim(h.DaysPlanned, sigStat) + " · " + dayWord(h.DaysRemaining) + " remaining (planned end " + h.PlannedEnd + ")"
	if h.FixedHorizon {
		s += "; a fixed-horizon design decides only at its end"
	}
	return s
}

func buildVerdict(vd Verdict) verdictView {
	v := verdictView{
		Word:     strings.ToUpper(strings.ReplaceAll(vd.Verdict, "_", " ")),
		Class:    "unknown",
		Rule:     vd.Rule,
		Reason:   vd.Reason,
		Variants: strings.Join(vd.Variants, ", "),

		Criteria:        vd.Criteria,
		CriteriaChanged: vd.CriteriaChanged,
	}
	switch vd.Verdict {
	case "ship", "hold", "rollback", "invalid":
		v.Class = vd.Verdict
	case "in_progress":
		v.Class = "progress"
	}
	if v.Word == "" {
		v.Word = "NO VERDICT"
	}
	return v
}

func buildEvidence(e Evidence) evidenceView {
	f := func(p *float64) string {
		if e.Scale == "relative" {
			if v, ok := get(p); ok {
				return pct(v, sigEffect)
			}
			return na
		}
		if v, ok := get(p); ok {
			return signed(v, sigEffect)
		}
		return na
	}
	v := evidenceView{
		Role: e.Role, Metric: e.Metric, Cohort: e.Cohort, Variant: e.Variant,
		Estimate: f(e.Estimate), Scale: e.Scale, ScaleShort: "abs.",
		Margin: "—", PValue: na, PAdjusted: "not corrected", Outcome: e.Outcome, Status: e.Status,
		Fired: e.Fired,
		Harm:  e.Role == "guardrail" && e.Outcome == "harm beyond margin",
	}
	if e.Scale == "relative" {
		v.ScaleShort = "rel."
	}
	if e.Low != nil || e.High != nil {
		v.Interval = "[" + f(e.Low) + ", " + f(e.High) + "]"
		if l := levelLabel(e.CILevel); l != "" {
			v.Interval += " " + l
		}
	}
	if p, ok := get(e.PValue); ok {
		v.PValue = pval(p)
	}
	if e.PAdjusted != nil {
		v.PAdjusted = na
		if p, ok := get(e.PAdjusted); ok {
			v.PAdjusted = pval(p)
		}
	}
	if e.Margin != nil {
		v.Margin = f(e.Margin)
		switch e.Harmful {
		case "increase":
			v.Margin += " ↑"
		case "decrease":
			v.Margin += " ↓"
		}
	}
	return v
}

func buildCheck(c Check) checkView {
	v := checkView{
		Name: c.Name, Observed: numTrim(c.Observed, sigStat), Warn: numTrim(c.Warn, sigStat), Block: numTrim(c.Block, sigStat),
		Rule: c.Rule, Severity: c.Severity, Outcome: c.Outcome, Class: "unknown", Detail: c.Detail,
	}
	switch c.Outcome {
	case "pass", "warn", "block", "skipped":
		v.Class = c.Outcome
	}
	if c.Outcome == "skipped" || !finite(c.Observed) {
		v.Observed = na
	}
	return v
}

func buildPrivacy(d Data) privacyView {
	p := d.Privacy
	v := privacyView{Enabled: p.Enabled}
	if !p.Enabled {
		return v
	}
	v.Mechanism = p.Mechanism
	switch p.Accounting {
	case "zcdp_rho":
		v.Unit = "ρ (zCDP)"
	case "pure_epsilon":
		v.Unit = "ε (pure DP)"
	default:
		v.Unit = p.Accounting
	}
	v.Spent = numTrim(p.Spent, sigStat)
	v.Total = numTrim(p.Total, sigStat)
	v.Remaining = numTrim(p.Remaining, sigStat) + " left"
	if !finite(p.Remaining) {
		// What earlier runs spent is history, not part of this release: a
		// rerun must produce the same page. The ledger file has it.
		v.Remaining = "spending over all releases: the data source's ledger (verity ledger show)"
	}
	if p.Delta > 0 {
		v.Guarantee = "(ε = " + numTrim(p.Epsilon, sigStat) + ", δ = " + numTrim(p.Delta, sigStat) + ")-DP over the experiment"
	} else if p.Epsilon > 0 {
		v.Guarantee = "ε = " + numTrim(p.Epsilon, sigStat) + " pure DP over the experiment"
	}
	if p.Covers != "" {
		v.Guarantee = p.Covers
	}
	if finite(p.Total) && p.Total > 0 && finite(p.Spent) && finite(p.Remaining) &&
		p.Spent >= 0 && p.Remaining >= 0 && p.Spent+p.Remaining <= p.Total*(1+1e-9) {
		before := p.Total - p.Remaining - p.Spent
		w := func(x float64) float64 { return min(200, max(0, float64(x/p.Total)*200)) }
		v.Bar = &budgetBar{
			Before: coord(w(before)),
			Run:    coord(w(p.Spent)),
			Label: "budget: " + numTrim(float64(before/p.Total)*100, 3) + "% spent by earlier runs, " +
				numTrim(float64(p.Spent/p.Total)*100, 3) + "% by this run, " +
				numTrim(float64(p.Remaining/p.Total)*100, 3) + "% left",
		}
	}
	v.KeyFingerprint = short(p.KeyFingerprint)
	v.KeyFull = p.KeyFingerprint
	for _, m := range metricsOf(d.Rows) {
		lo, hi, n := 0.0, 0.0, 0
		for _, r := range rowsOf(d.Rows, m) {
			if s, ok := get(r.NoiseScale); ok {
				if n == 0 {
					lo, hi = s, s
				}
				lo, hi, n = min(lo, s), max(hi, s), n+1
			}
		}
		nv := noiseView{Metric: m, Range: na}
		if n > 0 {
			nv.Range = numTrim(lo, sigEffect)
			if hi != lo {
				nv.Range += " – " + numTrim(hi, sigEffect)
			}
		}
		v.Noise = append(v.Noise, nv)
	}
	return v
}

func buildProvenance(p Provenance) provenanceView {
	v := provenanceView{
		InputDigest: short(p.InputDigest), InputFull: p.InputDigest,
		Spec: short(p.SpecSHA256), SpecFull: p.SpecSHA256,
		DuckDB: p.DuckDBVersion, Code: p.CodeVersion,
	}
	for _, t := range p.Templates {
		v.Templates = append(v.Templates, templateView{Name: t.Name + "@" + t.Version, Hash: short(t.SHA256), Full: t.SHA256})
	}
	return v
}

// significance returns a row's significance label, its class and a title:
// corrected rows are "★ sig. (corrected)", the others "☆ nominal" (their
// p-value is not corrected for multiple testing).
func significance(r Row) (label, class, title string) {
	if !r.Significant {
		return "", "", ""
	}
	label, class, title = "★ sig. (corrected)", "flag-sig", "significant after the multiple-testing correction"
	if !r.Corrected {
		label, class, title = "☆ nominal", "flag-nominal", "p ≤ α without correction: this row is outside the correction family, so it is a nominal result"
	}
	switch r.Tone {
	case "worse":
		class += " tone-worse"
		title += "; the effect goes the harmful way"
	case "better":
		class += " tone-better"
	}
	return label, class, title
}

// powerNote explains the underpowered flag, and a significant row that is
// underpowered as well.
func powerNote(r Row, maxMDE float64) string {
	if !r.Underpowered {
		return ""
	}
	mde, ok := get(r.MDE)
	if !ok {
		return "underpowered: no minimum detectable effect could be computed"
	}
	s := "underpowered: the minimum detectable effect is " + pct(mde, sigEffect)
	if finite(maxMDE) && maxMDE > 0 {
		s += ", above the " + pct(maxMDE, sigEffect) + " target"
	}
	if r.Significant {
		s += "; significant anyway because the observed effect is large, but an underpowered significant estimate tends to overstate the true effect"
	}
	return s
}

func buildTable(id int, metric string, rows []Row, g *Guardrail, d Data) tableView {
	t := tableView{ID: "tbl-" + strconv.Itoa(id), Metric: metric}
	t.ValueHead = "Mean control → variant"
	t.NHead = "n control / variant"
	if len(rows) > 0 {
		t.Kind = rows[0].Kind
		if n := rows[0].CapNote; n != "" {
			t.Kind += "; " + n
		}
		if n := rows[0].FilterNote; n != "" {
			t.Kind += "; " + n
		}
		if q := rows[0].Quantile; q != "" && rows[0].QuantileOverEvents {
			t.Kind = q + " of events (clustered variance, Yao–Li–Lu 2024): difference of the arms' " + q + " of their pooled events, order-statistic variance times the design effect of each unit's several events (GrowthBook's clustered quantile test), relative interval by Fieller; no MDE, not corrected"
			t.ValueHead = q + " of events control → variant"
			// n is the arms' assigned units; the quantile rests on their
			// events (quantiles.csv: events and units with events per arm).
			t.Kind += "; n counts assigned units, the events and units with events per arm are in quantiles.csv"
			t.NHead = "units control / variant"
		} else if q != "" {
			t.Kind = "quantile " + q + ": difference of the arms' " + q + ", variance from order statistics (Deng, Knoblich & Lu 2018, GrowthBook's quantile test), relative interval by Fieller; no MDE, not corrected"
			t.ValueHead = q + " control → variant"
		}
	}
	if g != nil {
		kind := "absolute"
		if g.Relative {
			kind = "relative"
		}
		t.Guardrail = "guardrail: harmful " + g.Harmful + ", margin " + signedMargin(g) + " (" + kind + ")"
	}
	opt := func(p *float64, f func(float64) string) string {
		if v, ok := get(p); ok {
			return f(v)
		}
		return na
	}
	interval := func(lo, hi *float64, f func(float64) string) string {
		if lo == nil && hi == nil {
			return ""
		}
		return "[" + opt(lo, f) + ", " + opt(hi, f) + "]"
	}
	mean := func(v float64) string { return num(v, sigMean) }
	eff := func(v float64) string { return signed(v, sigEffect) }
	rel := func(v float64) string { return pct(v, sigEffect) }
	mde := func(v float64) string { return num(v*100, sigEffect-1) + "%" }
	noise := func(v float64) string { return numTrim(v, sigEffect) }
	for _, r := range rows {
		tr := tableRow{
			Cohort: r.Cohort, Variant: r.Variant, Control: r.Control,
			NControl: count(r.NControl), NVariant: count(r.NVariant),
			MeanControl: opt(r.MeanControl, mean), MeanVariant: opt(r.MeanVariant, mean),
			Abs: opt(r.AbsEffect, eff), AbsCI: interval(r.AbsLow, r.AbsHigh, eff),
			Rel: opt(r.RelEffect, rel), RelCI: interval(r.RelLow, r.RelHigh, rel),
			P: opt(r.PValue, pval), PAdj: opt(r.PAdjusted, pval),
			MDE: opt(r.MDE, mde), Noise: opt(r.NoiseScale, noise),
			Sig: r.Significant, Underpowered: r.Underpowered, PowerNote: powerNote(r, d.MaxRelativeMDE), SRM: r.SRM,
			Status: r.Status, StatusOK: r.Status == "ok",
		}
		tr.SigLabel, tr.SigClass, tr.SigTitle = significance(r)
		if tr.Status == "" {
			tr.Status = "ok"
			tr.StatusOK = true
		}
		if len(r.CollapsedFrom) > 0 {
			tr.Collapsed = "← " + strings.Join(r.CollapsedFrom, ", ")
		}
		t.Rows = append(t.Rows, tr)
	}
	return t
}

// sensitivity formats the goal comparisons' distance to the target MDE,
// shown while the design's planned end is not reached.
func sensitivity(d Data) ([]sensitivityView, string) {
	if d.Horizon.Reached || len(d.Sensitivity) == 0 {
		return nil, ""
	}
	var out []sensitivityView
	for _, s := range d.Sensitivity {
		v := sensitivityView{Metric: s.Metric, Variant: s.Variant, Status: s.Status, RelMDE: na, UnitsNeeded: na, DaysNeeded: na,
			Units: countf(s.Units)}
		if s.Status == "ok" {
			v.RelMDE = strings.TrimPrefix(pct(s.RelMDE, sigStat), "+")
			v.UnitsNeeded = countf(s.UnitsNeeded)
			v.DaysNeeded = dayWord(s.DaysNeeded)
			if s.DaysNeeded == 0 {
				v.DaysNeeded = "reached"
			}
		}
		out = append(out, v)
	}
	design := "fixed horizon"
	if d.Sequential.Enabled {
		design = "always-valid"
	}
	caption := "Days still needed to detect a " + numTrim(d.Sensitivity[0].TargetRelMDE*100, sigStat) + "%" +
		" relative effect (max_relative_mde) with the spec's power at the uncorrected α, " + design +
		" design, at the enrolment rate so far (units in the two arms compared ÷ days elapsed)."
	if d.Privacy.Enabled {
		caption += " Private run: the privacy noise is counted as if it were sampling variance, which shrinks more slowly, so these figures overstate what is needed."
	}
	return out, caption
}

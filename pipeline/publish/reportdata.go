package publish

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/report"
	"github.com/verity-analytics/verity/stats"
)

// ReportInput is everything report.html shows, taken from the same
// in-memory values that are written to the other outputs (never re-parsed).
type ReportInput struct {
	Spec      *expspec.Spec           `json:"-" yaml:"-"`
	Date      string                  `json:"-" yaml:"-"`
	Rows      []analysis.ResultRow    `json:"-" yaml:"-"`
	Decisions analysis.Decisions      `json:"-" yaml:"-"`
	Checks    []analysis.Check        `json:"-" yaml:"-"`
	Privacy   PrivacyInfo             `json:"-" yaml:"-"`
	Templates []engine.TemplateRecord `json:"-" yaml:"-"`
	Digest    string                  `json:"-" yaml:"-"`
	SpecHash  string                  `json:"-" yaml:"-"`
	DuckDB    string                  `json:"-" yaml:"-"`
	// Nightly is the series and anomaly view (nil: no earlier night).
	Nightly *Nightly `json:"-" yaml:"-"`
	// Adjusted are the variance-reduced estimates (nil: none listed).
	Adjusted []analysis.AdjustedRow `json:"-" yaml:"-"`
	// Interactions are the interaction tests (nil: none listed).
	Interactions []analysis.InteractionRow `json:"-" yaml:"-"`
	// FilterCounts are the rows each filter value matched (nil: no
	// filtered metric).
	FilterCounts []analysis.FilterCount `json:"-" yaml:"-"`
	// Drilldown are the drill-down rows (nil: the spec has none).
	Drilldown []analysis.DrillRow `json:"-" yaml:"-"`
}

// ratFloat converts an exact rational such as "3/250" to the nearest
// float64, or 0 when s is not one.
func ratFloat(s string) float64 {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0
	}
	f, _ := r.Float64()
	return f
}

// BuildReport fills the data report.html shows from a run's in-memory
// results, decisions, checks and provenance.
func BuildReport(in ReportInput) report.Data {
	st := in.Spec.Statistics
	d := report.Data{
		Experiment:     in.Spec.Experiment,
		Name:           in.Spec.Name,
		NominalDate:    in.Date,
		WindowStart:    in.Spec.Window.Start,
		WindowEnd:      in.Spec.Window.End,
		CILevel:        1 - st.Alpha,
		Alpha:          st.Alpha,
		Correction:     st.Correction,
		MaxRelativeMDE: st.MaxRelativeMDE,
		Verdict: report.Verdict{
			Verdict: in.Decisions.Verdict, Rule: in.Decisions.Rule, Reason: in.Decisions.Reason,
			Variants: in.Decisions.Variants,
			Criteria: in.Decisions.Criteria.Used, CriteriaChanged: in.Decisions.Criteria.Changed,
		},
		Provenance: report.Provenance{InputDigest: in.Digest, SpecSHA256: in.SpecHash, DuckDBVersion: in.DuckDB},
	}
	eff := EffectiveOf(in.Spec)
	d.Family, d.Nominal = eff.Correction.Family, eff.Correction.Nominal
	d.Settings = settingsOf(eff)
	d.Horizon = reportHorizon(in.Decisions.Horizon)
	d.Sequential = reportSequential(st)
	d.Verdict.Evidence = reportEvidence(in.Decisions.Evidence)
	d.SRM = reportSRM(in.Spec, in.Decisions.SRM)
	d.Checks = reportChecks(in.Checks)
	d.Privacy = reportPrivacy(in.Privacy)
	d.Provenance.Templates = reportTemplates(in.Templates)
	d.Guardrails = reportGuardrails(in.Spec.Metrics)
	d.Sensitivity = reportSensitivity(analysis.SensitivityOf(in.Spec, in.Rows, in.Decisions.Horizon))
	d.Rows = reportRows(in.Spec, in.Rows)
	for _, c := range in.Decisions.Caps {
		note := "capped at the pooled " + expspec.QuantileLabel(c.UpperQuantile) + " of the per-unit values (every arm of cohort (all)): "
		if c.Cap == nil {
			note += "no units, nothing capped"
		} else {
			note += analysis.FormatFloat(*c.Cap) + ", " + strconv.FormatUint(c.Capped, 10) + " of " + strconv.FormatUint(c.Units, 10) + " units above it"
		}
		for i := range d.Rows {
			if d.Rows[i].Metric == c.Metric {
				d.Rows[i].CapNote = note
			}
		}
	}
	for _, m := range in.Spec.Metrics {
		if m.Filter == nil {
			continue
		}
		note := filterNote(m, in.FilterCounts)
		for i := range d.Rows {
			if d.Rows[i].Metric == m.Name {
				d.Rows[i].FilterNote = note
			}
		}
	}
	d.Inference = reportInference(in.Rows)
	d.Series = reportSeries(in.Spec, in.Nightly)
	d.VarianceReduction = reportAdjusted(in.Adjusted)
	d.Interactions = reportInteractions(in.Interactions, in.Spec.InteractionAlpha())
	d.Drilldown = reportDrilldown(in.Drilldown)
	if b := in.Decisions.Bayes; b != nil {
		d.Engine, d.BayesRule = expspec.EngineBayesian, b.Rule.Rule
		d.BayesEvidence = reportBayesEvidence(b.Evidence)
	}
	return d
}

// reportBayesEvidence is the Bayesian verdict's evidence, in
// decisions.json order.
func reportBayesEvidence(evidence []stats.BayesEvidence) []report.BayesEvidence {
	var out []report.BayesEvidence
	for _, e := range evidence {
		out = append(out, report.BayesEvidence{Role: e.Role, Metric: e.Metric, Variant: e.Variant, Cohort: e.Cohort, Status: e.Status,
			Scale: e.Scale, Harmful: e.HarmfulDirection, Mean: report.Float(e.PosteriorMean), Low: report.Float(e.CredibleLow),
			High: report.Float(e.CredibleHigh), CredibleLevel: e.CredibleLevel, Chance: e.ChanceToBeatControl,
			RiskControl: e.RiskOfControl, RiskTreatment: e.RiskOfTreatment, Margin: e.Margin, ProbHarm: e.ProbabilityHarm,
			ProbWithin: e.ProbabilityWithinMargin, Outcome: e.Outcome, Fired: e.Fired})
	}
	return out
}

// reportInference is each extended row's posterior and test.
func reportInference(rows []analysis.ResultRow) []report.InferenceRow {
	var out []report.InferenceRow
	for _, r := range rows {
		e := r.Ext
		if e == nil {
			continue
		}
		ir := report.InferenceRow{Cohort: r.Cohort, Metric: r.Metric, Variant: r.Variant}
		if e.Engine == expspec.EngineBayesian {
			ir.Prior, ir.DecisionScale, ir.BayesStatus = e.Prior, e.DecisionScale, e.BayesStatus
			ir.PostRel, ir.RelLow, ir.RelHigh = e.PostRelMean, e.CredRelLow, e.CredRelHigh
			ir.PostAbs, ir.AbsLow, ir.AbsHigh = e.PostAbsMean, e.CredAbsLow, e.CredAbsHigh
			ir.Chance, ir.RiskControl, ir.RiskTreat = e.ChanceToBeatControl, e.RiskControl, e.RiskTreatment
		}
		if e.Test != "" {
			ir.Test, ir.Alternative, ir.TestScale, ir.TestStatus = e.Test, e.Alternative, e.TestScale, e.TestStatus
			ir.Null, ir.TestAlpha, ir.Statistic, ir.PValue = e.NullValue, e.TestAlpha, e.TestStatistic, e.TestPValue
			ir.TestLow, ir.TestHigh, ir.Reject = e.TestCILow, e.TestCIHigh, e.TestReject
		}
		out = append(out, ir)
	}
	return out
}

// reportHorizon is where the run stands in the design, for the page.
func reportHorizon(h analysis.Horizon) report.Horizon {
	return report.Horizon{PlannedEnd: h.PlannedEnd, DaysElapsed: h.DaysElapsed, DaysPlanned: h.DaysPlanned,
		DaysRemaining: h.DaysRemaining, Reached: h.Reached, FixedHorizon: h.Design == "fixed_horizon"}
}

// reportSequential describes always-valid intervals when the spec asks
// for them (zero otherwise).
func reportSequential(st expspec.Statistics) report.Sequential {
	if st.Sequential == nil {
		return report.Sequential{}
	}
	return report.Sequential{Enabled: true, Description: "always-valid confidence sequences (normal mixture), tuned for " + analysis.FormatFloat(st.Sequential.NStar) + " units: safe to read every night"}
}

// reportEvidence is the verdict's evidence, in decisions.json order.
func reportEvidence(evidence []stats.Evidence) []report.Evidence {
	var out []report.Evidence
	for _, e := range evidence {
		ev := report.Evidence{
			Role: e.Role, Metric: e.Metric, Variant: e.Variant, Cohort: e.Cohort, Status: e.Status,
			Scale: e.Scale, Desired: e.DesiredDirection, Harmful: e.HarmfulDirection, Estimate: report.Float(e.Estimate), Low: report.Float(e.Low),
			High: report.Float(e.High), CILevel: e.CILevel, Margin: e.Margin, PValue: report.Float(e.PValue), Outcome: e.Outcome, Fired: e.Fired,
		}
		if e.PValueAdjusted != nil {
			ev.PAdjusted = report.Float(*e.PValueAdjusted)
		}
		out = append(out, ev)
	}
	return out
}

// reportSRM is the overall sample-ratio-mismatch test with its arms; a
// cohort that mismatched marks it invalid and is named in its note.
func reportSRM(spec *expspec.Spec, checks []analysis.SRMCheck) report.SRM {
	var out report.SRM
	for _, s := range checks {
		if s.Cohort != expspec.AllCohort {
			continue
		}
		out = report.SRM{Invalid: s.Invalid, Threshold: s.Threshold}
		if s.Status == "ok" {
			out.PValue, out.ChiSquare = report.Float(s.PValue), report.Float(s.ChiSquare)
		} else {
			out.Note = s.Status
		}
		for i, v := range spec.Variants {
			out.Arms = append(out.Arms, report.SRMArm{Variant: v.Name, Observed: float64(s.Observed[i]), ExpectedShare: v.Allocation})
		}
	}
	var notes []string
	if out.Note != "" {
		notes = append(notes, out.Note)
	}
	for _, s := range checks {
		if s.Cohort != expspec.AllCohort && s.Invalid {
			out.Invalid = true
			notes = append(notes, fmt.Sprintf("cohort %s mismatched (Bonferroni-adjusted p %.3g)", s.Cohort, s.AdjPValue))
		}
	}
	out.Note = strings.Join(notes, "; ")
	return out
}

// reportChecks is every data-quality check. In a private run the checks
// are the noisy ones (their rules say so); the exact figures stay in the
// restricted record.
func reportChecks(checks []analysis.Check) []report.Check {
	var out []report.Check
	for _, c := range checks {
		out = append(out, report.Check{Name: c.Name, Observed: c.Observed, Warn: c.Warn, Block: c.Block, Rule: c.Rule, Severity: c.Severity, Outcome: c.Outcome, Detail: c.Detail})
	}
	return out
}

// reportPrivacy is the privacy card: mechanism, accounting, key and what
// this release costs.
func reportPrivacy(p PrivacyInfo) report.Privacy {
	out := report.Privacy{Enabled: p.Enabled}
	if !p.Enabled {
		return out
	}
	out.Mechanism, out.Accounting, out.KeyFingerprint = p.Mechanism, p.Accounting, p.KeyFingerprint
	// The page shows what this release costs, not what earlier runs
	// spent: a rerun must reproduce it byte for byte.
	out.Spent = ratFloat(p.RunCost)
	out.Total = ratFloat(p.Total)
	out.Remaining = math.NaN()
	if p.Budget != nil {
		out.Epsilon, out.Delta = p.Budget.Epsilon, p.Budget.Delta
	}
	out.Covers = p.Covers
	return out
}

// reportTemplates lists the templates' names, versions and SHA-256.
func reportTemplates(recs []engine.TemplateRecord) []report.Template {
	var out []report.Template
	for _, t := range recs {
		out = append(out, report.Template{Name: t.Name, Version: t.Version, SHA256: t.SHA256})
	}
	return out
}

// reportGuardrails lists the guardrail metrics with their margins, in
// spec order.
func reportGuardrails(metrics []expspec.Metric) []report.Guardrail {
	var out []report.Guardrail
	for _, m := range metrics {
		if m.Guardrail != nil {
			out = append(out, report.Guardrail{Metric: m.Name, Harmful: m.Guardrail.Harmful, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative})
		}
	}
	return out
}

// reportSensitivity is each goal comparison's distance to its target MDE.
func reportSensitivity(sens []analysis.Sensitivity) []report.Sensitivity {
	var out []report.Sensitivity
	for _, s := range sens {
		out = append(out, report.Sensitivity{Metric: s.Metric, Variant: s.Variant, TargetRelMDE: s.TargetRelMDE,
			RelMDE: s.RelMDE, Units: s.Units, UnitsNeeded: s.UnitsNeeded, DaysNeeded: s.DaysNeeded, Status: s.Status})
	}
	return out
}

// reportRows is one page row per result row, in results order, with its
// significance and tone.
func reportRows(spec *expspec.Spec, rows []analysis.ResultRow) []report.Row {
	metrics := map[string]expspec.Metric{}
	for _, m := range spec.Metrics {
		metrics[m.Name] = m
	}
	var out []report.Row
	for _, r := range rows {
		out = append(out, reportRow(r, metrics[r.Metric], spec.Statistics.Alpha))
	}
	return out
}

// reportRow is one comparison for the page: its numbers, flags, whether it
// is significant at alpha, and its tone.
func reportRow(r analysis.ResultRow, metric expspec.Metric, alpha float64) report.Row {
	row := report.Row{
		Cohort: r.Cohort, Metric: r.Metric, Kind: r.Kind, Variant: r.Variant, Control: r.Control,
		NControl: r.NControl, NVariant: r.NVariant, MeanControl: r.MeanControl, MeanVariant: r.MeanVariant,
		AbsEffect: r.AbsEffect, AbsLow: r.AbsCILow, AbsHigh: r.AbsCIHigh,
		RelEffect: r.RelEffect, RelLow: r.RelCILow, RelHigh: r.RelCIHigh,
		PValue: r.PValue, PAdjusted: r.PValueAdjusted, MDE: r.MDERel,
		Underpowered: r.Underpowered, SRM: r.SRM, NoiseScale: r.NoiseSDSum, Status: r.Status,
	}
	if r.CollapsedFrom != "" {
		row.CollapsedFrom = strings.Split(r.CollapsedFrom, ";")
	}
	if q := r.Quantile; q != nil {
		row.Quantile = expspec.QuantileLabel(q.Level)
		row.QuantileOverEvents = q.Over == expspec.OverEvents
		row.MeanControl, row.MeanVariant = q.QuantileControl, q.QuantileVariant
	}
	// Significant at the level the row is judged on: the adjusted
	// p-value in the correction family, else the raw one, which the
	// page then labels nominal.
	row.Corrected = r.Correction != "nominal" && r.Correction != ""
	p := r.PValue
	if row.Corrected {
		p = r.PValueAdjusted
	}
	row.Significant = r.Status == "ok" && p != nil && *p <= alpha
	row.Role = r.Role
	row.Tone = tone(metric, r.AbsEffect)
	return row
}

// tone says whether an effect goes the way the metric wants: a goal's
// desired direction, away from a guardrail's harmful one ("better"), or
// the other way ("worse"); "" for secondary metrics and zero effects.
func tone(m expspec.Metric, effect *float64) string {
	if effect == nil || *effect == 0 {
		return ""
	}
	up := *effect > 0
	switch {
	case m.Role == "goal":
		if up == (m.Direction != "decrease") {
			return "better"
		}
		return "worse"
	case m.Role == "guardrail" && m.Guardrail != nil:
		if up == (m.Guardrail.Harmful == "increase") {
			return "worse"
		}
		return "better"
	}
	return ""
}

// settingsOf lists the effective settings for the report, in words.
func settingsOf(e *Effective) []report.Setting {
	var out []report.Setting
	add := func(name, value string) { out = append(out, report.Setting{Name: name, Value: value}) }
	d := e.Design
	design := "fixed horizon: intervals and p-values hold at the planned end " + e.Horizon.PlannedEnd
	if d.Interval == "always_valid" {
		design = "sequential: always-valid intervals tuned for " + analysis.FormatFloat(d.NStar) + " units, safe to read every night"
	}
	add("design", design)
	add("significance level", "α = "+analysis.FormatFloat(d.Alpha)+" ("+analysis.FormatFloat(d.CILevel*100)+"% intervals)")
	c := e.Correction
	add("multiple-testing correction", c.Method+" over "+c.Family+"; nominal (not corrected): "+c.Nominal)
	add("sample-ratio test", "χ², invalid below p = "+analysis.FormatFloat(d.SRMThreshold)+"; "+d.SRMCohorts)
	add("power", "MDE at power "+analysis.FormatFloat(d.Power)+"; underpowered when the relative MDE exceeds "+analysis.FormatFloat(d.MaxRelativeMDE))
	add("fixed point", strconv.Itoa(d.FixedPointDecimals)+" decimals (values are exact integers in units of 10^-"+strconv.Itoa(d.FixedPointDecimals)+")")
	if d.CUPEDLookbackDays > 0 {
		add("CUPED", "covariate over the "+strconv.Itoa(d.CUPEDLookbackDays)+" days before exposure")
	}
	for _, m := range e.Metrics {
		v := m.Kind + " of " + strconv.Quote(m.Event) + ", " + m.Role + "; conversion window: " + m.Attribution + "; clamp " + m.Clamp
		if m.Denominator != "" {
			v += "; denominator: " + m.Denominator
		}
		if m.Covariate != "" {
			v += "; CUPED covariate: " + m.Covariate
		}
		if m.Quantile != "" {
			v += "; " + m.Quantile
		}
		if m.Cap != "" {
			v += "; " + m.Cap
		}
		add("metric "+m.Name, v)
	}
	var gates []string
	for _, g := range e.Gates {
		gates = append(gates, g.Name+" warn "+analysis.FormatFloat(g.Warn)+" block "+analysis.FormatFloat(g.Block)+" ("+g.Source+")")
	}
	add("quality gates", strings.Join(gates, "; "))
	if b := e.Engine; b != nil {
		risk := "not used"
		if b.MaxRisk != 0 {
			risk = analysis.FormatFloat(b.MaxRisk) + " (" + b.Scale + ")"
		}
		add("engine", "Bayesian ("+b.Model+"); credible level "+analysis.FormatFloat(b.CredibleLevel*100)+"%; chance to win threshold "+
			analysis.FormatFloat(b.ChanceToWin)+"; risk threshold "+risk+"; decision scale "+b.Scale+"; default prior "+b.DefaultPrior+"; "+b.Horizon)
	}
	for _, m := range e.Metrics {
		if m.Prior != "" {
			add("prior "+m.Name, m.Prior)
		}
		if t := m.Test; t != nil {
			add("test "+m.Name, t.Words)
		}
	}
	return out
}

// filterNote says which events a filtered metric counts and how many rows
// of its event each declared value matched in the inputs (and how many have
// the property NULL), flagging a value that matched none.
func filterNote(m expspec.Metric, counts []analysis.FilterCount) string {
	var conds, matched []string
	for _, col := range expspec.FilterColumns(m.Filter) {
		var vals []string
		for _, v := range m.Filter[col] {
			vals = append(vals, strconv.Quote(v))
		}
		conds = append(conds, col+" in {"+strings.Join(vals, ", ")+"}")
	}
	for _, c := range counts {
		if c.Metric != m.Name {
			continue
		}
		switch {
		case c.Value == nil:
			matched = append(matched, c.Column+" NULL "+strconv.FormatInt(c.Rows, 10))
		case c.Rows == 0:
			matched = append(matched, c.Column+"="+strconv.Quote(*c.Value)+" 0 — MATCHED NO ROW (check the value: matching is exact)")
		default:
			matched = append(matched, c.Column+"="+strconv.Quote(*c.Value)+" "+strconv.FormatInt(c.Rows, 10))
		}
	}
	return "filtered: only " + m.Event + " events with " + strings.Join(conds, " and ") +
		" (exact match, no trimming or case folding; NULL never matches); rows of " + m.Event + " in the inputs: " + strings.Join(matched, ", ")
}

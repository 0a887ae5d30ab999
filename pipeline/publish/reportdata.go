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
	h := in.Decisions.Horizon
	d.Horizon = report.Horizon{PlannedEnd: h.PlannedEnd, DaysElapsed: h.DaysElapsed, DaysPlanned: h.DaysPlanned,
		DaysRemaining: h.DaysRemaining, Reached: h.Reached, FixedHorizon: h.Design == "fixed_horizon"}
	if st.Sequential != nil {
		d.Sequential = report.Sequential{Enabled: true, Description: "always-valid confidence sequences (normal mixture), tuned for " + analysis.FormatFloat(st.Sequential.NStar) + " units: safe to read every night"}
	}
	for _, e := range in.Decisions.Evidence {
		d.Verdict.Evidence = append(d.Verdict.Evidence, report.Evidence{
			Role: e.Role, Metric: e.Metric, Variant: e.Variant, Cohort: e.Cohort, Status: e.Status,
			Scale: e.Scale, Desired: e.DesiredDirection, Harmful: e.HarmfulDirection, Estimate: report.Float(e.Estimate), Low: report.Float(e.Low),
			High: report.Float(e.High), Margin: e.Margin, PValue: report.Float(e.PValue), Outcome: e.Outcome, Fired: e.Fired,
		})
		if e.PValueAdjusted != nil {
			d.Verdict.Evidence[len(d.Verdict.Evidence)-1].PAdjusted = report.Float(*e.PValueAdjusted)
		}
	}
	for _, s := range in.Decisions.SRM {
		if s.Cohort != expspec.AllCohort {
			continue
		}
		d.SRM = report.SRM{Invalid: s.Invalid, Threshold: s.Threshold}
		if s.Status == "ok" {
			d.SRM.PValue, d.SRM.ChiSquare = report.Float(s.PValue), report.Float(s.ChiSquare)
		} else {
			d.SRM.Note = s.Status
		}
		for i, v := range in.Spec.Variants {
			d.SRM.Arms = append(d.SRM.Arms, report.SRMArm{Variant: v.Name, Observed: float64(s.Observed[i]), ExpectedShare: v.Allocation})
		}
	}
	var notes []string
	if d.SRM.Note != "" {
		notes = append(notes, d.SRM.Note)
	}
	for _, s := range in.Decisions.SRM {
		if s.Cohort != expspec.AllCohort && s.Invalid {
			d.SRM.Invalid = true
			notes = append(notes, fmt.Sprintf("cohort %s mismatched (Bonferroni-adjusted p %.3g)", s.Cohort, s.AdjPValue))
		}
	}
	d.SRM.Note = strings.Join(notes, "; ")
	for _, c := range in.Checks {
		// In a private run the checks are the noisy ones (their rules say
		// so); the exact figures stay in the restricted record.
		d.Checks = append(d.Checks, report.Check{Name: c.Name, Observed: c.Observed, Warn: c.Warn, Block: c.Block, Rule: c.Rule, Severity: c.Severity, Outcome: c.Outcome, Detail: c.Detail})
	}
	p := in.Privacy
	d.Privacy = report.Privacy{Enabled: p.Enabled}
	if p.Enabled {
		d.Privacy.Mechanism, d.Privacy.Accounting, d.Privacy.KeyFingerprint = p.Mechanism, p.Accounting, p.KeyFingerprint
		// The page shows what this release costs, not what earlier runs
		// spent: a rerun must reproduce it byte for byte.
		d.Privacy.Spent = ratFloat(p.RunCost)
		d.Privacy.Total = ratFloat(p.Total)
		d.Privacy.Remaining = math.NaN()
		if p.Budget != nil {
			d.Privacy.Epsilon, d.Privacy.Delta = p.Budget.Epsilon, p.Budget.Delta
		}
		d.Privacy.Covers = p.Covers
	}
	for _, t := range in.Templates {
		d.Provenance.Templates = append(d.Provenance.Templates, report.Template{Name: t.Name, Version: t.Version, SHA256: t.SHA256})
	}
	for _, m := range in.Spec.Metrics {
		if m.Guardrail != nil {
			d.Guardrails = append(d.Guardrails, report.Guardrail{Metric: m.Name, Harmful: m.Guardrail.Harmful, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative})
		}
	}
	for _, s := range analysis.SensitivityOf(in.Spec, in.Rows, in.Decisions.Horizon) {
		d.Sensitivity = append(d.Sensitivity, report.Sensitivity{Metric: s.Metric, Variant: s.Variant, TargetRelMDE: s.TargetRelMDE,
			RelMDE: s.RelMDE, Units: s.Units, UnitsNeeded: s.UnitsNeeded, DaysNeeded: s.DaysNeeded, Status: s.Status})
	}
	metrics := map[string]expspec.Metric{}
	for _, m := range in.Spec.Metrics {
		metrics[m.Name] = m
	}
	for _, r := range in.Rows {
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
		// Significant at the level the row is judged on: the adjusted
		// p-value in the correction family, else the raw one, which the
		// page then labels nominal.
		row.Corrected = r.Correction != "nominal" && r.Correction != ""
		p := r.PValue
		if row.Corrected {
			p = r.PValueAdjusted
		}
		row.Significant = r.Status == "ok" && p != nil && *p <= st.Alpha
		row.Role = r.Role
		row.Tone = tone(metrics[r.Metric], r.AbsEffect)
		d.Rows = append(d.Rows, row)
	}
	return d
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
		add("metric "+m.Name, v)
	}
	var gates []string
	for _, g := range e.Gates {
		gates = append(gates, g.Name+" warn "+analysis.FormatFloat(g.Warn)+" block "+analysis.FormatFloat(g.Block)+" ("+g.Source+")")
	}
	add("quality gates", strings.Join(gates, "; "))
	return out
}

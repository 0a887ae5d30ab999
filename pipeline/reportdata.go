package pipeline

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/verity-analytics/verity/pipeline/report"
)

// reportInput is everything report.html shows, taken from the same
// in-memory values that are written to the other outputs (never re-parsed).
type reportInput struct {
	spec      *Spec
	date      string
	rows      []ResultRow
	decisions Decisions
	checks    []Check
	privacy   PrivacyInfo
	templates []TemplateRecord
	digest    string
	specHash  string
	duckdb    string
}

func ratFloat(s string) float64 {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0
	}
	f, _ := r.Float64()
	return f
}

func buildReport(in reportInput) report.Data {
	st := in.spec.Statistics
	d := report.Data{
		Experiment:  in.spec.Experiment,
		NominalDate: in.date,
		WindowStart: in.spec.Window.Start,
		WindowEnd:   in.spec.Window.End,
		CILevel:     1 - st.Alpha,
		Correction:  st.Correction,
		Verdict: report.Verdict{
			Verdict: in.decisions.Verdict, Rule: in.decisions.Rule, Reason: in.decisions.Reason,
			Variants: in.decisions.Variants,
		},
		Provenance: report.Provenance{InputDigest: in.digest, SpecSHA256: in.specHash, DuckDBVersion: in.duckdb},
	}
	h := in.decisions.Horizon
	d.Horizon = report.Horizon{PlannedEnd: h.PlannedEnd, DaysElapsed: h.DaysElapsed, DaysPlanned: h.DaysPlanned,
		DaysRemaining: h.DaysRemaining, Reached: h.Reached, FixedHorizon: h.Design == "fixed_horizon"}
	if st.Sequential != nil {
		d.Sequential = report.Sequential{Enabled: true, Description: "always-valid confidence sequences (normal mixture), tuned for " + FormatFloat(st.Sequential.NStar) + " units: safe to read every night"}
	}
	for _, e := range in.decisions.Evidence {
		d.Verdict.Evidence = append(d.Verdict.Evidence, report.Evidence{
			Role: e.Role, Metric: e.Metric, Variant: e.Variant, Cohort: e.Cohort, Status: e.Status,
			Scale: e.Scale, Desired: e.DesiredDirection, Harmful: e.HarmfulDirection, Estimate: report.Float(e.Estimate), Low: report.Float(e.Low),
			High: report.Float(e.High), Margin: e.Margin, PValue: report.Float(e.PValue), Outcome: e.Outcome, Fired: e.Fired,
		})
		if e.PValueAdjusted != nil {
			d.Verdict.Evidence[len(d.Verdict.Evidence)-1].PAdjusted = report.Float(*e.PValueAdjusted)
		}
	}
	for _, s := range in.decisions.SRM {
		if s.Cohort != AllCohort {
			continue
		}
		d.SRM = report.SRM{Invalid: s.Invalid, Threshold: s.Threshold}
		if s.Status == "ok" {
			d.SRM.PValue, d.SRM.ChiSquare = report.Float(s.PValue), report.Float(s.ChiSquare)
		} else {
			d.SRM.Note = s.Status
		}
		for i, v := range in.spec.Variants {
			d.SRM.Arms = append(d.SRM.Arms, report.SRMArm{Variant: v.Name, Observed: float64(s.Observed[i]), ExpectedShare: v.Allocation})
		}
	}
	var notes []string
	if d.SRM.Note != "" {
		notes = append(notes, d.SRM.Note)
	}
	for _, s := range in.decisions.SRM {
		if s.Cohort != AllCohort && s.Invalid {
			d.SRM.Invalid = true
			notes = append(notes, fmt.Sprintf("cohort %s mismatched (Bonferroni-adjusted p %.3g)", s.Cohort, s.AdjPValue))
		}
	}
	d.SRM.Note = strings.Join(notes, "; ")
	for _, c := range in.checks {
		rc := report.Check{Name: c.Name, Observed: c.Observed, Threshold: c.Threshold, Rule: c.Rule, Severity: c.Severity, Outcome: c.Outcome}
		if in.privacy.Enabled {
			// The page is part of the private release; the exact quality
			// figures are operator data (quality.json), not released.
			rc.Observed = math.NaN()
			rc.Rule += " (exact figure withheld from this private release: see quality.json, for operators)"
		}
		d.Checks = append(d.Checks, rc)
	}
	p := in.privacy
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
	}
	for _, t := range in.templates {
		d.Provenance.Templates = append(d.Provenance.Templates, report.Template{Name: t.Name, Version: t.Version, SHA256: t.SHA256})
	}
	for _, m := range in.spec.Metrics {
		if m.Guardrail != nil {
			d.Guardrails = append(d.Guardrails, report.Guardrail{Metric: m.Name, Harmful: m.Guardrail.Harmful, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative})
		}
	}
	for _, r := range in.rows {
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
		// Significant at the level the row reports: the adjusted p-value
		// when the row is in the correction family, else the raw one.
		p := r.PValue
		if r.PValueAdjusted != nil {
			p = r.PValueAdjusted
		}
		row.Significant = r.Status == "ok" && p != nil && *p <= st.Alpha
		d.Rows = append(d.Rows, row)
	}
	return d
}

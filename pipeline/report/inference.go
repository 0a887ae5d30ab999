package report

import "strings"

// Bayesian engine and hypothesis tests on the page. A Bayesian spec's
// numbers are labelled as what they are — posterior means, credible
// intervals, chance to beat control, risk (expected loss) — never as
// p-values or confidence intervals; a test's p-value says which test.

// BayesEvidence is one posterior behind a Bayesian verdict (decisions.json).
type BayesEvidence struct {
	Role, Metric, Variant, Cohort, Status, Scale string
	Harmful                                      string // a guardrail's harmful direction
	Mean, Low, High                              *float64
	CredibleLevel                                float64
	Chance, RiskControl, RiskTreatment           *float64 // goals
	Margin, ProbHarm, ProbWithin                 *float64 // guardrails
	Outcome                                      string
	Fired                                        bool
}

// InferenceRow is one result row's Bayesian posterior and/or hypothesis
// test (the results' extended columns).
type InferenceRow struct {
	Cohort, Metric, Variant string
	// Bayesian (Prior empty when not Bayesian).
	Prior, DecisionScale, BayesStatus string
	PostRel, RelLow, RelHigh          *float64
	PostAbs, AbsLow, AbsHigh          *float64
	Chance, RiskControl, RiskTreat    *float64
	// Test (Test empty when the metric states no hypothesis).
	Test, Alternative, TestScale, TestStatus string
	Null, TestAlpha, Statistic, PValue       *float64
	TestLow, TestHigh                        *float64
	Reject                                   *bool
}

type bayesEvidenceView struct {
	Role, Metric, Cohort, Variant, Estimate, Interval, Scale, Chance, RiskT, RiskC, Margin, PHarm, PWithin, Outcome, Status string
	Fired, Harm                                                                                                             bool
}

type inferenceView struct {
	Cohort, Metric, Variant                                          string
	Prior, Rel, RelCI, Abs, AbsCI, Chance, RiskC, RiskT, BayesStatus string
	Test, Alternative, TestScale, Null, TestAlpha, Statistic, P, Set string
	Reject, TestStatus                                               string
}

func fmtScaled(p *float64, scale string, sig int) string {
	v, ok := get(p)
	if !ok {
		return na
	}
	if scale == "relative" {
		return pct(v, sig)
	}
	return signed(v, sig)
}

func prob(p *float64) string {
	v, ok := get(p)
	if !ok {
		return na
	}
	return strings.TrimPrefix(pct(v, sigEffect), "+")
}

func buildBayesEvidence(e BayesEvidence) bayesEvidenceView {
	v := bayesEvidenceView{Role: e.Role, Metric: e.Metric, Cohort: e.Cohort, Variant: e.Variant, Scale: e.Scale,
		Estimate: na, Chance: "—", RiskT: "—", RiskC: "—", Margin: "—", PHarm: "—", PWithin: "—",
		Outcome: e.Outcome, Status: e.Status, Fired: e.Fired, Harm: e.Role == "guardrail" && e.Outcome == "harm beyond margin"}
	if e.Status == "ok" {
		v.Estimate = fmtScaled(e.Mean, e.Scale, sigEffect)
		v.Interval = "[" + fmtScaled(e.Low, e.Scale, sigEffect) + ", " + fmtScaled(e.High, e.Scale, sigEffect) + "]"
	}
	if e.Role == "goal" {
		v.Chance, v.RiskT, v.RiskC = prob(e.Chance), fmtScaled(e.RiskTreatment, e.Scale, sigEffect), fmtScaled(e.RiskControl, e.Scale, sigEffect)
	}
	if e.Margin != nil {
		v.Margin = fmtScaled(e.Margin, e.Scale, sigEffect)
		switch e.Harmful {
		case "increase":
			v.Margin += " ↑"
		case "decrease":
			v.Margin += " ↓"
		}
		v.PHarm, v.PWithin = prob(e.ProbHarm), prob(e.ProbWithin)
	}
	return v
}

func buildInference(r InferenceRow) inferenceView {
	v := inferenceView{Cohort: r.Cohort, Metric: r.Metric, Variant: r.Variant}
	if r.Prior != "" {
		v.Prior, v.BayesStatus = r.Prior, r.BayesStatus
		v.Rel, v.Abs = fmtScaled(r.PostRel, "relative", sigEffect), fmtScaled(r.PostAbs, "absolute", sigEffect)
		v.RelCI = "[" + fmtScaled(r.RelLow, "relative", sigEffect) + ", " + fmtScaled(r.RelHigh, "relative", sigEffect) + "]"
		v.AbsCI = "[" + fmtScaled(r.AbsLow, "absolute", sigEffect) + ", " + fmtScaled(r.AbsHigh, "absolute", sigEffect) + "]"
		v.Chance = prob(r.Chance)
		v.RiskC, v.RiskT = fmtScaled(r.RiskControl, r.DecisionScale, sigEffect), fmtScaled(r.RiskTreat, r.DecisionScale, sigEffect)
	}
	if r.Test != "" {
		v.Test, v.Alternative, v.TestScale, v.TestStatus = r.Test, r.Alternative, r.TestScale, r.TestStatus
		v.Null = fmtScaled(r.Null, r.TestScale, sigEffect)
		v.TestAlpha = numTrim(deref(r.TestAlpha), sigStat)
		v.Statistic, v.P = na, na
		if s, ok := get(r.Statistic); ok {
			v.Statistic = num(s, sigStat)
		}
		if p, ok := get(r.PValue); ok {
			v.P = pval(p)
		}
		lo, hi := "−∞", "+∞"
		if r.TestLow != nil {
			lo = fmtScaled(r.TestLow, r.TestScale, sigEffect)
		}
		if r.TestHigh != nil {
			hi = fmtScaled(r.TestHigh, r.TestScale, sigEffect)
		}
		v.Set = "[" + lo + ", " + hi + "]"
		v.Reject = "no"
		if r.Reject != nil && *r.Reject {
			v.Reject = "yes"
		}
		if r.Reject == nil {
			v.Reject = na
		}
	}
	return v
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

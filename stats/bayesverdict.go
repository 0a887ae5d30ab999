package stats

import (
	"fmt"
	"strings"
)

// The verdict of the Bayesian engine, in the order of Decide's rules:
//
//  1. invalid (RuleSRM) on a sample-ratio mismatch;
//  2. in_progress (RuleBeforeHorizon) before the planned end: the engine
//     decides once, at the planned end, as a fixed-horizon design does
//     (nightly posteriors are progress; read every night, the chance to
//     win crosses any threshold far more often than its complement says);
//  3. rollback (RuleBayesGuardrailHarm) when a guardrail's posterior
//     probability of harm beyond its margin, P(δ beyond m on the harmful
//     side), reaches rule.MinChanceToWin;
//  4. ship (RuleBayesGoalWin) when some variant has a goal for which
//     DecideBayes ships (chance to beat control ≥ MinChanceToWin, risk of
//     the treatment ≤ MaxRisk where set) and every guardrail of that
//     variant is non-inferior: P(δ within the margin) ≥ MinChanceToWin;
//  5. hold otherwise (RuleBayesGuardrailUnconfirmed, RuleBayesNoGoalWin).
//
// A goal for which control wins is reported ("control wins") but, as with
// the frequentist rules, only a guardrail rolls back. With m the margin
// signed in the harmful direction on the guardrail's scale and the
// posterior N(μ, σ²): P(harm) = Φ((μ − m)/σ) for a harmful increase and
// Φ((m − μ)/σ) for a harmful decrease; P(within) = 1 − P(harm).

// Rules of the Bayesian verdict.
const (
	RuleBayesGuardrailHarm        = "bayes_guardrail_harm"
	RuleBayesGoalWin              = "bayes_goal_wins_guardrails_ok"
	RuleBayesGuardrailUnconfirmed = "bayes_guardrail_not_confirmed"
	RuleBayesNoGoalWin            = "bayes_no_goal_wins"
)

// Outcomes of a Bayesian goal.
const (
	OutcomeTreatmentWins = "treatment wins"
	OutcomeControlWins   = "control wins"
	OutcomeUndecided     = "undecided"
)

// BayesGoal is one goal's posterior for one variant and cohort.
type BayesGoal struct {
	Metric, Variant, Cohort string
	Desired                 Direction
	Result                  BayesResult
}

// BayesGuardrail is one guardrail's posterior for one variant and cohort.
type BayesGuardrail struct {
	Guardrail
	Variant, Cohort string
	Result          BayesResult
}

// BayesEvidence is one posterior behind a Bayesian verdict. Every field
// means one thing for every role; one that does not apply is omitted.
type BayesEvidence struct {
	Role    string `json:"role"` // goal or guardrail
	Metric  string `json:"metric"`
	Variant string `json:"variant"`
	Cohort  string `json:"cohort"`
	Status  string `json:"status"` // the posterior's status (ok when usable)
	Scale   string `json:"scale"`  // relative or absolute: the posterior read
	// DesiredDirection is a goal's; HarmfulDirection a guardrail's.
	DesiredDirection string `json:"desired_direction,omitempty"`
	HarmfulDirection string `json:"harmful_direction,omitempty"`
	// PosteriorMean and PosteriorSD are the normal posterior's, and
	// CredibleLow/High its equal-tailed interval at CredibleLevel; zero
	// when Status is not ok.
	PosteriorMean float64 `json:"posterior_mean"`
	PosteriorSD   float64 `json:"posterior_sd"`
	CredibleLow   float64 `json:"credible_low"`
	CredibleHigh  float64 `json:"credible_high"`
	CredibleLevel float64 `json:"credible_level"`
	// ChanceToBeatControl, RiskOfControl and RiskOfTreatment are a goal's
	// posterior probability of an effect in the desired direction and the
	// expected loss of each choice (on Scale).
	ChanceToBeatControl *float64 `json:"chance_to_beat_control,omitempty"`
	RiskOfControl       *float64 `json:"risk_of_control,omitempty"`
	RiskOfTreatment     *float64 `json:"risk_of_treatment,omitempty"`
	// Margin is a guardrail's, signed in the harmful direction;
	// ProbabilityHarm = P(effect beyond it), ProbabilityWithinMargin its
	// complement.
	Margin                  *float64 `json:"margin,omitempty"`
	ProbabilityHarm         *float64 `json:"probability_harm_beyond_margin,omitempty"`
	ProbabilityWithinMargin *float64 `json:"probability_within_margin,omitempty"`
	Outcome                 string   `json:"outcome"`
	Fired                   bool     `json:"fired"`
}

// BayesVerdict is the verdict of DecideBayesUnder.
type BayesVerdict struct {
	Verdict, Rule, Reason string
	Variants              []string
	Evidence              []BayesEvidence // every goal, then every guardrail, in input order
}

// DecideBayesUnder applies the Bayesian rules above. rule.Scale is the
// scale of the goals' posteriors; guardrails read their own scale.
func DecideBayesUnder(goals []BayesGoal, guardrails []BayesGuardrail, rule BayesRule, c Conditions) BayesVerdict {
	d := BayesVerdict{Evidence: make([]BayesEvidence, 0, len(goals)+len(guardrails))}
	var variants []string
	seen := map[string]bool{}
	for _, g := range goals {
		d.Evidence = append(d.Evidence, bayesGoalEvidence(g, rule))
		if !seen[g.Variant] {
			seen[g.Variant] = true
			variants = append(variants, g.Variant)
		}
	}
	nGoals := len(d.Evidence)
	for _, g := range guardrails {
		d.Evidence = append(d.Evidence, bayesGuardrailEvidence(g, rule.MinChanceToWin))
	}
	goalEv, guards := d.Evidence[:nGoals], d.Evidence[nGoals:]
	switch {
	case c.SRMInvalid:
		d.Verdict, d.Rule = VerdictInvalid, RuleSRM
		d.Reason = "sample-ratio mismatch: the allocation differs from the design, so no verdict"
		return d
	case c.BeforeHorizon:
		d.Verdict, d.Rule = VerdictInProgress, RuleBeforeHorizon
		d.Reason = "the Bayesian engine decides at the planned end: before it, the posteriors are progress, not a decision (a chance to win read every night crosses its threshold far more often than once)"
		return d
	}
	var harmful []string
	for i := range guards {
		if guards[i].Outcome == OutcomeHarm {
			guards[i].Fired = true
			if !contains(harmful, guards[i].Variant) {
				harmful = append(harmful, guards[i].Variant)
			}
		}
	}
	if len(harmful) > 0 {
		d.Verdict, d.Rule, d.Variants = VerdictRollback, RuleBayesGuardrailHarm, harmful
		d.Reason = fmt.Sprintf("a guardrail's posterior probability of harm beyond its margin reaches %s in variant(s) %q", fmtG(rule.MinChanceToWin), harmful)
		return d
	}
	goalWon := false
	for _, v := range variants {
		won := false
		for i := range goalEv {
			won = won || (goalEv[i].Variant == v && goalEv[i].Outcome == OutcomeTreatmentWins)
		}
		if !won {
			continue
		}
		goalWon = true
		ok := true
		for _, g := range guards {
			ok = ok && (g.Variant != v || g.Outcome == OutcomeNonInferior)
		}
		if !ok {
			continue
		}
		d.Variants = append(d.Variants, v)
		for i := range goalEv {
			if goalEv[i].Variant == v && goalEv[i].Outcome == OutcomeTreatmentWins {
				goalEv[i].Fired = true
			}
		}
		for i := range guards {
			if guards[i].Variant == v {
				guards[i].Fired = true
			}
		}
	}
	switch {
	case len(d.Variants) > 0:
		d.Verdict, d.Rule = VerdictShip, RuleBayesGoalWin
		d.Reason = fmt.Sprintf("a goal's chance to beat control reaches %s%s and every guardrail is within its margin with probability at least %s in variant(s) %q",
			fmtG(rule.MinChanceToWin), riskWords(rule), fmtG(rule.MinChanceToWin), d.Variants)
	case goalWon:
		d.Verdict, d.Rule = VerdictHold, RuleBayesGuardrailUnconfirmed
		d.Reason = fmt.Sprintf("a goal's chance to beat control reaches %s but a guardrail is not within its margin with probability %s", fmtG(rule.MinChanceToWin), fmtG(rule.MinChanceToWin))
		for i := range guards {
			if guards[i].Outcome != OutcomeNonInferior {
				guards[i].Fired = true
			}
		}
	default:
		d.Verdict, d.Rule = VerdictHold, RuleBayesNoGoalWin
		d.Reason = fmt.Sprintf("no goal's chance to beat control reaches %s%s", fmtG(rule.MinChanceToWin), riskWords(rule))
	}
	return d
}

func riskWords(rule BayesRule) string {
	if rule.MaxRisk == 0 {
		return ""
	}
	return fmt.Sprintf(" with a %v risk of shipping at most %s", rule.Scale, fmtG(rule.MaxRisk))
}

func fmtG(v float64) string { return strings.TrimSpace(fmt.Sprintf("%g", v)) }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// posteriorOn returns r's posterior on scale and its status.
func posteriorOn(r BayesResult, scale EffectScale) (Posterior, string) {
	if scale == ScaleAbsolute {
		return r.Absolute, r.AbsoluteStatus
	}
	return r.Relative, r.RelativeStatus
}

func bayesGoalEvidence(g BayesGoal, rule BayesRule) BayesEvidence {
	p, status := posteriorOn(g.Result, rule.Scale)
	e := BayesEvidence{Role: "goal", Metric: g.Metric, Variant: g.Variant, Cohort: g.Cohort, Status: status,
		Scale: rule.Scale.String(), DesiredDirection: g.Desired.String(), CredibleLevel: 1 - g.Result.Alpha}
	if status != StatusOK {
		e.Outcome = OutcomeInvalid
		return e
	}
	e.PosteriorMean, e.PosteriorSD, e.CredibleLow, e.CredibleHigh = p.Mean, p.SD, p.Low, p.High
	ctw, rc, rt := p.ChanceToWin, p.RiskControl, p.RiskTreatment
	e.ChanceToBeatControl, e.RiskOfControl, e.RiskOfTreatment = &ctw, &rc, &rt
	switch DecideBayes(g.Result, rule).Verdict {
	case VerdictShip:
		e.Outcome = OutcomeTreatmentWins
	case VerdictRollback:
		e.Outcome = OutcomeControlWins
	default:
		e.Outcome = OutcomeUndecided
	}
	return e
}

func bayesGuardrailEvidence(g BayesGuardrail, threshold float64) BayesEvidence {
	scale := ScaleAbsolute
	if g.Relative {
		scale = ScaleRelative
	}
	p, status := posteriorOn(g.Result, scale)
	e := BayesEvidence{Role: "guardrail", Metric: g.Metric, Variant: g.Variant, Cohort: g.Cohort, Status: status,
		Scale: scale.String(), HarmfulDirection: g.Harmful.String(), CredibleLevel: 1 - g.Result.Alpha}
	m := g.Margin
	if !finite(m) || m < 0 {
		e.Outcome = OutcomeInvalid
		return e
	}
	if g.Harmful == Decrease {
		m = -m
	}
	e.Margin = &m
	switch {
	case status == StatusControlMeanZero && g.Relative && g.Result.HasAbsolute():
		// No relative posterior (zero control mean): neither harm nor
		// non-inferiority is shown; it blocks a ship, cannot roll back.
		e.Outcome = OutcomeInconclusive
		return e
	case status != StatusOK:
		e.Outcome = OutcomeInvalid
		return e
	}
	e.PosteriorMean, e.PosteriorSD, e.CredibleLow, e.CredibleHigh = p.Mean, p.SD, p.Low, p.High
	harm := normalCDF((p.Mean - m) / p.SD)
	if g.Harmful == Decrease {
		harm = normalCDF((m - p.Mean) / p.SD)
	}
	within := 1 - harm
	e.ProbabilityHarm, e.ProbabilityWithinMargin = &harm, &within
	switch {
	case harm >= threshold:
		e.Outcome = OutcomeHarm
	case within >= threshold:
		e.Outcome = OutcomeNonInferior
	default:
		e.Outcome = OutcomeInconclusive
	}
	return e
}

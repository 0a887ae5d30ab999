package stats

import (
	"math"
	"testing"
)

// TestDecideBayesUnder: the Bayesian verdict follows the frequentist
// order (invalid, in progress, guardrail harm, goal win with guardrails
// within margin, hold), and a guardrail's probabilities are the normal
// posterior's tail beyond its margin.
func TestDecideBayesUnder(t *testing.T) {
	post := func(mean, sd float64) BayesResult {
		p := normalPosterior(mean, sd, 0.05, Increase)
		return BayesResult{Alpha: 0.05, Status: StatusOK, AbsoluteStatus: StatusOK, RelativeStatus: StatusOK, Absolute: p, Relative: p}
	}
	rule := BayesRule{MinChanceToWin: 0.95}
	win := BayesGoal{Metric: "g", Variant: "t", Cohort: "(all)", Desired: Increase, Result: post(0.05, 0.02)} // P(δ>0) = Φ(2.5) = 0.9938
	flat := BayesGoal{Metric: "g", Variant: "t", Cohort: "(all)", Desired: Increase, Result: post(0.01, 0.02)}
	// Guardrail harmful when it decreases beyond 0.05 (relative).
	guard := func(mean, sd float64) BayesGuardrail {
		return BayesGuardrail{Guardrail: Guardrail{Metric: "r", Harmful: Decrease, Margin: 0.05, Relative: true}, Variant: "t", Cohort: "(all)", Result: post(mean, sd)}
	}
	tests := []struct {
		name        string
		goals       []BayesGoal
		guards      []BayesGuardrail
		c           Conditions
		verdict     string
		rule        string
		guardOutcom string
	}{
		{"srm first", []BayesGoal{win}, []BayesGuardrail{guard(-0.2, 0.01)}, Conditions{SRMInvalid: true}, VerdictInvalid, RuleSRM, OutcomeHarm},
		{"before horizon", []BayesGoal{win}, []BayesGuardrail{guard(0, 0.01)}, Conditions{BeforeHorizon: true}, VerdictInProgress, RuleBeforeHorizon, OutcomeNonInferior},
		{"harm rolls back", []BayesGoal{win}, []BayesGuardrail{guard(-0.08, 0.01)}, Conditions{}, VerdictRollback, RuleBayesGuardrailHarm, OutcomeHarm},
		{"ship", []BayesGoal{win}, []BayesGuardrail{guard(0, 0.01)}, Conditions{}, VerdictShip, RuleBayesGoalWin, OutcomeNonInferior},
		{"guardrail unsure", []BayesGoal{win}, []BayesGuardrail{guard(-0.04, 0.02)}, Conditions{}, VerdictHold, RuleBayesGuardrailUnconfirmed, OutcomeInconclusive},
		{"no win", []BayesGoal{flat}, []BayesGuardrail{guard(0, 0.01)}, Conditions{}, VerdictHold, RuleBayesNoGoalWin, OutcomeNonInferior},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideBayesUnder(tc.goals, tc.guards, rule, tc.c)
			if v.Verdict != tc.verdict || v.Rule != tc.rule {
				t.Fatalf("got %s/%s (%s), want %s/%s", v.Verdict, v.Rule, v.Reason, tc.verdict, tc.rule)
			}
			g := v.Evidence[len(v.Evidence)-1]
			if g.Outcome != tc.guardOutcom {
				t.Errorf("guardrail outcome %q, want %q", g.Outcome, tc.guardOutcom)
			}
			// P(δ < −0.05) for the posterior N(mean, sd²).
			want := 0.5 * math.Erfc(-((-0.05-g.PosteriorMean)/g.PosteriorSD)/math.Sqrt2)
			if math.Abs(*g.ProbabilityHarm-want) > 1e-15 || math.Abs(*g.ProbabilityHarm+*g.ProbabilityWithinMargin-1) > 1e-15 {
				t.Errorf("P(harm) = %v, want %v", *g.ProbabilityHarm, want)
			}
		})
	}
	// A goal for which control wins does not roll back: only guardrails do.
	lose := BayesGoal{Metric: "g", Variant: "t", Cohort: "(all)", Desired: Increase, Result: post(-0.05, 0.02)}
	v := DecideBayesUnder([]BayesGoal{lose}, nil, rule, Conditions{})
	if v.Verdict != VerdictHold || v.Evidence[0].Outcome != OutcomeControlWins {
		t.Errorf("control wins: %s, %s", v.Verdict, v.Evidence[0].Outcome)
	}
	// A risk threshold holds a ship whose risk of shipping is too high.
	v = DecideBayesUnder([]BayesGoal{win}, nil, BayesRule{MinChanceToWin: 0.95, MaxRisk: 1e-9}, Conditions{})
	if v.Verdict != VerdictHold || v.Evidence[0].Outcome != OutcomeUndecided {
		t.Errorf("risk threshold: %s, %s", v.Verdict, v.Evidence[0].Outcome)
	}
}

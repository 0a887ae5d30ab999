package stats

import (
	"fmt"
	"math"
	"strconv"
)

// Rules of a BayesDecision.
const (
	RuleBayesNoPosterior = "bayes_no_posterior" // hold: the posterior on the rule's scale is not available
	RuleBayesShip        = "bayes_treatment_wins"
	RuleBayesRollback    = "bayes_control_wins"
	RuleBayesUndecided   = "bayes_undecided" // hold: neither choice meets the thresholds
)

// BayesRule is a decision rule on a posterior, in GrowthBook's terms:
// chance to win and risk (expected loss) thresholds. At least one of the
// two thresholds must be set.
type BayesRule struct {
	// MinChanceToWin, in (0.5, 1), or 0 for unused: shipping needs
	// ChanceToWin ≥ MinChanceToWin, rolling back ChanceToWin ≤ 1 − MinChanceToWin.
	// GrowthBook's default is 0.95.
	MinChanceToWin float64
	// MaxRisk ≥ 0, or 0 for unused: shipping needs RiskTreatment ≤ MaxRisk,
	// rolling back RiskControl ≤ MaxRisk (on Scale: a relative risk of
	// 0.0025 is GrowthBook's default "acceptable risk" of 0.25%).
	MaxRisk float64
	// Scale selects the posterior the rule reads (relative by default).
	Scale EffectScale
}

// Validate reports whether the rule is usable.
func (r BayesRule) Validate() error {
	switch {
	case r.MinChanceToWin != 0 && !(r.MinChanceToWin > 0.5 && r.MinChanceToWin < 1):
		return fmt.Errorf("%w: chance-to-win threshold %v not in (0.5, 1)", ErrInvalidInput, r.MinChanceToWin)
	case !(r.MaxRisk >= 0) || math.IsInf(r.MaxRisk, 0):
		return fmt.Errorf("%w: risk threshold %v", ErrInvalidInput, r.MaxRisk)
	case r.MinChanceToWin == 0 && r.MaxRisk == 0:
		return fmt.Errorf("%w: a Bayesian rule needs a chance-to-win or a risk threshold", ErrInvalidInput)
	case r.Scale != ScaleRelative && r.Scale != ScaleAbsolute:
		return fmt.Errorf("%w: scale %v", ErrInvalidInput, r.Scale)
	}
	return nil
}

// BayesDecision is the verdict of a BayesRule on one comparison.
type BayesDecision struct {
	Verdict string // VerdictShip, VerdictRollback or VerdictHold
	Rule    string // the rule that fired (RuleBayes*)
	Reason  string // the numbers it fired on, for a person
}

// DecideBayes applies rule to r's posterior on rule.Scale, in order:
//
//  1. hold (RuleBayesNoPosterior) when that posterior is not available or
//     the rule is invalid;
//  2. ship (RuleBayesShip) when ChanceToWin ≥ MinChanceToWin and
//     RiskTreatment ≤ MaxRisk (each where set);
//  3. rollback (RuleBayesRollback) when ChanceToWin ≤ 1 − MinChanceToWin
//     and RiskControl ≤ MaxRisk (each where set);
//  4. hold (RuleBayesUndecided) otherwise.
//
// Both 2 and 3 cannot hold together when MinChanceToWin is set; with a
// risk threshold alone, the smaller risk wins a tie.
func DecideBayes(r BayesResult, rule BayesRule) BayesDecision {
	if err := rule.Validate(); err != nil {
		return BayesDecision{Verdict: VerdictHold, Rule: RuleBayesNoPosterior, Reason: err.Error()}
	}
	p, ok := r.Relative, r.HasRelative()
	if rule.Scale == ScaleAbsolute {
		p, ok = r.Absolute, r.HasAbsolute()
	}
	if !ok {
		status := r.RelativeStatus
		if rule.Scale == ScaleAbsolute {
			status = r.AbsoluteStatus
		}
		return BayesDecision{Verdict: VerdictHold, Rule: RuleBayesNoPosterior,
			Reason: fmt.Sprintf("no %v posterior: %s", rule.Scale, status)}
	}
	ship := (rule.MinChanceToWin == 0 || p.ChanceToWin >= rule.MinChanceToWin) &&
		(rule.MaxRisk == 0 || p.RiskTreatment <= rule.MaxRisk)
	back := (rule.MinChanceToWin == 0 || p.ChanceToWin <= 1-rule.MinChanceToWin) &&
		(rule.MaxRisk == 0 || p.RiskControl <= rule.MaxRisk)
	if ship && back { // risk threshold alone, both risks small
		ship = p.RiskTreatment <= p.RiskControl
		back = !ship
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	facts := fmt.Sprintf("chance to win %s, %v risk of treatment %s, of control %s",
		f(p.ChanceToWin), rule.Scale, f(p.RiskTreatment), f(p.RiskControl))
	switch {
	case ship:
		return BayesDecision{Verdict: VerdictShip, Rule: RuleBayesShip, Reason: facts + thresholds(rule, "treatment")}
	case back:
		return BayesDecision{Verdict: VerdictRollback, Rule: RuleBayesRollback, Reason: facts + thresholds(rule, "control")}
	}
	return BayesDecision{Verdict: VerdictHold, Rule: RuleBayesUndecided, Reason: facts + ": neither choice meets" + thresholds(rule, "")}
}

func thresholds(rule BayesRule, side string) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	s := " (thresholds:"
	if rule.MinChanceToWin != 0 {
		switch side {
		case "control":
			s += " chance to win ≤ " + f(1-rule.MinChanceToWin)
		default:
			s += " chance to win ≥ " + f(rule.MinChanceToWin)
		}
	}
	if rule.MaxRisk != 0 {
		if side == "" {
			s += " risk of the choice ≤ " + f(rule.MaxRisk)
		} else {
			s += " risk of " + side + " ≤ " + f(rule.MaxRisk)
		}
	}
	return s + ")"
}

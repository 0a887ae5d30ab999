package stats

import (
	"fmt"
	"strings"
)

// Verdicts of a Decision.
const (
	VerdictShip     = "ship"
	VerdictHold     = "hold"
	VerdictRollback = "rollback"
	VerdictInvalid  = "invalid"
	// VerdictInProgress: a fixed-horizon design read before its planned
	// end. Its intervals are valid only at the horizon, so it neither
	// ships nor rolls back.
	VerdictInProgress = "in_progress"
)

// Rules that produce a Decision, in the order Decide tries them.
const (
	RuleSRM                  = "srm"                       // invalid: sample-ratio mismatch
	RuleBeforeHorizon        = "fixed_horizon_not_reached" // in_progress: a fixed-horizon design before its planned end
	RuleGuardrailHarm        = "guardrail_harm"            // rollback: a guardrail is significantly worse than its margin
	RuleGoalWin              = "goal_win_guardrails_ok"    // ship: a goal wins and the variant's guardrails are non-inferior
	RuleGuardrailUnconfirmed = "guardrail_not_confirmed"   // hold: a goal wins but a guardrail is not shown non-inferior
	RuleNoGoalWin            = "no_significant_goal"       // hold: no goal is significantly better
)

// Outcomes of one piece of Evidence.
const (
	OutcomeBetter       = "significantly better"
	OutcomeWorse        = "significantly worse"
	OutcomeNotSig       = "not significant"
	OutcomeHarm         = "harm beyond margin"
	OutcomeNonInferior  = "non-inferior"
	OutcomeInconclusive = "inconclusive"
	OutcomeInvalid      = "invalid"
)

// GoalResult is one goal metric's comparison for one variant and cohort.
type GoalResult struct {
	Metric, Variant, Cohort string
	// Desired is the direction in which the metric improves.
	Desired Direction
	// Comparison is the result of Compare, ideally at the adjusted alpha
	// (AdjustedAlphas) so that the interval matches AdjPValue.
	Comparison Comparison
	// AdjPValue is the multiplicity-adjusted p-value (Adjust).
	AdjPValue float64
	// Alpha is the family-wise or FDR level; zero means DefaultAlpha.
	Alpha float64
	// Test, when set, is the goal's own hypothesis test (TestHypothesis
	// at the adjusted alpha, TestKind superiority or non_inferiority):
	// AdjPValue then adjusts its p-value, and the goal wins when the test
	// rejects — significantly better (superiority) or non-inferior.
	Test     *HypothesisTest
	TestKind string
}

// Guardrail is a metric that must not get worse than a margin.
type Guardrail struct {
	Metric string
	// Harmful is the direction in which the metric gets worse (Increase
	// for latency or errors, Decrease for revenue).
	Harmful Direction
	// Margin ≥ 0 is the non-inferiority margin: the largest tolerated
	// harm, in the metric's units, or as a relative lift when Relative
	// (0.02 tolerates a 2% change in the harmful direction).
	Margin   float64
	Relative bool
	// Alternative is "" for the two-sided rule; "greater" or "less" (the
	// safe direction) when the guardrail is judged one-sided at level α:
	// Comparison is then at level 2α, whose bounds are the one-sided tests.
	Alternative string
}

// GuardrailResult is one guardrail's comparison for one variant and cohort.
// Its interval level is Comparison.Alpha: a two-sided 1-α interval, so each
// bound is a one-sided test at α/2.
type GuardrailResult struct {
	Guardrail
	Variant, Cohort string
	Comparison      Comparison
}

// Evidence is one number behind a Decision. All fields are plain values so
// that a Decision encodes to JSON deterministically.
type Evidence struct {
	//
	// Each field means one thing for every role: a field that does not
	// apply to a role is left out of the JSON rather than reused.
	Role    string `json:"role"` // "goal" or "guardrail"
	Metric  string `json:"metric"`
	Variant string `json:"variant"`
	Cohort  string `json:"cohort"`
	Status  string `json:"status"` // the comparison's Status
	Scale   string `json:"scale"`  // "absolute" or "relative"
	// DesiredDirection is a goal's direction of improvement ("increase"
	// or "decrease"); empty for guardrails.
	DesiredDirection string `json:"desired_direction,omitempty"`
	// HarmfulDirection is the direction in which a guardrail gets worse;
	// empty for goals.
	HarmfulDirection string  `json:"harmful_direction,omitempty"`
	Estimate         float64 `json:"estimate"`
	Low              float64 `json:"low"`
	High             float64 `json:"high"`
	// CILevel is the confidence level of [Low, High]: 1 − the α the
	// comparison was computed at. A goal in a correction family is shown
	// at its adjusted level (Holm's step α_i: 0.975 for the first of two
	// goals at α = 0.05), the interval that excludes the null exactly when
	// its adjusted p-value is below α, so it is wider than results.csv's
	// nominal interval (ci_level there); a guardrail's is the nominal one
	// (a one-sided guardrail at α reads the 1−2α interval).
	CILevel float64 `json:"ci_level"`
	// Margin is a guardrail's harmful threshold on Scale, signed in the
	// harmful direction (+margin for increase, -margin for decrease); nil
	// for goals, which have none.
	Margin *float64 `json:"margin,omitempty"`
	// PValue is the comparison's own (unadjusted) p-value, for every role.
	PValue float64 `json:"p_value"`
	// PValueAdjusted is a goal's multiplicity-adjusted p-value, the one
	// its outcome is judged on; nil for guardrails, which are not in the
	// correction family.
	PValueAdjusted *float64 `json:"p_value_adjusted,omitempty"`
	Alpha          float64  `json:"alpha"`
	Outcome        string   `json:"outcome"`
	Fired          bool     `json:"fired"` // this item triggered the rule
	// Test, Alternative, NullValue and Bound describe a goal's own
	// hypothesis test (Test superiority or non_inferiority; NullValue the
	// margin signed in the direction of the test, on Scale; Bound its
	// one-sided confidence bound at Alpha); Alternative also a one-sided
	// guardrail's. Omitted for the default two-sided rule.
	Test        string   `json:"test,omitempty"`
	Alternative string   `json:"alternative,omitempty"`
	NullValue   *float64 `json:"null_value,omitempty"`
	Bound       *float64 `json:"bound,omitempty"`
}

// Decision is the verdict for one experiment.
type Decision struct {
	Verdict string
	Rule    string
	Reason  string
	// Variants are the variants the verdict is about, in input order: the
	// harmful ones for rollback, those that qualify for ship.
	Variants []string
	// Evidence lists every goal then every guardrail, in input order.
	Evidence []Evidence
}

// Decide turns goal and guardrail results into a verdict. The rules, in
// order:
//
//  1. invalid (RuleSRM) when srmInvalid.
//  2. rollback (RuleGuardrailHarm) when any guardrail shows significant harm
//     beyond its margin: with margin m on the guardrail's scale (absolute
//     difference, or relative lift when Relative) and interval [L, H],
//     L > m when an increase is harmful, H < -m when a decrease is.
//  3. ship (RuleGoalWin) when some variant has a goal that is
//     significantly better (valid comparison, AdjPValue ≤ Alpha, Diff in the
//     desired direction) and every guardrail result of that variant is
//     non-inferior: H < m when an increase is harmful, L > -m when a
//     decrease is. A guardrail whose comparison is not valid is not
//     non-inferior, nor is a relative guardrail whose relative interval is
//     unbounded (StatusRelativeUnbounded: inconclusive). The relative scale
//     is (m_t - m_c)/|m_c|, so a harmful move reads as harmful for either
//     sign of the control mean.
//  4. hold otherwise (RuleGuardrailUnconfirmed when a goal won but a
//     guardrail blocked it, RuleNoGoalWin when no goal won).
func Decide(goals []GoalResult, guardrails []GuardrailResult, srmInvalid bool) Decision {
	return DecideUnder(goals, guardrails, Conditions{SRMInvalid: srmInvalid})
}

// Conditions are what Decide needs besides the comparisons.
type Conditions struct {
	// SRMInvalid: a sample-ratio test tripped (rule 1).
	SRMInvalid bool
	// BeforeHorizon: the design is fixed-horizon and the data end before
	// its planned end (a nightly run inside the window). Fixed-horizon
	// intervals and p-values hold only at the horizon; read every night
	// they would ship and roll back far more often than alpha says. So
	// after rule 1 the verdict is in_progress (RuleBeforeHorizon): no
	// ship and no rollback, not even on a guardrail, whose nominal harm
	// the reason names for a person to look at. A design that wants to
	// stop early declares sequential (always-valid) intervals, which are
	// never before their horizon.
	BeforeHorizon bool
}

// DecideUnder is Decide with every condition: rule 1 (invalid) as in
// Decide; then, when c.BeforeHorizon, in_progress; then rules 2 to 4.
func DecideUnder(goals []GoalResult, guardrails []GuardrailResult, c Conditions) Decision {
	srmInvalid := c.SRMInvalid
	d := Decision{Evidence: make([]Evidence, 0, len(goals)+len(guardrails))}
	var variants []string
	seen := map[string]bool{}
	addVariant := func(v string) {
		if !seen[v] {
			seen[v] = true
			variants = append(variants, v)
		}
	}
	for _, g := range goals {
		d.Evidence = append(d.Evidence, goalEvidence(g))
		addVariant(g.Variant)
	}
	gStart := len(d.Evidence)
	for _, g := range guardrails {
		d.Evidence = append(d.Evidence, guardrailEvidence(g))
	}
	guards := d.Evidence[gStart:]

	if srmInvalid {
		d.Verdict, d.Rule = VerdictInvalid, RuleSRM
		d.Reason = "sample-ratio mismatch: the allocation differs from the design, so no verdict"
		return d
	}
	if c.BeforeHorizon {
		d.Verdict, d.Rule = VerdictInProgress, RuleBeforeHorizon
		d.Reason = "a fixed-horizon design is read before its planned end: its intervals hold only at the horizon, so nothing ships or rolls back yet"
		var harmed []string
		for _, g := range guards {
			if g.Outcome == OutcomeHarm {
				harmed = append(harmed, g.Metric+" in "+g.Variant)
			}
		}
		if len(harmed) > 0 {
			d.Reason += fmt.Sprintf("; look at guardrail(s) %s: harm beyond the margin at the nominal level, which this design cannot confirm before its end (declare statistics.sequential to let guardrails stop early)", strings.Join(harmed, ", "))
		}
		return d
	}

	var harmful []string
	harmSeen := map[string]bool{}
	for i := range guards {
		if guards[i].Outcome == OutcomeHarm {
			guards[i].Fired = true
			if !harmSeen[guards[i].Variant] {
				harmSeen[guards[i].Variant] = true
				harmful = append(harmful, guards[i].Variant)
			}
		}
	}
	if len(harmful) > 0 {
		d.Verdict, d.Rule, d.Variants = VerdictRollback, RuleGuardrailHarm, harmful
		d.Reason = fmt.Sprintf("a guardrail is significantly worse than its margin in variant(s) %q", harmful)
		return d
	}

	goalWon := false
	for _, v := range variants {
		won := false
		for i := range goals {
			if d.Evidence[i].Variant == v && goalWins(d.Evidence[i]) {
				won = true
			}
		}
		if !won {
			continue
		}
		goalWon = true
		ok := true
		for _, g := range guards {
			if g.Variant == v && g.Outcome != OutcomeNonInferior {
				ok = false
			}
		}
		if !ok {
			continue
		}
		d.Variants = append(d.Variants, v)
		for i := range goals {
			if d.Evidence[i].Variant == v && goalWins(d.Evidence[i]) {
				d.Evidence[i].Fired = true
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
		d.Verdict, d.Rule = VerdictShip, RuleGoalWin
		d.Reason = fmt.Sprintf("a goal metric is significantly better and every guardrail is non-inferior in variant(s) %q", d.Variants)
		for i := range goals {
			if d.Evidence[i].Fired && d.Evidence[i].Outcome == OutcomeNonInferior {
				d.Reason = fmt.Sprintf("a goal metric is significantly better or shown non-inferior by its test, and every guardrail is non-inferior in variant(s) %q", d.Variants)
			}
		}
	case goalWon:
		d.Verdict, d.Rule = VerdictHold, RuleGuardrailUnconfirmed
		d.Reason = "a goal metric is significantly better but a guardrail is not shown non-inferior"
		for i := range guards {
			if guards[i].Outcome != OutcomeNonInferior {
				guards[i].Fired = true
			}
		}
	default:
		d.Verdict, d.Rule = VerdictHold, RuleNoGoalWin
		d.Reason = "no goal metric is significantly better"
	}
	return d
}

// goalWins reports whether a goal's evidence qualifies its variant for a
// ship: significantly better, or shown non-inferior by its own test.
func goalWins(e Evidence) bool {
	return e.Outcome == OutcomeBetter || (e.Test == TestNonInferiority && e.Outcome == OutcomeNonInferior)
}

// Kinds of a goal's own test (GoalResult.TestKind).
const (
	TestSuperiority    = "superiority"
	TestNonInferiority = "non_inferiority"
)

func goalEvidence(g GoalResult) Evidence {
	if g.Test != nil {
		return goalTestEvidence(g)
	}
	c := g.Comparison
	alpha := g.Alpha
	if alpha == 0 {
		alpha = DefaultAlpha
	}
	e := Evidence{
		Role: "goal", Metric: g.Metric, Variant: g.Variant, Cohort: g.Cohort,
		Status: c.Status, Scale: "absolute", DesiredDirection: g.Desired.String(),
		Estimate: c.Diff, Low: c.DiffLow, High: c.DiffHigh, CILevel: levelOf(c),
		PValue: c.PValue, Alpha: alpha,
	}
	if !finite(e.PValue) {
		e.PValue = 1
	}
	adj := g.AdjPValue
	if !finite(adj) {
		adj = 1
	}
	e.PValueAdjusted = &adj
	better := c.Diff > 0
	if g.Desired == Decrease {
		better = c.Diff < 0
	}
	switch {
	case !c.Valid():
		e.Outcome = OutcomeInvalid
	case !(adj <= alpha) || c.Diff == 0:
		e.Outcome = OutcomeNotSig
	case better:
		e.Outcome = OutcomeBetter
	default:
		e.Outcome = OutcomeWorse
	}
	return e
}

// levelOf is the confidence level of a comparison's intervals.
func levelOf(c Comparison) float64 {
	a := c.Alpha
	if a == 0 {
		a = DefaultAlpha
	}
	return 1 - a
}

func guardrailEvidence(g GuardrailResult) Evidence {
	c := g.Comparison
	e := Evidence{
		Role: "guardrail", Metric: g.Metric, Variant: g.Variant, Cohort: g.Cohort,
		Status: c.Status, Scale: "absolute", HarmfulDirection: g.Harmful.String(),
		Estimate: c.Diff, Low: c.DiffLow, High: c.DiffHigh, CILevel: levelOf(c),
		PValue: c.PValue, Alpha: c.Alpha,
	}
	valid := c.Valid()
	if g.Relative {
		e.Scale = "relative"
		e.Estimate, e.Low, e.High = c.RelDiff, c.RelLow, c.RelHigh
		valid = c.Status == StatusOK
	}
	if g.Alternative != "" {
		// One-sided at α: the interval is the 1−2α one, each bound a
		// one-sided test at α.
		e.Alternative, e.Alpha = g.Alternative, c.Alpha/2
	}
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
	case g.Relative && c.Status == StatusRelativeUnbounded:
		// The data cannot bound the relative effect (the control mean is
		// not distinguishable from zero): neither harm nor non-inferiority
		// is shown, so the guardrail blocks a ship but cannot roll back.
		e.Outcome = OutcomeInconclusive
	case !valid:
		e.Outcome = OutcomeInvalid
	case g.Harmful == Increase && e.Low > m, g.Harmful == Decrease && e.High < m:
		e.Outcome = OutcomeHarm
	case g.Harmful == Increase && e.High < m, g.Harmful == Decrease && e.Low > m:
		e.Outcome = OutcomeNonInferior
	default:
		e.Outcome = OutcomeInconclusive
	}
	return e
}

// goalTestEvidence is a goal judged on its own hypothesis test: on the
// test's scale, with its (adjusted) p-value and one-sided bound.
func goalTestEvidence(g GoalResult) Evidence {
	c, t := g.Comparison, g.Test
	alpha := g.Alpha
	if alpha == 0 {
		alpha = DefaultAlpha
	}
	h := t.Hypothesis
	e := Evidence{
		Role: "goal", Metric: g.Metric, Variant: g.Variant, Cohort: g.Cohort,
		Status: t.Status, Scale: "absolute", DesiredDirection: g.Desired.String(),
		Estimate: c.Diff, Low: c.DiffLow, High: c.DiffHigh, CILevel: levelOf(c), PValue: t.PValue, Alpha: alpha,
		Test: g.TestKind, Alternative: h.Alternative.String(),
	}
	if h.Relative {
		e.Scale = "relative"
		e.Estimate, e.Low, e.High = c.RelDiff, c.RelLow, c.RelHigh
	}
	null := h.Null
	e.NullValue = &null
	if t.HasLow && h.Alternative == Greater {
		b := t.Low
		e.Bound = &b
	}
	if t.HasHigh && h.Alternative == Less {
		b := t.High
		e.Bound = &b
	}
	adj := g.AdjPValue
	if !finite(adj) {
		adj = 1
	}
	e.PValueAdjusted = &adj
	switch {
	case t.Status != StatusOK:
		e.Outcome = OutcomeInvalid
	case adj <= alpha && g.TestKind == TestNonInferiority:
		e.Outcome = OutcomeNonInferior
	case adj <= alpha:
		e.Outcome = OutcomeBetter
	case g.TestKind == TestNonInferiority:
		e.Outcome = OutcomeInconclusive
	default:
		e.Outcome = OutcomeNotSig
	}
	return e
}

package stats

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpAt builds a valid comparison with the given absolute and relative
// intervals.
func cmpAt(diff, low, high, p float64) Comparison {
	return Comparison{
		Kind: Mean, Status: StatusOK, Alpha: 0.05, ControlMean: 10, TreatmentMean: 10 + diff,
		Diff: diff, DiffLow: low, DiffHigh: high, SE: (high - low) / 4, PValue: p,
		RelDiff: diff / 10, RelLow: low / 10, RelHigh: high / 10,
	}
}

func TestDecide(t *testing.T) {
	win := GoalResult{Metric: "conversion", Variant: "b", Cohort: "all", Desired: Increase,
		Comparison: cmpAt(0.5, 0.2, 0.8, 0.001), AdjPValue: 0.003}
	winDown := GoalResult{Metric: "time_to_checkout", Variant: "b", Cohort: "all", Desired: Decrease,
		Comparison: cmpAt(-0.5, -0.8, -0.2, 0.001), AdjPValue: 0.003}
	wrongWay := GoalResult{Metric: "conversion", Variant: "b", Cohort: "all", Desired: Decrease,
		Comparison: cmpAt(0.5, 0.2, 0.8, 0.001), AdjPValue: 0.003}
	notSigAfterAdjust := win
	notSigAfterAdjust.AdjPValue = 0.06
	tooStrict := win
	tooStrict.Alpha = 0.001
	invalidGoal := win
	invalidGoal.Comparison = Comparison{Status: StatusTooFew, PValue: 1}

	latency := Guardrail{Metric: "latency_ms", Harmful: Increase, Margin: 1}
	revenue := Guardrail{Metric: "revenue", Harmful: Decrease, Margin: 0.02, Relative: true}
	guard := func(g Guardrail, variant string, c Comparison) GuardrailResult {
		return GuardrailResult{Guardrail: g, Variant: variant, Cohort: "all", Comparison: c}
	}
	latOK := guard(latency, "b", cmpAt(0.1, -0.3, 0.5, 0.6))      // high 0.5 < 1
	latHarm := guard(latency, "b", cmpAt(2, 1.5, 2.5, 1e-6))      // low 1.5 > 1
	latUnsure := guard(latency, "b", cmpAt(0.8, 0.2, 1.4, 0.01))  // straddles 1
	latHarmC := guard(latency, "c", cmpAt(2, 1.2, 2.8, 1e-5))     // harm in c only
	revOK := guard(revenue, "b", cmpAt(0.05, -0.1, 0.2, 0.7))     // relative low -0.01 > -0.02
	revHarm := guard(revenue, "b", cmpAt(-0.5, -0.7, -0.3, 1e-5)) // relative high -0.03 < -0.02
	revInvalid := guard(revenue, "b", Comparison{Status: StatusControlMeanZero, Diff: 1, DiffLow: 0.5, DiffHigh: 1.5})

	tests := []struct {
		name       string
		goals      []GoalResult
		guardrails []GuardrailResult
		srm        bool
		verdict    string
		rule       string
		variants   []string
		fired      []bool // per evidence item, goals then guardrails
		outcomes   []string
	}{
		{"srm blocks everything", []GoalResult{win}, []GuardrailResult{latHarm}, true,
			VerdictInvalid, RuleSRM, nil, []bool{false, false}, []string{OutcomeBetter, OutcomeHarm}},
		{"ship", []GoalResult{win}, []GuardrailResult{latOK, revOK}, false,
			VerdictShip, RuleGoalWin, []string{"b"}, []bool{true, true, true},
			[]string{OutcomeBetter, OutcomeNonInferior, OutcomeNonInferior}},
		{"ship on a decrease goal", []GoalResult{winDown}, nil, false,
			VerdictShip, RuleGoalWin, []string{"b"}, []bool{true}, []string{OutcomeBetter}},
		{"rollback on absolute harm", []GoalResult{win}, []GuardrailResult{latHarm, revOK}, false,
			VerdictRollback, RuleGuardrailHarm, []string{"b"}, []bool{false, true, false},
			[]string{OutcomeBetter, OutcomeHarm, OutcomeNonInferior}},
		{"rollback on relative harm in a decrease-harmful metric", []GoalResult{win}, []GuardrailResult{latOK, revHarm}, false,
			VerdictRollback, RuleGuardrailHarm, []string{"b"}, []bool{false, false, true},
			[]string{OutcomeBetter, OutcomeNonInferior, OutcomeHarm}},
		{"hold: guardrail inconclusive", []GoalResult{win}, []GuardrailResult{latUnsure, revOK}, false,
			VerdictHold, RuleGuardrailUnconfirmed, nil, []bool{false, true, false},
			[]string{OutcomeBetter, OutcomeInconclusive, OutcomeNonInferior}},
		{"hold: relative guardrail without a control mean", []GoalResult{win}, []GuardrailResult{revInvalid}, false,
			VerdictHold, RuleGuardrailUnconfirmed, nil, []bool{false, true}, []string{OutcomeBetter, OutcomeInvalid}},
		{"hold: not significant after adjustment", []GoalResult{notSigAfterAdjust}, []GuardrailResult{latOK}, false,
			VerdictHold, RuleNoGoalWin, nil, []bool{false, false}, []string{OutcomeNotSig, OutcomeNonInferior}},
		{"hold: goal alpha stricter than p", []GoalResult{tooStrict}, nil, false,
			VerdictHold, RuleNoGoalWin, nil, []bool{false}, []string{OutcomeNotSig}},
		{"hold: significant in the wrong direction", []GoalResult{wrongWay}, []GuardrailResult{latOK}, false,
			VerdictHold, RuleNoGoalWin, nil, []bool{false, false}, []string{OutcomeWorse, OutcomeNonInferior}},
		{"hold: invalid goal comparison", []GoalResult{invalidGoal}, nil, false,
			VerdictHold, RuleNoGoalWin, nil, []bool{false}, []string{OutcomeInvalid}},
		{"hold: nothing at all", nil, nil, false, VerdictHold, RuleNoGoalWin, nil, []bool{}, []string{}},
		{"rollback when another variant harms", []GoalResult{win}, []GuardrailResult{latOK, latHarmC}, false,
			VerdictRollback, RuleGuardrailHarm, []string{"c"}, []bool{false, false, true},
			[]string{OutcomeBetter, OutcomeNonInferior, OutcomeHarm}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.goals, tc.guardrails, tc.srm)
			if d.Verdict != tc.verdict || d.Rule != tc.rule {
				t.Fatalf("Decide = %s/%s (%s), want %s/%s", d.Verdict, d.Rule, d.Reason, tc.verdict, tc.rule)
			}
			if d.Reason == "" {
				t.Error("empty Reason")
			}
			if diff := cmp.Diff(tc.variants, d.Variants); diff != "" {
				t.Errorf("Variants (-want +got):\n%s", diff)
			}
			var fired []bool
			var outcomes []string
			for _, e := range d.Evidence {
				fired = append(fired, e.Fired)
				outcomes = append(outcomes, e.Outcome)
			}
			if diff := cmp.Diff(tc.fired, fired, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Fired (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.outcomes, outcomes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Outcomes (-want +got):\n%s", diff)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("json.Marshal: %v", err)
			}
		})
	}
}

func TestDecideEvidenceNumbers(t *testing.T) {
	rev := GuardrailResult{
		Guardrail: Guardrail{Metric: "revenue", Harmful: Decrease, Margin: 0.02, Relative: true},
		Variant:   "b", Cohort: "power/mobile",
		Comparison: cmpAt(-0.5, -0.7, -0.3, 1e-5),
	}
	d := Decide(nil, []GuardrailResult{rev}, false)
	want := Evidence{
		Role: "guardrail", Metric: "revenue", Variant: "b", Cohort: "power/mobile", Status: StatusOK,
		Scale: "relative", HarmfulDirection: "decrease", Estimate: rev.Comparison.RelDiff, Low: rev.Comparison.RelLow, High: rev.Comparison.RelHigh,
		CILevel: 0.95, Margin: marginOf(-0.02), PValue: 1e-5, Alpha: 0.05, Outcome: OutcomeHarm, Fired: true,
	}
	if diff := cmp.Diff([]Evidence{want}, d.Evidence); diff != "" {
		t.Errorf("Evidence (-want +got):\n%s", diff)
	}
	// Deterministic encoding: the same input gives the same bytes.
	a, _ := json.Marshal(Decide(nil, []GuardrailResult{rev, rev}, false))
	b, _ := json.Marshal(Decide(nil, []GuardrailResult{rev, rev}, false))
	if string(a) != string(b) {
		t.Error("Decide encodes differently on the same input")
	}
}

// TestDecideWithCompare runs real comparisons through the decision.
func TestDecideWithCompare(t *testing.T) {
	control := Arm{N: 20000, Mean: 0.10, Var: 0.09}
	better := Arm{N: 20000, Mean: 0.11, Var: 0.0979}
	goals := []Arm{better}
	p := make([]float64, len(goals))
	comps := make([]Comparison, len(goals))
	for i, g := range goals {
		comps[i] = Compare(control, g, Proportion, Options{})
		p[i] = comps[i].PValue
	}
	adj := Holm(p)
	latC := Arm{N: 20000, Mean: 200, Var: 900}
	latT := Arm{N: 20000, Mean: 200.2, Var: 900}
	lat := Compare(latC, latT, Mean, Options{})
	d := Decide(
		[]GoalResult{{Metric: "conversion", Variant: "b", Desired: Increase, Comparison: comps[0], AdjPValue: adj[0]}},
		[]GuardrailResult{{Guardrail: Guardrail{Metric: "latency", Harmful: Increase, Margin: 2}, Variant: "b", Comparison: lat}},
		false)
	if d.Verdict != VerdictShip {
		t.Errorf("verdict %s (%s), goal p %v, latency interval [%v, %v]", d.Verdict, d.Reason, adj[0], lat.DiffLow, lat.DiffHigh)
	}
	latBad := Arm{N: 20000, Mean: 205, Var: 900}
	lat = Compare(latC, latBad, Mean, Options{})
	d = Decide(nil, []GuardrailResult{{Guardrail: Guardrail{Metric: "latency", Harmful: Increase, Margin: 2}, Variant: "b", Comparison: lat}}, false)
	if d.Verdict != VerdictRollback {
		t.Errorf("verdict %s, latency interval [%v, %v] vs margin 2", d.Verdict, lat.DiffLow, lat.DiffHigh)
	}
}

// TestRelativeGuardrailNegativeControlMean: a relative guardrail on a
// metric whose control mean is negative (net revenue per user) judges a
// move in the harmful direction as harm. With m_t/m_c - 1 (GrowthBook's
// convention) a drop from -2.0 to -2.6 reads as a +30% lift and the
// guardrail passes as non-inferior; with (m_t - m_c)/|m_c| it is -30%.
func TestRelativeGuardrailNegativeControlMean(t *testing.T) {
	control := Arm{N: 800, Mean: -2.0, Var: 16}
	worse := Arm{N: 800, Mean: -2.6, Var: 18}
	better := Arm{N: 800, Mean: -1.5, Var: 15}
	net := Guardrail{Metric: "net_revenue", Harmful: Decrease, Margin: 0.05, Relative: true}
	goal := GoalResult{Metric: "conversion", Variant: "b", Cohort: "all", Desired: Increase,
		Comparison: cmpAt(0.5, 0.2, 0.8, 0.001), AdjPValue: 0.003}
	for _, tc := range []struct {
		name      string
		treatment Arm
		verdict   string
		outcome   string
	}{
		{"harmful drop rolls back", worse, VerdictRollback, OutcomeHarm},
		{"improvement ships", better, VerdictShip, OutcomeNonInferior},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare(control, tc.treatment, Mean, Options{})
			if c.Status != StatusOK {
				t.Fatalf("status %q", c.Status)
			}
			d := Decide([]GoalResult{goal}, []GuardrailResult{{Guardrail: net, Variant: "b", Cohort: "all", Comparison: c}}, false)
			if d.Verdict != tc.verdict || d.Evidence[1].Outcome != tc.outcome {
				t.Errorf("verdict %s, guardrail %s (relative %v [%v, %v]); want %s, %s",
					d.Verdict, d.Evidence[1].Outcome, c.RelDiff, c.RelLow, c.RelHigh, tc.verdict, tc.outcome)
			}
		})
	}
	// An unbounded relative interval neither rolls back nor lets a ship through.
	c := Compare(Arm{N: 200, Mean: 0.05, Var: 4}, Arm{N: 210, Mean: 0.4, Var: 4}, Mean, Options{})
	if c.Status != StatusRelativeUnbounded {
		t.Fatalf("status %q, want %q", c.Status, StatusRelativeUnbounded)
	}
	d := Decide([]GoalResult{goal}, []GuardrailResult{{Guardrail: net, Variant: "b", Cohort: "all", Comparison: c}}, false)
	if d.Verdict != VerdictHold || d.Evidence[1].Outcome != OutcomeInconclusive {
		t.Errorf("unbounded relative guardrail: verdict %s, outcome %s; want hold, inconclusive", d.Verdict, d.Evidence[1].Outcome)
	}
}

func marginOf(v float64) *float64 { return &v }

// TestEvidenceFieldsMeanOneThing: a goal's direction is the desired one, a
// guardrail's the harmful one, each under its own name; a goal has no
// margin, and its adjusted p-value is not presented as a raw one.
func TestEvidenceFieldsMeanOneThing(t *testing.T) {
	goal := GoalResult{Metric: "time_to_checkout", Variant: "b", Cohort: "all", Desired: Decrease,
		Comparison: cmpAt(-0.5, -0.8, -0.2, 0.001), AdjPValue: 0.003}
	guard := GuardrailResult{Guardrail: Guardrail{Metric: "errors", Harmful: Increase, Margin: 0.1},
		Variant: "b", Cohort: "all", Comparison: cmpAt(0, -0.05, 0.05, 0.9)}
	d := Decide([]GoalResult{goal}, []GuardrailResult{guard}, false)
	b, err := json.Marshal(d.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		has    map[string]any
		absent []string
	}{
		{map[string]any{"desired_direction": "decrease", "p_value": 0.001, "p_value_adjusted": 0.003},
			[]string{"direction", "harmful_direction", "margin"}},
		{map[string]any{"harmful_direction": "increase", "p_value": 0.9, "margin": 0.1},
			[]string{"direction", "desired_direction", "p_value_adjusted"}},
	}
	for i, w := range want {
		for k, v := range w.has {
			if got[i][k] != v {
				t.Errorf("evidence %d: %s = %v, want %v (%s)", i, k, got[i][k], v, b)
			}
		}
		for _, k := range w.absent {
			if _, ok := got[i][k]; ok {
				t.Errorf("evidence %d has %q, which would mean something else for a %s (%s)", i, k, got[i]["role"], b)
			}
		}
	}
}

// TestDecideBeforeHorizon: a fixed-horizon design read before its planned
// end neither ships nor rolls back; SRM still invalidates.
func TestDecideBeforeHorizon(t *testing.T) {
	win := GoalResult{Metric: "conversion", Variant: "b", Cohort: "all", Desired: Increase,
		Comparison: cmpAt(0.5, 0.2, 0.8, 0.001), AdjPValue: 0.003}
	latOK := GuardrailResult{Guardrail: Guardrail{Metric: "latency_ms", Harmful: Increase, Margin: 1},
		Variant: "b", Cohort: "all", Comparison: cmpAt(0.1, -0.3, 0.5, 0.6)}
	latHarm := latOK
	latHarm.Comparison = cmpAt(2, 1.5, 2.5, 1e-6)
	for _, tc := range []struct {
		name          string
		goals         []GoalResult
		guards        []GuardrailResult
		c             Conditions
		verdict, rule string
		reason        string
	}{
		{"a winning goal does not ship before the horizon", []GoalResult{win}, []GuardrailResult{latOK},
			Conditions{BeforeHorizon: true}, VerdictInProgress, RuleBeforeHorizon, "before its planned end"},
		{"a harmed guardrail does not roll back before the horizon, but is named", []GoalResult{win}, []GuardrailResult{latHarm},
			Conditions{BeforeHorizon: true}, VerdictInProgress, RuleBeforeHorizon, `latency_ms`},
		{"srm still invalidates", []GoalResult{win}, []GuardrailResult{latOK},
			Conditions{BeforeHorizon: true, SRMInvalid: true}, VerdictInvalid, RuleSRM, "sample-ratio"},
		{"at the horizon the usual rules apply", []GoalResult{win}, []GuardrailResult{latOK},
			Conditions{}, VerdictShip, RuleGoalWin, "significantly better"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideUnder(tc.goals, tc.guards, tc.c)
			if d.Verdict != tc.verdict || d.Rule != tc.rule {
				t.Fatalf("verdict %s/%s (%s), want %s/%s", d.Verdict, d.Rule, d.Reason, tc.verdict, tc.rule)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tc.reason)
			}
			if tc.verdict == VerdictInProgress {
				if len(d.Variants) != 0 {
					t.Errorf("variants %q: an in-progress verdict is about no variant", d.Variants)
				}
				for _, e := range d.Evidence {
					if e.Fired {
						t.Errorf("evidence %s fired, but no rule acted on it", e.Metric)
					}
				}
			}
		})
	}
}

package analysis

import (
	"encoding/json"
	"fmt"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Inference beyond the default two-sided frequentist test: the Bayesian
// engine (stats.Bayes on the same arms the comparison uses: Welch's arm
// estimates, the delta method for ratios, CUPED, and in private runs the
// privacy noise's variance in s², so that a private posterior is
// post-processing of the charged noisy release with the noise in its
// uncertainty) and per-metric hypotheses (stats.TestHypothesis). A row
// gets the extended layout (RowExt) when its spec uses either.

// extended reports whether a spec's rows carry the extended layout.
func extended(spec *expspec.Spec) bool { return spec.IsBayesian() || spec.HasHypotheses() }

// StatsPrior converts a spec prior to the stats engine's.
func StatsPrior(p expspec.Prior) stats.Prior {
	if p.Type != "normal" {
		return stats.Prior{}
	}
	sc := stats.ScaleRelative
	if p.Scale == "absolute" {
		sc = stats.ScaleAbsolute
	}
	return stats.Prior{Proper: true, Mean: p.Mean, Variance: p.SD * p.SD, Scale: sc}
}

// PriorWords names a prior for the results and the report.
func PriorWords(p expspec.Prior) string {
	if p.Type != "normal" {
		return "flat"
	}
	return fmt.Sprintf("normal(mean %s, sd %s) on the %s effect", FormatFloat(p.Mean), FormatFloat(p.SD), p.Scale)
}

// BayesRuleOf is the spec's Bayesian decision rule.
func BayesRuleOf(spec *expspec.Spec) stats.BayesRule {
	b := spec.Statistics.Bayesian
	r := stats.BayesRule{MinChanceToWin: b.ChanceToWin, MaxRisk: b.MaxRisk}
	if b.Scale == "absolute" {
		r.Scale = stats.ScaleAbsolute
	}
	return r
}

// desiredOf is the direction in which a metric is better: a goal's
// direction, away from a guardrail's harm, up for a secondary metric.
func desiredOf(m expspec.Metric) stats.Direction {
	switch {
	case m.Role == "goal" && m.Direction == "decrease":
		return stats.Decrease
	case m.Role == "guardrail" && m.Guardrail.Harmful == "increase":
		return stats.Decrease
	}
	return stats.Increase
}

// metricOptions are the comparison options of metric m: the analysis's,
// at the metric's own α and power.
func (a *analyser) metricOptions(opts stats.Options, m expspec.Metric) stats.Options {
	opts.Alpha, opts.Power = a.spec.MetricAlpha(m), a.spec.MetricPower(m)
	return opts
}

// bayesOf is the Bayesian comparison of variant i in one cohort × metric.
func (a *analyser) bayesOf(cm *cohortMetric, i int) stats.BayesResult {
	return stats.Bayes(cm.controlCmp, cm.cmpArms[i], cm.kind, stats.BayesOptions{
		Alpha: a.spec.Statistics.Alpha, Prior: StatsPrior(a.spec.PriorOf(cm.metric)),
		Direction: desiredOf(cm.metric), CUPED: cm.opts.CUPED,
	})
}

// hypothesisOf is metric m's hypothesis in stats' terms, its kind
// (two-sided, superiority, non_inferiority) and its level: for a goal its
// own test; for a guardrail the non-inferiority test with its margin (at
// α one-sided, or α/2 for the two-sided rule, whose interval bounds are
// one-sided tests at α/2); for a secondary metric a test of no effect.
func hypothesisOf(spec *expspec.Spec, m expspec.Metric) (stats.Hypothesis, string) {
	h := m.Hypothesis
	alpha := spec.MetricAlpha(m)
	desired := desiredOf(m)
	switch m.Role {
	case "guardrail":
		g := m.Guardrail
		if h.Alternative == expspec.AltTwoSided {
			alpha /= 2
		}
		return stats.NonInferiority(desired, g.Margin, g.Relative, alpha), stats.TestNonInferiority
	case "goal":
		switch h.Test {
		case expspec.TestSuperiority:
			return stats.Superiority(desired, h.Margin, h.Relative, alpha), stats.TestSuperiority
		case expspec.TestNonInferiority:
			return stats.NonInferiority(desired, h.Margin, h.Relative, alpha), stats.TestNonInferiority
		}
	}
	alt, _ := stats.ParseAlternative(h.Alternative)
	return stats.Hypothesis{Alternative: alt, Relative: h.Relative, Alpha: alpha}, "two-sided"
}

// rowExt fills the extended columns of variant i's row.
func (a *analyser) rowExt(cm *cohortMetric, i int, br *stats.BayesResult) *RowExt {
	if !extended(a.spec) {
		return nil
	}
	ext := &RowExt{Engine: expspec.EngineFrequentist}
	if br != nil {
		ext.Engine = expspec.EngineBayesian
		setBayes(ext, *br, a.spec.PriorOf(cm.metric), BayesRuleOf(a.spec).Scale)
	}
	if cm.metric.Hypothesis != nil {
		h, kind := hypothesisOf(a.spec, cm.metric)
		t := stats.TestHypothesis(cm.controlCmp, cm.cmpArms[i], cm.kind, cm.opts.CUPED, h)
		setTest(ext, t, kind)
	}
	return ext
}

// setBayes writes a Bayesian comparison into the extended columns.
func setBayes(ext *RowExt, br stats.BayesResult, prior expspec.Prior, scale stats.EffectScale) {
	ext.Prior = PriorWords(prior)
	ext.CredibleLevel = opt(1 - br.Alpha)
	ext.DecisionScale = scale.String()
	ext.BayesStatus = br.Status
	if br.HasAbsolute() {
		p := br.Absolute
		ext.PostAbsMean, ext.PostAbsSD, ext.CredAbsLow, ext.CredAbsHigh = opt(p.Mean), opt(p.SD), opt(p.Low), opt(p.High)
	}
	if br.HasRelative() {
		p := br.Relative
		ext.PostRelMean, ext.PostRelSD, ext.CredRelLow, ext.CredRelHigh = opt(p.Mean), opt(p.SD), opt(p.Low), opt(p.High)
	}
	p, ok := br.Relative, br.HasRelative()
	if scale == stats.ScaleAbsolute {
		p, ok = br.Absolute, br.HasAbsolute()
	}
	if ok {
		ext.ChanceToBeatControl, ext.RiskControl, ext.RiskTreatment = opt(p.ChanceToWin), opt(p.RiskControl), opt(p.RiskTreatment)
	}
}

// setTest writes a hypothesis test into the extended columns.
func setTest(ext *RowExt, t stats.HypothesisTest, kind string) {
	h := t.Hypothesis
	ext.Alternative, ext.Test, ext.TestScale = h.Alternative.String(), kind, "absolute"
	if h.Relative {
		ext.TestScale = "relative"
	}
	ext.NullValue, ext.TestAlpha = opt(h.Null), opt(h.Alpha)
	ext.TestStatus = t.Status
	if t.Status != stats.StatusOK {
		return
	}
	ext.TestStatistic, ext.TestPValue = opt(t.Statistic), opt(t.PValue)
	if t.HasLow {
		ext.TestCILow = opt(t.Low)
	}
	if t.HasHigh {
		ext.TestCIHigh = opt(t.High)
	}
	r := t.Reject
	ext.TestReject = &r
}

// BayesDecisions is the Bayesian engine's part of decisions.json.
type BayesDecisions struct {
	Rule     BayesRuleInfo         `json:"decision_rule"`
	Evidence []stats.BayesEvidence `json:"-"`
}

// BayesRuleInfo states the Bayesian decision rule in decisions.json.
type BayesRuleInfo struct {
	ChanceToWin float64 `json:"chance_to_win"`
	MaxRisk     float64 `json:"max_risk,omitempty"`
	Scale       string  `json:"scale"`
	Rule        string  `json:"rule"` // in words
}

// BayesRuleWords states the Bayesian rule in words.
func BayesRuleWords(spec *expspec.Spec) string {
	b := spec.Statistics.Bayesian
	risk := ""
	if b.MaxRisk != 0 {
		risk = fmt.Sprintf(" and its %s risk of shipping (expected loss) is at most %s", b.Scale, FormatFloat(b.MaxRisk))
	}
	c := FormatFloat(b.ChanceToWin)
	return fmt.Sprintf("invalid on a sample-ratio mismatch or a blocking quality check; no decision before the planned end; rollback when a guardrail's posterior probability of harm beyond its margin is at least %s; "+
		"ship when a goal's chance to beat control (%s posterior) is at least %s%s and every guardrail of that variant is within its margin with probability at least %s; else hold. No multiple-testing correction applies to posterior probabilities.", c, b.Scale, c, risk, c)
}

// BayesLooksNote is the looks note of a Bayesian spec.
const BayesLooksNote = "Bayesian engine: the posteriors, credible intervals and chances to beat control are valid as posteriors every night, " +
	"but the verdict is taken once, at the planned end: a chance to win read every night and acted on at its first crossing of the threshold ships an A/A test far more often than 1 − chance_to_win. " +
	"Before the planned end, nightly numbers are progress, not conclusions."

// bayesDecisionJSON is decisions.json under the Bayesian engine: the
// frequentist layout with the engine, the rule and Bayesian evidence.
type bayesDecisionJSON struct {
	Experiment   string                `json:"experiment"`
	NominalDate  string                `json:"nominal_date"`
	Engine       string                `json:"engine"`
	Verdict      string                `json:"verdict"`
	Rule         string                `json:"rule"`
	Reason       string                `json:"reason"`
	Variants     []string              `json:"variants"`
	DecisionRule BayesRuleInfo         `json:"decision_rule"`
	Interval     string                `json:"interval"`
	LooksNote    string                `json:"looks_note"`
	Horizon      Horizon               `json:"horizon"`
	SRM          []SRMCheck            `json:"srm"`
	Evidence     []stats.BayesEvidence `json:"evidence"`
	Criteria     CriteriaInfo          `json:"criteria"`
	Anomalies    *AnomalyInfo          `json:"anomalies,omitempty"`
}

// MarshalJSON writes decisions.json: the frequentist layout, or the
// Bayesian one when the Bayesian engine decided.
func (d Decisions) MarshalJSON() ([]byte, error) {
	type plain Decisions
	if d.Bayes == nil {
		return json.Marshal(plain(d))
	}
	ev := d.Bayes.Evidence
	if ev == nil {
		ev = []stats.BayesEvidence{}
	}
	return json.Marshal(bayesDecisionJSON{
		Experiment: d.Experiment, NominalDate: d.NominalDate, Engine: expspec.EngineBayesian,
		Verdict: d.Verdict, Rule: d.Rule, Reason: d.Reason, Variants: d.Variants, DecisionRule: d.Bayes.Rule,
		Interval: "credible", LooksNote: d.LooksNote, Horizon: d.Horizon, SRM: d.SRM, Evidence: ev, Criteria: d.Criteria, Anomalies: d.Anomalies,
	})
}

// decideBayes is the verdict of the Bayesian engine (stats.DecideBayesUnder).
func (a *analyser) decideBayes(dec *Decisions, srmInvalid bool, in decisionInputs) {
	rule := BayesRuleOf(a.spec)
	v := stats.DecideBayesUnder(in.bayesGoals, in.bayesGuardrails, rule, decisionConditions(a.spec, srmInvalid))
	dec.Verdict, dec.Rule, dec.Reason = v.Verdict, v.Rule, v.Reason
	dec.Variants = nonNilStrings(v.Variants)
	dec.Evidence = []stats.Evidence{}
	dec.LooksNote = BayesLooksNote
	b := a.spec.Statistics.Bayesian
	dec.Bayes = &BayesDecisions{Rule: BayesRuleInfo{ChanceToWin: b.ChanceToWin, MaxRisk: b.MaxRisk, Scale: b.Scale, Rule: BayesRuleWords(a.spec)}, Evidence: v.Evidence}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

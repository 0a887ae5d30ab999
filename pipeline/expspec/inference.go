package expspec

import (
	"fmt"
	"math"
)

// Inference settings beyond the default frequentist two-sided test: the
// Bayesian engine (statistics.engine: bayesian, statistics.bayesian, a
// metric's prior) and per-metric hypotheses (a metric's hypothesis block).
//
//	statistics:
//	  engine: bayesian                 # frequentist (default) | bayesian
//	  bayesian:
//	    prior: {type: flat}            # default; or {type: normal, mean: 0, sd: 0.3, scale: relative}
//	    chance_to_win: 0.95            # ship when P(treatment better) ≥ this (default 0.95)
//	    max_risk: 0.0025               # and the risk of shipping ≤ this (optional)
//	    scale: relative                # the posterior the rule reads: relative (default) | absolute
//	metrics:
//	  - {name: converted, ..., role: goal,
//	     hypothesis: {alternative: greater, test: superiority, margin: 0.01, relative: true}}
//
// Every key is checked here with the key named in the error; a value that
// could give a plausible but meaningless result (a prior sd of 0, a
// threshold outside its range, a margin of the wrong sign, an alternative
// against the goal's direction) is refused.

// Engines.
const (
	EngineFrequentist = "frequentist"
	EngineBayesian    = "bayesian"
)

// BayesianSettings configures the Bayesian engine: GrowthBook's (gbstats
// 0.8.0) normal posterior of the effect under a flat or Gaussian prior,
// decided on chance to win and risk thresholds (stats.Bayes, stats.DecideBayes).
type BayesianSettings struct {
	// Prior is the default prior of every metric (a metric's prior
	// overrides it); default flat.
	Prior *Prior `yaml:"prior,omitempty" json:"prior,omitempty"`
	// ChanceToWin is the posterior probability, in (0.5, 1), that a goal
	// must reach to ship (and that a guardrail's harm beyond its margin
	// must reach to roll back, or its non-inferiority to allow a ship);
	// default 0.95.
	ChanceToWin float64 `yaml:"chance_to_win,omitempty" json:"chance_to_win,omitempty"`
	// MaxRisk, when set (> 0), also requires the risk of shipping (the
	// expected loss E[max(−gain, 0)] on Scale) to be at most MaxRisk.
	MaxRisk float64 `yaml:"max_risk,omitempty" json:"max_risk,omitempty"`
	// Scale is the posterior the goal rule reads: relative (default,
	// gbstats') or absolute.
	Scale string `yaml:"scale,omitempty" json:"scale,omitempty"`
}

// Prior is a prior on the treatment effect.
type Prior struct {
	// Type is flat (improper, the default) or normal.
	Type string `yaml:"type" json:"type"`
	// Mean and SD (> 0) of a normal prior on Scale; not allowed for flat.
	Mean float64 `yaml:"mean,omitempty" json:"mean,omitempty"`
	SD   float64 `yaml:"sd,omitempty" json:"sd,omitempty"`
	// Scale of Mean and SD: relative (default; 0.1 is +10%) or absolute
	// (the metric's units).
	Scale string `yaml:"scale,omitempty" json:"scale,omitempty"`
}

// Hypothesis is a metric's frequentist test (stats.TestHypothesis).
type Hypothesis struct {
	// Alternative is H₁ for the effect δ = treatment − control:
	// two-sided (default), greater or less. A one-sided goal's must be
	// its desired direction (increase: greater); a guardrail's the safe
	// one (harmful increase: less).
	Alternative string `yaml:"alternative,omitempty" json:"alternative,omitempty"`
	// Test is a goal's test with a one-sided alternative: superiority
	// (H₁: better than +margin; the default) or non_inferiority (H₁: not
	// worse than −margin, margin > 0).
	Test string `yaml:"test,omitempty" json:"test,omitempty"`
	// Margin ≥ 0 is a goal's margin, in the metric's units or relative
	// when Relative; its direction comes from the goal's direction.
	Margin   float64 `yaml:"margin,omitempty" json:"margin,omitempty"`
	Relative bool    `yaml:"relative,omitempty" json:"relative,omitempty"`
	// Alpha and Power are this metric's level and power (default the
	// statistics section's): its intervals, test and MDE.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha,omitempty"`
	Power float64 `yaml:"power,omitempty" json:"power,omitempty"`
}

// Alternatives and tests of a Hypothesis.
const (
	AltTwoSided        = "two-sided"
	AltGreater         = "greater"
	AltLess            = "less"
	TestSuperiority    = "superiority"
	TestNonInferiority = "non_inferiority"
)

// IsBayesian reports whether the spec decides with the Bayesian engine.
func (s *Spec) IsBayesian() bool { return s.Statistics.Engine == EngineBayesian }

// HasHypotheses reports whether some metric states a hypothesis.
func (s *Spec) HasHypotheses() bool {
	for _, m := range s.Metrics {
		if m.Hypothesis != nil {
			return true
		}
	}
	return false
}

// MetricAlpha is the level of metric m's intervals and test: its
// hypothesis's α, else statistics.alpha.
func (s *Spec) MetricAlpha(m Metric) float64 {
	if m.Hypothesis != nil && m.Hypothesis.Alpha != 0 {
		return m.Hypothesis.Alpha
	}
	return s.Statistics.Alpha
}

// MetricPower is the power of metric m's MDE.
func (s *Spec) MetricPower(m Metric) float64 {
	if m.Hypothesis != nil && m.Hypothesis.Power != 0 {
		return m.Hypothesis.Power
	}
	return s.Statistics.Power
}

// PriorOf is the prior the Bayesian engine uses for metric m: its own,
// else statistics.bayesian.prior (flat when neither is set).
func (s *Spec) PriorOf(m Metric) Prior {
	if m.Prior != nil {
		return *m.Prior
	}
	if b := s.Statistics.Bayesian; b != nil && b.Prior != nil {
		return *b.Prior
	}
	return Prior{Type: "flat"}
}

// validateInference checks the engine, the Bayesian settings, the metrics'
// priors and hypotheses, filling in the defaults of what is set.
func (s *Spec) validateInference() error {
	st := &s.Statistics
	private := s.Privacy != nil && s.Privacy.Enabled
	switch st.Engine {
	case "", EngineFrequentist:
		if st.Bayesian != nil {
			return s.errf("statistics.bayesian", "set only with statistics.engine: bayesian (the engine is %s)", engineName(st.Engine))
		}
	case EngineBayesian:
		if err := s.validateBayesian(); err != nil {
			return err
		}
	default:
		return s.errf("statistics.engine", "want frequentist or bayesian, got %q", st.Engine)
	}
	for i := range s.Metrics {
		m := &s.Metrics[i]
		key := fmt.Sprintf("metrics[%d]", i)
		if m.Prior != nil {
			if st.Engine != EngineBayesian {
				return s.errf(key+".prior", "a prior is used only by the Bayesian engine; set statistics.engine: bayesian or remove it")
			}
			if err := s.validatePrior(key+".prior", m.Prior); err != nil {
				return err
			}
		}
		if m.Hypothesis == nil {
			continue
		}
		switch {
		case st.Engine == EngineBayesian:
			return s.errf(key+".hypothesis", "a frequentist test; the Bayesian engine decides on posteriors (statistics.bayesian), so remove it or set statistics.engine: frequentist")
		case private:
			return s.errf(key+".hypothesis", "not available in a private spec: one-sided, margin and per-metric tests use Student's t, while a private comparison's reference distribution is the noisy-variance pivot, which Verity computes for the two-sided test only; remove it (the private release keeps the two-sided test)")
		}
		if err := s.validateHypothesis(key+".hypothesis", m); err != nil {
			return err
		}
	}
	return nil
}

func engineName(e string) string {
	if e == "" {
		return EngineFrequentist + " (the default)"
	}
	return e
}

// validateBayesian checks the Bayesian settings and fills in their
// defaults (flat prior, chance to win 0.95, relative scale).
func (s *Spec) validateBayesian() error {
	st := &s.Statistics
	if st.Sequential != nil {
		return s.errf("statistics.sequential", "always-valid confidence sequences are a frequentist design; the Bayesian engine decides at the planned end (remove statistics.sequential or use engine: frequentist)")
	}
	if st.Bayesian == nil {
		st.Bayesian = &BayesianSettings{}
	}
	b := st.Bayesian
	if b.Prior == nil {
		b.Prior = &Prior{Type: "flat"}
	}
	if err := s.validatePrior("statistics.bayesian.prior", b.Prior); err != nil {
		return err
	}
	if b.ChanceToWin == 0 {
		b.ChanceToWin = 0.95
	}
	if !(b.ChanceToWin > 0.5 && b.ChanceToWin < 1) {
		return s.errf("statistics.bayesian.chance_to_win", "want a probability in (0.5, 1) (ship when the chance to beat control reaches it; 0.95 is the default), got %v", b.ChanceToWin)
	}
	if b.Scale == "" {
		b.Scale = "relative"
	}
	if b.Scale != "relative" && b.Scale != "absolute" {
		return s.errf("statistics.bayesian.scale", "want relative or absolute, got %q", b.Scale)
	}
	if b.MaxRisk != 0 {
		if !(b.MaxRisk > 0) || !finite(b.MaxRisk) {
			return s.errf("statistics.bayesian.max_risk", "want an expected loss > 0 (or leave it out), got %v", b.MaxRisk)
		}
		if b.Scale == "relative" && !(b.MaxRisk < 1) {
			return s.errf("statistics.bayesian.max_risk", "a relative risk is a share of the control mean: want it in (0, 1) (0.0025 is 0.25%%), got %v", b.MaxRisk)
		}
	}
	return nil
}

// validatePrior checks a prior and fills in its scale.
func (s *Spec) validatePrior(key string, p *Prior) error {
	switch p.Type {
	case "flat":
		if p.Mean != 0 || p.SD != 0 || p.Scale != "" {
			return s.errf(key, "a flat prior has no mean, sd or scale; use type: normal for an informative prior")
		}
		return nil
	case "normal":
	default:
		return s.errf(key+".type", "want flat or normal, got %q", p.Type)
	}
	if !finite(p.Mean) {
		return s.errf(key+".mean", "want a finite mean, got %v", p.Mean)
	}
	if !(p.SD > 0) || !finite(p.SD) || math.IsInf(p.SD*p.SD, 0) || p.SD*p.SD == 0 {
		return s.errf(key+".sd", "want a standard deviation > 0 (a normal prior with sd 0 would fix the effect before any data), got %v", p.SD)
	}
	if p.Scale == "" {
		p.Scale = "relative"
	}
	if p.Scale != "relative" && p.Scale != "absolute" {
		return s.errf(key+".scale", "want relative or absolute, got %q", p.Scale)
	}
	return nil
}

// validateHypothesis checks metric m's hypothesis and fills in its
// alternative and test.
func (s *Spec) validateHypothesis(key string, m *Metric) error {
	h := m.Hypothesis
	st := s.Statistics
	if h.Alpha != 0 {
		if !(h.Alpha > 0 && h.Alpha < 0.5) {
			return s.errf(key+".alpha", "want a level in (0, 0.5), got %v", h.Alpha)
		}
		if m.Role == "goal" && st.Correction != "none" {
			return s.errf(key+".alpha", "a goal is judged at the correction family's level statistics.alpha (%v) under correction %s; set statistics.correction: none to give goals their own level", st.Alpha, st.Correction)
		}
	}
	if h.Power != 0 && !(h.Power > s.MetricAlpha(*m) && h.Power < 1) {
		return s.errf(key+".power", "want a power in (alpha, 1), got %v", h.Power)
	}
	if !finite(h.Margin) || h.Margin < 0 {
		return s.errf(key+".margin", "want a margin >= 0 (a size: its direction comes from the goal's direction, superiority above it and non-inferiority below), got %v", h.Margin)
	}
	switch h.Alternative {
	case "", AltTwoSided, AltGreater, AltLess:
	default:
		return s.errf(key+".alternative", "want two-sided, greater or less, got %q", h.Alternative)
	}
	switch h.Test {
	case "", TestSuperiority, TestNonInferiority:
	default:
		return s.errf(key+".test", "want superiority or non_inferiority, got %q", h.Test)
	}
	switch m.Role {
	case "goal":
		return s.validateGoalHypothesis(key, m)
	case "guardrail":
		return s.validateGuardrailHypothesis(key, m)
	}
	// Secondary metrics are reported, never decided: a direction-free
	// test of no effect.
	if h.Test != "" || h.Margin != 0 {
		return s.errf(key, "a secondary metric is reported, not decided: test and margin apply to goals (guardrails use guardrail.margin)")
	}
	if h.Alternative == "" {
		h.Alternative = AltTwoSided
	}
	return nil
}

// validateGoalHypothesis: a goal's one-sided alternative follows its
// desired direction; a margin needs a one-sided test.
func (s *Spec) validateGoalHypothesis(key string, m *Metric) error {
	h := m.Hypothesis
	want := AltGreater
	if m.Direction == "decrease" {
		want = AltLess
	}
	if h.Alternative == "" {
		h.Alternative = AltTwoSided
		if h.Test != "" || h.Margin != 0 {
			h.Alternative = want
		}
	}
	if h.Alternative == AltTwoSided {
		if h.Test != "" || h.Margin != 0 {
			return s.errf(key+".alternative", "a %s test with a margin is one-sided: want alternative %s (the goal's direction is %s) or no test and margin", testName(h.Test), want, m.Direction)
		}
		return nil
	}
	if h.Alternative != want {
		return s.errf(key+".alternative", "%s contradicts the goal's direction %s: a goal that should %s is tested with alternative %s", h.Alternative, m.Direction, m.Direction, want)
	}
	if h.Test == "" {
		h.Test = TestSuperiority
	}
	if h.Test == TestNonInferiority && !(h.Margin > 0) {
		return s.errf(key+".margin", "a non-inferiority test needs a margin > 0 (the largest tolerated loss); with margin 0 it is a superiority test")
	}
	return nil
}

// validateGuardrailHypothesis: a guardrail is a non-inferiority test with
// guardrail.margin; its hypothesis may make it one-sided and set α, power.
func (s *Spec) validateGuardrailHypothesis(key string, m *Metric) error {
	h := m.Hypothesis
	switch {
	case h.Test != "":
		return s.errf(key+".test", "a guardrail is a non-inferiority test with guardrail.margin; remove test")
	case h.Margin != 0:
		return s.errf(key+".margin", "a guardrail's margin is guardrail.margin; remove hypothesis.margin")
	case h.Relative:
		return s.errf(key+".relative", "a guardrail's scale is guardrail.relative; remove hypothesis.relative")
	}
	safe := AltLess
	if m.Guardrail.Harmful == "decrease" {
		safe = AltGreater
	}
	if h.Alternative == "" {
		h.Alternative = AltTwoSided
	}
	if h.Alternative != AltTwoSided && h.Alternative != safe {
		return s.errf(key+".alternative", "%s is the harmful direction of this guardrail (harmful: %s): its non-inferiority test's alternative is %s (or two-sided)", h.Alternative, m.Guardrail.Harmful, safe)
	}
	return nil
}

func testName(t string) string {
	if t == "" {
		return TestSuperiority
	}
	return t
}

package expspec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// inferenceSpec is baseSpec with a goal, a guardrail and a statistics
// section the cases below edit.
var inferenceSpec = strings.Replace(strings.Replace(baseSpec,
	"  - {name: converted, kind: proportion, event: purchase}\n",
	"  - {name: converted, kind: proportion, event: purchase, role: goal}\n"+
		"  - {name: views, kind: mean, event: view, aggregate: count, clamp: {lower: 0, upper: 50}, role: guardrail, guardrail: {harmful: decrease, margin: 0.05, relative: true}}\n", 1),
	"privacy: {enabled: false}\n", "STATS\nprivacy: {enabled: false}\n", 1)

func withStats(stats string, metricEdit ...string) string {
	s := strings.Replace(inferenceSpec, "STATS", stats, 1)
	for i := 0; i+1 < len(metricEdit); i += 2 {
		s = strings.Replace(s, metricEdit[i], metricEdit[i+1], 1)
	}
	return s
}

const goalLine = "role: goal}"

func TestInferenceDefaults(t *testing.T) {
	s, err := expspec.ParseSpec("specs/x.yaml", []byte(withStats("statistics: {engine: bayesian}")))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Statistics.Bayesian
	if !s.IsBayesian() || b == nil || b.ChanceToWin != 0.95 || b.Scale != "relative" || b.Prior == nil || b.Prior.Type != "flat" || b.MaxRisk != 0 {
		t.Fatalf("Bayesian defaults not filled: %+v", b)
	}
	s, err = expspec.ParseSpec("specs/x.yaml", []byte(withStats("statistics: {correction: none}",
		goalLine, "role: goal, hypothesis: {margin: 0.01, relative: true, alpha: 0.025, power: 0.9}}")))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Metrics[0].Hypothesis
	if h.Alternative != "greater" || h.Test != "superiority" || s.MetricAlpha(s.Metrics[0]) != 0.025 || s.MetricPower(s.Metrics[0]) != 0.9 {
		t.Fatalf("hypothesis defaults: %+v", h)
	}
	// A spec without the new keys keeps its canonical bytes: no engine
	// is filled in.
	s, err = expspec.ParseSpec("specs/x.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	b2, _, _ := s.Canonical()
	for _, k := range []string{"engine", "bayesian", "hypothesis", "prior"} {
		if strings.Contains(string(b2), `"`+k+`"`) {
			t.Errorf("canonical spec of an old spec gained %q: %s", k, b2)
		}
	}
}

// TestInferenceErrors: hostile inference settings are refused with the
// key named, never turned into a plausible result.
func TestInferenceErrors(t *testing.T) {
	tests := []struct {
		name, spec, key, msg string
	}{
		{"engine typo", withStats("statistics: {engine: bayesain}"), "statistics.engine", `want frequentist or bayesian, got "bayesain"`},
		{"bayesian block without engine", withStats("statistics: {bayesian: {chance_to_win: 0.9}}"), "statistics.bayesian", "engine: bayesian"},
		{"unknown bayesian key", withStats("statistics: {engine: bayesian, bayesian: {chance_to_wn: 0.9}}"), "", `unknown key "chance_to_wn"`},
		{"prior sd 0", withStats("statistics: {engine: bayesian, bayesian: {prior: {type: normal, mean: 0, sd: 0}}}"), "statistics.bayesian.prior.sd", "> 0"},
		{"prior sd negative", withStats("statistics: {engine: bayesian, bayesian: {prior: {type: normal, sd: -0.3}}}"), "statistics.bayesian.prior.sd", "> 0"},
		{"prior type typo", withStats("statistics: {engine: bayesian, bayesian: {prior: {type: gaussian, sd: 0.3}}}"), "statistics.bayesian.prior.type", "flat or normal"},
		{"flat prior with sd", withStats("statistics: {engine: bayesian, bayesian: {prior: {type: flat, sd: 0.3}}}"), "statistics.bayesian.prior", "no mean, sd or scale"},
		{"prior scale typo", withStats("statistics: {engine: bayesian, bayesian: {prior: {type: normal, sd: 0.3, scale: relatve}}}"), "statistics.bayesian.prior.scale", "relative or absolute"},
		{"chance to win 1", withStats("statistics: {engine: bayesian, bayesian: {chance_to_win: 1}}"), "statistics.bayesian.chance_to_win", "(0.5, 1)"},
		{"chance to win 0.4", withStats("statistics: {engine: bayesian, bayesian: {chance_to_win: 0.4}}"), "statistics.bayesian.chance_to_win", "(0.5, 1)"},
		{"chance to win negative", withStats("statistics: {engine: bayesian, bayesian: {chance_to_win: -0.95}}"), "statistics.bayesian.chance_to_win", "(0.5, 1)"},
		{"relative risk 1.5", withStats("statistics: {engine: bayesian, bayesian: {max_risk: 1.5}}"), "statistics.bayesian.max_risk", "(0, 1)"},
		{"risk negative", withStats("statistics: {engine: bayesian, bayesian: {max_risk: -0.01, scale: absolute}}"), "statistics.bayesian.max_risk", "> 0"},
		{"scale typo", withStats("statistics: {engine: bayesian, bayesian: {scale: relatif}}"), "statistics.bayesian.scale", "relative or absolute"},
		{"bayesian and sequential", withStats("statistics: {engine: bayesian, sequential: {n_star: 1000}}"), "statistics.sequential", "frequentist design"},
		{"prior without bayes", withStats("statistics: {}", goalLine, "role: goal, prior: {type: flat}}"), "metrics[0].prior", "only by the Bayesian engine"},
		{"metric prior sd 0", withStats("statistics: {engine: bayesian}", goalLine, "role: goal, prior: {type: normal, sd: 0}}"), "metrics[0].prior.sd", "> 0"},
		{"hypothesis under bayes", withStats("statistics: {engine: bayesian}", goalLine, "role: goal, hypothesis: {alternative: greater}}"), "metrics[0].hypothesis", "Bayesian engine decides"},
		{"alternative typo", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {alternative: larger}}"), "metrics[0].hypothesis.alternative", `got "larger"`},
		{"alternative against direction", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {alternative: less}}"), "metrics[0].hypothesis.alternative", "contradicts the goal's direction increase"},
		{"margin of wrong sign", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {margin: -0.01}}"), "metrics[0].hypothesis.margin", ">= 0"},
		{"margin two-sided", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {alternative: two-sided, margin: 0.01}}"), "metrics[0].hypothesis.alternative", "one-sided"},
		{"non-inferiority without margin", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {test: non_inferiority}}"), "metrics[0].hypothesis.margin", "margin > 0"},
		{"test typo", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {test: noninferiority, margin: 0.1}}"), "metrics[0].hypothesis.test", "superiority or non_inferiority"},
		{"goal alpha under holm", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {alpha: 0.01}}"), "metrics[0].hypothesis.alpha", "correction: none"},
		{"alpha out of range", withStats("statistics: {correction: none}", goalLine, "role: goal, hypothesis: {alpha: 0.7}}"), "metrics[0].hypothesis.alpha", "(0, 0.5)"},
		{"power below alpha", withStats("statistics: {}", goalLine, "role: goal, hypothesis: {power: 0.01}}"), "metrics[0].hypothesis.power", "(alpha, 1)"},
		{"guardrail harmful alternative", withStats("statistics: {}", "relative: true}}", "relative: true}, hypothesis: {alternative: less}}"), "metrics[1].hypothesis.alternative", "harmful direction"},
		{"guardrail margin in hypothesis", withStats("statistics: {}", "relative: true}}", "relative: true}, hypothesis: {margin: 0.1}}"), "metrics[1].hypothesis.margin", "guardrail.margin"},
		{"secondary with test", withStats("statistics: {}", "upper: 1000}}", "upper: 1000}, hypothesis: {test: superiority}}"), "metrics[2].hypothesis", "secondary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/x.yaml", []byte(tc.spec))
			var se *expspec.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("want *SpecError, got %v", err)
			}
			if se.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got key %q msg %q; want key %q containing %q", se.Key, err, tc.key, tc.msg)
			}
		})
	}
}

// TestPrivateHypothesisRefused: a private spec cannot carry a hypothesis
// (its reference distribution is two-sided only); the Bayesian engine is
// allowed (its posterior includes the noise variance).
func TestPrivateHypothesisRefused(t *testing.T) {
	priv := strings.Replace(inferenceSpec, "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 0.5}", 1)
	priv = strings.Replace(priv, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
		"templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}", 1)
	_, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(strings.Replace(priv, "STATS", "statistics: {}", 1), goalLine, "role: goal, hypothesis: {alternative: greater}}", 1)))
	var se *expspec.SpecError
	if !errors.As(err, &se) || se.Key != "metrics[0].hypothesis" || !strings.Contains(err.Error(), "private") {
		t.Fatalf("private hypothesis: got %v", err)
	}
	if _, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(priv, "STATS", "statistics: {engine: bayesian}", 1))); err != nil {
		t.Fatalf("private Bayesian spec refused: %v", err)
	}
}

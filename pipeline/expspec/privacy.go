package expspec

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/verity-analytics/verity/privacy"
)

// Privacy is the spec's privacy section. It is required, so that a release
// is private or not by an explicit decision: `privacy: {enabled: false}`
// releases exact numbers and every output says so.
type Privacy struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Epsilon and Delta are the experiment's total budget over all its
	// runs. Delta 0 means pure ε-DP with the discrete Laplace mechanism;
	// Delta > 0 means ρ-zCDP with the discrete Gaussian (the default
	// mechanism), converted from (ε, δ) with the tight CKS20 bound.
	Epsilon float64 `yaml:"epsilon,omitempty" json:"epsilon,omitempty"`
	Delta   float64 `yaml:"delta,omitempty" json:"delta,omitempty"`
	// RunShare is the fraction of the total one run may spend (e.g. 0.05
	// for twenty nightly releases).
	RunShare float64 `yaml:"run_share,omitempty" json:"run_share,omitempty"`
	// KeyEnv names the environment variable holding the noise key
	// (default VERITY_NOISE_KEY); KeyFile, relative to the spec, names a
	// file instead. The key itself is never written anywhere.
	KeyEnv  string `yaml:"key_env,omitempty" json:"key_env,omitempty"`
	KeyFile string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// GateShare is the fraction of each run's budget spent on the noisy
	// per-unit statistics that the quality gates decide on (default
	// DefaultGateShare); the rest goes to the released cells.
	GateShare float64 `yaml:"gate_share,omitempty" json:"gate_share,omitempty"`
}

// DefaultGateShare is the share of a private run's budget that the quality
// gates' noisy statistics get when the spec does not say.
const DefaultGateShare = 0.1

// EffectiveGateShare returns GateShare, or DefaultGateShare when the spec
// does not set it.
func (p Privacy) EffectiveGateShare() float64 {
	if p.GateShare == 0 {
		return DefaultGateShare
	}
	return p.GateShare
}

var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DefaultKeyEnv is the environment variable read for the noise key when a
// private spec names neither key_env nor key_file.
const DefaultKeyEnv = "VERITY_NOISE_KEY"

// UnclassifiedLeaf is the cohort of units whose persona is not a declared
// taxonomy leaf (NULL, unknown, or an internal node). It is a top-level
// leaf for collapsing; in private runs a small one merges into "*".
const UnclassifiedLeaf = "_unclassified"

// validate checks the privacy section against the rest of the spec s: no
// budget or key when disabled; when enabled, a valid budget, one valid key
// source, a gate share in (0, 1), the unit-keyed templates, no mapping of
// the privacy unit or ledger scope, and clamps whose exact sums cannot
// overflow. It defaults KeyEnv to DefaultKeyEnv.
func (p *Privacy) validate(s *Spec) error {
	if !p.Enabled {
		if p.Epsilon != 0 || p.Delta != 0 || p.RunShare != 0 || p.KeyEnv != "" || p.KeyFile != "" || p.GateShare != 0 {
			return s.errf("privacy", "budget or key given but enabled is false; remove them or enable privacy")
		}
		return nil
	}
	b := privacy.Budget{Epsilon: p.Epsilon, Delta: p.Delta, RunShare: p.RunShare}
	if err := b.Validate(); err != nil {
		return s.errf("privacy", "%v (want epsilon > 0, delta 0 or in (0, 1), run_share in (0, 1])", strings.TrimPrefix(err.Error(), "privacy: "))
	}
	if p.KeyEnv != "" && p.KeyFile != "" {
		return s.errf("privacy", "name key_env or key_file, not both")
	}
	if p.KeyEnv == "" && p.KeyFile == "" {
		p.KeyEnv = DefaultKeyEnv
	}
	if p.KeyEnv != "" && !envRE.MatchString(p.KeyEnv) {
		return s.errf("privacy.key_env", "want an environment variable name, got %q", p.KeyEnv)
	}
	if p.GateShare != 0 && !(p.GateShare > 0 && p.GateShare < 1) {
		return s.errf("privacy.gate_share", "want a fraction in (0, 1), got %v", p.GateShare)
	}
	// No unit's rows may remove or change another unit's rows: only the
	// unit-keyed templates de-duplicate within a unit.
	if !s.unitKeyed() {
		return s.errf("templates", "a private release needs the unit-keyed template set, whose de-duplication keys include unit_id and whose quality gates count units: pin %s", unitKeyedPins())
	}
	// unit_id is the privacy unit and experiment_id the ledger's scope: a
	// mapping could make other rows count as either.
	for _, c := range []string{"unit_id", "experiment_id"} {
		if _, ok := s.Inputs.Columns.Traces[c]; ok {
			return s.errf("inputs.columns.traces."+c, "a private spec cannot map %s: it defines the privacy unit and the ledger's scope; the data must carry it under its contract name", c)
		}
	}
	if _, ok := s.Inputs.Columns.Events["unit_id"]; ok {
		return s.errf("inputs.columns.events.unit_id", "a private spec cannot map unit_id: it defines the privacy unit; the data must carry it under its contract name")
	}
	// No exact sum may overflow, whatever the data: otherwise the overflow
	// check, decided on exact data, would publish one unit's influence
	// through the exit status. With every scaled bound within ±2^31 (and
	// 10^fixed_point_decimals ≤ 10^9 < 2^31 for proportions), each term of a
	// sum is below 2^62 and there are fewer than 2^63 units.
	if s.Statistics.FixedPointDecimals != nil {
		scale := math.Pow10(*s.Statistics.FixedPointDecimals)
		for i, m := range s.Metrics {
			for _, c := range []*Clamp{m.Clamp, denClamp(m)} {
				if c == nil {
					continue
				}
				for _, b := range []float64{c.Lower, c.Upper} {
					if math.Abs(b*scale) > privateMaxScaled {
						return s.errf(fmt.Sprintf("metrics[%d].clamp", i), "a private spec's clamp bounds times 10^fixed_point_decimals must stay within ±2^31 (%g here), so that no exact sum can overflow whatever the data; narrow the clamp or lower statistics.fixed_point_decimals", b*scale)
					}
				}
			}
		}
	}
	return nil
}

// privateMaxScaled is the largest scaled clamp bound a private spec may
// have: (2^31)² · 2^63 units < 2^126, the exact sums' proven range.
const privateMaxScaled = 1 << 31

// Budget returns the section's total budget and per-run share.
func (p Privacy) Budget() privacy.Budget {
	return privacy.Budget{Epsilon: p.Epsilon, Delta: p.Delta, RunShare: p.RunShare}
}

// BudgetPtr returns Budget as a pointer to a fresh copy.
func (p Privacy) BudgetPtr() *privacy.Budget {
	b := p.Budget()
	return &b
}

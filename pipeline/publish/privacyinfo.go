package publish

import (
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/privacy"
)

// PrivacyInfo states whether and how the release is differentially
// private and what it costs. It depends only on the spec, the key's
// fingerprint, the host's ledger (its source, scope and total) and the
// noisy release, so a rerun reproduces it; what earlier runs spent is
// history and lives in the ledger (and in the manifest's volatile
// LedgerState).
type PrivacyInfo struct {
	Enabled        bool             `json:"enabled"`
	Note           string           `json:"note"`
	Mechanism      string           `json:"mechanism,omitempty"`
	Accounting     string           `json:"accounting,omitempty"`
	Budget         *privacy.Budget  `json:"budget,omitempty"`
	Source         string           `json:"data_source,omitempty"`  // the ledger's data source
	Scope          string           `json:"ledger_scope,omitempty"` // what the ledger's total caps
	LedgerBudget   *privacy.Budget  `json:"ledger_budget,omitempty"`
	Total          string           `json:"total,omitempty"`    // the ledger's total, exact, in accounting units
	PerRun         string           `json:"per_run,omitempty"`  // one run's share, exact
	RunCost        string           `json:"run_cost,omitempty"` // what this release costs the first time it is published
	EpsilonRun     float64          `json:"epsilon_equivalent_of_run,omitempty"`
	GateShare      float64          `json:"gate_share,omitempty"`
	KeyFingerprint string           `json:"key_fingerprint,omitempty"` // never the key
	SamplerVersion string           `json:"sampler_version,omitempty"`
	ReleaseDigest  string           `json:"release_digest,omitempty"`
	MinUnits       int64            `json:"min_units,omitempty"`
	Released       int              `json:"released_numbers,omitempty"`
	Cohorts        []privacy.Cohort `json:"cohorts,omitempty"`
	Allocation     []privacy.Share  `json:"allocation,omitempty"`
	// DrillShare is the fraction of the run's budget spent on the
	// drill-downs (their shares are in Allocation, metric "(drill DIM)…").
	DrillShare float64 `json:"drilldown_share,omitempty"`
	// DrillSlices are each dimension's published slices, decided on noisy
	// counts.
	DrillSlices []DrillSlices `json:"drilldown_slices,omitempty"`
	Covers      string        `json:"guarantee_covers,omitempty"`
}

// DrillSlices are one dimension's published slices.
type DrillSlices struct {
	Dimension string                 `json:"dimension"`
	Slices    []privatize.DrillSlice `json:"slices"`
}

// LedgerState is the privacy ledger as this run left it (volatile: it
// depends on the runs before).
type LedgerState struct {
	Source       string  `json:"data_source"`
	SpentThisRun string  `json:"spent_this_run"` // "0" for a rerun that republished the same numbers
	Spent        string  `json:"spent"`          // in this release's scope, over every recorded release
	Total        string  `json:"total"`
	EpsilonSpent float64 `json:"epsilon_equivalent_spent"`
	Remaining    float64 `json:"epsilon_equivalent_remaining"`
	Entries      int     `json:"entries"`
}

// guaranteeText says what a ledger's cap covers, for the report.
func guaranteeText(l privacy.Ledger, experiment string) string {
	eps := ledgers.EpsilonText(l, l.Total)
	if l.Scope == privacy.ScopeSource {
		return fmt.Sprintf("every private release over data source %q together, whatever experiment, key or output folder: one unit's whole history changes all of them at most as (%s) allows", l.Source, eps)
	}
	return fmt.Sprintf("the releases of experiment %q over data source %q, whatever key or output folder: one unit's history changes them at most as (%s) allows; every unit of the source can lose that much in each experiment of the source (the event quality counts cover all its units)", experiment, l.Source, eps)
}

func privacyInfo(spec *expspec.Spec, key privacy.Key, rel *privatize.PrivateRelease, l privacy.Ledger, spentNow *big.Rat) (PrivacyInfo, LedgerState) {
	lb := l.Budget
	info := PrivacyInfo{
		Enabled:        true,
		Note:           "differentially private: counts and sums carry exact discrete noise; intervals include its variance; quality gates, SRM and cohorts are decided on noisy values",
		Accounting:     string(rel.Allocation.Accounting),
		Budget:         spec.Privacy.BudgetPtr(),
		Source:         l.Source,
		Scope:          string(l.Scope),
		LedgerBudget:   &lb,
		Total:          l.Total.RatString(),
		PerRun:         rel.Allocation.PerRun.RatString(),
		RunCost:        rel.Allocation.Spent.RatString(),
		GateShare:      spec.Privacy.EffectiveGateShare(),
		KeyFingerprint: key.Fingerprint(),
		SamplerVersion: privacy.SamplerVersion,
		ReleaseDigest:  rel.Digest,
		MinUnits:       spec.Cohorts.MinUnits,
		Released:       rel.Count,
		Cohorts:        rel.Cohorts,
		Allocation:     rel.Allocation.Shares,
		Covers:         guaranteeText(l, spec.Experiment),
	}
	if spec.Drilldowns != nil {
		info.DrillShare = spec.DrillBudgetShare()
		for _, d := range rel.Drill {
			info.DrillSlices = append(info.DrillSlices, DrillSlices{Dimension: d.Dimension, Slices: d.Slices})
		}
	}
	if len(rel.Allocation.Shares) > 0 {
		info.Mechanism = string(rel.Allocation.Shares[0].Mechanism.Kind)
	}
	spent := l.SpentBy(spec.Experiment)
	state := LedgerState{Source: l.Source, SpentThisRun: spentNow.RatString(), Spent: spent.RatString(), Total: l.Total.RatString(), Entries: len(l.Entries)}
	toEps := func(r *big.Rat) float64 {
		f, _ := r.Float64()
		if rel.Allocation.Accounting != privacy.AccountingZCDP {
			return f
		}
		if f <= 0 {
			return 0
		}
		eps, err := privacy.CDPEpsilon(f, l.Budget.Delta)
		if err != nil {
			return 0
		}
		return eps
	}
	info.EpsilonRun = toEps(rel.Allocation.Spent)
	state.EpsilonSpent = toEps(spent)
	state.Remaining = toEps(l.Total) - state.EpsilonSpent
	return info, state
}

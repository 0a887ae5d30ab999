package privatize

import (
	"math/big"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

// statOfSum maps Cell.Sums() positions to the released statistics.
var statOfSum = []privacy.Statistic{
	privacy.StatSumX, privacy.StatSumX2, privacy.StatSumY, privacy.StatSumY2, privacy.StatSumXY,
	privacy.StatSumC, privacy.StatSumC2, privacy.StatSumXC, privacy.StatSumYC,
}

// Pseudo-metric names of the count releases in the budget allocation; a
// real metric name cannot contain parentheses.
const (
	stageOneMetric = "(stage1)" // noisy unit count per leaf, all arms together
	cellNMetric    = "(cell)"   // noisy unit count per released cohort × variant
)

// releasedStats returns, for one metric, the positions in Cell.Sums() that
// are released and their sensitivities (scaled integer units, at least 1).
func releasedStats(spec *expspec.Spec, m expspec.Metric) (idx []int, sens []*big.Int) {
	scale := big.NewInt(spec.Scale())
	lo, hi := new(big.Int), new(big.Int).Set(scale) // proportion: x in {0, S}
	if m.Clamp != nil {
		lo, hi = big.NewInt(expspec.ScaleBound(m.Clamp.Lower, spec.Scale())), big.NewInt(expspec.ScaleBound(m.Clamp.Upper, spec.Scale()))
	}
	ylo, yhi := new(big.Int), new(big.Int)
	if m.Denominator != nil {
		ylo = big.NewInt(expspec.ScaleBound(m.Denominator.Clamp.Lower, spec.Scale()))
		yhi = big.NewInt(expspec.ScaleBound(m.Denominator.Clamp.Upper, spec.Scale()))
	}
	add := func(i int, s *big.Int) {
		if s.Sign() == 0 {
			s = big.NewInt(1) // a constant statistic: any positive sensitivity is safe
		}
		idx, sens = append(idx, i), append(sens, s)
	}
	// A proportion's x is 0 or S, so Σx² = S·Σx: derived, never released.
	prop := m.Kind == "proportion"
	add(0, privacy.SumSensitivity(lo, hi))
	if !prop {
		add(1, privacy.SquareSensitivity(lo, hi))
	}
	ratio := m.Kind == "ratio"
	if ratio {
		add(2, privacy.SumSensitivity(ylo, yhi))
		add(3, privacy.SquareSensitivity(ylo, yhi))
		add(4, privacy.ProductSensitivity(lo, hi, ylo, yhi))
	}
	if spec.Statistics.CUPED != nil {
		add(5, privacy.SumSensitivity(lo, hi))
		if !prop {
			add(6, privacy.SquareSensitivity(lo, hi))
		}
		add(7, privacy.ProductSensitivity(lo, hi, lo, hi))
		if ratio {
			add(8, privacy.ProductSensitivity(ylo, yhi, lo, hi))
		}
	}
	return idx, sens
}

// gateStat is one per-unit statistic a private run's quality gates decide
// on, released with noise like any cell statistic.
type gateStat struct {
	name  string
	value func(q engine.Quality) int64
	// sens is the statistic's sensitivity: the most one unit's rows can
	// change it.
	sens func(spec *expspec.Spec) int64
}

func one(*expspec.Spec) int64 { return 1 }

// eventNames is the number of distinct event names a spec reads: a unit
// counts at most once per event name in a per-event-name unit count.
func eventNames(spec *expspec.Spec) int64 {
	names := map[string]bool{}
	for _, m := range spec.Metrics {
		names[m.Event] = true
		if m.Denominator != nil {
			names[m.Denominator.Event] = true
		}
	}
	return int64(len(names))
}

// Opt64 is *p, or 0 when p is nil (a count the quality template's version
// does not compute).
func Opt64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// gateStats are the statistics behind a private run's quality gates, each
// bounded per unit. Rows with a NULL, empty or blank unit_id belong to no
// unit: adding or removing a unit's history leaves their number unchanged
// (sensitivity 0), so they could be released exactly; they are noised
// with sensitivity 1 anyway, which costs little and keeps every gate input
// noisy.
var gateStats = []gateStat{
	{"units_exposed", func(q engine.Quality) int64 { return q.UnitsExposed }, one},
	{"units_multi_variant", func(q engine.Quality) int64 { return q.UnitsMultiVariant }, one},
	{"units_trace_null_keys", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceNullKeys) }, one},
	{"trace_no_unit", func(q engine.Quality) int64 { return Opt64(q.TraceNoUnit) }, one},
	{"units_trace_duplicate", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceDuplicate) }, one},
	{"units_trace_version_mismatch", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceVersionMismatch) }, one},
	{"units_trace_unknown_variant", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceUnknownVariant) }, one},
	{"units_event_null_keys", func(q engine.Quality) int64 { return Opt64(q.UnitsEventNullKeys) }, eventNames},
	{"event_no_unit", func(q engine.Quality) int64 { return Opt64(q.EventNoUnit) }, one},
	{"units_event_duplicate", func(q engine.Quality) int64 { return Opt64(q.UnitsEventDuplicate) }, eventNames},
	{"units_event_invalid_value", func(q engine.Quality) int64 { return Opt64(q.UnitsEventInvalidValue) }, eventNames},
	{"units_event_null_metric", func(q engine.Quality) int64 { return Opt64(q.UnitsEventNullMetric) }, one},
}

// gateMetric is the pseudo-metric name of the gate statistics in the
// allocation and the noise streams.
const gateMetric = "(gates)"

// Allocate splits the run budget across the statistics one unit can touch:
// its leaf's stage-one count (when collapsing), its cell's count, every
// released sum of every metric (1 − gate_share of the run), and every
// gate statistic (gate_share), and, for a spec that drills down, each
// dimension's statistics (drilldowns.budget_share, split evenly across the
// dimensions: drillGroups). Each unit is in one leaf and one cell, and in
// one slice of each dimension, so the run's cost is the allocation's total.
func Allocate(spec *expspec.Spec) (privacy.Allocation, error) {
	var req []privacy.StatSpec
	if spec.Cohorts.MinUnits > 0 {
		req = append(req, privacy.StatSpec{Metric: stageOneMetric, Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
	}
	req = append(req, privacy.StatSpec{Metric: cellNMetric, Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
	for _, m := range spec.Metrics {
		idx, sens := releasedStats(spec, m)
		for i, k := range idx {
			req = append(req, privacy.StatSpec{Metric: m.Name, Statistic: statOfSum[k], Sensitivity: sens[i], Weight: privacy.DefaultWeight(statOfSum[k])})
		}
	}
	var gates []privacy.StatSpec
	for _, g := range gateStats {
		gates = append(gates, privacy.StatSpec{Metric: gateMetric, Statistic: privacy.Statistic(g.name), Sensitivity: big.NewInt(g.sens(spec)), Weight: 1})
	}
	share := new(big.Rat).SetFloat64(spec.Privacy.EffectiveGateShare())
	rest := new(big.Rat).Sub(big.NewRat(1, 1), share)
	groups := []privacy.Group{{Fraction: rest, Stats: req}, {Fraction: share, Stats: gates}}
	if privateDrill(spec) {
		// Each dimension's slices partition the units (parallel within
		// it); the dimensions and the main release compose sequentially.
		drill := new(big.Rat).SetFloat64(spec.DrillBudgetShare())
		rest.Sub(rest, drill)
		groups = append(groups, drillGroups(spec, drill)...)
	}
	return privacy.AllocateGroups(spec.Privacy.Budget(), groups)
}

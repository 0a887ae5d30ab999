package stats

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

// Event-level quantiles (issue #20 item 1).
//
// The quantile of an arm's pooled events, with several events per unit
// (unit i has n_i events Y_ij), and the variance that accounts for the
// correlation of a unit's events: Algorithm 1 of Yao, Li and Lu (2024,
// arXiv:2401.14549) as GrowthBook implements it (docs/statistics/
// quantile.mdx steps 3 to 7 and QuantileClusteredStatistic in
// packages/stats/gbstats/models/statistics.py, growthbook/growthbook at
// commit 8f1db445, gbstats 0.8.0). With n = Σn_i events, K units and q̂ the
// definition-1 quantile of the pooled events,
//
//	m_i = #{j : Y_ij ≤ q̂},  Ī = Σm_i / Σn_i,
//	Var_c(Ī) = K/(K−1) · Σ_i (m_i − Ī·n_i)² / n²,
//	Var(q̂) = Var_iid(q̂) · Var_c(Ī) / (ν(1−ν)/n),
//
// where Var_iid(q̂) is the order-statistic variance of EstimateQuantile on
// the pooled events as if they were independent, and Var_c(Ī) is the
// delta-method (ratio-of-means) variance of the fraction of events at or
// below q̂ — identical to gbstats' get_cluster_variance,
// [Var(m) − 2Ī·Cov(m, n) + Ī²·Var(n)]/(K·n̄²) with sample (co)variances,
// and to the cluster-robust (CR1) variance of a mean. The quotient is the
// design effect: a sample quantile moves with the fraction below it, so
// the clustering inflates its variance by the same factor. (The
// documentation page writes the factor the other way up, σ²_I,iid/σ²_I,c;
// gbstats' code, and this, multiply by σ²_I,c/σ²_I,iid, which is what makes
// positively correlated events count for less; the coverage simulation
// checks it.) K counts the units with at least one event (the CR1 K;
// gbstats counts every unit of the arm, which changes only K/(K−1)).
//
// The inputs are mergeable, in two passes over the events, because m_i
// needs q̂ first:
//
//  1. per arm, the Histogram of the event values (GROUP BY arm, value;
//     shards merge with Histogram.Merge); then q̂ = Histogram.Quantile(p),
//     the arm's threshold;
//  2. per unit, n_i (its events) and m_i (its events with value ≤ the
//     arm's threshold, the fixed-point comparison being exact), added to
//     the arm's ClusterSums with AddUnit; shards merge with
//     ClusterSums.Merge provided each unit's n_i and m_i are complete
//     (a unit split over shards is summed per unit first: n_i and m_i are
//     additive, their squares are not).
//
// EstimateEventQuantile checks that the two passes agree: the sums' event
// count must equal the histogram's, and their count at or below the
// threshold the histogram's count at or below q̂.

// ClusterSums are the second pass's sums over an arm's units: K, Σn_i,
// Σm_i, Σn_i², Σm_i², Σm_i·n_i, exact integers. The zero value is empty.
type ClusterSums struct {
	Units       uint64 // K, units with at least one event
	Events      uint64 // Σn_i
	Below       uint64 // Σm_i, events at or below the threshold
	EventsSq    uint64 // Σn_i²
	BelowSq     uint64 // Σm_i²
	BelowEvents uint64 // Σm_i·n_i
}

// AddUnit adds a unit with the given number of events, below of which
// are at or below the arm's threshold. A unit without events changes
// nothing. It returns ErrInvalidInput when below > events and ErrOverflow
// when a sum exceeds uint64 (s is then unchanged).
func (s *ClusterSums) AddUnit(events, below uint64) error {
	if below > events {
		return fmt.Errorf("cluster sums: %d events below the threshold of %d: %w", below, events, ErrInvalidInput)
	}
	if events == 0 {
		return nil
	}
	u := ClusterSums{Units: 1, Events: events, Below: below}
	var hi [3]uint64
	hi[0], u.EventsSq = bits.Mul64(events, events)
	hi[1], u.BelowSq = bits.Mul64(below, below)
	hi[2], u.BelowEvents = bits.Mul64(below, events)
	if hi[0]|hi[1]|hi[2] != 0 {
		return fmt.Errorf("cluster sums: a unit with %d events: %w", events, ErrOverflow)
	}
	m, err := s.Merge(u)
	if err != nil {
		return err
	}
	*s = m
	return nil
}

// Merge returns the sums over the units of s and o (disjoint units). It
// returns ErrOverflow when a sum exceeds uint64.
func (s ClusterSums) Merge(o ClusterSums) (ClusterSums, error) {
	var r ClusterSums
	var carry uint64
	add := func(a, b uint64) uint64 {
		v, c := bits.Add64(a, b, 0)
		carry |= c
		return v
	}
	r.Units = add(s.Units, o.Units)
	r.Events = add(s.Events, o.Events)
	r.Below = add(s.Below, o.Below)
	r.EventsSq = add(s.EventsSq, o.EventsSq)
	r.BelowSq = add(s.BelowSq, o.BelowSq)
	r.BelowEvents = add(s.BelowEvents, o.BelowEvents)
	if carry != 0 {
		return ClusterSums{}, fmt.Errorf("cluster sums: a sum exceeds 2^64: %w", ErrOverflow)
	}
	return r, nil
}

// EventQuantileArm is one arm's input to the event-level quantile: the
// histogram of its event values (pass 1) and the sums over its units at
// the threshold Events.Quantile(p) (pass 2).
type EventQuantileArm struct {
	Events   Histogram
	Clusters ClusterSums
}

// EstimateEventQuantile returns the p-quantile of the arm's pooled events
// and its cluster-adjusted variance (see above); N is the number of
// events, Clusters the number of units, DesignEffect Var_c(Ī)/(ν(1−ν)/n)
// and CDFVar Var_c(Ī). Errors: those of EstimateQuantile on the events;
// ErrInvalidInput when the two passes disagree; ErrDegenerate for fewer
// than two units or a zero cluster variance.
func EstimateEventQuantile(a EventQuantileArm, p float64) (QuantileEstimate, error) {
	e, err := EstimateQuantile(a.Events, p)
	if err != nil {
		return QuantileEstimate{}, fmt.Errorf("event level: %w", err)
	}
	s := a.Clusters
	q, _ := a.Events.Quantile(p)
	switch below := a.Events.CountAtMost(q); {
	case s.Events != a.Events.N():
		return QuantileEstimate{}, fmt.Errorf("event level: the unit pass counted %d events, the histogram %d: %w", s.Events, a.Events.N(), ErrInvalidInput)
	case s.Below != below:
		return QuantileEstimate{}, fmt.Errorf("event level: the unit pass counted %d events at or below the threshold, the histogram %d at or below its quantile %v (was the pass run with this arm's threshold?): %w",
			s.Below, below, a.Events.Float(q), ErrInvalidInput)
	case s.Units < 2:
		return QuantileEstimate{}, fmt.Errorf("event level: %d unit(s) with events; the cluster variance needs two: %w", s.Units, ErrDegenerate)
	case s.Units > s.Events:
		return QuantileEstimate{}, fmt.Errorf("event level: %d units with events but %d events: %w", s.Units, s.Events, ErrInvalidInput)
	}
	varC := clusterVariance(s)
	if !(varC > 0) {
		return QuantileEstimate{}, fmt.Errorf("event level: every unit has the same share of events at or below the quantile, so the cluster variance is zero: %w", ErrDegenerate)
	}
	e.Clusters = s.Units
	e.DesignEffect = varC / e.CDFVar
	e.CDFVar = varC
	e.Var *= e.DesignEffect
	e.SE = math.Sqrt(e.Var)
	if !finite(e.Var) || e.Var == 0 {
		return QuantileEstimate{}, fmt.Errorf("event level: variance %v out of range: %w", e.Var, ErrOverflow)
	}
	return e, nil
}

// clusterVariance returns Var_c(Ī) = K/(K−1)·Σ(m_i − Ī·n_i)²/n², from
// the exact numerator n²·Σ(m_i − Ī·n_i)² = n²Σm² − 2·M·n·Σmn + M²·Σn²
// (M = Σm_i, n = Σn_i), rounded once.
func clusterVariance(s ClusterSums) float64 {
	n := new(big.Int).SetUint64(s.Events)
	m := new(big.Int).SetUint64(s.Below)
	n2 := new(big.Int).Mul(n, n)
	num := new(big.Int).Mul(n2, new(big.Int).SetUint64(s.BelowSq))
	t := new(big.Int).Mul(m, n)
	t.Mul(t, new(big.Int).SetUint64(s.BelowEvents))
	num.Sub(num, t.Lsh(t, 1))
	t = new(big.Int).Mul(m, m)
	t.Mul(t, new(big.Int).SetUint64(s.EventsSq))
	num.Add(num, t)
	if num.Sign() <= 0 {
		return 0
	}
	k := new(big.Int).SetUint64(s.Units)
	num.Mul(num, k)
	den := new(big.Int).Mul(n2, n2)
	den.Mul(den, new(big.Int).Sub(k, big.NewInt(1)))
	v, _ := new(big.Rat).SetFrac(num, den).Float64()
	return v
}

// CompareEventQuantiles compares two arms' event-level p-quantiles: the
// normal difference and the relative effect of CompareQuantiles with the
// cluster-adjusted variances. Errors: those of EstimateEventQuantile
// (wrapped in an ArmError), and ErrInvalidInput for invalid options or
// histograms of different scales.
func CompareEventQuantiles(control, treatment EventQuantileArm, p float64, opts QuantileOptions) (QuantileComparison, error) {
	if err := opts.Validate(); err != nil {
		return QuantileComparison{}, err
	}
	if err := checkLevel(p); err != nil {
		return QuantileComparison{}, err
	}
	if control.Events.decimals != treatment.Events.decimals {
		return QuantileComparison{}, fmt.Errorf("event level: control has %d decimals, treatment %d: %w", control.Events.decimals, treatment.Events.decimals, ErrInvalidInput)
	}
	c, err := EstimateEventQuantile(control, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "control", Err: err}
	}
	t, err := EstimateEventQuantile(treatment, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "treatment", Err: err}
	}
	return compareQuantileEstimates(c, t, opts.alpha())
}

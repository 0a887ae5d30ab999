package stats

import (
	"fmt"
	"math/bits"
	"slices"
)

// One-pass, mergeable inputs of the event-level quantile.
//
// EventQuantileArm needs two passes over the events, because m_i (a unit's
// events at or below the threshold) needs the threshold first. Both passes
// fold into one table per arm keyed by the distinct event value: order each
// unit's events by value (ties in any order) and give each its position
// pos = 1..n_i in its unit. The events at or below any threshold t are then
// a prefix of every unit's list, of length m_i(t), so
//
//	Σ_i m_i(t)²    = Σ_{events j, v_j ≤ t} (2·pos_j − 1)     (1 + 3 + … + (2m−1) = m²)
//	Σ_i m_i(t)·n_i = Σ_{events j, v_j ≤ t} n_{i(j)}
//	Σ_i n_i²       = Σ_{all events j} n_{i(j)}
//	K              = #{events j : pos_j = 1}                 (units with an event)
//
// and every sum of ClusterSums at t is a cumulative sum over the values up
// to t. A bin holds, for one value, the events with it and those three
// per-event sums. Bins of disjoint sets of whole units (shards split by
// unit) add value by value, so a sharded run merges them exactly, like the
// unit-level Histogram.

// EventBin is one distinct event value of an arm with its one-pass sums.
type EventBin struct {
	Value      int64  // round(x·10^decimals)
	Events     uint64 // events with this value
	Firsts     uint64 // of them, those first in their unit's value order (pos = 1)
	PosSum     uint64 // Σ (2·pos − 1) over them
	UnitEvents uint64 // Σ n_i over them: each one's unit's event count
}

// EventBins is an arm's one-pass table: bins in strictly increasing order
// of value, at one fixed-point scale.
type EventBins struct {
	decimals int
	bins     []EventBin
}

// NewEventBins checks and sorts the bins of one arm. Every bin needs
// events; a bin's sums are bounded by its events (Firsts ≤ Events ≤
// PosSum, Events ≤ UnitEvents); a value may appear once.
func NewEventBins(decimals int, bins []EventBin) (EventBins, error) {
	if err := checkDecimals(decimals); err != nil {
		return EventBins{}, err
	}
	b := slices.Clone(bins)
	slices.SortFunc(b, func(x, y EventBin) int {
		switch {
		case x.Value < y.Value:
			return -1
		case x.Value > y.Value:
			return 1
		}
		return 0
	})
	for i, x := range b {
		switch {
		case x.Events == 0:
			return EventBins{}, fmt.Errorf("event bins: value %d with no events: %w", x.Value, ErrInvalidInput)
		case x.Firsts > x.Events || x.PosSum < x.Events || x.UnitEvents < x.Events:
			return EventBins{}, fmt.Errorf("event bins: value %d: %d events with %d firsts, position sum %d, unit events %d: %w",
				x.Value, x.Events, x.Firsts, x.PosSum, x.UnitEvents, ErrInvalidInput)
		case i > 0 && x.Value == b[i-1].Value:
			return EventBins{}, fmt.Errorf("event bins: value %d twice: %w", x.Value, ErrInvalidInput)
		}
	}
	return EventBins{decimals: decimals, bins: b}, nil
}

// Merge adds the bins of disjoint sets of whole units (two shards).
func (e EventBins) Merge(o EventBins) (EventBins, error) {
	if e.decimals != o.decimals {
		return EventBins{}, fmt.Errorf("event bins: merging %d decimals with %d: %w", e.decimals, o.decimals, ErrInvalidInput)
	}
	out := make([]EventBin, 0, len(e.bins)+len(o.bins))
	i, j := 0, 0
	var carry uint64
	add := func(a, b uint64) uint64 {
		v, c := bits.Add64(a, b, 0)
		carry |= c
		return v
	}
	for i < len(e.bins) || j < len(o.bins) {
		switch {
		case j == len(o.bins) || (i < len(e.bins) && e.bins[i].Value < o.bins[j].Value):
			out = append(out, e.bins[i])
			i++
		case i == len(e.bins) || o.bins[j].Value < e.bins[i].Value:
			out = append(out, o.bins[j])
			j++
		default:
			x, y := e.bins[i], o.bins[j]
			out = append(out, EventBin{Value: x.Value, Events: add(x.Events, y.Events), Firsts: add(x.Firsts, y.Firsts),
				PosSum: add(x.PosSum, y.PosSum), UnitEvents: add(x.UnitEvents, y.UnitEvents)})
			i++
			j++
		}
	}
	if carry != 0 {
		return EventBins{}, fmt.Errorf("event bins: a sum exceeds 2^64: %w", ErrOverflow)
	}
	return EventBins{decimals: e.decimals, bins: out}, nil
}

// Arm returns the arm's input to the event-level p-quantile: the histogram
// of its event values and the cluster sums at the threshold
// Histogram.Quantile(p), both from the one pass.
func (e EventBins) Arm(p float64) (EventQuantileArm, error) {
	if err := checkLevel(p); err != nil {
		return EventQuantileArm{}, err
	}
	hb := make([]Bin, len(e.bins))
	for i, b := range e.bins {
		hb[i] = Bin{Value: b.Value, Count: b.Events}
	}
	h, err := NewHistogram(e.decimals, hb)
	if err != nil {
		return EventQuantileArm{}, fmt.Errorf("event bins: %w", err)
	}
	if h.N() == 0 {
		return EventQuantileArm{Events: h}, nil
	}
	q, err := h.Quantile(p)
	if err != nil {
		return EventQuantileArm{}, fmt.Errorf("event bins: %w", err)
	}
	var s ClusterSums
	var carry uint64
	add := func(a *uint64, b uint64) {
		var c uint64
		*a, c = bits.Add64(*a, b, 0)
		carry |= c
	}
	for _, b := range e.bins {
		add(&s.Units, b.Firsts)
		add(&s.Events, b.Events)
		add(&s.EventsSq, b.UnitEvents)
		if b.Value <= q {
			add(&s.Below, b.Events)
			add(&s.BelowSq, b.PosSum)
			add(&s.BelowEvents, b.UnitEvents)
		}
	}
	if carry != 0 {
		return EventQuantileArm{}, fmt.Errorf("event bins: a cluster sum exceeds 2^64: %w", ErrOverflow)
	}
	return EventQuantileArm{Events: h, Clusters: s}, nil
}

// Bins returns the bins in increasing order of value.
func (e EventBins) Bins() []EventBin { return slices.Clone(e.bins) }

// Decimals returns the bins' fixed-point scale.
func (e EventBins) Decimals() int { return e.decimals }

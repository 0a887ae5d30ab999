package stats

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// eventUnits draws k units with 1..maxEvents events each, values from a
// small range (so that ties within and across units are common).
func eventUnits(r *rand.Rand, k, maxEvents int, values int64) [][]int64 {
	units := make([][]int64, k)
	for i := range units {
		n := 1 + r.IntN(maxEvents)
		for j := 0; j < n; j++ {
			units[i] = append(units[i], r.Int64N(values)-values/4)
		}
	}
	return units
}

// binsOf is the one-pass table of the units, computed the way the SQL
// does: each unit's events in value order, positions 1..n_i.
func binsOf(t *testing.T, decimals int, units [][]int64) EventBins {
	t.Helper()
	byValue := map[int64]*EventBin{}
	for _, u := range units {
		vs := slices.Clone(u)
		slices.Sort(vs)
		for pos, v := range vs {
			b := byValue[v]
			if b == nil {
				b = &EventBin{Value: v}
				byValue[v] = b
			}
			b.Events++
			if pos == 0 {
				b.Firsts++
			}
			b.PosSum += uint64(2*(pos+1) - 1)
			b.UnitEvents += uint64(len(u))
		}
	}
	var bins []EventBin
	for _, b := range byValue {
		bins = append(bins, *b)
	}
	e, err := NewEventBins(decimals, bins)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// twoPass is the documented two-pass route: the histogram of the values,
// its p-quantile, then each unit's (n_i, m_i) added with AddUnit.
func twoPass(t *testing.T, decimals int, units [][]int64, p float64) EventQuantileArm {
	t.Helper()
	counts := map[int64]uint64{}
	for _, u := range units {
		for _, v := range u {
			counts[v]++
		}
	}
	var bins []Bin
	for v, c := range counts {
		bins = append(bins, Bin{Value: v, Count: c})
	}
	h, err := NewHistogram(decimals, bins)
	if err != nil {
		t.Fatal(err)
	}
	q, err := h.Quantile(p)
	if err != nil {
		t.Fatal(err)
	}
	var s ClusterSums
	for _, u := range units {
		below := 0
		for _, v := range u {
			if v <= q {
				below++
			}
		}
		if err := s.AddUnit(uint64(len(u)), uint64(below)); err != nil {
			t.Fatal(err)
		}
	}
	return EventQuantileArm{Events: h, Clusters: s}
}

// The one-pass table gives exactly the two-pass cluster sums, histogram and
// estimate at every level, and shards of whole units merge to the table of
// all units.
func TestEventBinsEqualTwoPasses(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 26))
	for trial := 0; trial < 200; trial++ {
		units := eventUnits(r, 2+r.IntN(60), 1+r.IntN(9), 1+r.Int64N(40))
		all := binsOf(t, 2, units)
		for _, p := range []float64{0.01, 0.1, 0.5, 0.9, 0.99} {
			got, err := all.Arm(p)
			if err != nil {
				t.Fatal(err)
			}
			want := twoPass(t, 2, units, p)
			if got.Clusters != want.Clusters || !got.Events.Equal(want.Events) {
				t.Fatalf("trial %d, p %v: one pass %+v, two passes %+v", trial, p, got.Clusters, want.Clusters)
			}
			e1, err1 := EstimateEventQuantile(got, p)
			e2, err2 := EstimateEventQuantile(want, p)
			if (err1 == nil) != (err2 == nil) || e1 != e2 {
				t.Fatalf("trial %d, p %v: estimates %+v (%v) and %+v (%v)", trial, p, e1, err1, e2, err2)
			}
		}
		// Shards: whole units split in three.
		var parts [3][][]int64
		for _, u := range units {
			k := r.IntN(3)
			parts[k] = append(parts[k], u)
		}
		merged, err := NewEventBins(2, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range parts {
			if merged, err = merged.Merge(binsOf(t, 2, part)); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(merged.bins, all.bins) {
			t.Fatalf("trial %d: merged shards differ from the whole", trial)
		}
	}
}

// A hand-checked arm: unit A has values 1, 3, 3; unit B 2; unit C 5, 1.
// At the median (definition 1 over 1,1,2,3,3,5: x₍₃₎ = 2) m = (1, 1, 1),
// n = (3, 1, 2): Σm² = 3, Σm·n = 6, Σn² = 14, K = 3.
func TestEventBinsByHand(t *testing.T) {
	e := binsOf(t, 0, [][]int64{{1, 3, 3}, {2}, {5, 1}})
	a, err := e.Arm(0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := ClusterSums{Units: 3, Events: 6, Below: 3, EventsSq: 14, BelowSq: 3, BelowEvents: 6}
	if a.Clusters != want {
		t.Errorf("cluster sums %+v, want %+v", a.Clusters, want)
	}
}

func TestEventBinsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		bins []EventBin
	}{
		{"no events", []EventBin{{Value: 1}}},
		{"more firsts than events", []EventBin{{Value: 1, Events: 1, Firsts: 2, PosSum: 1, UnitEvents: 1}}},
		{"position sum below the events", []EventBin{{Value: 1, Events: 2, PosSum: 1, UnitEvents: 2}}},
		{"unit events below the events", []EventBin{{Value: 1, Events: 2, PosSum: 2, UnitEvents: 1}}},
		{"a value twice", []EventBin{{Value: 1, Events: 1, PosSum: 1, UnitEvents: 1}, {Value: 1, Events: 1, PosSum: 1, UnitEvents: 1}}},
	} {
		if _, err := NewEventBins(0, tc.bins); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	a, _ := NewEventBins(0, nil)
	b, _ := NewEventBins(1, nil)
	if _, err := a.Merge(b); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("merging scales: %v", err)
	}
	big := []EventBin{{Value: 1, Events: 1 << 63, PosSum: 1 << 63, UnitEvents: 1 << 63}}
	x, _ := NewEventBins(0, big)
	if _, err := x.Merge(x); !errors.Is(err, ErrOverflow) {
		t.Errorf("merging past 2^64: %v", err)
	}
	if _, err := x.Arm(1.5); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("level 1.5: %v", err)
	}
}

package stats

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// checkQuantileError: err wraps want (and, when arm is not empty, is an
// ArmError naming it), and the result carries no NaN or infinity.
func checkQuantileError(t *testing.T, r QuantileComparison, err, want error, arm string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	var ae *ArmError
	if gotArm := errors.As(err, &ae); gotArm != (arm != "") || (gotArm && ae.Arm != arm) {
		t.Errorf("error %v: ArmError %v, want arm %q", err, ae, arm)
	}
	if r != (QuantileComparison{}) {
		t.Errorf("result %+v with an error, want the zero value", r)
	}
	t.Logf("%v", err)
	if err.Error() == "" {
		t.Error("empty error message")
	}
}

func TestCompareQuantilesHostile(t *testing.T) {
	spread := func(n int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(i * 7 % 1009)
		}
		return v
	}
	ok := mustHistogramOf(t, 2, spread(500))
	constant := mustHistogramOf(t, 2, []int64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5})
	one := mustHistogramOf(t, 2, []int64{3})
	otherScale := mustHistogramOf(t, 3, spread(500))
	for _, c := range []struct {
		name     string
		control  Histogram
		treat    Histogram
		p        float64
		opts     QuantileOptions
		want     error
		wantsArm string
	}{
		{"empty control", Histogram{decimals: 2}, ok, 0.5, QuantileOptions{}, ErrDegenerate, "control"},
		{"empty treatment", ok, Histogram{decimals: 2}, 0.5, QuantileOptions{}, ErrDegenerate, "treatment"},
		{"one unit", one, ok, 0.5, QuantileOptions{}, ErrDegenerate, "control"},
		{"all values equal", ok, constant, 0.5, QuantileOptions{}, ErrDegenerate, "treatment"},
		{"p 0", ok, ok, 0, QuantileOptions{}, ErrInvalidInput, ""},
		{"p 1", ok, ok, 1, QuantileOptions{}, ErrInvalidInput, ""},
		{"p negative", ok, ok, -0.1, QuantileOptions{}, ErrInvalidInput, ""},
		{"p above 1", ok, ok, 1.01, QuantileOptions{}, ErrInvalidInput, ""},
		{"p NaN", ok, ok, math.NaN(), QuantileOptions{}, ErrInvalidInput, ""},
		{"p 0.999 with 500 units", ok, ok, 0.999, QuantileOptions{}, ErrDegenerate, "control"},
		{"alpha 1", ok, ok, 0.5, QuantileOptions{Alpha: 1}, ErrInvalidInput, ""},
		{"alpha NaN", ok, ok, 0.5, QuantileOptions{Alpha: math.NaN()}, ErrInvalidInput, ""},
		{"alpha negative", ok, ok, 0.5, QuantileOptions{Alpha: -0.05}, ErrInvalidInput, ""},
		{"scales differ", ok, otherScale, 0.5, QuantileOptions{}, ErrInvalidInput, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := CompareQuantiles(c.control, c.treat, c.p, c.opts)
			checkQuantileError(t, r, err, c.want, c.wantsArm)
		})
	}
	// The smallest arm the band allows at the median: n > z² = 3.84.
	four := mustHistogramOf(t, 0, []int64{1, 2, 3, 4})
	if _, err := EstimateQuantile(four, 0.5); err != nil {
		t.Errorf("four distinct units at the median: %v", err)
	}
	three := mustHistogramOf(t, 0, []int64{1, 2, 3})
	if _, err := EstimateQuantile(three, 0.5); !errors.Is(err, ErrDegenerate) {
		t.Errorf("three units at the median: %v, want ErrDegenerate", err)
	}
}

func TestCompareEventQuantilesHostile(t *testing.T) {
	// 60 units with 1 to 3 events of distinct values.
	units := make([][]int64, 60)
	for i := range units {
		for j := range 1 + i%3 {
			units[i] = append(units[i], int64(i*31+j*17)%997)
		}
	}
	ok, _ := eventArm(t, 2, units, 0.5)
	oneUnit, _ := eventArm(t, 2, [][]int64{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, 0.5)
	// Every unit has one event below the median and one above: the share
	// below is 1/2 in every unit, so the cluster variance is zero.
	halves := make([][]int64, 40)
	for i := range halves {
		halves[i] = []int64{int64(i), int64(100 + i)}
	}
	even, _ := eventArm(t, 2, halves, 0.5)
	wrongCount := ok
	wrongCount.Clusters.Events++
	otherThreshold := ok
	at03, _ := eventArm(t, 2, units, 0.3)
	otherThreshold.Clusters = at03.Clusters
	otherScale := ok
	otherScale.Events = mustHistogramOf(t, 3, nil)
	for _, c := range []struct {
		name     string
		control  EventQuantileArm
		treat    EventQuantileArm
		p        float64
		want     error
		wantsArm string
	}{
		{"no events", EventQuantileArm{Events: Histogram{decimals: 2}}, ok, 0.5, ErrDegenerate, "control"},
		{"one unit", ok, oneUnit, 0.5, ErrDegenerate, "treatment"},
		{"zero cluster variance", even, ok, 0.5, ErrDegenerate, "control"},
		{"passes disagree on events", ok, wrongCount, 0.5, ErrInvalidInput, "treatment"},
		{"pass 2 at another threshold", otherThreshold, ok, 0.5, ErrInvalidInput, "control"},
		{"p 1", ok, ok, 1, ErrInvalidInput, ""},
		{"p 0", ok, ok, 0, ErrInvalidInput, ""},
		{"scales differ", ok, otherScale, 0.5, ErrInvalidInput, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := CompareEventQuantiles(c.control, c.treat, c.p, QuantileOptions{})
			checkQuantileError(t, r, err, c.want, c.wantsArm)
		})
	}
	if _, err := CompareEventQuantiles(ok, ok, 0.5, QuantileOptions{}); err != nil {
		t.Errorf("valid arms: %v", err)
	}
}

func TestClusterSums(t *testing.T) {
	var s ClusterSums
	if err := s.AddUnit(3, 4); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("below > events: %v", err)
	}
	if err := s.AddUnit(0, 0); err != nil || s != (ClusterSums{}) {
		t.Errorf("a unit without events: %v, %+v", err, s)
	}
	if err := s.AddUnit(5, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUnit(3, 3); err != nil {
		t.Fatal(err)
	}
	if want := (ClusterSums{Units: 2, Events: 8, Below: 5, EventsSq: 34, BelowSq: 13, BelowEvents: 19}); s != want {
		t.Errorf("sums %+v, want %+v", s, want)
	}
	before := s
	if err := s.AddUnit(1<<32, 0); !errors.Is(err, ErrOverflow) || s != before {
		t.Errorf("square overflow: %v, sums %+v", err, s)
	}
	big := ClusterSums{Units: 1, Events: math.MaxUint64, Below: 1}
	if _, err := big.Merge(ClusterSums{Units: 1, Events: 1}); !errors.Is(err, ErrOverflow) {
		t.Errorf("sum overflow: %v", err)
	}
}

func TestCompareGridQuantilesHostile(t *testing.T) {
	edges := []int64{0, 100, 200, 300, 400, 500}
	valid := GridCounts{Edges: edges, Decimals: 2, Counts: []float64{300, 500, 420, 200, 80}, NoiseVar: []float64{4, 4, 4, 4, 4}}
	with := func(f func(g *GridCounts)) GridCounts {
		g := valid
		g.Edges = slices.Clone(valid.Edges)
		g.Counts = slices.Clone(valid.Counts)
		g.NoiseVar = slices.Clone(valid.NoiseVar)
		f(&g)
		return g
	}
	for _, c := range []struct {
		name     string
		control  GridCounts
		treat    GridCounts
		p        float64
		want     error
		wantsArm string
	}{
		{"one edge", with(func(g *GridCounts) { g.Edges = g.Edges[:1]; g.Counts, g.NoiseVar = nil, nil }),
			with(func(g *GridCounts) { g.Edges = g.Edges[:1]; g.Counts, g.NoiseVar = nil, nil }), 0.5, ErrInvalidInput, "control"},
		{"edges not increasing", with(func(g *GridCounts) { g.Edges[3] = 200 }), with(func(g *GridCounts) { g.Edges[3] = 200 }), 0.5, ErrInvalidInput, "control"},
		{"too few counts", valid, with(func(g *GridCounts) { g.Counts = g.Counts[:4] }), 0.5, ErrLength, "treatment"},
		{"NaN count", with(func(g *GridCounts) { g.Counts[2] = math.NaN() }), valid, 0.5, ErrInvalidInput, "control"},
		{"infinite count", valid, with(func(g *GridCounts) { g.Counts[0] = math.Inf(1) }), 0.5, ErrInvalidInput, "treatment"},
		{"negative noise variance", valid, with(func(g *GridCounts) { g.NoiseVar[1] = -1 }), 0.5, ErrInvalidInput, "treatment"},
		{"every count negative", with(func(g *GridCounts) { g.Counts = []float64{-3, -1, -7, -2, -1} }), valid, 0.5, ErrDegenerate, "control"},
		{"noise swamps the counts", valid, with(func(g *GridCounts) { g.NoiseVar = []float64{1e6, 1e6, 1e6, 1e6, 1e6} }), 0.5, ErrDegenerate, "treatment"},
		{"different grids", valid, with(func(g *GridCounts) { g.Edges[5] = 600 }), 0.5, ErrInvalidInput, ""},
		{"different scales", valid, with(func(g *GridCounts) { g.Decimals = 3 }), 0.5, ErrInvalidInput, ""},
		{"p 0", valid, valid, 0, ErrInvalidInput, ""},
		{"p 1", valid, valid, 1, ErrInvalidInput, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := CompareGridQuantiles(c.control, c.treat, c.p, QuantileOptions{})
			checkQuantileError(t, r, err, c.want, c.wantsArm)
		})
	}
	if _, err := CompareGridQuantiles(valid, valid, 0.5, QuantileOptions{}); err != nil {
		t.Errorf("valid release: %v", err)
	}
	if _, err := (Histogram{}).BucketCounts([]int64{3, 3}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("BucketCounts with equal edges: %v", err)
	}
}

// TestBucketCounts: each value lands in the bucket (e_j, e_{j+1}], the end
// buckets taking everything beyond the grid.
func TestBucketCounts(t *testing.T) {
	edges := []int64{-50, 0, 10, 11, 200}
	values := []int64{-1000, -50, -49, 0, 1, 10, 11, 12, 200, 201, 5000, 10, 10}
	want := []uint64{4, 4, 1, 4} // ≤0: -1000 -50 -49 0; (0,10]: 1 10 10 10; (10,11]: 11; >11: 12 200 201 5000
	got, err := mustHistogramOf(t, 0, values).BucketCounts(edges)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("BucketCounts = %v, %v; want %v", got, err, want)
	}
}

package stats

import (
	"errors"
	"math/big"
	"slices"
	"testing"
)

// The values in testdata/quantile_reference.json come from
// testdata/quantile_reference.py: NumPy's np.quantile(method=
// "inverted_cdf") and its order statistics on the unit-level integer
// arrays this test also receives, the order-statistic variance GrowthBook
// documents, Python-integer sums of np.clip for the caps, and statsmodels'
// cluster-robust variance of the fraction of events below the quantile
// for the event level, from per-unit event arrays (see the script):
//
//	/usr/bin/python3 stats/testdata/quantile_reference.py
//
// Tolerances: quantiles, band bounds, ranks, caps, capped sums and bucket
// counts are exact (integers, or the same correctly rounded float), except
// the private grid's interpolated quantile and bounds; everything else,
// and those, is compared at relTol (1e-9) relative, a bound or difference
// against the scale of its standard error, a p-value against itself.

type refQuantileEstimate struct {
	Quantile, Lower, Upper, Var, SE, N float64
	BandLevel, CDFVar, DesignEffect    float64
	RankLower, RankUpper               uint64
	Clusters                           uint64
	Threshold                          int64
	Below                              uint64
}

// refQuantileComparison's estimates carry, at the event level, the arm's
// threshold and its count of events at or below it.
type refQuantileComparison struct {
	Control, Treatment                    refQuantileEstimate
	Diff, SE, Statistic, PValue, Critical float64
	DiffLow, DiffHigh                     float64
	HasRelative, FiellerBounded           bool
	RelDiff, RelSE, RelLow, RelHigh       float64
	FiellerLow, FiellerHigh               float64
}

// refGridArm is one arm of a private grid case: its unit values, the
// exact bucket counts, and the noise the script added to each.
type refGridArm struct {
	Values   []int64
	Exact    []uint64
	Noise    []float64
	NoiseVar []float64 `json:"noise_var"`
}

type quantileReference struct {
	Unit []struct {
		Name               string
		Decimals           int
		P, Alpha           float64
		Control, Treatment []int64
		Degenerate         bool
		Want               *refQuantileComparison
	}
	Event []struct {
		Name               string
		Decimals           int
		P, Alpha           float64
		Control, Treatment [][]int64 // each unit's events
		Want               *refQuantileComparison
	}
	Grid []struct {
		Name               string
		Decimals           int
		P, Alpha           float64
		Edges              []int64
		Control, Treatment refGridArm
		Degenerate         bool
		Want               *refQuantileComparison
	}
	Caps []struct {
		Name               string
		Decimals           int
		LowerP             *float64 `json:"lower_p"`
		UpperP             float64  `json:"upper_p"`
		Control, Treatment []int64
		Lower              *int64
		Upper              int64
		Arms               []struct {
			N          uint64
			Sum, SumSq *big.Int
			Mean, Var  float64
		}
	}
}

func loadQuantileReference(t *testing.T) quantileReference {
	t.Helper()
	var ref quantileReference
	loadJSON(t, "testdata/quantile_reference.json", &ref)
	if len(ref.Unit) == 0 || len(ref.Caps) == 0 || len(ref.Event) == 0 || len(ref.Grid) == 0 {
		t.Fatal("no reference cases")
	}
	return ref
}

func mustHistogramOf(t *testing.T, d int, values []int64) Histogram {
	t.Helper()
	h, err := HistogramOf(d, values)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkQuantileEstimate compares an arm's estimate with the reference:
// the quantile and band bounds exactly when exact (data values), else at
// relTol on the scale of the standard error (the private grid's
// interpolation).
func checkQuantileEstimate(t *testing.T, arm string, got QuantileEstimate, w refQuantileEstimate, exact bool) {
	t.Helper()
	if exact {
		if got.Quantile != w.Quantile || got.Lower != w.Lower || got.Upper != w.Upper {
			t.Errorf("%s: quantile %v band [%v, %v], want %v [%v, %v]", arm, got.Quantile, got.Lower, got.Upper, w.Quantile, w.Lower, w.Upper)
		}
	} else {
		checkClose(t, arm+".Quantile", got.Quantile, w.Quantile, w.SE)
		checkClose(t, arm+".Lower", got.Lower, w.Lower, w.SE)
		checkClose(t, arm+".Upper", got.Upper, w.Upper, w.SE)
	}
	if got.RankLower != w.RankLower || got.RankUpper != w.RankUpper {
		t.Errorf("%s: ranks %d, %d, want %d, %d", arm, got.RankLower, got.RankUpper, w.RankLower, w.RankUpper)
	}
	checkClose(t, arm+".N", got.N, w.N, 0)
	checkClose(t, arm+".Var", got.Var, w.Var, 0)
	checkClose(t, arm+".SE", got.SE, w.SE, 0)
	checkClose(t, arm+".BandLevel", got.BandLevel, w.BandLevel, 0)
	checkClose(t, arm+".CDFVar", got.CDFVar, w.CDFVar, 0)
	checkClose(t, arm+".DesignEffect", got.DesignEffect, w.DesignEffect, 0)
	if got.Clusters != w.Clusters {
		t.Errorf("%s: %d clusters, want %d", arm, got.Clusters, w.Clusters)
	}
}

func checkQuantileComparison(t *testing.T, got QuantileComparison, w *refQuantileComparison, exact bool) {
	t.Helper()
	checkQuantileEstimate(t, "control", got.Control, w.Control, exact)
	checkQuantileEstimate(t, "treatment", got.Treatment, w.Treatment, exact)
	checkClose(t, "Critical", got.Critical, w.Critical, 0)
	checkClose(t, "Diff", got.Diff, w.Diff, w.SE)
	checkClose(t, "SE", got.SE, w.SE, 0)
	checkClose(t, "Statistic", got.Statistic, w.Statistic, 1)
	checkClose(t, "PValue", got.PValue, w.PValue, 1e-300)
	checkClose(t, "DiffLow", got.DiffLow, w.DiffLow, w.SE)
	checkClose(t, "DiffHigh", got.DiffHigh, w.DiffHigh, w.SE)
	if got.HasRelative != w.HasRelative {
		t.Fatalf("HasRelative %v, want %v", got.HasRelative, w.HasRelative)
	}
	if !w.HasRelative {
		if got.RelDiff != 0 || got.RelSE != 0 || got.RelLow != 0 || got.RelHigh != 0 {
			t.Errorf("relative fields %v %v %v %v without a relative effect", got.RelDiff, got.RelSE, got.RelLow, got.RelHigh)
		}
		return
	}
	checkClose(t, "RelDiff", got.RelDiff, w.RelDiff, w.RelSE)
	checkClose(t, "RelSE", got.RelSE, w.RelSE, 0)
	checkClose(t, "RelLow", got.RelLow, w.RelLow, w.RelSE)
	checkClose(t, "RelHigh", got.RelHigh, w.RelHigh, w.RelSE)
	if (got.FiellerShape == SetBounded) != w.FiellerBounded {
		t.Fatalf("Fieller shape %v, want bounded %v", got.FiellerShape, w.FiellerBounded)
	}
	if w.FiellerBounded {
		checkClose(t, "FiellerLow", got.FiellerLow, w.FiellerLow, w.RelSE)
		checkClose(t, "FiellerHigh", got.FiellerHigh, w.FiellerHigh, w.RelSE)
	}
}

func TestQuantileReferenceUnit(t *testing.T) {
	ref := loadQuantileReference(t)
	for _, c := range ref.Unit {
		t.Run(c.Name, func(t *testing.T) {
			hc, ht := mustHistogramOf(t, c.Decimals, c.Control), mustHistogramOf(t, c.Decimals, c.Treatment)
			got, err := CompareQuantiles(hc, ht, c.P, QuantileOptions{Alpha: c.Alpha})
			if c.Degenerate {
				var ae *ArmError
				if !errors.Is(err, ErrDegenerate) || !errors.As(err, &ae) {
					t.Fatalf("error %v, want an ArmError wrapping ErrDegenerate", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkQuantileComparison(t, got, c.Want, true)
		})
	}
}

func TestQuantileReferenceCaps(t *testing.T) {
	ref := loadQuantileReference(t)
	for _, c := range ref.Caps {
		t.Run(c.Name, func(t *testing.T) {
			arms := []Histogram{mustHistogramOf(t, c.Decimals, c.Control), mustHistogramOf(t, c.Decimals, c.Treatment)}
			upper, err := PooledQuantile(c.UpperP, arms...)
			if err != nil || upper != c.Upper {
				t.Fatalf("upper cap %d, %v; want %d", upper, err, c.Upper)
			}
			lower := int64(NoLowerCap)
			if c.LowerP != nil {
				if lower, err = PooledQuantile(*c.LowerP, arms...); err != nil || lower != *c.Lower {
					t.Fatalf("lower cap %d, %v; want %d", lower, err, *c.Lower)
				}
			}
			got, err := CappedMoments(arms, lower, upper)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range c.Arms {
				g := got[i]
				if g.N != w.N || g.Sum.Cmp(w.Sum) != 0 || g.SumSq.Cmp(w.SumSq) != 0 {
					t.Errorf("arm %d: n %d Σ %v Σ² %v, want %d %v %v", i, g.N, g.Sum, g.SumSq, w.N, w.Sum, w.SumSq)
				}
				a := g.Arm()
				checkClose(t, "Mean", a.Mean, w.Mean, 0)
				checkClose(t, "Var", a.Var, w.Var, 0)
			}
		})
	}
}

// eventArm runs the two passes the pipeline runs on an arm's events
// (unit i's events in units[i]): the histogram of every event value, its
// p-quantile as the threshold, then each unit's events and events at or
// below the threshold added to the cluster sums in two shards merged.
func eventArm(t *testing.T, d int, units [][]int64, p float64) (EventQuantileArm, int64) {
	t.Helper()
	var all []int64
	for _, u := range units {
		all = append(all, u...)
	}
	a := EventQuantileArm{Events: mustHistogramOf(t, d, all)}
	threshold, err := a.Events.Quantile(p)
	if err != nil {
		t.Fatal(err)
	}
	var shards [2]ClusterSums
	for i, u := range units {
		var below uint64
		for _, v := range u {
			if v <= threshold {
				below++
			}
		}
		if err := shards[i%2].AddUnit(uint64(len(u)), below); err != nil {
			t.Fatal(err)
		}
	}
	if a.Clusters, err = shards[0].Merge(shards[1]); err != nil {
		t.Fatal(err)
	}
	return a, threshold
}

func TestQuantileReferenceEvent(t *testing.T) {
	ref := loadQuantileReference(t)
	for _, c := range ref.Event {
		t.Run(c.Name, func(t *testing.T) {
			ca, cq := eventArm(t, c.Decimals, c.Control, c.P)
			ta, tq := eventArm(t, c.Decimals, c.Treatment, c.P)
			w := c.Want
			if cq != w.Control.Threshold || tq != w.Treatment.Threshold ||
				ca.Clusters.Below != w.Control.Below || ta.Clusters.Below != w.Treatment.Below {
				t.Fatalf("thresholds %d, %d with %d, %d events below; want %d, %d with %d, %d", cq, tq,
					ca.Clusters.Below, ta.Clusters.Below, w.Control.Threshold, w.Treatment.Threshold, w.Control.Below, w.Treatment.Below)
			}
			got, err := CompareEventQuantiles(ca, ta, c.P, QuantileOptions{Alpha: c.Alpha})
			if err != nil {
				t.Fatal(err)
			}
			checkQuantileComparison(t, got, w, true)
		})
	}
}

// gridArm builds an arm's release as the pipeline would: the histogram of
// its values, the bucket counts on the grid, plus the script's noise.
func gridArm(t *testing.T, d int, edges []int64, a refGridArm) GridCounts {
	t.Helper()
	exact, err := mustHistogramOf(t, d, a.Values).BucketCounts(edges)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(exact, a.Exact) {
		t.Fatalf("bucket counts %v, want %v", exact, a.Exact)
	}
	g := GridCounts{Edges: edges, Decimals: d, Counts: make([]float64, len(exact)), NoiseVar: a.NoiseVar}
	for j, c := range exact {
		g.Counts[j] = float64(c) + a.Noise[j]
	}
	return g
}

func TestQuantileReferenceGrid(t *testing.T) {
	ref := loadQuantileReference(t)
	for _, c := range ref.Grid {
		t.Run(c.Name, func(t *testing.T) {
			gc := gridArm(t, c.Decimals, c.Edges, c.Control)
			gt := gridArm(t, c.Decimals, c.Edges, c.Treatment)
			got, err := CompareGridQuantiles(gc, gt, c.P, QuantileOptions{Alpha: c.Alpha})
			if c.Degenerate {
				if !errors.Is(err, ErrDegenerate) {
					t.Fatalf("error %v, want ErrDegenerate", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkQuantileComparison(t, got, c.Want, false)
		})
	}
}

package stats

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHistogramMergeExact: however the units are split into shards and in
// whatever order the shards are merged, the result is the histogram of all
// the units.
func TestHistogramMergeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 5))
	values := make([]int64, 5000)
	for i := range values {
		values[i] = int64(rng.IntN(700)) - 200 // many ties
	}
	values[17], values[4000] = math.MaxInt64, math.MinInt64
	want, err := HistogramOf(2, values)
	if err != nil {
		t.Fatal(err)
	}
	if want.N() != uint64(len(values)) {
		t.Fatalf("N = %d, want %d", want.N(), len(values))
	}
	for trial := range 20 {
		k := 1 + rng.IntN(9)
		shards := make([][]int64, k)
		for _, v := range values {
			i := rng.IntN(k)
			shards[i] = append(shards[i], v)
		}
		hs := make([]Histogram, k)
		for i, s := range shards {
			if hs[i], err = HistogramOf(2, s); err != nil {
				t.Fatal(err)
			}
		}
		rng.Shuffle(k, func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
		got, err := MergeHistograms(hs...)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Fatalf("trial %d: merged histogram of %d shards differs from the whole", trial, k)
		}
		// Pairwise merges in both orders agree too.
		if k >= 2 {
			ab, _ := hs[0].Merge(hs[1])
			ba, _ := hs[1].Merge(hs[0])
			if !ab.Equal(ba) {
				t.Fatal("Merge is not commutative")
			}
		}
	}
	// NewHistogram from unsorted bins with duplicates and zero counts.
	h, err := NewHistogram(2, []Bin{{5, 2}, {-1, 1}, {5, 3}, {7, 0}, {-1, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Bins(), []Bin{{-1, 5}, {5, 5}}; !slices.Equal(got, want) || h.N() != 10 {
		t.Errorf("bins %v N %d, want %v N 10", got, h.N(), want)
	}
}

func TestHistogramQuantileDefinition(t *testing.T) {
	ten := []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	for _, c := range []struct {
		name   string
		values []int64
		p      float64
		want   int64
	}{
		// k = ⌈n·p⌉ with p read as a decimal: 0.1·10 = 1 and 0.3·10 = 3
		// exactly (the binary double of 0.1 is slightly above 1/10).
		{"p 0.1 n 10", ten, 0.1, 1},
		{"p 0.3 n 10", ten, 0.3, 3},
		{"p 0.31 n 10", ten, 0.31, 4},
		{"median n 10", ten, 0.5, 5},
		{"p 0.51 n 10", ten, 0.51, 6},
		{"p 0.99 n 10", ten, 0.99, 10},
		{"tiny p", ten, 1e-300, 1},
		{"p just below 1", ten, math.Nextafter(1, 0), 10},
		{"n 1", []int64{-42}, 0.7, -42},
		{"ties", []int64{0, 0, 0, 0, 0, 0, 3, 3, 9, 9}, 0.6, 0},
		{"ties above", []int64{0, 0, 0, 0, 0, 0, 3, 3, 9, 9}, 0.61, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := HistogramOf(0, c.values)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.Quantile(c.p)
			if err != nil || got != c.want {
				t.Errorf("Quantile(%v) = %d, %v; want %d", c.p, got, err, c.want)
			}
		})
	}
	// Against brute force: the ⌈n·p⌉-th smallest value, p = k/1000.
	rng := rand.New(rand.NewPCG(20, 6))
	for range 200 {
		n := 1 + rng.IntN(300)
		vs := make([]int64, n)
		for i := range vs {
			vs[i] = rng.Int64N(50)
		}
		h, _ := HistogramOf(1, vs)
		slices.Sort(vs)
		num := 1 + rng.IntN(999)
		p := float64(num) / 1000
		k := (n*num + 999) / 1000
		if got, _ := h.Quantile(p); got != vs[k-1] {
			t.Fatalf("n %d p %v: got %d, want x_(%d) = %d", n, p, got, k, vs[k-1])
		}
	}
}

func TestHistogramErrors(t *testing.T) {
	h, _ := HistogramOf(2, []int64{1, 2, 3})
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"negative decimals", second(NewHistogram(-1, nil)), ErrInvalidInput},
		{"too many decimals", second(HistogramOf(19, []int64{1})), ErrInvalidInput},
		{"p 0", second(h.Quantile(0)), ErrInvalidInput},
		{"p 1", second(h.Quantile(1)), ErrInvalidInput},
		{"p negative", second(h.Quantile(-0.5)), ErrInvalidInput},
		{"p above 1", second(h.Quantile(1.5)), ErrInvalidInput},
		{"p NaN", second(h.Quantile(math.NaN())), ErrInvalidInput},
		{"p Inf", second(h.Quantile(math.Inf(1))), ErrInvalidInput},
		{"empty", second(Histogram{}.Quantile(0.5)), ErrDegenerate},
		{"empty pooled", second(PooledQuantile(0.5)), ErrDegenerate},
		{"pooled p 1", second(PooledQuantile(1, h)), ErrInvalidInput},
		{"scale mismatch", second(h.Merge(Histogram{})), ErrInvalidInput},
		{"count overflow", second(NewHistogram(0, []Bin{{1, math.MaxUint64}, {2, 1}})), ErrOverflow},
		{"merge overflow", second(mustHist(t, []Bin{{1, math.MaxUint64}}).Merge(mustHist(t, []Bin{{1, 1}}))), ErrOverflow},
		{"caps crossed", second(CappedMoments([]Histogram{h}, 5, 4)), ErrInvalidInput},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, c.want) {
				t.Errorf("error %v, want %v", c.err, c.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func mustHist(t *testing.T, bins []Bin) Histogram {
	t.Helper()
	h, err := NewHistogram(0, bins)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCappedMoments: the capped sums equal brute-force big.Int sums over
// the unit values, including values whose squares overflow int64.
func TestCappedMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 7))
	c, tr := make([]int64, 3000), make([]int64, 2500)
	for i := range c {
		c[i] = int64(1000 * rng.ExpFloat64())
	}
	for i := range tr {
		tr[i] = int64(1100 * rng.ExpFloat64())
	}
	c[0], tr[0] = math.MaxInt64, math.MinInt64+1
	hc, _ := HistogramOf(3, c)
	ht, _ := HistogramOf(3, tr)
	capHi, err := PooledQuantile(0.99, hc, ht)
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(c, tr)
	slices.Sort(all)
	if want := all[(len(all)*99+99)/100-1]; capHi != want {
		t.Fatalf("pooled p99 = %d, want %d", capHi, want)
	}
	capLo, _ := PooledQuantile(0.01, hc, ht)
	for _, cs := range []struct {
		name   string
		lo, hi int64
	}{
		{"uncapped", NoLowerCap, NoUpperCap},
		{"upper", NoLowerCap, capHi},
		{"both", capLo, capHi},
		{"single point", 500, 500},
	} {
		t.Run(cs.name, func(t *testing.T) {
			got, err := CappedMoments([]Histogram{hc, ht}, cs.lo, cs.hi)
			if err != nil {
				t.Fatal(err)
			}
			for i, vs := range [][]int64{c, tr} {
				sum, sq := new(big.Int), new(big.Int)
				for _, v := range vs {
					x := big.NewInt(min(max(v, cs.lo), cs.hi))
					sum.Add(sum, x)
					sq.Add(sq, new(big.Int).Mul(x, x))
				}
				g := got[i]
				if g.N != uint64(len(vs)) || g.Sum.Cmp(sum) != 0 || g.SumSq.Cmp(sq) != 0 || g.Decimals != 3 {
					t.Errorf("arm %d: n %d Σ %v Σ² %v, want %d %v %v", i, g.N, g.Sum, g.SumSq, len(vs), sum, sq)
				}
			}
		})
	}
}

func TestExactMomentsArm(t *testing.T) {
	h, _ := HistogramOf(2, []int64{150, 250, 250, -100}) // 1.5, 2.5, 2.5, -1
	m, _ := CappedMoments([]Histogram{h}, NoLowerCap, NoUpperCap)
	a := m[0].Arm()
	// mean 5.5/4, sample variance (Σx² − (Σx)²/n)/(n−1) = (15.75 − 7.5625)/3.
	if a.N != 4 || a.Mean != 1.375 || math.Abs(a.Var-8.1875/3) > 1e-15 {
		t.Errorf("Arm = %+v", a)
	}
	one, _ := HistogramOf(2, []int64{7})
	m, _ = CappedMoments([]Histogram{one, {}}, NoLowerCap, NoUpperCap)
	if a := m[0].Arm(); a != (Arm{N: 1, Mean: 0.07}) {
		t.Errorf("one unit: %+v", a)
	}
	if a := m[1].Arm(); a != (Arm{}) {
		t.Errorf("no units: %+v", a)
	}
}

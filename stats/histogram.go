package stats

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
)

// Exactly mergeable histograms (issue #20 item 5).
//
// Quantiles and percentile caps are not additive, so a sharded run cannot
// merge per-shard quantiles. It can merge histograms of fixed-point values
// exactly: a Histogram holds, for each distinct value v = round(x·10^d),
// the number of units (or events) with that value. Merging adds counts;
// the result does not depend on the order or the grouping of the merges,
// and every quantile, cap and capped moment below is a function of the
// merged histogram alone.

// MaxDecimals is the largest fixed-point scale a Histogram accepts: 10^18
// is the largest power of ten in an int64.
const MaxDecimals = 18

// Bin is one distinct fixed-point value of a Histogram and how many units
// (or events) have it.
type Bin struct {
	Value int64  // round(x·10^decimals)
	Count uint64 // number of units with this value
}

// Histogram is the exact distribution of an arm's fixed-point values: bins
// sorted by strictly increasing Value, every Count positive. Its zero
// value is empty with scale 0. Histograms are values: Merge returns a new
// one and never changes its operands.
type Histogram struct {
	decimals int
	bins     []Bin
	n        uint64
}

// NewHistogram returns the histogram of bins (in any order; equal values
// are added, zero counts dropped) at scale 10^-decimals. It returns
// ErrInvalidInput for decimals outside [0, MaxDecimals] and ErrOverflow
// when the counts sum beyond uint64.
func NewHistogram(decimals int, bins []Bin) (Histogram, error) {
	if err := checkDecimals(decimals); err != nil {
		return Histogram{}, err
	}
	s := slices.Clone(bins)
	slices.SortStableFunc(s, func(a, b Bin) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return 0
	})
	h := Histogram{decimals: decimals, bins: s[:0]}
	for _, b := range s {
		if b.Count == 0 {
			continue
		}
		if err := h.appendBin(b); err != nil {
			return Histogram{}, err
		}
	}
	return h, nil
}

// HistogramOf returns the histogram of fixed-point values (one per unit or
// event) at scale 10^-decimals. Errors as NewHistogram.
func HistogramOf(decimals int, values []int64) (Histogram, error) {
	if err := checkDecimals(decimals); err != nil {
		return Histogram{}, err
	}
	s := slices.Clone(values)
	slices.Sort(s)
	h := Histogram{decimals: decimals}
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		h.bins = append(h.bins, Bin{Value: s[i], Count: uint64(j - i)})
		i = j
	}
	h.n = uint64(len(s))
	return h, nil
}

func checkDecimals(d int) error {
	if d < 0 || d > MaxDecimals {
		return fmt.Errorf("histogram: %d decimals not in [0, %d]: %w", d, MaxDecimals, ErrInvalidInput)
	}
	return nil
}

// appendBin adds b after the last bin (b.Value ≥ its value), merging equal
// values, with overflow checks.
func (h *Histogram) appendBin(b Bin) error {
	n, carry := bits.Add64(h.n, b.Count, 0)
	if carry != 0 {
		return fmt.Errorf("histogram: more than 2^64 units: %w", ErrOverflow)
	}
	h.n = n
	if k := len(h.bins); k > 0 && h.bins[k-1].Value == b.Value {
		h.bins[k-1].Count += b.Count // cannot overflow: bounded by h.n
		return nil
	}
	h.bins = append(h.bins, b)
	return nil
}

// Merge returns the histogram of the units of h and o together. Merging is
// exact, commutative and associative. It returns ErrInvalidInput when the
// scales differ and ErrOverflow when the total count exceeds uint64.
func (h Histogram) Merge(o Histogram) (Histogram, error) {
	if h.decimals != o.decimals {
		return Histogram{}, fmt.Errorf("histogram: merging %d decimals with %d: %w", h.decimals, o.decimals, ErrInvalidInput)
	}
	m := Histogram{decimals: h.decimals, bins: make([]Bin, 0, len(h.bins)+len(o.bins))}
	i, j := 0, 0
	for i < len(h.bins) || j < len(o.bins) {
		var b Bin
		if j == len(o.bins) || (i < len(h.bins) && h.bins[i].Value <= o.bins[j].Value) {
			b, i = h.bins[i], i+1
		} else {
			b, j = o.bins[j], j+1
		}
		if err := m.appendBin(b); err != nil {
			return Histogram{}, err
		}
	}
	return m, nil
}

// MergeHistograms merges any number of histograms of one scale (see
// Merge). With none it returns an empty histogram of scale 0.
func MergeHistograms(hs ...Histogram) (Histogram, error) {
	if len(hs) == 0 {
		return Histogram{}, nil
	}
	m := hs[0]
	for _, h := range hs[1:] {
		var err error
		if m, err = m.Merge(h); err != nil {
			return Histogram{}, err
		}
	}
	return m, nil
}

// N returns the number of units (or events) in the histogram.
func (h Histogram) N() uint64 { return h.n }

// Decimals returns the fixed-point scale: values are round(x·10^Decimals).
func (h Histogram) Decimals() int { return h.decimals }

// Bins returns a copy of the bins in increasing order of value.
func (h Histogram) Bins() []Bin { return slices.Clone(h.bins) }

// Equal reports whether h and o hold the same distribution at the same scale.
func (h Histogram) Equal(o Histogram) bool {
	return h.decimals == o.decimals && h.n == o.n && slices.Equal(h.bins, o.bins)
}

// Float returns the fixed-point value v of this histogram's scale as the
// float64 nearest to v·10^-Decimals (correctly rounded).
func (h Histogram) Float(v int64) float64 { return fixedToFloat(v, h.decimals) }

// Quantile returns the p-quantile of the histogram under the inverted
// empirical CDF, Hyndman and Fan's (1996) definition 1 (NumPy's
// method="inverted_cdf"):
//
//	Q(p) = x_(k),  k = ⌈n·p⌉,
//
// the smallest value whose empirical CDF reaches p, always one of the
// data's fixed-point values. p must lie in (0, 1), and is read as the
// shortest decimal that formats as it (0.1 is 1/10, not the binary double
// nearest it), so k is exact: for n = 10, p = 0.3 it is 3, and for
// n = 10, p = 0.1 it is 1.
//
// Definition 1 rather than NumPy's default (definition 7, linear
// interpolation) because everything built on it stays exact and
// consistent: the quantile is a data value, so a percentile cap keeps
// capped values integers (exact moments), the event-level variance counts
// events at or below an observed value (the fraction below is the
// empirical CDF there, at least p), and the order-statistic interval's
// bounds (see EstimateQuantile) are the same definition at levels p ± δ.
//
// Errors: ErrInvalidInput for p outside (0, 1), ErrDegenerate for an empty
// histogram.
func (h Histogram) Quantile(p float64) (int64, error) {
	if err := checkLevel(p); err != nil {
		return 0, err
	}
	if h.n == 0 {
		return 0, fmt.Errorf("quantile of an empty histogram: %w", ErrDegenerate)
	}
	return h.orderStat(ceilMulDecimal(h.n, p)), nil
}

// checkLevel reports whether p is a quantile level in (0, 1).
func checkLevel(p float64) error {
	if !(p > 0 && p < 1) {
		return fmt.Errorf("quantile level %v not in (0, 1): %w", p, ErrInvalidInput)
	}
	return nil
}

// ceilMulDecimal returns ⌈n·p⌉ exactly, p read as its shortest decimal
// (see Quantile); 0 < p < 1, so the result is in [1, n] for n ≥ 1.
func ceilMulDecimal(n uint64, p float64) uint64 {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(p, 'g', -1, 64))
	if !ok { // unreachable for finite p; the binary value is the next best
		r = new(big.Rat).SetFloat64(p)
	}
	num := new(big.Int).Mul(new(big.Int).SetUint64(n), r.Num())
	q, m := new(big.Int).QuoRem(num, r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Uint64()
}

// rankAt returns the definition-1 rank ⌈n·u⌉ of a level u computed in
// floating point (the bandwidth levels p ± δ are irrational), clipped to
// [1, n], as NumPy's inverted_cdf indexes: the product is rounded to
// float64 before the ceiling.
func rankAt(n uint64, u float64) uint64 {
	k := math.Ceil(float64(float64(n) * u))
	switch {
	case !(k >= 1):
		return 1
	case k >= float64(n):
		return n
	}
	return uint64(k)
}

// orderStat returns the k-th smallest value, 1 ≤ k ≤ n.
func (h Histogram) orderStat(k uint64) int64 {
	var c uint64
	for _, b := range h.bins {
		c += b.Count
		if c >= k {
			return b.Value
		}
	}
	return h.bins[len(h.bins)-1].Value
}

// CountAtMost returns the number of units whose value is at most v.
func (h Histogram) CountAtMost(v int64) uint64 {
	var c uint64
	for _, b := range h.bins {
		if b.Value > v {
			break
		}
		c += b.Count
	}
	return c
}

// Percentile capping (issue #20 item 2).

// Cap bounds for CappedMoments that cap nothing.
const (
	NoLowerCap = math.MinInt64
	NoUpperCap = math.MaxInt64
)

// PooledQuantile returns the p-quantile (definition 1, see Quantile) of
// the arms' histograms merged: the percentile cap computed from every arm
// of a comparison together, so that capping treats all arms alike. The
// result is a fixed-point value of the arms' common scale. Errors as
// Merge and Quantile.
func PooledQuantile(p float64, arms ...Histogram) (int64, error) {
	if err := checkLevel(p); err != nil {
		return 0, err
	}
	pooled, err := MergeHistograms(arms...)
	if err != nil {
		return 0, err
	}
	return pooled.Quantile(p)
}

// ExactMoments are the sufficient statistics of an arm's (possibly capped)
// fixed-point values, exact: N units, Sum = Σv and SumSq = Σv² in units of
// 10^-Decimals and 10^-2·Decimals.
type ExactMoments struct {
	N          uint64
	Sum, SumSq *big.Int
	Decimals   int
}

// CappedMoments returns, for each arm, the exact moments of its values
// winsorised to [lower, upper]: n, Σ min(max(v, lower), upper) and the sum
// of squares of the same, computed from the histogram with integer
// arithmetic (no floating-point accumulation). NoLowerCap and NoUpperCap
// leave a side uncapped; CappedMoments(arms, NoLowerCap, NoUpperCap)
// gives the plain moments. It returns ErrInvalidInput when lower > upper.
func CappedMoments(arms []Histogram, lower, upper int64) ([]ExactMoments, error) {
	if lower > upper {
		return nil, fmt.Errorf("capped moments: lower cap %d above upper cap %d: %w", lower, upper, ErrInvalidInput)
	}
	out := make([]ExactMoments, len(arms))
	for i, h := range arms {
		m := ExactMoments{N: h.n, Sum: new(big.Int), SumSq: new(big.Int), Decimals: h.decimals}
		v, c, t := new(big.Int), new(big.Int), new(big.Int)
		for _, b := range h.bins {
			v.SetInt64(min(max(b.Value, lower), upper))
			c.SetUint64(b.Count)
			t.Mul(v, c)
			m.Sum.Add(m.Sum, t)
			t.Mul(t, v)
			m.SumSq.Add(m.SumSq, t)
		}
		out[i] = m
	}
	return out, nil
}

// Arm returns the moments as an Arm of a mean metric: Mean = Σv/(n·10^d)
// and Var = (n·Σv² − (Σv)²)/(n(n−1)·10^2d), each rounded once from the
// exact rational. With n = 0 it is the zero Arm (Compare's missing arm),
// with n = 1 its Var is 0 (Compare's n<2).
func (m ExactMoments) Arm() Arm {
	if m.N == 0 {
		return Arm{}
	}
	n := new(big.Int).SetUint64(m.N)
	s := pow10(m.Decimals)
	a := Arm{N: float64(m.N)}
	a.Mean, _ = new(big.Rat).SetFrac(m.Sum, new(big.Int).Mul(n, s)).Float64()
	if m.N < 2 {
		return a
	}
	num := new(big.Int).Mul(n, m.SumSq)
	num.Sub(num, new(big.Int).Mul(m.Sum, m.Sum))
	den := new(big.Int).Mul(n, new(big.Int).SetUint64(m.N-1))
	den.Mul(den, new(big.Int).Mul(s, s))
	a.Var, _ = new(big.Rat).SetFrac(num, den).Float64()
	return a
}

// pow10 returns 10^d as a big.Int.
func pow10(d int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d)), nil)
}

// fixedToFloat returns v·10^-d correctly rounded.
func fixedToFloat(v int64, d int) float64 {
	f, _ := new(big.Rat).SetFrac(big.NewInt(v), pow10(d)).Float64()
	return f
}

// fixedDiff returns (a − b)·10^-d correctly rounded (a − b may overflow int64).
func fixedDiff(a, b int64, d int) float64 {
	x := new(big.Int).Sub(big.NewInt(a), big.NewInt(b))
	f, _ := new(big.Rat).SetFrac(x, pow10(d)).Float64()
	return f
}

package stats

import (
	"fmt"
	"math"
	"slices"
)

// Private quantiles from noisy counts on a fixed grid (issue #20 item 1,
// private specs).
//
// A private release cannot show order statistics. It can show, per arm,
// the number of units in each bucket of a grid of edges e_0 < e_1 < … < e_B
// declared in the spec (so the grid depends on no unit's data), each
// count with independent zero-mean noise of known variance σ_j². Bucket j
// holds the values in (e_j, e_{j+1}]; bucket 0 also holds e_0 and
// everything below it, bucket B−1 everything above e_B (the values are
// clamped into [e_0, e_B], as a private metric's per-unit bound requires).
//
// Estimate (post-processing of the release only, so no further privacy
// cost): negative noisy counts are set to zero, c⁺_j = max(c̃_j, 0), which
// makes the cumulative counts C_j = c⁺_0 + … + c⁺_j monotone; T = C_{B−1};
// the CDF is the ogive through F(e_0) = 0 and F(e_{j+1}) = C_j/T (values
// spread evenly within a bucket), and
//
//	Q̂(u) = e_k + w·(e_{k+1} − e_k),  k the first bucket with C_k ≥ u·T,  w = (u·T − C_{k−1})/c⁺_k,
//	q̂ = Q̂(ν).
//
// The estimand is therefore the quantile of the population's ogive on
// the grid, which is the quantile itself up to the curvature of the CDF
// within one bucket: the grid's resolution bounds what a private quantile
// can say. Clamping biases the counts of nearly empty buckets upward (by
// E[max(−c−e, 0)], about half the noise scale for an empty bucket), which
// moves mass toward sparse regions; a grid without long runs of empty
// buckets keeps this small.
//
// Interval: Woodruff's (1952) — the quantile's band is the ogive's inverse
// at ν ± z·√V_F, V_F the variance of the estimated CDF at the quantile,
// and Var(q̂) = ((Q̂(ν+δ) − Q̂(ν−δ))/(2z))² as at the unit level
// (EstimateQuantile, z = z_0.975), with the count noise added to V_F:
//
//	V_F = ν(1−ν)/T + [(1−ν)²·Σ_{j<k} σ_j² + (w−ν)²·σ_k² + ν²·Σ_{j>k} σ_j²] / T²,
//
// the sampling (binomial) variance plus the noise's, from the
// linearisation of F̂(q) = (C_{k−1} + w·c_k)/T in the counts. Every
// bucket's σ_j² enters, clamped ones included (conservative: a clamped
// count would have moved had its noise been positive). The difference of
// two arms is then the normal comparison of CompareQuantiles. Coverage of
// the planted ogive-quantile difference is checked by simulation
// (TestQuantileCoverageSimulation); without the noise term the interval
// under-covers there.
//
// Refusals (ErrDegenerate): no units after clamping (T = 0), and a band
// that leaves (0, 1) — too few units or too much noise for the level.

// GridCounts is one arm's private release for a quantile metric.
type GridCounts struct {
	// Edges are the grid e_0 < … < e_B, fixed-point at Decimals, B ≥ 1.
	Edges    []int64
	Decimals int
	// Counts are the B noisy bucket counts; NoiseVar their noise
	// variances (0 for an exact count).
	Counts   []float64
	NoiseVar []float64
}

// BucketCounts returns the exact number of h's units in each bucket of
// the grid edges (see GridCounts: (e_j, e_{j+1}], the end buckets taking
// the values beyond e_0 and e_B), the counts a private release adds noise
// to. It returns ErrInvalidInput for fewer than two edges or edges not
// strictly increasing.
func (h Histogram) BucketCounts(edges []int64) ([]uint64, error) {
	if err := checkEdges(edges); err != nil {
		return nil, err
	}
	b := len(edges) - 1
	out := make([]uint64, b)
	j := 0
	for _, bin := range h.bins {
		for j < b-1 && bin.Value > edges[j+1] {
			j++
		}
		out[j] += bin.Count
	}
	return out, nil
}

func checkEdges(edges []int64) error {
	if len(edges) < 2 {
		return fmt.Errorf("grid: %d edges, need at least 2: %w", len(edges), ErrInvalidInput)
	}
	for i := 1; i < len(edges); i++ {
		if edges[i] <= edges[i-1] {
			return fmt.Errorf("grid: edge %d (%d) not above edge %d (%d): %w", i, edges[i], i-1, edges[i-1], ErrInvalidInput)
		}
	}
	return nil
}

// Validate reports whether the release is usable: valid edges and scale,
// one finite count and one finite non-negative noise variance per bucket.
func (g GridCounts) Validate() error {
	if err := checkEdges(g.Edges); err != nil {
		return err
	}
	if err := checkDecimals(g.Decimals); err != nil {
		return err
	}
	b := len(g.Edges) - 1
	if len(g.Counts) != b || len(g.NoiseVar) != b {
		return fmt.Errorf("grid: %d buckets, %d counts, %d noise variances: %w", b, len(g.Counts), len(g.NoiseVar), ErrLength)
	}
	for j := range b {
		if !finite(g.Counts[j]) {
			return fmt.Errorf("grid: bucket %d count %v: %w", j, g.Counts[j], ErrInvalidInput)
		}
		if !finite(g.NoiseVar[j]) || g.NoiseVar[j] < 0 {
			return fmt.Errorf("grid: bucket %d noise variance %v: %w", j, g.NoiseVar[j], ErrInvalidInput)
		}
	}
	return nil
}

// ogive is the clamped cumulative distribution of a GridCounts.
type ogive struct {
	edges []float64 // e_0 … e_B as floats
	pos   []float64 // c⁺_j
	cum   []float64 // C_j
	total float64   // T
}

func newOgive(g GridCounts) ogive {
	o := ogive{edges: make([]float64, len(g.Edges)), pos: make([]float64, len(g.Counts)), cum: make([]float64, len(g.Counts))}
	for i, e := range g.Edges {
		o.edges[i] = fixedToFloat(e, g.Decimals)
	}
	var c float64
	for j, v := range g.Counts {
		o.pos[j] = max(v, 0)
		c += o.pos[j]
		o.cum[j] = c
	}
	o.total = c
	return o
}

// quantile returns Q̂(u) for 0 ≤ u < 1, with the bucket k it falls in and
// its position w within it.
func (o ogive) quantile(u float64) (q float64, k int, w float64) {
	target := float64(u * o.total)
	if !(target > 0) {
		return o.edges[0], 0, 0
	}
	k, _ = slices.BinarySearch(o.cum, target) // first C_k ≥ target
	k = min(k, len(o.cum)-1)
	below := 0.0
	if k > 0 {
		below = o.cum[k-1]
	}
	w = min(float64(target-below)/o.pos[k], 1)
	q = o.edges[k] + float64(w*float64(o.edges[k+1]-o.edges[k]))
	return q, k, w
}

// EstimateGridQuantile returns the p-quantile of a private grid release
// and its variance including the count noise (see above); N is the
// clamped noisy total T, CDFVar is V_F. Errors: ErrInvalidInput or
// ErrLength for an invalid release or p, ErrDegenerate for no units after
// clamping or a band outside (0, 1).
func EstimateGridQuantile(g GridCounts, p float64) (QuantileEstimate, error) {
	if err := checkLevel(p); err != nil {
		return QuantileEstimate{}, err
	}
	if err := g.Validate(); err != nil {
		return QuantileEstimate{}, err
	}
	o := newOgive(g)
	if !(o.total > 0) {
		return QuantileEstimate{}, fmt.Errorf("grid quantile: no units after clamping the noisy counts: %w", ErrDegenerate)
	}
	q, k, w := o.quantile(p)
	var before, after float64
	for j, v := range g.NoiseVar {
		switch {
		case j < k:
			before += v
		case j > k:
			after += v
		}
	}
	noise := (float64((1-p)*(1-p)*before) + float64((w-p)*(w-p)*g.NoiseVar[k]) + float64(p*p*after)) / (o.total * o.total)
	cdfVar := float64(p*(1-p))/o.total + noise
	z := normalQuantileTwoSided(quantileBandAlpha)
	delta := float64(z * math.Sqrt(cdfVar))
	lo, hi := p-delta, p+delta
	if !(lo > 0 && hi < 1) {
		return QuantileEstimate{}, fmt.Errorf("grid quantile: %v units (noisy) and the noise leave the band p ± %.4g outside (0, 1) at p = %v: %w",
			o.total, delta, p, ErrDegenerate)
	}
	e := QuantileEstimate{P: p, N: o.total, Quantile: q, BandLevel: delta, DesignEffect: 1, CDFVar: cdfVar}
	e.Lower, _, _ = o.quantile(lo)
	e.Upper, _, _ = o.quantile(hi)
	if !(e.Upper > e.Lower) {
		return QuantileEstimate{}, fmt.Errorf("grid quantile: band [%v, %v] has no width: %w", e.Lower, e.Upper, ErrDegenerate)
	}
	e.SE = (e.Upper - e.Lower) / (2 * z)
	e.Var = e.SE * e.SE
	if !finite(e.Var) || e.Var == 0 {
		return QuantileEstimate{}, fmt.Errorf("grid quantile: variance %v out of range: %w", e.Var, ErrOverflow)
	}
	return e, nil
}

// CompareGridQuantiles compares two arms' private p-quantiles released on
// the same grid: the normal difference and relative effect of
// CompareQuantiles with the noise-inclusive variances. Errors: those of
// EstimateGridQuantile (wrapped in an ArmError), and ErrInvalidInput for
// invalid options or different grids.
func CompareGridQuantiles(control, treatment GridCounts, p float64, opts QuantileOptions) (QuantileComparison, error) {
	if err := opts.Validate(); err != nil {
		return QuantileComparison{}, err
	}
	if err := checkLevel(p); err != nil {
		return QuantileComparison{}, err
	}
	if control.Decimals != treatment.Decimals || !slices.Equal(control.Edges, treatment.Edges) {
		return QuantileComparison{}, fmt.Errorf("grid quantile: the arms were released on different grids: %w", ErrInvalidInput)
	}
	c, err := EstimateGridQuantile(control, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "control", Err: err}
	}
	t, err := EstimateGridQuantile(treatment, p)
	if err != nil {
		return QuantileComparison{}, &ArmError{Arm: "treatment", Err: err}
	}
	return compareQuantileEstimates(c, t, opts.alpha())
}

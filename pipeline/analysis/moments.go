package analysis

import (
	"fmt"
	"math/big"
	"slices"
	"sort"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// CohortOrder returns the cohorts of a spec in output order: (all), then
// the declared leaves and UnclassifiedLeaf in byte order.
func CohortOrder(spec *expspec.Spec) []string {
	leaves := append(append([]string(nil), spec.Cohorts.Taxonomy...), expspec.UnclassifiedLeaf)
	sort.Strings(leaves)
	return append([]string{expspec.AllCohort}, leaves...)
}

// CompleteCells returns a cell for every cohort × variant × metric of the
// spec, in output order, with (all) summed exactly from the others and
// absent cells as zero.
func CompleteCells(spec *expspec.Spec, cells []engine.Cell) ([]engine.Cell, error) {
	type key struct{ c, v, m string }
	idx := map[key]engine.Cell{}
	order := CohortOrder(spec)
	for _, c := range cells {
		if !slices.Contains(order[1:], c.Cohort) {
			return nil, fmt.Errorf("sufficient statistics for unexpected cohort %q", c.Cohort)
		}
		idx[key{c.Cohort, c.Variant, c.Metric}] = c
	}
	var out []engine.Cell
	for _, coh := range order {
		for _, v := range spec.Variants {
			for _, m := range spec.Metrics {
				c := engine.NewCell(coh, v.Name, m.Name)
				sources := []string{coh}
				if coh == expspec.AllCohort {
					sources = order[1:]
				}
				for _, src := range sources {
					o, ok := idx[key{src, v.Name, m.Name}]
					if !ok {
						continue
					}
					c.N += o.N
					dst, add := c.Sums(), o.Sums()
					for i := range dst {
						(*dst[i]).Add(*dst[i], *add[i])
					}
					if err := engine.MergeHist(&c, o); err != nil {
						return nil, err
					}
					if err := engine.MergeEventBins(&c, o); err != nil {
						return nil, err
					}
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// exactMoments are a cell's means, sample variances and covariances in
// metric units, computed exactly from the integer sums and rounded once to
// float64. With S = 10^decimals:
//
//	mean(a)   = Σa / (n·S)
//	cov(a, b) = (n·Σab − Σa·Σb) / (n·(n−1)·S²)   (var(a) = cov(a, a))
//
// Covariances are 0 when n < 2.
type exactMoments struct {
	MeanX, MeanY, MeanC float64
	VarX, VarY, VarC    float64
	CovXY, CovXC, CovYC float64
}

func momentsOf(c engine.Cell, scale int64) exactMoments {
	var m exactMoments
	if c.N == 0 {
		return m
	}
	m.MeanX, m.MeanY, m.MeanC = exactMean(c.N, scale, c.Sum), exactMean(c.N, scale, c.SumY), exactMean(c.N, scale, c.SumC)
	if c.N < 2 {
		return m
	}
	m.VarX = exactCov(c.N, scale, c.SumSq, c.Sum, c.Sum)
	m.VarY = exactCov(c.N, scale, c.SumY2, c.SumY, c.SumY)
	m.VarC = exactCov(c.N, scale, c.SumC2, c.SumC, c.SumC)
	m.CovXY = exactCov(c.N, scale, c.SumXY, c.Sum, c.SumY)
	m.CovXC = exactCov(c.N, scale, c.SumXC, c.Sum, c.SumC)
	m.CovYC = exactCov(c.N, scale, c.SumYC, c.SumY, c.SumC)
	return m
}

// exactMean is Σa / (n·S), rounded once to float64 (0 when n is 0).
func exactMean(n, scale int64, sum *big.Int) float64 {
	if n == 0 {
		return 0
	}
	f, _ := new(big.Rat).SetFrac(sum, new(big.Int).Mul(big.NewInt(n), big.NewInt(scale))).Float64()
	return f
}

// exactCov is (n·Σab − Σa·Σb) / (n·(n−1)·S²), rounded once to float64 (0
// when n < 2).
func exactCov(n, scale int64, sumAB, sumA, sumB *big.Int) float64 {
	if n < 2 {
		return 0
	}
	bn, s := big.NewInt(n), big.NewInt(scale)
	den := new(big.Int).Mul(bn, big.NewInt(n-1))
	den.Mul(den, new(big.Int).Mul(s, s))
	num := new(big.Int).Mul(bn, sumAB)
	num.Sub(num, new(big.Int).Mul(sumA, sumB))
	f, _ := new(big.Rat).SetFrac(num, den).Float64()
	return f
}

// Moments returns a cell's mean and sample variance of x.
func Moments(c engine.Cell, scale int64) (mean, variance float64) {
	m := momentsOf(c, scale)
	return m.MeanX, m.VarX
}

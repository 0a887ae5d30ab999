package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// CrossCell is one cell of crossmoments@v1: the units of one cohort and
// variant of an experiment, with the exact sums of the products of metric
// MetricA's x, y and c with metric MetricB's c (fixed-point values).
type CrossCell struct {
	Experiment, Cohort, Variant string
	MetricA, MetricB            string
	N                           int64
	SumXC, SumYC, SumCC         *big.Int
	// MaxAbs are the largest |value| of MetricA's x, y and c and of
	// MetricB's c over the cell's units: the overflow proof's inputs,
	// kept so that a merge of shards redoes the proof on the merged cell.
	MaxAbs [4]*big.Int
	// Overflow marks a cell whose sums could have wrapped (its sums are
	// nil): the estimates that need it are not computed, and say why.
	Overflow bool
}

// crossLimit is the bound of the overflow proof: every product of two
// values summed over the cell stays below 2^126.
var crossLimit = new(big.Int).Lsh(big.NewInt(1), 126)

// ProveCrossNoOverflow marks c Overflow, and drops its sums, when
// n · max|a| · max|c_b| ≥ 2^126 for one of MetricA's parts a (the
// sufstats proof for a product of two values): its sums could have
// wrapped.
func ProveCrossNoOverflow(c *CrossCell) {
	if c.Overflow {
		c.SumXC, c.SumYC, c.SumCC = nil, nil, nil
		return
	}
	for _, a := range c.MaxAbs[:3] {
		bound := new(big.Int).Mul(a, c.MaxAbs[3])
		if bound.Mul(bound, big.NewInt(c.N)).Cmp(crossLimit) >= 0 {
			c.SumXC, c.SumYC, c.SumCC, c.Overflow = nil, nil, nil, true
			return
		}
	}
}

// MergeCross adds cell c of another shard into m (same experiment,
// cohort, variant and metrics): n and sums add, maxima take the larger; a
// cell that overflowed in either stays overflowed (the merged cell has at
// least its units and maxima). The caller redoes the proof on the result.
func MergeCross(m *CrossCell, c CrossCell) {
	m.N += c.N
	for i := range m.MaxAbs {
		if c.MaxAbs[i].Cmp(m.MaxAbs[i]) > 0 {
			m.MaxAbs[i] = new(big.Int).Set(c.MaxAbs[i])
		}
	}
	if m.Overflow || c.Overflow {
		m.SumXC, m.SumYC, m.SumCC, m.Overflow = nil, nil, nil, true
		return
	}
	m.SumXC = new(big.Int).Add(m.SumXC, c.SumXC)
	m.SumYC = new(big.Int).Add(m.SumYC, c.SumYC)
	m.SumCC = new(big.Int).Add(m.SumCC, c.SumCC)
}

// readCrossMoments runs the crossmoments template and returns its cells by
// experiment. A cell whose sums could have wrapped (ProveCrossNoOverflow)
// is returned without sums, marked Overflow: only the variance-reduced
// estimates that need it are lost, not the experiment's analysis.
func (s *Session) readCrossMoments(ctx context.Context, r Rendered, p map[string]any, want map[string]bool) (map[string][]CrossCell, error) {
	out := map[string][]CrossCell{}
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		var c CrossCell
		var sxc, syc, scc, mxa, mya, mca, mcb any
		if err := rows.Scan(&c.Experiment, &c.Cohort, &c.Variant, &c.MetricA, &c.MetricB, &c.N, &sxc, &syc, &scc, &mxa, &mya, &mca, &mcb); err != nil {
			return fmt.Errorf("crossmoments row: %w", err)
		}
		if !want[c.Experiment] {
			return fmt.Errorf("crossmoments for an experiment not analysed: %q", c.Experiment)
		}
		if c.Cohort == sqlUnclassified {
			c.Cohort = expspec.UnclassifiedLeaf
		}
		ints := map[string]*big.Int{}
		for _, v := range []struct {
			name string
			in   any
		}{{"sum_xc", sxc}, {"sum_yc", syc}, {"sum_cc", scc}, {"max_abs_xa", mxa}, {"max_abs_ya", mya}, {"max_abs_ca", mca}, {"max_abs_cb", mcb}} {
			b, ok := v.in.(*big.Int)
			if !ok || b == nil {
				return fmt.Errorf("crossmoments: experiment %s metrics %s × %s: column %s is %T, want a non-NULL HUGEINT", c.Experiment, c.MetricA, c.MetricB, v.name, v.in)
			}
			ints[v.name] = b
		}
		if c.N <= 0 {
			return fmt.Errorf("crossmoments: experiment %s metrics %s × %s: a cell with %d units", c.Experiment, c.MetricA, c.MetricB, c.N)
		}
		c.SumXC, c.SumYC, c.SumCC = ints["sum_xc"], ints["sum_yc"], ints["sum_cc"]
		c.MaxAbs = [4]*big.Int{ints["max_abs_xa"], ints["max_abs_ya"], ints["max_abs_ca"], ints["max_abs_cb"]}
		ProveCrossNoOverflow(&c)
		out[c.Experiment] = append(out[c.Experiment], c)
		return nil
	})
	return out, err
}

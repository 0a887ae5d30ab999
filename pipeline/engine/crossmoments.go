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
	// Overflow marks a cell whose sums could have wrapped (its sums are
	// nil): the estimates that need it are not computed, and say why.
	Overflow bool
}

// readCrossMoments runs the crossmoments template and returns its cells by
// experiment. A cell whose sums could have wrapped (n · max_a · max_b ≥
// 2^126, the sufstats proof for a product of two values) is returned
// without sums, marked Overflow: only the variance-reduced estimates that
// need it are lost, not the experiment's analysis.
func (s *Session) readCrossMoments(ctx context.Context, r Rendered, p map[string]any, want map[string]bool) (map[string][]CrossCell, error) {
	out := map[string][]CrossCell{}
	limit := new(big.Int).Lsh(big.NewInt(1), 126)
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
		for _, a := range []string{"max_abs_xa", "max_abs_ya", "max_abs_ca"} {
			bound := new(big.Int).Mul(ints[a], ints["max_abs_cb"])
			if bound.Mul(bound, big.NewInt(c.N)).Cmp(limit) >= 0 {
				c.SumXC, c.SumYC, c.SumCC, c.Overflow = nil, nil, nil, true
				break
			}
		}
		out[c.Experiment] = append(out[c.Experiment], c)
		return nil
	})
	return out, err
}

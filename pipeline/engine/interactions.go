package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
)

// InteractionCell is one cell of interactions@v1: the units assigned to
// exactly one variant of experiment Experiment and of its partner
// experiment Partner, in Variant and PartnerVariant, with the exact sums of
// their fixed-point values of Experiment's metric Metric.
type InteractionCell struct {
	Experiment, Partner     string
	Metric                  string
	Variant, PartnerVariant string
	N                       int64
	Sum, SumSq              *big.Int
	// MaxAbs is the largest |x| of a unit in the cell (the overflow proof).
	MaxAbs *big.Int
}

// readInteractions runs the interactions template and returns its cells by
// experiment. A cell whose sums could have wrapped (n · max² ≥ 2^126, the
// sufstats proof) is an error of the pass: interactions are computed only
// for experiments whose own cells passed the proof, and a unit in both
// experiments is one of those cells' units, so this cannot happen unless
// the template is wrong.
func (s *Session) readInteractions(ctx context.Context, r Rendered, p map[string]any, want map[string]bool) (map[string][]InteractionCell, error) {
	out := map[string][]InteractionCell{}
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		var c InteractionCell
		var sum, sumSq, maxAbs any
		if err := rows.Scan(&c.Experiment, &c.Partner, &c.Metric, &c.Variant, &c.PartnerVariant, &c.N, &sum, &sumSq, &maxAbs); err != nil {
			return fmt.Errorf("interactions row: %w", err)
		}
		if !want[c.Experiment] {
			return fmt.Errorf("interactions for an experiment not analysed: %q", c.Experiment)
		}
		for _, v := range []struct {
			name string
			in   any
			out  **big.Int
		}{{"sum_x", sum, &c.Sum}, {"sum_x2", sumSq, &c.SumSq}, {"max_abs_x", maxAbs, &c.MaxAbs}} {
			b, ok := v.in.(*big.Int)
			if !ok || b == nil {
				return fmt.Errorf("interactions: experiment %s partner %s metric %s: column %s is %T, want a non-NULL HUGEINT", c.Experiment, c.Partner, c.Metric, v.name, v.in)
			}
			*v.out = b
		}
		if c.N <= 0 {
			return fmt.Errorf("interactions: experiment %s partner %s metric %s: a cell with %d units", c.Experiment, c.Partner, c.Metric, c.N)
		}
		bound := new(big.Int).Mul(c.MaxAbs, c.MaxAbs)
		bound.Mul(bound, big.NewInt(c.N))
		if bound.Cmp(new(big.Int).Lsh(big.NewInt(1), 126)) >= 0 {
			return &OverflowError{Experiment: c.Experiment, Cohort: "(interactions with " + c.Partner + ")", Variant: c.Variant + " × " + c.PartnerVariant, Metric: c.Metric}
		}
		out[c.Experiment] = append(out[c.Experiment], c)
		return nil
	})
	return out, err
}

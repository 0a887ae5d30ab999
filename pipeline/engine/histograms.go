package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Histograms of quantile metrics (issue 20): histograms@v1 returns, per
// cell of a quantile metric, one row per distinct fixed-point value with
// its number of units. They are attached to the sufstats cells, whose n
// they must add up to.

// readHistograms runs the histograms template and sets Hist on every cell
// of a quantile metric (and, with histograms@v2, of a capped metric). An experiment already failed (perExp) is skipped.
func (s *Session) readHistograms(ctx context.Context, r Rendered, p map[string]any, specs []*expspec.Spec, cells map[string][]Cell, perExp map[string]error) error {
	type key struct{ e, c, v, m string }
	bins := map[key][]stats.Bin{}
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		var e, c, v, m string
		var value, units sql.NullInt64
		if err := rows.Scan(&e, &c, &v, &m, &value, &units); err != nil {
			return fmt.Errorf("histograms row: %w", err)
		}
		if !value.Valid || !units.Valid || units.Int64 <= 0 {
			return fmt.Errorf("experiment %s cohort %s variant %s metric %s: histogram bin with NULL value or a count that is not positive", e, c, v, m)
		}
		if c == sqlUnclassified {
			c = expspec.UnclassifiedLeaf
		}
		k := key{e, c, v, m}
		bins[k] = append(bins[k], stats.Bin{Value: value.Int64, Count: uint64(units.Int64)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, sp := range specs {
		e := sp.Experiment
		if perExp[e] != nil {
			continue
		}
		quantile := map[string]bool{}
		for _, m := range sp.Metrics {
			quantile[m.Name] = m.NeedsHistogram()
		}
		d := *sp.Statistics.FixedPointDecimals
		for i := range cells[e] {
			c := &cells[e][i]
			if !quantile[c.Metric] {
				continue
			}
			k := key{e, c.Cohort, c.Variant, c.Metric}
			h, err := stats.NewHistogram(d, bins[k])
			if err != nil {
				return fmt.Errorf("experiment %s cohort %s variant %s metric %s: %w", e, c.Cohort, c.Variant, c.Metric, err)
			}
			delete(bins, k)
			if err := CheckHistogram(e, *c, h); err != nil {
				return err
			}
			c.Hist = &h
		}
	}
	for k := range bins {
		return fmt.Errorf("template histograms: a histogram for experiment %s cohort %s variant %s metric %s, which has no cell", k.e, k.c, k.v, k.m)
	}
	return nil
}

// CheckHistogram checks that a cell's histogram counts its n units and
// that its values' sum is the cell's exact Σx: the histogram and the
// sufficient statistics describe the same units.
func CheckHistogram(experiment string, c Cell, h stats.Histogram) error {
	bad := func(what string) error {
		return fmt.Errorf("experiment %s cohort %s variant %s metric %s: the histogram %s", experiment, c.Cohort, c.Variant, c.Metric, what)
	}
	if c.N < 0 || h.N() != uint64(c.N) {
		return bad(fmt.Sprintf("counts %d units, the cell %d", h.N(), c.N))
	}
	sum, t := new(big.Int), new(big.Int)
	for _, b := range h.Bins() {
		t.SetInt64(b.Value)
		sum.Add(sum, t.Mul(t, new(big.Int).SetUint64(b.Count)))
	}
	if c.Sum != nil && sum.Cmp(c.Sum) != 0 {
		return bad(fmt.Sprintf("sums to %s, the cell's Σx is %s", sum, c.Sum))
	}
	return nil
}

// MergeHist adds o's histogram to c's (a parent cohort's cell from its
// leaves, or a merged shard's cell from the shards'): counts add exactly,
// so the result does not depend on the order of the merges. A cell without
// a histogram (not a quantile metric's) is left as it is.
func MergeHist(c *Cell, o Cell) error {
	switch {
	case o.Hist == nil:
		return nil
	case c.Hist == nil:
		h := *o.Hist
		c.Hist = &h
		return nil
	}
	h, err := c.Hist.Merge(*o.Hist)
	if err != nil {
		return fmt.Errorf("cohort %s variant %s metric %s: merging histograms: %w", c.Cohort, c.Variant, c.Metric, err)
	}
	c.Hist = &h
	return nil
}

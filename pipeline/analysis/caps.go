package analysis

import (
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Percentile caps (issue 20 item 2): a mean metric with cap.upper_quantile
// q is winsorised at c, the q-quantile (definition 1) of the per-unit
// values of every arm of cohort (all) pooled (stats.PooledQuantile on the
// exact histograms of histograms@v2), one cap for every cohort of the
// night; each cell's Σx and Σx² are replaced by those of min(x, c),
// computed exactly from its histogram (stats.CappedMoments). The metric is
// then compared as any mean. The cap is reported in decisions.json (caps)
// and the report.

// CapRecord is one metric's percentile cap of the night.
type CapRecord struct {
	Metric        string  `json:"metric"`
	UpperQuantile float64 `json:"upper_quantile"`
	// Pooled says over which units the cap was computed.
	Pooled string `json:"pooled"`
	// Cap is the cap in the metric's units; nil when cohort (all) has no
	// units (nothing is capped).
	Cap *float64 `json:"cap"`
	// Units is the number of units the cap was computed over, Capped how
	// many of them lie above it (their values become the cap).
	Units  uint64 `json:"units"`
	Capped uint64 `json:"units_capped"`
}

// applyCaps returns the cells with every capped metric's sums replaced by
// the capped ones (cells is not changed), and the caps in spec order.
func applyCaps(spec *expspec.Spec, cells []engine.Cell) ([]engine.Cell, []CapRecord, error) {
	if !spec.HasCaps() {
		return cells, nil, nil
	}
	out := make([]engine.Cell, len(cells))
	copy(out, cells)
	var caps []CapRecord
	for _, m := range spec.Metrics {
		if m.Cap == nil {
			continue
		}
		rec := CapRecord{Metric: m.Name, UpperQuantile: m.Cap.UpperQuantile, Pooled: "every arm of cohort (all)"}
		var pooled []stats.Histogram
		for _, c := range cells {
			if c.Metric == m.Name && c.Cohort == expspec.AllCohort && c.Hist != nil {
				pooled = append(pooled, *c.Hist)
			}
		}
		all, err := stats.MergeHistograms(pooled...)
		if err != nil {
			return nil, nil, fmt.Errorf("metric %s: pooled histogram: %w", m.Name, err)
		}
		rec.Units = all.N()
		if all.N() == 0 {
			caps = append(caps, rec)
			continue
		}
		cv, err := all.Quantile(m.Cap.UpperQuantile)
		if err != nil {
			return nil, nil, fmt.Errorf("metric %s: cap: %w", m.Name, err)
		}
		rec.Cap = opt(all.Float(cv))
		rec.Capped = all.N() - all.CountAtMost(cv)
		caps = append(caps, rec)
		for i, c := range out {
			if c.Metric != m.Name || c.Hist == nil {
				continue
			}
			mom, err := stats.CappedMoments([]stats.Histogram{*c.Hist}, stats.NoLowerCap, cv)
			if err != nil {
				return nil, nil, fmt.Errorf("metric %s cohort %s variant %s: %w", m.Name, c.Cohort, c.Variant, err)
			}
			// A mean metric's other sums: y is 0, c is the uncapped
			// covariate (CUPED is refused with caps).
			c.Sum, c.SumSq = new(big.Int).Set(mom[0].Sum), new(big.Int).Set(mom[0].SumSq)
			out[i] = c
		}
	}
	return out, caps, nil
}

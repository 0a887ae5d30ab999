package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Event bins of event-level quantile metrics (over: events; issue 20 item
// 1): eventbins@v1 returns, per cell of such a metric, one row per distinct
// (clamped) event value with its events and their one-pass sums
// (stats.EventBin). They are attached to the sufstats cells of the metric,
// whose x is, for these metrics, the unit's unclamped count of attributed
// events (params), so that the two templates can be checked against each
// other: Σ events·S = Σx, Σ unit_events·S² = Σx² (Σ n_i² both), and the
// units with events (Σ firsts) at most the cell's n.

// eventLevelKind is what unit_metrics and histograms@v1 see as the kind of
// an event-level quantile metric: not 'quantile' (histograms@v1 would give
// it a histogram of per-unit values) and not 'proportion', so that its x is
// the aggregate the caller binds (count).
const eventLevelKind = "event_quantile"

// readEventBins runs the eventbins template and sets EventBins on every
// cell of an event-level quantile metric. An experiment already failed
// (perExp) is skipped.
func (s *Session) readEventBins(ctx context.Context, r Rendered, p map[string]any, specs []*expspec.Spec, cells map[string][]Cell, perExp map[string]error) error {
	type key struct{ e, c, v, m string }
	bins := map[key][]stats.EventBin{}
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		var e, c, v, m string
		var value, events, firsts, posSum, unitEvents sql.NullInt64
		if err := rows.Scan(&e, &c, &v, &m, &value, &events, &firsts, &posSum, &unitEvents); err != nil {
			return fmt.Errorf("eventbins row: %w", err)
		}
		if !value.Valid || !events.Valid || !firsts.Valid || !posSum.Valid || !unitEvents.Valid ||
			events.Int64 <= 0 || firsts.Int64 < 0 || posSum.Int64 <= 0 || unitEvents.Int64 <= 0 {
			return fmt.Errorf("experiment %s cohort %s variant %s metric %s: event bin with a NULL or a count that is not positive", e, c, v, m)
		}
		if c == sqlUnclassified {
			c = expspec.UnclassifiedLeaf
		}
		k := key{e, c, v, m}
		bins[k] = append(bins[k], stats.EventBin{Value: value.Int64, Events: uint64(events.Int64), Firsts: uint64(firsts.Int64),
			PosSum: uint64(posSum.Int64), UnitEvents: uint64(unitEvents.Int64)})
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
		want := map[string]bool{}
		for _, m := range sp.Metrics {
			want[m.Name] = m.NeedsEventBins()
		}
		d := *sp.Statistics.FixedPointDecimals
		for i := range cells[e] {
			c := &cells[e][i]
			if !want[c.Metric] {
				continue
			}
			k := key{e, c.Cohort, c.Variant, c.Metric}
			b, err := stats.NewEventBins(d, bins[k])
			if err != nil {
				return fmt.Errorf("experiment %s cohort %s variant %s metric %s: %w", e, c.Cohort, c.Variant, c.Metric, err)
			}
			delete(bins, k)
			if err := CheckEventBins(e, *c, b, sp.Scale()); err != nil {
				return err
			}
			c.EventBins = &b
		}
	}
	for k := range bins {
		return fmt.Errorf("template eventbins: bins for experiment %s cohort %s variant %s metric %s, which has no cell", k.e, k.c, k.v, k.m)
	}
	return nil
}

// CheckEventBins checks a cell's event bins against its sufficient
// statistics, which for an event-level quantile metric hold each unit's
// event count times the scale S: the bins count Σx/S events and Σx²/S²
// = Σn_i² (the sum of unit_events), and at most n units have events.
// The two come from different templates (sufstats through event_units,
// eventbins from the events again), so this checks that they saw the
// same events.
func CheckEventBins(experiment string, c Cell, b stats.EventBins, scale int64) error {
	bad := func(what string) error {
		return fmt.Errorf("experiment %s cohort %s variant %s metric %s: the event bins %s", experiment, c.Cohort, c.Variant, c.Metric, what)
	}
	events, sq, units := new(big.Int), new(big.Int), new(big.Int)
	for _, x := range b.Bins() {
		events.Add(events, new(big.Int).SetUint64(x.Events))
		sq.Add(sq, new(big.Int).SetUint64(x.UnitEvents))
		units.Add(units, new(big.Int).SetUint64(x.Firsts))
	}
	s := big.NewInt(scale)
	if c.Sum != nil {
		if want := new(big.Int).Mul(events, s); want.Cmp(c.Sum) != 0 {
			return bad(fmt.Sprintf("count %s events, the cell's per-unit counts sum to %s/%d", events, c.Sum, scale))
		}
	}
	if c.SumSq != nil {
		if want := new(big.Int).Mul(sq, new(big.Int).Mul(s, s)); want.Cmp(c.SumSq) != 0 {
			return bad(fmt.Sprintf("give Σn_i² = %s, the cell's Σx² is %s at scale %d", sq, c.SumSq, scale))
		}
	}
	if units.Cmp(big.NewInt(c.N)) > 0 {
		return bad(fmt.Sprintf("have %s units with events, the cell %d units", units, c.N))
	}
	return nil
}

// MergeEventBins adds o's event bins to c's (a parent cohort's cell from
// its leaves, or a merged shard's cell from the shards'): every sum adds
// value by value, so the result does not depend on the order of the
// merges. A cell without bins (not an event-level quantile's) is left as
// it is.
func MergeEventBins(c *Cell, o Cell) error {
	switch {
	case o.EventBins == nil:
		return nil
	case c.EventBins == nil:
		b := *o.EventBins
		c.EventBins = &b
		return nil
	}
	b, err := c.EventBins.Merge(*o.EventBins)
	if err != nil {
		return fmt.Errorf("cohort %s variant %s metric %s: merging event bins: %w", c.Cohort, c.Variant, c.Metric, err)
	}
	c.EventBins = &b
	return nil
}

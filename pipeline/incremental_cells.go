package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// Cells by delta (incremental state format v3). sufstats@v3's outputs are
// sums over units — n and the HUGEINT sums of x, x², y, … with a unit
// without events at x0, y0 — and quality@v3's unit counts are counts over
// units, so a night's cells are last night's plus, for the units touched
// tonight, (tonight's values − last night's values):
//
//	cells(tonight) = stored cells − sufstats(T, last night) + sufstats(T, tonight)
//
// where both sufstats runs are the pinned template over the touched units'
// tables (incr_events@v2, incr_swap), so that the arithmetic is the
// template's own. Two things are not plain sums:
//
//   - sufstats@v3 leaves out a term k·a0·b0 that would not fit in 2^126;
//     it can only do so when k·max(|x0|,|y0|)² ≥ 8.6e37 > 2^126, and then the
//     same run's overflow proof rejects that cell (k ≤ n, max ≥ |x0|): any
//     rejected cell in either run makes the night fall back.
//   - max|x|, |y|, |c| (MaxAbs) is not subtractable. It reaches no output
//     file: only the overflow proof n·max² < 2^126 reads it. The stored
//     cells keep an upper bound (the maximum of the stored bound and
//     tonight's touched values): a proof that holds with the bound holds
//     with the exact maximum, and a cell whose proof fails with the bound
//     makes the night fall back, so that the full run decides with the exact
//     maximum. The bound is exact again after every full night.

// incrCells is cells.json: the night's output cells and unit counts, which
// the next night updates by the touched units' delta.
type incrCells struct {
	// Cells by experiment, in sufstats@v3's order, MaxAbs the stored bound.
	Cells map[string][]partialCell `json:"cells"`
	// Units by experiment: quality's units_exposed, units_multi_variant,
	// units_assigned, units_unclassified.
	Units map[string][4]int64 `json:"units"`
}

type storedCells struct {
	cells map[string][]engine.Cell
	units map[string][4]int64
}

func unitCounts(q engine.Quality) [4]int64 {
	return [4]int64{q.UnitsExposed, q.UnitsMultiVariant, q.UnitsAssigned, q.UnitsUnclassified}
}

// encodeIncrCells is cells.json for a night's cells and quality.
func encodeIncrCells(cells map[string][]engine.Cell, quality map[string]engine.Quality) ([]byte, error) {
	out := incrCells{Cells: map[string][]partialCell{}, Units: map[string][4]int64{}}
	for e, q := range quality {
		out.Units[e] = unitCounts(q)
		out.Cells[e] = cellsToPartial(cells[e])
	}
	return json.Marshal(out)
}

// readIncrCells reads cells.json (its SHA-256 was verified with the
// state's) for the experiments of specs.
func readIncrCells(path string, specs []*expspec.Spec) (storedCells, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return storedCells{}, err
	}
	var in incrCells
	if err := json.Unmarshal(b, &in); err != nil {
		return storedCells{}, fmt.Errorf("cells.json: %w", err)
	}
	out := storedCells{cells: map[string][]engine.Cell{}, units: in.Units}
	for _, sp := range specs {
		e := sp.Experiment
		if _, ok := in.Units[e]; !ok {
			return storedCells{}, fmt.Errorf("cells.json has no experiment %s", e)
		}
		if _, done := out.cells[e]; done {
			continue
		}
		if out.cells[e], err = cellsFromPartial(sp, in.Cells[e]); err != nil {
			return storedCells{}, fmt.Errorf("cells.json: experiment %s: %w", e, err)
		}
	}
	return out, nil
}

type cellKey struct{ cohort, variant, metric string }

// applyCellDelta returns tonight's cells and quality: base − old + new per
// cell and per unit count (new holds tonight's values of the touched units,
// old last night's), the rest of quality (global counts) from new. Anything
// it cannot account for exactly is a fallbackError.
func applyCellDelta(base storedCells, oldCells, newCells map[string][]engine.Cell, oldQ, newQ map[string]engine.Quality, oldErr, newErr map[string]error) (map[string][]engine.Cell, map[string]engine.Quality, error) {
	for _, m := range []map[string]error{oldErr, newErr} {
		for e, err := range m {
			if err != nil {
				return nil, nil, &fallbackError{reason: fmt.Sprintf("a cell of %s over the touched units fails the overflow proof (%v)", e, err)}
			}
		}
	}
	cells, quality := map[string][]engine.Cell{}, map[string]engine.Quality{}
	for e, q := range newQ {
		units, ok := base.units[e]
		o, okOld := oldQ[e]
		if !ok || !okOld {
			return nil, nil, &fallbackError{reason: "stored cells without experiment " + e}
		}
		oc := unitCounts(o)
		nc := unitCounts(q)
		for i := range units {
			units[i] += nc[i] - oc[i]
			if units[i] < 0 {
				return nil, nil, &fallbackError{reason: fmt.Sprintf("a unit count of %s is negative after the delta (%d)", e, units[i])}
			}
		}
		q.UnitsExposed, q.UnitsMultiVariant, q.UnitsAssigned, q.UnitsUnclassified = units[0], units[1], units[2], units[3]
		quality[e] = q
		out, err := deltaCells(e, base.cells[e], oldCells[e], newCells[e])
		if err != nil {
			return nil, nil, err
		}
		cells[e] = out
	}
	return cells, quality, nil
}

// deltaCells is one experiment's base − old + new.
func deltaCells(e string, base, old, add []engine.Cell) ([]engine.Cell, error) {
	byKey := map[cellKey]*engine.Cell{}
	var keys []cellKey
	for _, c := range base {
		c := c
		k := cellKey{c.Cohort, c.Variant, c.Metric}
		byKey[k] = &c
		keys = append(keys, k)
	}
	for _, o := range old {
		c, ok := byKey[cellKey{o.Cohort, o.Variant, o.Metric}]
		if !ok {
			return nil, &fallbackError{reason: fmt.Sprintf("a touched unit's stored cell %s/%s/%s of %s is not among the stored cells", o.Cohort, o.Variant, o.Metric, e)}
		}
		c.N -= o.N
		dst, sub := c.Sums(), o.Sums()
		for i := range dst {
			*dst[i] = new(big.Int).Sub(*dst[i], *sub[i])
		}
	}
	for _, n := range add {
		k := cellKey{n.Cohort, n.Variant, n.Metric}
		c, ok := byKey[k]
		if !ok {
			nc := engine.NewCell(n.Cohort, n.Variant, n.Metric)
			c = &nc
			byKey[k] = c
			keys = append(keys, k)
		}
		engine.MergeCell(c, n)
	}
	var out []engine.Cell
	for _, k := range keys {
		c := byKey[k]
		switch {
		case c.N < 0:
			return nil, &fallbackError{reason: fmt.Sprintf("cell %s/%s/%s of %s has a negative count after the delta", c.Cohort, c.Variant, c.Metric, e)}
		case c.N == 0:
			for _, s := range c.Sums() {
				if (*s).Sign() != 0 {
					return nil, &fallbackError{reason: fmt.Sprintf("cell %s/%s/%s of %s has no unit but nonzero sums after the delta", c.Cohort, c.Variant, c.Metric, e)}
				}
			}
			continue
		}
		if err := engine.ProveNoOverflow(e, *c); err != nil {
			var oe *engine.OverflowError
			if errors.As(err, &oe) {
				return nil, &fallbackError{reason: fmt.Sprintf("the overflow proof of cell %s/%s/%s of %s fails with the stored bound on max|value| (a full run decides with the exact maximum)", c.Cohort, c.Variant, c.Metric, e)}
			}
			return nil, &fallbackError{reason: err.Error()}
		}
		out = append(out, *c)
	}
	sortCells(out)
	return out, nil
}

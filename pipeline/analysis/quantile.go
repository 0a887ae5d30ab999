package analysis

import (
	"errors"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Quantile metrics (issue 20): each cohort × quantile metric × treatment is
// compared with stats.CompareQuantiles on the cells' exact histograms
// (unit level, order-statistic variance of Deng, Knoblich & Lu 2018 as
// GrowthBook documents it; see stats/quantile.go). Its results.csv row
// carries the difference of the quantiles (abs_*), the relative difference
// with Fieller's interval (rel_*, as for means), the p-value and a status;
// the mean and sd columns stay empty (a quantile metric has no mean), and
// quantiles.csv holds the rest (QuantileRow). Quantile metrics are
// secondary: they join no correction family and no decision.

// QuantileMethod names the method in quantiles.csv, the manifest and the
// report.
const QuantileMethod = "order-statistic variance (Deng, Knoblich & Lu 2018; GrowthBook's quantile test), normal difference; relative: delta method and Fieller"

// Statuses of quantile rows beside stats' (ok, missing arm, relative
// interval unbounded).
const (
	StatusQuantileTooFew   = "too few units for the quantile interval"
	StatusQuantileTie      = "quantile in a tie wider than its interval"
	StatusQuantileZeroBase = "control quantile is zero"
)

// QuantileRow is one row of quantiles.csv: one cohort × quantile metric ×
// treatment. Optional numbers are nil where undefined (Status says why).
type QuantileRow struct {
	Experiment, Cohort, Metric, Variant, Control string
	Level                                        float64
	NControl, NVariant                           int64
	// QuantileControl and QuantileVariant are the arms' quantiles
	// (definition 1: x_(⌈n·level⌉)); SE* their order-statistic standard
	// errors, from the bounds Band* of the 95% distribution-free band.
	QuantileControl, QuantileVariant       *float64
	SEControl, SEVariant                   *float64
	BandLowControl, BandHighControl        *float64
	BandLowVariant, BandHighVariant        *float64
	AbsEffect, AbsCILow, AbsCIHigh, PValue *float64
	RelEffect                              *float64
	// RelDelta* is the delta-method interval of the relative difference
	// (GrowthBook's), RelFieller* Fieller's set, whose shape is bounded,
	// exclusive (the complement of (low, high)) or whole_line.
	RelDeltaLow, RelDeltaHigh     *float64
	RelFiellerLow, RelFiellerHigh *float64
	FiellerShape                  string
	CILevel                       float64
	Status                        string
	// Over is "events" for an event-level quantile metric's row (empty
	// for a unit-level one). Such a row's quantiles, standard errors and
	// bands are of the arms' pooled events; these count the events, the
	// units with at least one, and the design effect of their clustering
	// (the factor on the independent-events variance).
	Over                                           string
	EventsControl, EventsVariant                   int64
	UnitsWithEventsControl, UnitsWithEventsVariant int64
	DesignEffectControl, DesignEffectVariant       *float64
}

// Method is the row's method token in quantiles.csv.
func (r *QuantileRow) Method() string { return quantileMethodColumn(r) }

// quantileComparison compares treatment i's quantile with the control's in
// one cohort and returns its results.csv row and its quantiles.csv row.
func (a *analyser) quantileComparison(coh string, m expspec.Metric, i int, srm SRMCheck) (ResultRow, QuantileRow) {
	control := a.cell(coh, a.control, m.Name)
	treat := a.cell(coh, a.spec.Variants[i].Name, m.Name)
	alpha := a.spec.Statistics.Alpha
	row := ResultRow{
		Experiment: a.spec.Experiment, Cohort: coh, Metric: m.Name, Kind: m.Kind, Role: m.Role,
		Variant: a.spec.Variants[i].Name, Control: a.control, NControl: control.N, NVariant: treat.N,
		CILevel: 1 - alpha, Interval: a.interval, SRMPValue: opt(srm.AdjPValue), SRM: srm.Invalid,
		CollapsedFrom: a.collapsed[coh],
	}
	q := QuantileRow{
		Experiment: a.spec.Experiment, Cohort: coh, Metric: m.Name, Variant: row.Variant, Control: a.control,
		Level: m.Level, NControl: control.N, NVariant: treat.N, CILevel: 1 - alpha,
	}
	hc, ht := histOf(control), histOf(treat)
	if hc.N() > 0 {
		if v, err := hc.Quantile(m.Level); err == nil {
			q.QuantileControl = opt(hc.Float(v))
		}
	}
	if ht.N() > 0 {
		if v, err := ht.Quantile(m.Level); err == nil {
			q.QuantileVariant = opt(ht.Float(v))
		}
	}
	if hc.N() == 0 || ht.N() == 0 {
		row.Status, q.Status = stats.StatusMissingArm, stats.StatusMissingArm
		return row, q
	}
	cmp, err := stats.CompareQuantiles(hc, ht, m.Level, stats.QuantileOptions{Alpha: alpha})
	if err != nil {
		row.Status = quantileStatus(err)
		q.Status = row.Status
		return row, q
	}
	q.SEControl, q.SEVariant = opt(cmp.Control.SE), opt(cmp.Treatment.SE)
	q.BandLowControl, q.BandHighControl = opt(cmp.Control.Lower), opt(cmp.Control.Upper)
	q.BandLowVariant, q.BandHighVariant = opt(cmp.Treatment.Lower), opt(cmp.Treatment.Upper)
	q.AbsEffect, q.AbsCILow, q.AbsCIHigh, q.PValue = opt(cmp.Diff), opt(cmp.DiffLow), opt(cmp.DiffHigh), opt(cmp.PValue)
	row.AbsEffect, row.AbsCILow, row.AbsCIHigh, row.PValue = q.AbsEffect, q.AbsCILow, q.AbsCIHigh, q.PValue
	row.Status = stats.StatusOK
	if !cmp.HasRelative {
		row.Status = StatusQuantileZeroBase
		q.Status = row.Status
		return row, q
	}
	q.RelEffect = opt(cmp.RelDiff)
	q.RelDeltaLow, q.RelDeltaHigh = opt(cmp.RelLow), opt(cmp.RelHigh)
	q.FiellerShape = shapeName(cmp.FiellerShape)
	row.RelEffect = q.RelEffect
	if cmp.FiellerShape == stats.SetBounded {
		q.RelFiellerLow, q.RelFiellerHigh = opt(cmp.FiellerLow), opt(cmp.FiellerHigh)
		row.RelCILow, row.RelCIHigh = q.RelFiellerLow, q.RelFiellerHigh
	} else {
		if cmp.FiellerShape == stats.SetExclusive {
			q.RelFiellerLow, q.RelFiellerHigh = opt(cmp.FiellerLow), opt(cmp.FiellerHigh)
		}
		row.Status = stats.StatusRelativeUnbounded
	}
	q.Status = row.Status
	return row, q
}

// histOf returns a cell's histogram (empty for a missing cell).
func histOf(c engine.Cell) stats.Histogram {
	if c.Hist == nil {
		return stats.Histogram{}
	}
	return *c.Hist
}

// quantileStatus names why a quantile comparison has no interval.
func quantileStatus(err error) string {
	var arm *stats.ArmError
	side := ""
	if errors.As(err, &arm) {
		side = " (" + arm.Arm + ")"
	}
	switch msg := err.Error(); {
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "too few"):
		return StatusQuantileTooFew + side
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "tie"):
		return StatusQuantileTie + side
	case errors.Is(err, stats.ErrOverflow):
		return stats.StatusOverflow
	}
	return stats.StatusInvalidInput
}

// shapeName names Fieller's set's shape in quantiles.csv.
func shapeName(s stats.SetShape) string {
	switch s {
	case stats.SetBounded:
		return "bounded"
	case stats.SetExclusive:
		return "exclusive"
	}
	return "whole_line"
}

// quantileRows compares every treatment's quantile with the control's in
// one cohort, in spec order.
func (a *analyser) quantileRows(coh string, m expspec.Metric, srm SRMCheck) []ResultRow {
	var rows []ResultRow
	for i, v := range a.spec.Variants {
		if v.Control {
			continue
		}
		var row ResultRow
		var q QuantileRow
		if m.EventLevel() {
			row, q = a.eventQuantileComparison(coh, m, i, srm)
		} else {
			row, q = a.quantileComparison(coh, m, i, srm)
		}
		if extended(a.spec) {
			// Another metric's hypothesis puts every row in the extended
			// layout; a quantile metric has no test of its own there.
			row.Ext = &RowExt{Engine: expspec.EngineFrequentist}
		}
		row.Quantile = &q
		rows = append(rows, row)
	}
	return rows
}

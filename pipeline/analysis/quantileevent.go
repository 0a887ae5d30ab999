package analysis

import (
	"errors"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Event-level quantile metrics (over: events; issue 20 item 1): each cohort
// × metric × treatment is compared with stats.CompareEventQuantiles on the
// cells' one-pass event bins (eventbins@v1): the definition-1 quantile of
// the arm's pooled events, its order-statistic variance times the design
// effect of the events' clustering in units (Yao, Li & Lu 2024, Algorithm
// 1, as GrowthBook's QuantileClusteredStatistic; stats/quantileevent.go).
// The rows are the unit-level ones' (results.csv: kind event_quantile;
// quantiles.csv: method clustered_order_statistic, with the event counts,
// the units with events and the design effects in extra columns).

// EventQuantileMethod names the event-level method in the manifest and
// the report.
const EventQuantileMethod = "order-statistic variance of the pooled events times the design effect of their clustering in units (Yao, Li & Lu 2024, Algorithm 1; GrowthBook's clustered quantile test), normal difference; relative: delta method and Fieller"

// EventQuantileKind is the results.csv kind of an event-level quantile
// metric's rows.
const EventQuantileKind = "event_quantile"

// Statuses of event-level quantile rows beside the unit-level ones.
const (
	StatusEventQuantileNoEvents = "no events in an arm"
	StatusEventQuantileTooFew   = "too few events for the quantile interval"
	StatusEventQuantileUnits    = "fewer than two units with events"
	StatusEventQuantileZeroVar  = "cluster variance is zero"
	StatusEventQuantileTie      = StatusQuantileTie
	StatusEventQuantileZeroBase = StatusQuantileZeroBase
	eventQuantileMethodColumn   = "clustered_order_statistic"
	unitQuantileMethodColumn    = "order_statistic"
)

// eventQuantileComparison compares treatment i's event-level quantile with
// the control's in one cohort.
func (a *analyser) eventQuantileComparison(coh string, m expspec.Metric, i int, srm SRMCheck) (ResultRow, QuantileRow) {
	control := a.cell(coh, a.control, m.Name)
	treat := a.cell(coh, a.spec.Variants[i].Name, m.Name)
	alpha := a.spec.Statistics.Alpha
	row := ResultRow{
		Experiment: a.spec.Experiment, Cohort: coh, Metric: m.Name, Kind: EventQuantileKind, Role: m.Role,
		Variant: a.spec.Variants[i].Name, Control: a.control, NControl: control.N, NVariant: treat.N,
		CILevel: 1 - alpha, Interval: a.interval, SRMPValue: opt(srm.AdjPValue), SRM: srm.Invalid,
		CollapsedFrom: a.collapsed[coh],
	}
	q := QuantileRow{
		Experiment: a.spec.Experiment, Cohort: coh, Metric: m.Name, Variant: row.Variant, Control: a.control,
		Level: m.Level, NControl: control.N, NVariant: treat.N, CILevel: 1 - alpha, Over: expspec.OverEvents,
	}
	d := *a.spec.Statistics.FixedPointDecimals
	done := func(status string) (ResultRow, QuantileRow) {
		row.Status, q.Status = status, status
		return row, q
	}
	ac, errC := eventArm(control, d, m.Level)
	at, errT := eventArm(treat, d, m.Level)
	if errC != nil || errT != nil {
		return done(stats.StatusInvalidInput)
	}
	q.EventsControl, q.EventsVariant = int64(ac.Events.N()), int64(at.Events.N())
	q.UnitsWithEventsControl, q.UnitsWithEventsVariant = int64(ac.Clusters.Units), int64(at.Clusters.Units)
	if ac.Events.N() > 0 {
		if v, err := ac.Events.Quantile(m.Level); err == nil {
			q.QuantileControl = opt(ac.Events.Float(v))
		}
	}
	if at.Events.N() > 0 {
		if v, err := at.Events.Quantile(m.Level); err == nil {
			q.QuantileVariant = opt(at.Events.Float(v))
		}
	}
	switch {
	case control.N == 0 || treat.N == 0:
		return done(stats.StatusMissingArm)
	case ac.Events.N() == 0:
		return done(StatusEventQuantileNoEvents + " (control)")
	case at.Events.N() == 0:
		return done(StatusEventQuantileNoEvents + " (treatment)")
	}
	cmp, err := stats.CompareEventQuantiles(ac, at, m.Level, stats.QuantileOptions{Alpha: alpha})
	if err != nil {
		return done(eventQuantileStatus(err))
	}
	q.SEControl, q.SEVariant = opt(cmp.Control.SE), opt(cmp.Treatment.SE)
	q.BandLowControl, q.BandHighControl = opt(cmp.Control.Lower), opt(cmp.Control.Upper)
	q.BandLowVariant, q.BandHighVariant = opt(cmp.Treatment.Lower), opt(cmp.Treatment.Upper)
	q.DesignEffectControl, q.DesignEffectVariant = opt(cmp.Control.DesignEffect), opt(cmp.Treatment.DesignEffect)
	q.AbsEffect, q.AbsCILow, q.AbsCIHigh, q.PValue = opt(cmp.Diff), opt(cmp.DiffLow), opt(cmp.DiffHigh), opt(cmp.PValue)
	row.AbsEffect, row.AbsCILow, row.AbsCIHigh, row.PValue = q.AbsEffect, q.AbsCILow, q.AbsCIHigh, q.PValue
	if !cmp.HasRelative {
		return done(StatusEventQuantileZeroBase)
	}
	q.RelEffect = opt(cmp.RelDiff)
	q.RelDeltaLow, q.RelDeltaHigh = opt(cmp.RelLow), opt(cmp.RelHigh)
	q.FiellerShape = shapeName(cmp.FiellerShape)
	row.RelEffect = q.RelEffect
	status := stats.StatusOK
	if cmp.FiellerShape == stats.SetBounded {
		q.RelFiellerLow, q.RelFiellerHigh = opt(cmp.FiellerLow), opt(cmp.FiellerHigh)
		row.RelCILow, row.RelCIHigh = q.RelFiellerLow, q.RelFiellerHigh
	} else {
		if cmp.FiellerShape == stats.SetExclusive {
			q.RelFiellerLow, q.RelFiellerHigh = opt(cmp.FiellerLow), opt(cmp.FiellerHigh)
		}
		status = stats.StatusRelativeUnbounded
	}
	return done(status)
}

// eventArm returns a cell's input to the event-level quantile (an empty
// one for a cell without events).
func eventArm(c engine.Cell, decimals int, level float64) (stats.EventQuantileArm, error) {
	b := c.EventBins
	if b == nil {
		e, err := stats.NewEventBins(decimals, nil)
		if err != nil {
			return stats.EventQuantileArm{}, err
		}
		b = &e
	}
	return b.Arm(level)
}

// eventQuantileStatus names why an event-level comparison has no interval.
func eventQuantileStatus(err error) string {
	var arm *stats.ArmError
	side := ""
	if errors.As(err, &arm) {
		side = " (" + arm.Arm + ")"
	}
	switch msg := err.Error(); {
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "needs two"):
		return StatusEventQuantileUnits + side
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "cluster variance is zero"):
		return StatusEventQuantileZeroVar + side
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "too few"):
		return StatusEventQuantileTooFew + side
	case errors.Is(err, stats.ErrDegenerate) && strings.Contains(msg, "tie"):
		return StatusEventQuantileTie + side
	case errors.Is(err, stats.ErrOverflow):
		return stats.StatusOverflow
	}
	return stats.StatusInvalidInput
}

// quantileMethodColumn is quantiles.csv's method of a row.
func quantileMethodColumn(r *QuantileRow) string {
	if r.Over == expspec.OverEvents {
		return eventQuantileMethodColumn
	}
	return unitQuantileMethodColumn
}

package analysis

import (
	"time"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Horizon says where a run stands in the experiment's design: the window
// analysed against the planned one. A fixed-horizon design read before its
// planned end gets the verdict in_progress (stats.Conditions.BeforeHorizon):
// its intervals are valid only at the end. Every field is a function of
// the spec and the nominal date, never of the data, so a private run may
// publish it.
type Horizon struct {
	// Design is fixed_horizon or always_valid (statistics.sequential).
	Design string `json:"design"`
	// WindowStart, AnalysedUntil and PlannedEnd are RFC 3339 instants:
	// the data analysed are [WindowStart, AnalysedUntil); the design ends
	// at PlannedEnd.
	WindowStart   string `json:"window_start"`
	AnalysedUntil string `json:"analysed_until"`
	PlannedEnd    string `json:"planned_end"`
	// Days are 24-hour periods since WindowStart: analysed so far, in
	// the design, and left (DaysPlanned − DaysElapsed).
	DaysElapsed   float64 `json:"days_elapsed"`
	DaysPlanned   float64 `json:"days_planned"`
	DaysRemaining float64 `json:"days_remaining"`
	// Reached is true when the data reach the planned end.
	Reached bool `json:"reached"`
}

// HorizonOf returns the horizon of a resolved spec (after the --date cut).
func HorizonOf(spec *expspec.Spec) Horizon {
	start, end := spec.Window.Bounds()
	planned := spec.Window.Planned()
	if planned.Before(end) {
		planned = end
	}
	days := func(d time.Duration) float64 { return d.Hours() / 24 }
	h := Horizon{
		Design:        "fixed_horizon",
		WindowStart:   start.Format(time.RFC3339Nano),
		AnalysedUntil: end.Format(time.RFC3339Nano),
		PlannedEnd:    planned.Format(time.RFC3339Nano),
		DaysElapsed:   days(end.Sub(start)),
		DaysPlanned:   days(planned.Sub(start)),
		DaysRemaining: days(planned.Sub(end)),
		Reached:       !end.Before(planned),
	}
	if spec.Statistics.Sequential != nil {
		h.Design = "always_valid"
	}
	return h
}

// decisionConditions are the conditions of the verdict besides the
// comparisons: the sample-ratio test and, for a fixed-horizon design,
// whether the data reach its planned end.
func decisionConditions(spec *expspec.Spec, srmInvalid bool) stats.Conditions {
	h := HorizonOf(spec)
	return stats.Conditions{SRMInvalid: srmInvalid, BeforeHorizon: h.Design == "fixed_horizon" && !h.Reached}
}

package analysis

import (
	"fmt"
	"math"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Sensitivity is, for one goal comparison of the (all) cohort, how far a
// running experiment is from detecting the spec's target relative effect
// (statistics.max_relative_mde) at its power, in the spec's design: the
// units and the further days it needs at its enrolment rate so far.
//
// The comparison's standard error at the units so far gives the per-unit
// variance K = SE²·N of the difference (CUPED, ratio delta method and, in
// private runs, the noise included, so there it errs long: noise shrinks
// faster than 1/N); stats.PlanSampleSize turns K into the units needed —
// the fixed design's z-test power equation, or the confidence sequence's
// horizon for the always-valid design (Waudby-Smith et al. 2021) — and
// stats.DaysRemaining into whole days at N / days elapsed a day.
type Sensitivity struct {
	Metric, Variant string
	TargetRelMDE    float64
	RelMDE          float64 // relative MDE at the units so far
	Units           float64 // units in the two arms so far
	UnitsNeeded     float64 // for the target, whole units
	DaysNeeded      float64 // further whole days at the rate so far; 0 when reached
	Status          string  // "ok", or why nothing is computed
}

// SensitivityOf computes the sensitivity of every goal comparison of the
// (all) cohort.
func SensitivityOf(spec *expspec.Spec, rows []ResultRow, h Horizon) []Sensitivity {
	st := spec.Statistics
	var out []Sensitivity
	for _, r := range rows {
		if r.Cohort != expspec.AllCohort || r.Role != "goal" {
			continue
		}
		s := Sensitivity{Metric: r.Metric, Variant: r.Variant, TargetRelMDE: st.MaxRelativeMDE, Units: float64(r.NControl + r.NVariant), Status: "ok"}
		if err := s.plan(spec, r, h); err != nil {
			s.Status = err.Error()
		}
		out = append(out, s)
	}
	return out
}

func (s *Sensitivity) plan(spec *expspec.Spec, r ResultRow, h Horizon) error {
	st := spec.Statistics
	switch {
	case r.Status != "ok":
		return fmt.Errorf("no comparison (%s)", r.Status)
	case r.MDEAbs == nil || r.MDERel == nil || !(*r.MDERel > 0) || !(*r.MDEAbs > 0):
		return fmt.Errorf("no MDE relative to a non-zero control mean")
	case h.DaysElapsed <= 0:
		return fmt.Errorf("no day elapsed")
	}
	s.RelMDE = *r.MDERel
	// The row's MDE is at the metric's own α and power (a hypothesis may
	// set them), so the plan is too.
	alpha, power := st.Alpha, st.Power
	for _, m := range spec.Metrics {
		if m.Name == r.Metric {
			alpha, power = spec.MetricAlpha(m), spec.MetricPower(m)
		}
	}
	// The control mean the relative MDE is relative to (CUPED-adjusted
	// where the comparison is).
	control := *r.MDEAbs / *r.MDERel
	// MDE = k·SE with k from the power equation (stats.MDEFromSE is
	// linear in SE).
	k, err := stats.MDEFromSE(1, alpha, power)
	if err != nil {
		return err
	}
	se := *r.MDEAbs / k
	unitVar := se * se * s.Units
	var ac, at float64
	for _, v := range spec.Variants {
		switch {
		case v.Control:
			ac = v.Allocation
		case v.Name == r.Variant:
			at = v.Allocation
		}
	}
	w := at / (ac + at)
	in := stats.PlanInput{
		BaselineMean: control, BaselineVar: unitVar * w * (1 - w), MDE: st.MaxRelativeMDE, Relative: true,
		Alpha: alpha, Power: power, TreatmentShare: w, Design: stats.FixedHorizon,
	}
	if st.Sequential != nil {
		in.Design, in.NStar = stats.AlwaysValid, st.Sequential.NStar
	}
	p, err := stats.PlanSampleSize(in)
	if err != nil {
		return err
	}
	if math.IsInf(p.TotalN, 0) || math.IsNaN(p.TotalN) {
		return fmt.Errorf("no finite plan")
	}
	s.UnitsNeeded = p.TotalUnits
	// Whole days from the exact requirement, as stats.DaysRemaining
	// counts them, but blind to floating-point noise (below 1e-9
	// relative): a target equal to tonight's MDE is reached, not a day off.
	more := (p.TotalN - s.Units) / (s.Units / h.DaysElapsed)
	if more > 1e-9*math.Max(1, more) {
		s.DaysNeeded = math.Ceil(more - 1e-9*math.Max(1, more))
	}
	return nil
}

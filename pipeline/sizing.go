package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// SampleSizePlan is what `verity plan` reports for one spec: the
// pre-period it measured, each metric's baseline and each goal ×
// treatment's plan (analysis/plan.go).
type SampleSizePlan struct {
	Experiment string
	Name       string
	PreStart   string // RFC 3339
	PreEnd     string
	Days       float64
	Baselines  []analysis.MetricBaseline
	Goals      []analysis.PlanRow
}

// PlanSampleSize measures a pre-period [preStart, preEnd) of the spec's
// inputs through the spec's pinned templates, exactly as a run would
// analyse that window (the same SQL, the same exact integer sums; nothing
// is written), and plans each goal from it.
//
// A private spec is refused: the pre-period's baselines are exact
// statistics of the data source's units, and publishing them would be a
// release the ledger never charged (the ledger charges only the noisy
// release of a run). Plan from an exact spec over data you may read, or
// from a private run's published (noisy) results.
func PlanSampleSize(ctx context.Context, spec *expspec.Spec, preStart, preEnd string, opts Options) (*SampleSizePlan, error) {
	if spec.Privacy != nil && spec.Privacy.Enabled {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "privacy", Err: errors.New(
			"verity plan refuses a private spec: its pre-period baselines (means, variances, daily units) are exact statistics of the data source, and printing them would release them uncharged by the ledger; plan with an exact spec over data you may read exactly")}
	}
	pre := *spec
	pre.Window = expspec.Window{Start: preStart, End: preEnd}
	if err := pre.Validate(); err != nil {
		var se *expspec.SpecError
		if errors.As(err, &se) && (se.Key == "window" || se.Key == "window.start" || se.Key == "window.end") {
			return nil, fmt.Errorf("%w: --pre-start/--pre-end: %v", expspec.ErrUsage, se.Err)
		}
		return nil, err
	}
	opts.Date = ""
	ins, err := CalibrationPass(ctx, []*expspec.Spec{&pre}, opts)
	if err != nil {
		return nil, err
	}
	start, end := pre.Window.Bounds()
	days := end.Sub(start).Hours() / 24
	baselines, err := analysis.PrePeriodBaselines(&pre, ins[0].Cells)
	if err != nil {
		return nil, err
	}
	return &SampleSizePlan{
		Experiment: spec.Experiment, Name: spec.OutputName(),
		PreStart: start.Format(time.RFC3339), PreEnd: end.Format(time.RFC3339), Days: days,
		Baselines: baselines, Goals: analysis.PlanGoals(spec, baselines, days),
	}, nil
}

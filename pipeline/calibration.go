package pipeline

import (
	"context"
	"fmt"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/stats"
)

// CalibrationInput is one experiment's exact leaf cells and quality counts
// as a calibration pass (CalibrationPass) computed them.
type CalibrationInput struct {
	Spec    *expspec.Spec // as analysed: the window cut at the nominal date
	Date    string
	Cells   []engine.Cell // leaf cells, as the SQL returned them
	Quality engine.Quality
	// Interactions are the spec's interaction tests (nil: it lists none),
	// as an exact run writes them to interactions.csv.
	Interactions []analysis.InteractionRow
	// Cross are the cross-moment cells (a regression on another metric's
	// pre-period value), as the SQL returned them.
	Cross []engine.CrossCell
	// Drill are the spec's drill-down rows (nil: it has no drilldowns),
	// as an exact run writes them to drilldown.csv.
	Drill []analysis.DrillRow
	// DrillDims are the pass's exact per-value drill-down cells, which
	// CalibrationPrivate maps onto a private spec's declared slices.
	DrillDims []engine.DrillDimension
}

// CalibrationPass runs the pinned SQL for exact (privacy off) specs in
// shared passes, as `verity run --date` would, and returns each spec's
// exact cells without analysing or writing anything and without taking
// the output folder's lock (opts.OutDir is never written). It exists for
// the calibration suite (package calibrate), which analyses the same cells
// in several modes.
func CalibrationPass(ctx context.Context, specs []*expspec.Spec, opts Options) ([]CalibrationInput, error) {
	for _, s := range specs {
		if s.Privacy.Enabled {
			return nil, fmt.Errorf("calibration pass: spec %s is private; pass exact specs and use CalibrationPrivate", s.Path())
		}
	}
	if opts.OutDir == "" {
		opts.OutDir = "calibration-outputs-unused"
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	jobs, groups := planJobs(ctx, specs, opts, false)
	resolvePartners(jobs, opts)
	for _, g := range groups {
		runGroup(ctx, g, opts)
	}
	out := make([]CalibrationInput, len(jobs))
	for i, j := range jobs {
		switch {
		case j.err != nil:
			return nil, fmt.Errorf("calibration pass %s: %w", j.spec.Experiment, j.err)
		case j.skipped != "":
			return nil, fmt.Errorf("calibration pass %s: %s", j.spec.Experiment, j.skipped)
		}
		out[i] = CalibrationInput{Spec: j.spec, Date: j.date, Cells: j.cells, Quality: j.quality, Cross: j.crossCells, DrillDims: j.drill}
		ix, err := analysis.Interactions(j.spec, j.partnerInfos(), j.ixCells)
		if err != nil {
			return nil, fmt.Errorf("calibration pass %s: %w", j.spec.Experiment, err)
		}
		out[i].Interactions = ix
		if out[i].Drill, err = analysis.Drilldowns(j.spec, j.drill, j.date); err != nil {
			return nil, fmt.Errorf("calibration pass %s: %w", j.spec.Experiment, err)
		}
	}
	return out, nil
}

// CalibrationExact analyses a calibration pass's exact cells as an exact
// run does, under spec (which may differ from in.Spec in its statistics
// section: CUPED off, sequential on), and evaluates the quality gates
// without a previous night. blocked names the blocking checks; cmps holds
// the comparison behind each row, in row order.
func CalibrationExact(spec *expspec.Spec, in CalibrationInput) (rows []analysis.ResultRow, cmps []stats.Comparison, dec analysis.Decisions, blocked []string, err error) {
	cells, err := analysis.CompleteCells(spec, in.Cells)
	if err != nil {
		return nil, nil, analysis.Decisions{}, nil, err
	}
	var cohorts []analysis.CohortRelease
	for _, c := range analysis.CohortOrder(spec) {
		cohorts = append(cohorts, analysis.CohortRelease{Label: c})
	}
	rows, dec, err = analysis.AnalyseRecording(spec, cells, cohorts, nil, in.Date, func(c stats.Comparison) { cmps = append(cmps, c) })
	if err != nil {
		return nil, nil, analysis.Decisions{}, nil, err
	}
	_, blocked = analysis.EvaluateGates(spec, in.Quality, cells, nil, nil)
	return rows, cmps, dec, blocked, nil
}

// CalibrationPrivate releases a calibration pass's exact leaf cells and
// gate statistics with keyed noise under the private spec (its privacy and
// cohorts sections) and analyses the noisy release as a private run does:
// collapsing, noise-aware intervals, SRM on noisy counts, quality gates on
// the noisy per-unit statistics. It is the only place where the
// calibration suite touches the privacy machinery; it writes no ledger and
// spends nothing. The noise streams are bound to key and to release, a
// label that distinguishes the calibration's releases from one another.
// blocked names the blocking checks; cmps holds the comparison behind each
// row, in row order.
func CalibrationPrivate(spec *expspec.Spec, in CalibrationInput, key []byte, release string) (rows []analysis.ResultRow, cmps []stats.Comparison, dec analysis.Decisions, blocked []string, err error) {
	if !spec.Privacy.Enabled {
		return nil, nil, analysis.Decisions{}, nil, fmt.Errorf("calibration private: spec %s has privacy disabled", spec.Path())
	}
	rel, err := privatize.Privatize(spec, in.Cells, in.DrillDims, in.Quality, privacy.Key(key), "calibration "+release, in.Date)
	if err != nil {
		return nil, nil, analysis.Decisions{}, nil, err
	}
	cohorts := []analysis.CohortRelease{{Label: expspec.AllCohort}}
	for _, c := range rel.Cohorts {
		cohorts = append(cohorts, analysis.CohortRelease{Label: c.Label, CollapsedFrom: c.CollapsedFrom})
	}
	rows, dec, err = analysis.AnalyseRecording(spec, rel.Cells, cohorts, rel.Noise, in.Date, func(c stats.Comparison) { cmps = append(cmps, c) })
	if err != nil {
		return nil, nil, analysis.Decisions{}, nil, err
	}
	_, blocked = analysis.EvaluatePrivateGates(spec, rel, nil)
	return rows, cmps, dec, blocked, nil
}

// CalibrationPrivateDrill releases a calibration pass's drill-down cells
// under a private spec with declared slices, as a private run does (the
// persona cohorts and gates are drawn too: the drill-downs' noise streams
// follow them), and analyses the noisy slices (analysis.PrivateDrilldowns).
// It writes no ledger and spends nothing.
func CalibrationPrivateDrill(spec *expspec.Spec, in CalibrationInput, key []byte, release string) ([]analysis.DrillRow, error) {
	if !spec.Privacy.Enabled || spec.Drilldowns == nil {
		return nil, fmt.Errorf("calibration private drill-down: spec %s is not private or has no drilldowns", spec.Path())
	}
	rel, err := privatize.Privatize(spec, in.Cells, in.DrillDims, in.Quality, privacy.Key(key), "calibration drill "+release, in.Date)
	if err != nil {
		return nil, err
	}
	return analysis.PrivateDrilldowns(spec, rel.Drill, in.Date)
}

package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// findMissingEvents is the whole check for one experiment after its SQL
// pass: the cheap test on the cells, then, only for suspect parts, the
// event names in the window. Private runs skip it here: their verdicts
// must rest on noisy, charged counts and the names found may appear only
// in the restricted area (the lead wires that in private.go).
func findMissingEvents(ctx context.Context, s *engine.Session, spec *expspec.Spec, cells []engine.Cell, events []intake.InputFile) ([]analysis.MissingEvent, error) {
	if spec.Privacy != nil && spec.Privacy.Enabled {
		return nil, nil
	}
	suspects := analysis.SuspectParts(spec, cells)
	if len(suspects) == 0 {
		return nil, nil
	}
	present, err := s.EventNamesIn(ctx, spec, events)
	if err != nil {
		return nil, err
	}
	return analysis.MissingEvents(suspects, present), nil
}

// CheckData does what Plan does and then the data checks a run can make
// before any statistic: every metric's event (and denominator event) must
// have rows in the spec's window, as the run's metric_event_missing check
// requires. It writes nothing. A spec whose goal or guardrail events are
// missing gets a *DataError naming each metric, event and the nearest
// names present (exit 65); a secondary metric's missing event is a warning
// (Result.Warnings), as in a run. Private specs are not checked here: the names in their data
// may be shown only in the restricted area.
func CheckData(ctx context.Context, specs []*expspec.Spec, opts Options) ([]PlannedGroup, []Result) {
	results := make([]Result, len(specs))
	for i, s := range specs {
		results[i] = Result{SpecFile: s.Path(), Experiment: s.Experiment, Name: s.OutputName()}
	}
	if opts.OutDir == "" {
		opts.OutDir = "."
	}
	opts, err := opts.withDefaults()
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return nil, results
	}
	jobs, groups := planJobs(ctx, specs, opts, false)
	warnings := map[*job][]string{}
	var plan []PlannedGroup
	for _, g := range groups {
		st, err := inspectGroup(ctx, g, opts)
		if err != nil {
			for _, j := range g {
				j.err = err
			}
			continue
		}
		pg := PlannedGroup{Inputs: append(append([]intake.InputFile{}, st.traces...), st.events...), Templates: st.recs, DuckDB: st.duck, Execution: st.execSet}
		for _, j := range g {
			pg.Experiments = append(pg.Experiments, j.spec.Experiment)
			if j.spec.Privacy.Enabled {
				j.skipped = "private spec: its events are checked by the run, whose findings go to the restricted area"
				continue
			}
			var all []analysis.MissingEvent
			for _, m := range j.spec.Metrics {
				all = append(all, analysis.MissingEvent{Metric: m.Name, Role: m.Role, Part: "event", Event: m.Event})
				if m.Denominator != nil {
					all = append(all, analysis.MissingEvent{Metric: m.Name, Role: m.Role, Part: "denominator.event", Event: m.Denominator.Event})
				}
			}
			present, err := st.sess.EventNamesIn(ctx, j.spec, st.events)
			if err != nil {
				j.err = engine.ClassifySQLError(ctx, err)
				continue
			}
			var blocking, warn []string
			for _, m := range analysis.MissingEvents(all, present) {
				if analysis.MissingEventCheck(m) == analysis.MetricEventCheck {
					blocking = append(blocking, m.String())
				} else {
					warn = append(warn, m.String())
				}
			}
			warnings[j] = warn
			if len(blocking) > 0 {
				j.err = &engine.DataError{Err: fmt.Errorf("spec %s: %s: %s", j.spec.Path(), analysis.MetricEventCheck, strings.Join(append(blocking, warn...), "; "))}
			}
		}
		st.sess.Close()
		plan = append(plan, pg)
	}
	for i, j := range jobs {
		results[i].Err, results[i].Skipped = j.err, j.skipped
		if j.err == nil {
			results[i].Warnings = warnings[j]
		}
	}
	return plan, results
}

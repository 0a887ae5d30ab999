package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// planCmd is `verity plan`: sample size and duration of each goal from a
// pre-period of real traffic, measured through the spec's pinned SQL.
func planCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("plan")
	var f runFlags
	f.register(fs, false)
	preStart := fs.String("pre-start", "", "start `YYYY-MM-DD` (or RFC 3339 UTC) of the pre-period measured (required)")
	preEnd := fs.String("pre-end", "", "end `YYYY-MM-DD` (exclusive; or RFC 3339 UTC) of the pre-period measured (required)")
	asJSON := fs.Bool("json", false, "print the plans as JSON instead of text")
	if err := parseFlags(fs, args); err != nil {
		return pipeline.ExitConfig, err
	}
	switch {
	case fs.NArg() != 1:
		return pipeline.ExitConfig, fmt.Errorf("%w: plan needs exactly one spec file", expspec.ErrUsage)
	case *preStart == "" || *preEnd == "":
		return pipeline.ExitConfig, fmt.Errorf("%w: plan needs --pre-start and --pre-end (the pre-period to measure)", expspec.ErrUsage)
	case f.date != "":
		return pipeline.ExitConfig, fmt.Errorf("%w: plan measures --pre-start to --pre-end; --date does not apply", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "spec", fs.Args()); err != nil {
		return pipeline.ExitCode(err), err
	}
	f.out = "."
	opts, err := f.options(stderr)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	spec, err := expspec.LoadSpec(fs.Arg(0))
	if err != nil {
		return pipeline.ExitCode(err), err
	}
	plan, err := pipeline.PlanSampleSize(ctx, spec, *preStart, *preEnd, opts)
	if err != nil {
		return pipeline.ExitCode(err), err
	}
	if *asJSON {
		b, err := json.MarshalIndent(planJSONOf(plan), "", "  ")
		if err != nil {
			return pipeline.ExitConfig, err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return pipeline.ExitOK, nil
	}
	writePlanText(stdout, plan)
	return pipeline.ExitOK, nil
}

// planJSON is `verity plan --json`: floats are written shortest
// round-trip; an undefined number is null.
type planJSON struct {
	Experiment string                    `json:"experiment"`
	Name       string                    `json:"name"`
	PreStart   string                    `json:"pre_start"`
	PreEnd     string                    `json:"pre_end"`
	Days       float64                   `json:"pre_period_days"`
	Baselines  []analysis.MetricBaseline `json:"baselines"`
	Goals      []planGoalJSON            `json:"goals"`
}

type planGoalJSON struct {
	Metric         string   `json:"metric"`
	Variant        string   `json:"variant"`
	Design         string   `json:"design"`
	Alternative    string   `json:"alternative"`
	Alpha          float64  `json:"alpha"`
	Power          float64  `json:"power"`
	RelativeMDE    float64  `json:"relative_mde"`
	AbsoluteMDE    *float64 `json:"absolute_mde"`
	TreatmentShare float64  `json:"treatment_share"`
	DailyUnits     float64  `json:"daily_units"`
	CUPEDRho       float64  `json:"cuped_correlation"`
	UnitVariance   *float64 `json:"unit_variance"`
	Critical       *float64 `json:"critical_value"`
	TotalN         *float64 `json:"total_n"`
	ControlUnits   *float64 `json:"control_units"`
	TreatmentUnits *float64 `json:"treatment_units"`
	TotalUnits     *float64 `json:"total_units"`
	Days           *float64 `json:"days"`
	Status         string   `json:"status"`
}

func fptr(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func planJSONOf(p *pipeline.SampleSizePlan) planJSON {
	out := planJSON{Experiment: p.Experiment, Name: p.Name, PreStart: p.PreStart, PreEnd: p.PreEnd, Days: p.Days, Baselines: p.Baselines, Goals: []planGoalJSON{}}
	rho := map[string]float64{}
	for i, b := range out.Baselines {
		rho[b.Metric] = b.CUPEDCorrelation
		if math.IsNaN(b.Mean) || math.IsNaN(b.Variance) {
			out.Baselines[i].Mean, out.Baselines[i].Variance = 0, 0
		}
	}
	for _, g := range p.Goals {
		j := planGoalJSON{Metric: g.Metric, Variant: g.Variant, Design: g.Design, Alternative: g.Alternative, Alpha: g.Alpha, Power: g.Power,
			RelativeMDE: g.RelativeMDE, TreatmentShare: g.TreatmentShare, DailyUnits: g.DailyUnits, CUPEDRho: rho[g.Metric], Status: g.Status}
		if g.Status == "ok" {
			pl := g.Plan
			j.AbsoluteMDE, j.UnitVariance, j.Critical, j.TotalN = fptr(pl.MDE), fptr(pl.UnitVar), fptr(pl.Critical), fptr(pl.TotalN)
			j.ControlUnits, j.TreatmentUnits, j.TotalUnits = fptr(pl.ControlUnits), fptr(pl.TreatmentUnits), fptr(pl.TotalUnits)
			if g.DailyUnits > 0 {
				j.Days = fptr(pl.Days)
			}
		}
		out.Goals = append(out.Goals, j)
	}
	return out
}

func g6(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func writePlanText(w io.Writer, p *pipeline.SampleSizePlan) {
	fmt.Fprintf(w, "plan for %s (experiment %s) from the pre-period %s to %s (%s days), measured with the spec's pinned templates\n\n", p.Name, p.Experiment, p.PreStart, p.PreEnd, g6(p.Days))
	fmt.Fprintf(w, "baselines (every assigned unit of the pre-period, all variants pooled):\n")
	for _, b := range p.Baselines {
		rho := ""
		if b.CUPEDCorrelation != 0 {
			rho = "  CUPED ρ " + g6(b.CUPEDCorrelation)
		}
		switch {
		case b.Level != 0:
			q := "none (no units)"
			if b.Quantile != nil {
				q = g6(*b.Quantile)
			}
			of, over := "per-unit values", ""
			if b.Kind == analysis.EventQuantileKind {
				of, over = "per-unit event counts", " of events"
			}
			fmt.Fprintf(w, "  %-24s %-10s units %d  %s%s %s (%s: mean %s, variance %s; reported, not planned)\n", b.Metric, b.Kind, b.Units,
				expspec.QuantileLabel(b.Level), over, q, of, g6(b.Mean), g6(b.Variance))
			continue
		case b.Cap != nil:
			rho += "  capped at " + g6(*b.Cap)
		}
		fmt.Fprintf(w, "  %-24s %-10s units %d  mean %s  per-unit variance %s%s\n", b.Metric, b.Kind, b.Units, g6(b.Mean), g6(b.Variance), rho)
	}
	fmt.Fprintf(w, "\ngoals (α uncorrected, each metric's own α, power and alternative; relative MDE max_relative_mde, plus a superiority margin):\n")
	if len(p.Goals) == 0 {
		fmt.Fprintf(w, "  no goal metric in the spec\n")
	}
	for _, g := range p.Goals {
		fmt.Fprintf(w, "  %s vs control, %s: %s design, %s, α %s, power %s, relative MDE %s\n", g.Variant, g.Metric, g.Design, g.Alternative, g6(g.Alpha), g6(g.Power), g6(g.RelativeMDE))
		if g.Status != "ok" {
			fmt.Fprintf(w, "    no plan: %s\n", g.Status)
			continue
		}
		pl := g.Plan
		fmt.Fprintf(w, "    units needed %s (control %s, %s %s)", g6(pl.TotalUnits), g6(pl.ControlUnits), g.Variant, g6(pl.TreatmentUnits))
		if g.DailyUnits > 0 {
			fmt.Fprintf(w, "; at %s units a day in these two arms: %s days", g6(g.DailyUnits), g6(pl.Days))
		}
		fmt.Fprintf(w, "\n")
	}
}

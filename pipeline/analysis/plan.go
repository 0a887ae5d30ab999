package analysis

import (
	"fmt"
	"math"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Planning from a pre-period (`verity plan`). The pinned templates run
// over a pre-period window [pre-start, pre-end) exactly as a run would;
// every unit they assign, whatever its variant, is baseline traffic. Per
// metric, the pooled exact moments of the (all) cohort give the baseline
// mean and per-unit variance — for a ratio the delta-method variance of
// its linearisation (s²_x − 2R·s_xy + R²·s²_y)/ȳ², R = x̄/ȳ — and, with
// CUPED, the correlation ρ of the metric (linearised) with its covariate;
// the units per day are the units assigned ÷ the pre-period's days. Each
// goal × treatment is planned with stats.PlanSampleSize in the spec's
// design: the metric's α, power and alternative (two-sided, or one-sided
// for a one-sided hypothesis), its relative MDE max_relative_mde (a
// superiority margin is added to it: the test must clear margin + MDE),
// the treatment's share of the two arms, and the daily units those two
// arms receive (daily units × their allocation). α is the metric's,
// uncorrected, as in the report's "days still needed".

// MetricBaseline is one metric's pre-period baseline.
type MetricBaseline struct {
	Metric string  `json:"metric"`
	Kind   string  `json:"kind"`
	Units  int64   `json:"units"`
	Mean   float64 `json:"mean"`
	// Variance is the per-unit variance (delta method for ratios).
	Variance float64 `json:"variance"`
	// CUPEDCorrelation is ρ with the covariate (0 without CUPED).
	CUPEDCorrelation float64 `json:"cuped_correlation"`
	// Cap is a percentile-capped mean's pre-period cap (its upper
	// quantile of the pooled per-unit values, as a run computes it);
	// Mean and Variance are then of the capped values.
	Cap *float64 `json:"cap,omitempty"`
	// Quantile is a quantile metric's pre-period value at its Level (of
	// the pooled per-unit values); Mean and Variance are then the
	// per-unit values' own, and the metric is not planned (quantile
	// metrics are reported, not decided on).
	Quantile *float64 `json:"quantile,omitempty"`
	Level    float64  `json:"level,omitempty"`
}

// PlanRow is one goal × treatment's plan.
type PlanRow struct {
	Metric, Variant string
	Design          string  // fixed or sequential
	Alternative     string  // two-sided, greater or less
	Alpha, Power    float64 // the metric's
	RelativeMDE     float64 // the target relative effect (margin included)
	TreatmentShare  float64 // of the two arms compared
	DailyUnits      float64 // entering the two arms per day
	Plan            stats.Plan
	Status          string // ok, or why there is no plan
}

// PrePeriodBaselines pools each metric's exact (all) cells over every
// variant into its baseline. cells are the pass's leaf cells.
func PrePeriodBaselines(spec *expspec.Spec, cells []engine.Cell) ([]MetricBaseline, error) {
	all, err := CompleteCells(spec, cells)
	if err != nil {
		return nil, err
	}
	// A capped metric's baseline is of its capped values: the cap pooled
	// over every arm of (all), as a run computes it (a plan from the
	// uncapped variance asked for the wrong metric's sample size).
	all, caps, err := applyCaps(spec, all)
	if err != nil {
		return nil, err
	}
	capOf := map[string]*float64{}
	for _, c := range caps {
		capOf[c.Metric] = c.Cap
	}
	var out []MetricBaseline
	for _, m := range spec.Metrics {
		pooled := engine.NewCell(expspec.AllCohort, "*", m.Name)
		for _, c := range all {
			if c.Cohort != expspec.AllCohort || c.Metric != m.Name {
				continue
			}
			pooled.N += c.N
			dst, add := pooled.Sums(), c.Sums()
			for i := range dst {
				(*dst[i]).Add(*dst[i], *add[i])
			}
		}
		mo := momentsOf(pooled, spec.Scale())
		kind := m.Kind
		if m.EventLevel() {
			kind = EventQuantileKind // its mean and variance are of the units' event counts
		}
		b := MetricBaseline{Metric: m.Name, Kind: kind, Units: pooled.N, Mean: mo.MeanX, Variance: mo.VarX, Cap: capOf[m.Name]}
		if m.Kind == expspec.KindQuantile {
			q, err := pooledQuantile(all, m)
			if err != nil {
				return nil, err
			}
			b.Quantile, b.Level = q, m.Level
		}
		cuped := spec.Statistics.CUPED != nil
		lin, covLinC := mo.VarX, mo.CovXC
		if m.Kind == "ratio" {
			if mo.MeanY == 0 {
				b.Mean, b.Variance = math.NaN(), math.NaN()
				out = append(out, b)
				continue
			}
			r := mo.MeanX / mo.MeanY
			b.Mean = r
			lin = (mo.VarX - 2*r*mo.CovXY + r*r*mo.VarY) / (mo.MeanY * mo.MeanY)
			covLinC = (mo.CovXC - r*mo.CovYC) / mo.MeanY
			b.Variance = lin
		}
		if cuped && lin > 0 && mo.VarC > 0 {
			b.CUPEDCorrelation = covLinC / math.Sqrt(lin*mo.VarC)
		}
		out = append(out, b)
	}
	return out, nil
}

// PlanGoals plans every goal × treatment from the baselines and the
// pre-period's length in days.
func PlanGoals(spec *expspec.Spec, baselines []MetricBaseline, days float64) []PlanRow {
	st := spec.Statistics
	byName := map[string]MetricBaseline{}
	for _, b := range baselines {
		byName[b.Metric] = b
	}
	var control expspec.Variant
	for _, v := range spec.Variants {
		if v.Control {
			control = v
		}
	}
	var out []PlanRow
	for _, m := range spec.Metrics {
		if m.Role != "goal" {
			continue
		}
		b := byName[m.Name]
		for _, v := range spec.Variants {
			if v.Control {
				continue
			}
			row := PlanRow{Metric: m.Name, Variant: v.Name, Design: "fixed", Alternative: expspec.AltTwoSided,
				Alpha: spec.MetricAlpha(m), Power: spec.MetricPower(m), RelativeMDE: st.MaxRelativeMDE,
				TreatmentShare: v.Allocation / (v.Allocation + control.Allocation), Status: "ok"}
			in := stats.PlanInput{BaselineMean: b.Mean, BaselineVar: b.Variance, MDE: row.RelativeMDE, Relative: true,
				Alpha: row.Alpha, Power: row.Power, TreatmentShare: row.TreatmentShare}
			if h := m.Hypothesis; h != nil && h.Alternative != expspec.AltTwoSided {
				row.Alternative = h.Alternative
				in.Alternative, _ = stats.ParseAlternative(h.Alternative)
				if h.Test == expspec.TestSuperiority && h.Margin > 0 {
					if !h.Relative {
						row.Status = "an absolute superiority margin: plan it with a relative one"
						out = append(out, row)
						continue
					}
					row.RelativeMDE += h.Margin
					in.MDE = row.RelativeMDE
				}
				if h.Test == expspec.TestNonInferiority {
					// The effect to detect is no effect against the margin.
					in.MDE = h.Margin
					in.Relative = h.Relative
					row.RelativeMDE = h.Margin
				}
			}
			if st.Sequential != nil {
				row.Design = "sequential"
				in.Design, in.NStar = stats.AlwaysValid, st.Sequential.NStar
			}
			in.CUPEDCorrelation = b.CUPEDCorrelation
			if days > 0 {
				row.DailyUnits = float64(b.Units) / days * (v.Allocation + control.Allocation)
				in.DailyUnits = row.DailyUnits
			}
			switch {
			case b.Units < 2 || math.IsNaN(b.Variance):
				row.Status = fmt.Sprintf("no baseline: %d units in the pre-period", b.Units)
			default:
				p, err := stats.PlanSampleSize(in)
				if err != nil {
					row.Status = err.Error()
				} else {
					row.Plan = p
				}
			}
			out = append(out, row)
		}
	}
	return out
}

// pooledQuantile is quantile metric m's value at its level over the
// per-unit values of every arm of (all), from the exact histograms; nil
// without units.
func pooledQuantile(cells []engine.Cell, m expspec.Metric) (*float64, error) {
	if m.EventLevel() {
		return pooledEventQuantile(cells, m)
	}
	var hs []stats.Histogram
	for _, c := range cells {
		if c.Cohort == expspec.AllCohort && c.Metric == m.Name && c.Hist != nil {
			hs = append(hs, *c.Hist)
		}
	}
	h, err := stats.MergeHistograms(hs...)
	if err != nil {
		return nil, fmt.Errorf("metric %s: pooled histogram: %w", m.Name, err)
	}
	if h.N() == 0 {
		return nil, nil
	}
	v, err := h.Quantile(m.Level)
	if err != nil {
		return nil, fmt.Errorf("metric %s: quantile: %w", m.Name, err)
	}
	return opt(h.Float(v)), nil
}

// pooledEventQuantile is event-level quantile metric m's value at its
// level over the events of every arm of (all), from the event bins; nil
// without events.
func pooledEventQuantile(cells []engine.Cell, m expspec.Metric) (*float64, error) {
	var pooled *stats.EventBins
	for _, c := range cells {
		if c.Cohort != expspec.AllCohort || c.Metric != m.Name || c.EventBins == nil {
			continue
		}
		if pooled == nil {
			b := *c.EventBins
			pooled = &b
			continue
		}
		b, err := pooled.Merge(*c.EventBins)
		if err != nil {
			return nil, fmt.Errorf("metric %s: pooled event bins: %w", m.Name, err)
		}
		pooled = &b
	}
	if pooled == nil {
		return nil, nil
	}
	a, err := pooled.Arm(m.Level)
	if err != nil || a.Events.N() == 0 {
		return nil, err
	}
	v, err := a.Events.Quantile(m.Level)
	if err != nil {
		return nil, fmt.Errorf("metric %s: quantile: %w", m.Name, err)
	}
	return opt(a.Events.Float(v)), nil
}

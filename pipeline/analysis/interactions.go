package analysis

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Interactions with other experiments (issue 21 item 4): for each partner
// the spec lists and each of its proportion and mean metrics, the units
// assigned in both experiments form a table of cells (this experiment's
// arms × the partner's arms, controls first); stats.Interaction tests
// whether this experiment's effect depends on the partner's arm. The
// night's tests form one family: Holm-adjusted p-values, a pair flagged
// when its adjusted p is at most interactions.alpha, so that on a night
// without interactions the chance that any pair of the experiment is
// flagged is at most alpha.

// Interaction statuses (InteractionRow.Status).
const (
	IxTested          = "tested"
	IxNotInRun        = "partner_not_in_run"
	IxNotStarted      = "partner_not_started"
	IxPrivate         = "partner_private"
	IxSameExperiment  = "partner_same_experiment"
	IxConflict        = "partner_conflict"
	IxMetricNotTested = "metric_not_tested"
	IxTooFewUnits     = "too_few_units"
	IxNoVariance      = "no_variance"
)

// InteractionPartner is a partner as the run resolved it.
type InteractionPartner struct {
	Name, Experiment string
	// Status is "" when the partner was analysed in the pass, else why not
	// (IxNotInRun, IxNotStarted, IxPrivate, IxSameExperiment, IxConflict).
	Status string
	// Variants are the partner's variants, control first.
	Variants []string
}

// InteractionRow is one (partner, metric) test, a row of interactions.csv.
type InteractionRow struct {
	Experiment, Metric, Kind   string
	Partner, PartnerExperiment string
	// Arms and PartnerArms are the table's dimensions; Units the units
	// assigned in both experiments (0 when not tested).
	Arms, PartnerArms int
	Units             int64
	Method            string // stats.InteractionWelch or stats.InteractionWald
	// Estimate, SE, CI: the 2×2 contrast (nil for larger tables).
	Estimate, SE, CILow, CIHigh  *float64
	CILevel                      float64
	Statistic, DF, DFDenominator *float64
	PValue, PAdjusted            *float64
	Flagged                      bool
	Status                       string
	// Detail says why a row was not tested.
	Detail string
}

// Interactions runs the tests of the spec's partners from the pass's
// interaction cells.
func Interactions(spec *expspec.Spec, partners []InteractionPartner, cells []engine.InteractionCell) ([]InteractionRow, error) {
	if spec.Interactions == nil {
		return nil, nil
	}
	alpha := spec.InteractionAlpha()
	scale := spec.Scale()
	arms := spec.ArmsControlFirst()
	type key struct{ partner, metric, a, b string }
	byKey := map[key]engine.InteractionCell{}
	for _, c := range cells {
		byKey[key{c.Partner, c.Metric, c.Variant, c.PartnerVariant}] = c
	}
	rows := []InteractionRow{}
	var family []int
	for _, p := range partners {
		for _, m := range spec.Metrics {
			r := InteractionRow{Experiment: spec.Experiment, Metric: m.Name, Kind: m.Kind, Partner: p.Name, PartnerExperiment: p.Experiment,
				Arms: len(arms), PartnerArms: len(p.Variants), CILevel: 1 - alpha}
			if p.Status != "" {
				r.Status, r.Detail = p.Status, partnerDetail(p.Status)
				rows = append(rows, r)
				continue
			}
			if ok, why := expspec.InteractionMetric(m); !ok {
				r.Status, r.Detail = IxMetricNotTested, why
				rows = append(rows, r)
				continue
			}
			table := make([][]stats.Cell, len(arms))
			short := ""
			for i, a := range arms {
				table[i] = make([]stats.Cell, len(p.Variants))
				for j, b := range p.Variants {
					c, ok := byKey[key{p.Experiment, m.Name, a, b}]
					if !ok {
						c = engine.InteractionCell{Sum: new(big.Int), SumSq: new(big.Int), MaxAbs: new(big.Int)}
					}
					r.Units += c.N
					if c.N < 2 && short == "" {
						short = fmt.Sprintf("%d units in %s × %s %s (need 2 in every cell)", c.N, a, p.Name, b)
					}
					ec := engine.NewCell("", a, m.Name)
					ec.N, ec.Sum, ec.SumSq = c.N, c.Sum, c.SumSq
					mean, v := Moments(ec, scale)
					table[i][j] = stats.Cell{N: float64(c.N), Mean: mean, Var: v}
				}
			}
			family = append(family, len(rows))
			if short != "" {
				r.Status, r.Detail = IxTooFewUnits, short
				rows = append(rows, r)
				continue
			}
			res, err := stats.Interaction(table, stats.InteractionOptions{Alpha: alpha})
			if errors.Is(err, stats.ErrDegenerate) {
				r.Status, r.Detail = IxNoVariance, "the contrasts have no variance (every unit of some cells has the same value)"
				rows = append(rows, r)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("interaction of %s with %s, metric %s: %w", spec.Experiment, p.Name, m.Name, err)
			}
			r.Status, r.Method = IxTested, res.Method
			r.Statistic, r.DF, r.PValue = new(res.Statistic), new(res.DF), new(res.PValue)
			if res.Method == stats.InteractionWelch {
				r.Estimate, r.SE, r.CILow, r.CIHigh = new(res.Estimate), new(res.SE), new(res.Low), new(res.High)
			} else {
				r.DFDenominator = new(res.DFDenominator)
			}
			rows = append(rows, r)
		}
	}
	// One family per night: every test the pass could attempt, an
	// untestable table (too few units, no variance) counting with p = 1
	// (stats.FlagInteractions), so that the family does not shrink when a
	// table cannot be tested.
	p := make([]float64, len(family))
	for i, k := range family {
		p[i] = 1
		if rows[k].PValue != nil {
			p[i] = *rows[k].PValue
		}
	}
	adjusted, flagged, err := stats.FlagInteractions(p, stats.HolmCorrection, alpha)
	if err != nil {
		return nil, err
	}
	for i, k := range family {
		if rows[k].Status == IxTested {
			rows[k].PAdjusted, rows[k].Flagged = new(adjusted[i]), flagged[i]
		}
	}
	return rows, nil
}

// partnerDetail explains a partner status.
func partnerDetail(status string) string {
	switch status {
	case IxNotInRun:
		return "no spec of this name is in the run (interactions are tested between specs run together)"
	case IxNotStarted:
		return "the partner's window has not started on this date"
	case IxPrivate:
		return "the partner is a private spec: its units' arms are not released exactly"
	case IxSameExperiment:
		return "the partner analyses this same experiment"
	case IxConflict:
		return "another spec of the partner's experiment is analysed in this pass with other settings"
	}
	return ""
}

package report

// AdjustedEstimate is one variance-reduced estimate of the (all) cohort's
// effect (adjusted.csv's row): a metric × treatment × method, the
// estimator's named source, the unadjusted and adjusted effects and the
// share of variance the method removed. Nil numbers are not estimated.
type AdjustedEstimate struct {
	Metric, Kind, Variant, Control string
	Method, Estimator, Status      string
	Strata                         int
	NControl, NVariant             int64
	Unadjusted, UnadjustedSE       *float64
	Estimate, SE, Low, High, P     *float64
	Reduction                      *float64 // 1 − SE²/UnadjustedSE²
}

type adjustedView struct {
	Metric, Kind, Variant, Control, Method, Estimator, Status string
	StatusOK                                                  bool
	N, Strata, Unadjusted, Adjusted, CI, SE, P, Reduction     string
}

func fmtOpt(p *float64, f func(float64) string) string {
	if v, ok := get(p); ok {
		return f(v)
	}
	return na
}

// buildAdjusted formats the variance-reduction section's rows.
func buildAdjusted(rows []AdjustedEstimate) []adjustedView {
	var out []adjustedView
	for _, r := range rows {
		e := func(v float64) string { return signed(v, sigEffect) }
		se := func(v float64) string { return num(v, sigEffect) }
		av := adjustedView{
			Metric: r.Metric, Kind: r.Kind, Variant: r.Variant, Control: r.Control, Method: r.Method,
			Estimator: r.Estimator, Status: r.Status, StatusOK: r.Status == "ok",
			N:          count(r.NControl) + " / " + count(r.NVariant),
			Unadjusted: fmtOpt(r.Unadjusted, e) + " ± " + fmtOpt(r.UnadjustedSE, se),
			Adjusted:   fmtOpt(r.Estimate, e),
			SE:         fmtOpt(r.SE, se),
			P:          fmtOpt(r.P, pval),
			Reduction:  fmtOpt(r.Reduction, func(v float64) string { return pct(v, sigEffect) }),
		}
		if r.Strata > 0 {
			av.Strata = count(int64(r.Strata))
		}
		if _, ok := get(r.Low); ok {
			av.CI = "[" + fmtOpt(r.Low, e) + ", " + fmtOpt(r.High, e) + "]"
		}
		out = append(out, av)
	}
	return out
}

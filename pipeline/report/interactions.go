package report

// Interactions is the report's section on interactions with other
// experiments (interactions.csv): one row per partner × metric.
type Interactions struct {
	Alpha float64
	Rows  []InteractionRow
}

// InteractionRow is one partner × metric test. Nil numbers were not
// computed (the row's Status says why; a table larger than 2×2 has a p
// but no single estimate).
type InteractionRow struct {
	Metric, Partner, PartnerExperiment string
	Arms, PartnerArms                  int
	Units                              int64
	Method                             string
	Estimate, Low, High, P, PHolm      *float64
	Flagged                            bool
	Status, Detail                     string
}

type interactionsView struct {
	Alpha   string
	Flagged int
	Rows    []interactionRowView
}

type interactionRowView struct {
	Metric, Partner, Table, Units, Method, Estimate, CI, P, PHolm string
	Tested, Flagged                                               bool
	Status, Detail                                                string
}

// buildInteractions formats the interactions section (nil: not shown).
func buildInteractions(ix *Interactions) *interactionsView {
	if ix == nil {
		return nil
	}
	v := &interactionsView{Alpha: numTrim(ix.Alpha, 4)}
	for _, r := range ix.Rows {
		e := func(x float64) string { return signed(x, sigEffect) }
		rv := interactionRowView{
			Metric: r.Metric, Partner: r.Partner, Method: r.Method, Status: r.Status, Detail: r.Detail,
			Tested: r.Status == "tested", Flagged: r.Flagged,
			Estimate: fmtOpt(r.Estimate, e), P: fmtOpt(r.P, pval), PHolm: fmtOpt(r.PHolm, pval),
		}
		if r.PartnerExperiment != "" && r.PartnerExperiment != r.Partner {
			rv.Partner += " (experiment " + r.PartnerExperiment + ")"
		}
		if r.PartnerArms > 0 {
			rv.Table = count(int64(r.Arms)) + " × " + count(int64(r.PartnerArms))
		}
		if rv.Tested {
			rv.Units = count(r.Units)
		}
		if _, ok := get(r.Low); ok {
			rv.CI = "[" + fmtOpt(r.Low, e) + ", " + fmtOpt(r.High, e) + "]"
		}
		if r.Flagged {
			v.Flagged++
		}
		v.Rows = append(v.Rows, rv)
	}
	return v
}

package report

// Drilldown is the report's section on drill-downs (drilldown.csv): one
// row per dimension × slice × metric × treatment.
type Drilldown struct {
	Rows []DrillRow
	// Private: a private release's slices (declared values and other,
	// noisy counts, no tied units).
	Private bool
}

// DrillRow is one row of drilldown.csv as the report shows it. Kind is
// value, null or other (the collapsed remainder); nil numbers were not
// computed.
type DrillRow struct {
	Dimension, Kind, Slice, CollapsedFrom string
	Units, Tied                           int64
	Metric, Variant                       string
	Effect, Low, High, P, PAdj, SRMP      *float64
	SRM, Analysed                         bool
	Status, Detail                        string
}

type drilldownView struct {
	Rows    []drillRowView
	Private bool
	SRM     int
	// Tested counts the rows with an SRM p-value: with none, no slice was
	// tested, which is not "no slice shows a mismatch".
	Tested int
}

type drillRowView struct {
	Dimension, Slice, Units, Metric, Variant, Effect, CI, P, PAdj, SRMP string
	SRM, Analysed                                                       bool
	Status, Detail                                                      string
}

// buildDrilldown formats the drill-down section (nil: not shown).
func buildDrilldown(d *Drilldown) *drilldownView {
	if d == nil {
		return nil
	}
	v := &drilldownView{Private: d.Private}
	for _, r := range d.Rows {
		e := func(x float64) string { return signed(x, sigEffect) }
		rv := drillRowView{
			Dimension: r.Dimension, Metric: r.Metric, Variant: r.Variant, Status: r.Status, Detail: r.Detail,
			Analysed: r.Analysed, SRM: r.SRM,
			Effect: fmtOpt(r.Effect, e), P: fmtOpt(r.P, pval), PAdj: fmtOpt(r.PAdj, pval), SRMP: fmtOpt(r.SRMP, pval),
		}
		switch r.Kind {
		case "value":
			rv.Slice = "“" + r.Slice + "”"
		case "null":
			rv.Slice = "(null)"
		case "other":
			rv.Slice = "other: " + r.CollapsedFrom
			if d.Private {
				rv.Slice = "other (undeclared values, NULL)"
				if r.CollapsedFrom != "" {
					rv.Slice += " with " + r.CollapsedFrom
				}
			}
		}
		if r.Kind != "" {
			rv.Units = count(r.Units)
			if d.Private {
				rv.Units = "≈" + rv.Units
			}
			if r.Tied > 0 {
				rv.Units += " (" + count(r.Tied) + " tied)"
			}
		}
		if _, ok := get(r.Low); ok {
			rv.CI = "[" + fmtOpt(r.Low, e) + ", " + fmtOpt(r.High, e) + "]"
		}
		if r.SRM {
			v.SRM++
		}
		if _, ok := get(r.SRMP); ok {
			v.Tested++
		}
		v.Rows = append(v.Rows, rv)
	}
	return v
}

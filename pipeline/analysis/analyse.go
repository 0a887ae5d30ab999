package analysis

import (
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/stats"
)

// CohortRelease is one released cohort: its label and, with collapsing,
// every label merged into it.
type CohortRelease struct {
	Label         string
	CollapsedFrom []string
}

// Analyse computes every result row and the decision from the complete
// cells (CompleteCells). Rows come in the fixed output order: cohort, then
// metric in spec order, then treatment in spec order.
//
// cohortList lists the released cohorts in output order; noise is nil for
// an exact release, else the noise standard deviations by
// privatize.NoiseKey(cohort, metric).
func Analyse(spec *expspec.Spec, cells []engine.Cell, cohortList []CohortRelease, noise map[string]privatize.NoiseSD, date string) ([]ResultRow, Decisions, error) {
	return AnalyseRecording(spec, cells, cohortList, noise, date, nil)
}

// AnalyseRecording is Analyse; record, when not nil, receives the
// comparison behind each result row, in row order (the calibration suite
// judges Fieller's relative confidence set from it, which a row reports
// only when it is bounded).
func AnalyseRecording(spec *expspec.Spec, cells []engine.Cell, cohortList []CohortRelease, noise map[string]privatize.NoiseSD, date string, record func(stats.Comparison)) ([]ResultRow, Decisions, error) {
	cells, caps, err := applyCaps(spec, cells)
	if err != nil {
		return nil, Decisions{}, err
	}
	a, err := newAnalyser(spec, cells, cohortList, noise)
	if err != nil {
		return nil, Decisions{}, err
	}
	srm := a.sampleRatioChecks()
	rows, in, err := a.cohortComparisons(srmByCohort(srm), record)
	if err != nil {
		return nil, Decisions{}, err
	}
	if err := correctFamily(rows, &in, spec.Statistics); err != nil {
		return nil, Decisions{}, err
	}
	dec := a.decide(date, srm, in)
	dec.Caps = caps
	return rows, dec, nil
}

// cellKey identifies a cell: cohort, variant, metric.
type cellKey struct{ c, v, m string }

// analyser holds what every step of one analysis reads: the spec, its
// cells by cohort × variant × metric, the released cohorts, the noise
// scales (nil for an exact release) and the statistics settings.
type analyser struct {
	spec      *expspec.Spec
	cells     map[cellKey]engine.Cell
	cohorts   []string          // released cohorts, in output order
	collapsed map[string]string // by cohort: the labels merged into it, ";"-joined
	noise     map[string]privatize.NoiseSD
	control   string // the control variant's name
	scale     int64
	opts      stats.Options
	interval  string // fixed_horizon or always_valid
}

// newAnalyser indexes the cells and the released cohorts and checks the
// statistics settings.
func newAnalyser(spec *expspec.Spec, cells []engine.Cell, cohortList []CohortRelease, noise map[string]privatize.NoiseSD) (*analyser, error) {
	a := &analyser{
		spec: spec, cells: map[cellKey]engine.Cell{}, cohorts: make([]string, len(cohortList)), collapsed: map[string]string{},
		noise: noise, control: spec.Control(), scale: spec.Scale(),
	}
	for _, c := range cells {
		a.cells[cellKey{c.Cohort, c.Variant, c.Metric}] = c
	}
	for i, c := range cohortList {
		a.cohorts[i] = c.Label
		a.collapsed[c.Label] = strings.Join(c.CollapsedFrom, ";")
	}
	opts, interval, err := statsOptions(spec.Statistics)
	if err != nil {
		return nil, err
	}
	a.opts, a.interval = opts, interval
	return a, nil
}

// statsOptions turns the spec's statistics settings into the comparisons'
// options and names the interval design.
func statsOptions(st expspec.Statistics) (stats.Options, string, error) {
	opts := stats.Options{Alpha: st.Alpha, Power: st.Power, MaxRelMDE: st.MaxRelativeMDE}
	interval := "fixed_horizon"
	if st.Sequential != nil {
		opts.Sequential = &stats.Sequential{NStar: st.Sequential.NStar}
		interval = "always_valid"
	}
	if err := opts.Validate(); err != nil {
		return stats.Options{}, "", fmt.Errorf("statistics settings: %w", err)
	}
	return opts, interval, nil
}

// cell returns the cell of cohort × variant × metric (zero when absent).
func (a *analyser) cell(cohort, variant, metric string) engine.Cell {
	return a.cells[cellKey{cohort, variant, metric}]
}

// decisionInputs collects, in row order, what the multiple-testing
// correction and the decision read.
type decisionInputs struct {
	family     []familyMember
	goals      []stats.GoalResult
	goalRows   []int // the row of each goal
	guardrails []stats.GuardrailResult
	// The Bayesian engine's goals and guardrails (engine: bayesian).
	bayesGoals      []stats.BayesGoal
	bayesGuardrails []stats.BayesGuardrail
}

// familyMember is one comparison in the multiple-testing family: its row
// and what it takes to recompute it at an adjusted alpha.
type familyMember struct {
	row                int
	control, treatment stats.Arm
	kind               stats.Kind
	opts               stats.Options
	// test is the goal's own hypothesis (nil for the two-sided rule): the
	// family corrects its p-value instead.
	test *stats.Hypothesis
}

// cohortComparisons compares every treatment with the control for each
// released cohort and metric, and returns the rows in output order with
// what the correction and the decision read from them.
func (a *analyser) cohortComparisons(srm map[string]SRMCheck, record func(stats.Comparison)) ([]ResultRow, decisionInputs, error) {
	var rows []ResultRow
	var in decisionInputs
	for _, coh := range a.cohorts {
		for _, m := range a.spec.Metrics {
			if m.Kind == expspec.KindQuantile {
				rows = append(rows, a.quantileRows(coh, m, srm[coh])...)
				continue
			}
			cm, err := a.cohortMetricArms(coh, m)
			if err != nil {
				return nil, decisionInputs{}, err
			}
			for i, v := range a.spec.Variants {
				if v.Control {
					continue
				}
				cmp := stats.Compare(cm.controlCmp, cm.cmpArms[i], cm.kind, cm.opts)
				row := a.resultRow(cm, i, cmp, srm[coh])
				var br *stats.BayesResult
				if a.spec.IsBayesian() {
					b := a.bayesOf(cm, i)
					br = &b
				}
				row.Ext = a.rowExt(cm, i, br)
				rows = append(rows, row)
				if record != nil {
					record(cmp)
				}
				member := familyMember{row: len(rows) - 1, control: cm.controlCmp, treatment: cm.cmpArms[i], kind: cm.kind, opts: cm.opts}
				if m.Role == "goal" && m.Hypothesis != nil {
					h, _ := hypothesisOf(a.spec, m)
					member.test = &h
				}
				in.collect(a.spec, cm, v.Name, member, a.guardrailComparison(cm, i, cmp))
				if br != nil {
					in.collectBayes(cm, v.Name, *br)
				}
			}
		}
	}
	return rows, in, nil
}

// cohortMetric is one cohort × metric ready to compare: each variant's
// cell and its arm as reported (projected moments) and as compared, the
// control's, and the options with CUPED fitted.
type cohortMetric struct {
	cohort  string
	metric  expspec.Metric
	kind    stats.Kind
	sd      *privatize.NoiseSD // nil for an exact release
	cells   []engine.Cell      // by variant, in spec order
	arms    []stats.Arm        // reported
	cmpArms []stats.Arm        // compared (see armOf)
	opts    stats.Options
	theta   *float64 // CUPED's θ, nil when not fitted

	controlCell            engine.Cell
	controlArm, controlCmp stats.Arm
}

// cohortMetricArms builds the arms of every variant of one cohort × metric
// and fits CUPED on them when the spec asks for it.
func (a *analyser) cohortMetricArms(coh string, m expspec.Metric) (*cohortMetric, error) {
	kind, err := stats.ParseKind(m.Kind)
	if err != nil {
		return nil, err
	}
	sd, err := a.noiseOf(coh, m.Name)
	if err != nil {
		return nil, err
	}
	cuped := a.spec.Statistics.CUPED != nil
	cm := &cohortMetric{cohort: coh, metric: m, kind: kind, sd: sd}
	bx, by := bounds(m)
	for _, v := range a.spec.Variants {
		c := a.cell(coh, v.Name, m.Name)
		cm.cells = append(cm.cells, c)
		cm.arms = append(cm.arms, armOf(c, kind, a.scale, cuped, sd, bx, by, false))
		cm.cmpArms = append(cm.cmpArms, armOf(c, kind, a.scale, cuped, sd, bx, by, rawVariances(kind, cuped)))
	}
	cm.opts, cm.theta = fitCUPED(a.opts, cm.arms, kind, cuped)
	cm.opts = a.metricOptions(cm.opts, m)
	for i, v := range a.spec.Variants {
		if v.Control {
			cm.controlArm, cm.controlCmp, cm.controlCell = cm.arms[i], cm.cmpArms[i], cm.cells[i]
		}
	}
	return cm, nil
}

// noiseOf returns the noise scales of a cohort × metric: nil for an exact
// release, an error when a private release lacks them.
func (a *analyser) noiseOf(coh, metric string) (*privatize.NoiseSD, error) {
	if a.noise == nil {
		return nil, nil
	}
	x, ok := a.noise[privatize.NoiseKey(coh, metric)]
	if !ok {
		return nil, fmt.Errorf("privacy: no noise scale for cohort %s metric %s", coh, metric)
	}
	return &x, nil
}

// fitCUPED returns the comparison options with CUPED fitted on the arms,
// and its θ, when the spec asks for CUPED. A degenerate covariate (no
// variance, no units) leaves the comparison unadjusted; cuped_theta stays
// empty.
func fitCUPED(opts stats.Options, arms []stats.Arm, kind stats.Kind, cuped bool) (stats.Options, *float64) {
	if !cuped {
		return opts, nil
	}
	c, err := stats.NewCUPED(arms, kind)
	if err != nil {
		return opts, nil
	}
	opts.CUPED = &c
	return opts, &c.Theta
}

// resultRow is the row of variant i against the control in one cohort ×
// metric, before the multiple-testing correction.
func (a *analyser) resultRow(cm *cohortMetric, i int, cmp stats.Comparison, srm SRMCheck) ResultRow {
	m := cm.metric
	row := ResultRow{
		Experiment: a.spec.Experiment, Cohort: cm.cohort, Metric: m.Name, Kind: m.Kind, Role: m.Role,
		Variant: a.spec.Variants[i].Name, Control: a.control, NControl: cm.controlCell.N, NVariant: cm.cells[i].N,
		CILevel: 1 - cm.opts.Alpha, Interval: a.interval, Status: cmp.Status,
		SRMPValue: opt(srm.AdjPValue), SRM: srm.Invalid, Underpowered: cmp.Underpowered,
		Private: cm.sd != nil, CollapsedFrom: a.collapsed[cm.cohort],
	}
	if cm.sd != nil {
		row.NoiseSDN = opt(cm.sd.N)
		row.NoiseSDSum = opt(cm.sd.Sums[0] / float64(a.scale))
	}
	// Reported means are the comparison's (unclamped, so that the effect
	// is their difference); SDs the projected ones.
	row.MeanControl, row.SDControl = armSummary(withMeans(cm.controlArm, cm.controlCmp), cm.kind)
	row.MeanVariant, row.SDVariant = armSummary(withMeans(cm.arms[i], cm.cmpArms[i]), cm.kind)
	setEstimates(&row, cmp, cm.theta)
	return row
}

// setEstimates writes a comparison's effects, intervals, p-value and MDEs
// into its row, each only where the comparison defines it.
func setEstimates(row *ResultRow, cmp stats.Comparison, theta *float64) {
	if cmp.Valid() {
		row.AbsEffect = opt(cmp.Diff)
		row.AbsCILow, row.AbsCIHigh = opt(cmp.DiffLow), opt(cmp.DiffHigh)
		row.DF = opt(cmp.DF)
		row.PValue = opt(cmp.PValue)
		row.MDEAbs = opt(cmp.MDE)
		if cmp.CUPEDApplied && theta != nil {
			row.CUPEDTheta = opt(*theta)
		}
	}
	if cmp.HasRelative() {
		row.RelEffect = opt(cmp.RelDiff)
		row.MDERel = opt(cmp.RelMDE)
	}
	if cmp.Status == stats.StatusOK {
		// Fieller's interval; with StatusRelativeUnbounded it has no
		// finite bounds and the status says so.
		row.RelCILow, row.RelCIHigh = opt(cmp.RelLow), opt(cmp.RelHigh)
	}
}

// collect adds one comparison to what the correction and the decision
// read: a goal joins the family in the (all) cohort, or in every cohort
// with correction_scope cohorts; the (all) cohort's goals and guardrails
// are the decision's.
func (in *decisionInputs) collect(spec *expspec.Spec, cm *cohortMetric, variant string, member familyMember, cmp stats.Comparison) {
	st := spec.Statistics
	coh, m := cm.cohort, cm.metric
	if m.Role == "goal" && (coh == expspec.AllCohort || st.CorrectionScope == "cohorts") {
		in.family = append(in.family, member)
	}
	if coh == expspec.AllCohort && m.Role == "goal" {
		dir, _ := stats.ParseDirection(m.Direction)
		g := stats.GoalResult{Metric: m.Name, Variant: variant, Cohort: coh, Desired: dir, Comparison: cmp, Alpha: spec.MetricAlpha(m)}
		if member.test != nil {
			_, g.TestKind = hypothesisOf(spec, m)
		}
		in.goals = append(in.goals, g)
		in.goalRows = append(in.goalRows, member.row)
	}
	if coh == expspec.AllCohort && m.Role == "guardrail" {
		harm, _ := stats.ParseDirection(m.Guardrail.Harmful)
		g := stats.Guardrail{Metric: m.Name, Harmful: harm, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative}
		if h := m.Hypothesis; h != nil && h.Alternative != expspec.AltTwoSided {
			g.Alternative = h.Alternative
		}
		in.guardrails = append(in.guardrails, stats.GuardrailResult{Guardrail: g, Variant: variant, Cohort: coh, Comparison: cmp})
	}
}

// collectBayes adds a Bayesian comparison of the (all) cohort's goals and
// guardrails to what the Bayesian verdict reads.
func (in *decisionInputs) collectBayes(cm *cohortMetric, variant string, br stats.BayesResult) {
	coh, m := cm.cohort, cm.metric
	if coh != expspec.AllCohort {
		return
	}
	switch m.Role {
	case "goal":
		in.bayesGoals = append(in.bayesGoals, stats.BayesGoal{Metric: m.Name, Variant: variant, Cohort: coh, Desired: desiredOf(m), Result: br})
	case "guardrail":
		harm, _ := stats.ParseDirection(m.Guardrail.Harmful)
		in.bayesGuardrails = append(in.bayesGuardrails, stats.BayesGuardrail{
			Guardrail: stats.Guardrail{Metric: m.Name, Harmful: harm, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative},
			Variant:   variant, Cohort: coh, Result: br})
	}
}

// guardrailComparison is the comparison a guardrail is judged on: the
// row's, or for a one-sided guardrail the one at level 2α (whose bounds
// are the one-sided tests at α).
func (a *analyser) guardrailComparison(cm *cohortMetric, i int, cmp stats.Comparison) stats.Comparison {
	h := cm.metric.Hypothesis
	if cm.metric.Role != "guardrail" || h == nil || h.Alternative == expspec.AltTwoSided {
		return cmp
	}
	o := cm.opts
	o.Alpha *= 2
	return stats.Compare(cm.controlCmp, cm.cmpArms[i], cm.kind, o)
}

// correctFamily corrects the family for multiple testing: each member's
// row gets its adjusted p-value and interval, and each goal its adjusted
// p-value and the comparison at its adjusted alpha. Rows whose comparison
// is not valid take part with p = 1, so that the family size does not
// depend on the data.
func correctFamily(rows []ResultRow, in *decisionInputs, st expspec.Statistics) error {
	if len(in.family) == 0 {
		return nil
	}
	p := make([]float64, len(in.family))
	for i, f := range in.family {
		p[i] = 1
		switch pv := familyPValue(rows[f.row], f); {
		case pv != nil:
			p[i] = *pv
		}
	}
	corr, err := stats.ParseCorrection(st.Correction)
	if err != nil {
		return err
	}
	adj := stats.Adjust(corr, p)
	alphas := stats.AdjustedAlphas(corr, p, st.Alpha)
	if corr == stats.NoCorrection {
		// Without a correction each goal keeps its own level.
		for i, f := range in.family {
			alphas[i] = f.opts.Alpha
		}
	}
	adjCmp, adjTest := adjustedComparisons(rows, in.family, adj, alphas)
	adjustGoals(in, adj, adjCmp, adjTest)
	return nil
}

// familyPValue is the p-value a family member is corrected on: its own
// test's when it has one, else the two-sided comparison's.
func familyPValue(r ResultRow, f familyMember) *float64 {
	if f.test != nil {
		if r.Ext == nil || r.Ext.TestPValue == nil {
			return nil
		}
		return r.Ext.TestPValue
	}
	return r.PValue
}

// adjustedComparisons writes each family row's adjusted p-value and its
// interval at the adjusted alpha, and returns those comparisons by row.
// A row with no p-value is left as it is.
func adjustedComparisons(rows []ResultRow, family []familyMember, adj, alphas []float64) (map[int]stats.Comparison, map[int]stats.HypothesisTest) {
	adjCmp := map[int]stats.Comparison{}
	adjTest := map[int]stats.HypothesisTest{}
	for i, f := range family {
		row := &rows[f.row]
		if familyPValue(*row, f) == nil {
			continue
		}
		row.PValueAdjusted = opt(adj[i])
		o := f.opts
		o.Alpha = alphas[i]
		ac := stats.Compare(f.control, f.treatment, f.kind, o)
		adjCmp[f.row] = ac
		if f.test != nil {
			// The adjusted confidence set of the goal's own test: one
			// side only for a one-sided test.
			h := *f.test
			h.Alpha = alphas[i]
			t := stats.TestHypothesis(f.control, f.treatment, f.kind, f.opts.CUPED, h)
			adjTest[f.row] = t
			if t.Status == stats.StatusOK && t.HasLow {
				row.AdjCILow = opt(t.Low)
			}
			if t.Status == stats.StatusOK && t.HasHigh {
				row.AdjCIHigh = opt(t.High)
			}
			continue
		}
		if ac.Valid() {
			row.AdjCILow, row.AdjCIHigh = opt(ac.DiffLow), opt(ac.DiffHigh)
		}
	}
	return adjCmp, adjTest
}

// adjustGoals gives each goal its row's adjusted p-value and, where there
// is one, the comparison at the adjusted alpha.
func adjustGoals(in *decisionInputs, adj []float64, adjCmp map[int]stats.Comparison, adjTest map[int]stats.HypothesisTest) {
	adjByRow := map[int]float64{}
	for i, f := range in.family {
		adjByRow[f.row] = adj[i]
	}
	for i, r := range in.goalRows {
		in.goals[i].AdjPValue = adjByRow[r]
		if ac, ok := adjCmp[r]; ok {
			in.goals[i].Comparison = ac
		}
		if t, ok := adjTest[r]; ok {
			in.goals[i].Test = &t
		} else if in.goals[i].TestKind != "" {
			// No p-value (an invalid comparison): judged invalid.
			in.goals[i].Test = &stats.HypothesisTest{Status: stats.StatusInvalidInput, PValue: 1}
		}
	}
}

// decide is decisions.json: the verdict on the goals and guardrails, under
// the sample-ratio checks and the horizon.
func (a *analyser) decide(date string, srm []SRMCheck, in decisionInputs) Decisions {
	st := a.spec.Statistics
	d := stats.DecideUnder(in.goals, in.guardrails, decisionConditions(a.spec, srmInvalid(srm)))
	dec := Decisions{
		Experiment: a.spec.Experiment, NominalDate: date, Verdict: d.Verdict, Rule: d.Rule, Reason: d.Reason,
		Variants: engine.NonNil(d.Variants), Correction: st.Correction, Interval: a.interval, LooksNote: LooksNote(a.interval),
		Horizon: HorizonOf(a.spec), SRM: srm, Evidence: d.Evidence,
	}
	if dec.Evidence == nil {
		dec.Evidence = []stats.Evidence{}
	}
	if a.spec.IsBayesian() {
		a.decideBayes(&dec, srmInvalid(srm), in)
	}
	return dec
}

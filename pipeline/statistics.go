package pipeline

import (
	"fmt"
	"math"
	"strings"

	"github.com/verity-analytics/verity/stats"
)

// Decisions is decisions.json: the verdict for the experiment, the rule
// that produced it, the numbers behind it, and the sample-ratio checks.
type Decisions struct {
	Experiment  string           `json:"experiment"`
	NominalDate string           `json:"nominal_date"`
	Verdict     string           `json:"verdict"`
	Rule        string           `json:"rule"`
	Reason      string           `json:"reason"`
	Variants    []string         `json:"variants"`
	Correction  string           `json:"correction"`
	Interval    string           `json:"interval"`
	Horizon     Horizon          `json:"horizon"`
	SRM         []SRMCheck       `json:"srm"`
	Evidence    []stats.Evidence `json:"evidence"`
}

// SRMCheck is one sample-ratio-mismatch test: for the whole experiment
// (cohort "(all)") or one cohort (Bonferroni-adjusted across cohorts).
type SRMCheck struct {
	Cohort    string    `json:"cohort"`
	Observed  []int64   `json:"observed"`
	Expected  []float64 `json:"expected"`
	ChiSquare float64   `json:"chi_square"`
	PValue    float64   `json:"p_value"`
	AdjPValue float64   `json:"adjusted_p_value"`
	Threshold float64   `json:"threshold"`
	Invalid   bool      `json:"invalid"`
	Status    string    `json:"status"`
}

// StatisticsInfo records in the manifest how the numbers were computed.
type StatisticsInfo struct {
	Alpha           float64 `json:"alpha"`
	Interval        string  `json:"interval"` // fixed_horizon or always_valid
	NStar           float64 `json:"n_star,omitempty"`
	Correction      string  `json:"correction"`
	CorrectionScope string  `json:"correction_scope"`
	CUPEDLookback   int     `json:"cuped_lookback_days,omitempty"`
	SRMThreshold    float64 `json:"srm_threshold"`
	Power           float64 `json:"power"`
	MaxRelativeMDE  float64 `json:"max_relative_mde"`
}

func statisticsInfo(spec *Spec) StatisticsInfo {
	st := spec.Statistics
	info := StatisticsInfo{
		Alpha: st.Alpha, Interval: "fixed_horizon", Correction: st.Correction, CorrectionScope: st.CorrectionScope,
		SRMThreshold: st.SRMThreshold, Power: st.Power, MaxRelativeMDE: st.MaxRelativeMDE,
	}
	if st.Sequential != nil {
		info.Interval, info.NStar = "always_valid", st.Sequential.NStar
	}
	if st.CUPED != nil {
		info.CUPEDLookback = st.CUPED.LookbackDays
	}
	return info
}

// armOf builds the stats input of one cell from its moments. With privacy
// the sums are noisy and sd holds the noise's standard deviations (scaled
// units); the variance the noise adds to a mean Σa/(n·S) is, to first order
// (delta method, independent noise on Σa and n),
//
//	Var_noise(ā) = (σ_Σa/S)²/n² + ā²·σ_n²/n².
//
// Noisy variances can leave their feasible range; they are projected back
// into it (post-processing, which costs no privacy): a variable bounded in
// [lo, hi] has variance in [0, (hi−lo)²/4].
func armOf(c Cell, kind stats.Kind, scale int64, cuped bool, sd *noiseSD, bx, by *[2]float64) stats.Arm {
	m := momentsOf(c, scale)
	if sd != nil {
		m.VarX = project(m.VarX, bx)
		m.VarC = project(m.VarC, bx)
		m.VarY = project(m.VarY, by)
	}
	a := stats.Arm{N: float64(c.N), Mean: m.MeanX, Var: m.VarX}
	if kind == stats.Ratio {
		a.DenMean, a.DenVar, a.CovXY = m.MeanY, m.VarY, m.CovXY
	}
	if cuped {
		a.HasCovariate = true
		a.CovMean, a.CovVar, a.CovXC, a.CovYC = m.MeanC, m.VarC, m.CovXC, m.CovYC
	}
	if sd != nil && c.N > 0 {
		n, s := float64(c.N), float64(scale)
		nv := func(sumSD, mean float64) float64 {
			return (sumSD/s)*(sumSD/s)/(n*n) + mean*mean*sd.N*sd.N/(n*n)
		}
		a.NoiseVarMean = nv(sd.Sums[0], m.MeanX)
		if kind == stats.Ratio {
			a.NoiseVarDenMean = nv(sd.Sums[2], m.MeanY)
		}
		if cuped {
			a.NoiseVarCovMean = nv(sd.Sums[5], m.MeanC)
		}
	}
	return a
}

// project clamps a variance estimate into [0, (hi−lo)²/4].
func project(v float64, b *[2]float64) float64 {
	if v < 0 {
		return 0
	}
	if b != nil {
		if max := (b[1] - b[0]) * (b[1] - b[0]) / 4; v > max {
			return max
		}
	}
	return v
}

// bounds returns a metric's per-unit bounds in metric units: x's (a
// proportion is in [0, 1]) and, for ratios, y's.
func bounds(m Metric) (bx, by *[2]float64) {
	bx = &[2]float64{0, 1}
	if m.Clamp != nil {
		bx = &[2]float64{m.Clamp.Lower, m.Clamp.Upper}
	}
	if m.Denominator != nil {
		by = &[2]float64{m.Denominator.Clamp.Lower, m.Denominator.Clamp.Upper}
	}
	return bx, by
}

// cohortRelease is one released cohort: its label and, with collapsing,
// every label merged into it.
type cohortRelease struct {
	Label         string
	CollapsedFrom []string
}

// analyse computes every result row and the decision from the complete
// cells (completeCells). Rows come in the fixed output order: cohort, then
// metric in spec order, then treatment in spec order.
//
// cohorts lists the released cohorts in output order; noise is nil for an
// exact release, else the noise standard deviations by cohort label.
func analyse(spec *Spec, cells []Cell, cohortList []cohortRelease, noise map[string]noiseSD, date string) ([]ResultRow, Decisions, error) {
	type key struct{ c, v, m string }
	idx := map[key]Cell{}
	for _, c := range cells {
		idx[key{c.Cohort, c.Variant, c.Metric}] = c
	}
	st := spec.Statistics
	control := spec.Control()
	scale := spec.Scale()
	cohorts := make([]string, len(cohortList))
	collapsed := map[string]string{}
	for i, c := range cohortList {
		cohorts[i] = c.Label
		collapsed[c.Label] = strings.Join(c.CollapsedFrom, ";")
	}
	opts := stats.Options{Alpha: st.Alpha, Power: st.Power, MaxRelMDE: st.MaxRelativeMDE}
	interval := "fixed_horizon"
	if st.Sequential != nil {
		opts.Sequential = &stats.Sequential{NStar: st.Sequential.NStar}
		interval = "always_valid"
	}
	if err := opts.Validate(); err != nil {
		return nil, Decisions{}, fmt.Errorf("statistics settings: %w", err)
	}

	// Sample-ratio mismatch, on assigned units (the first metric's n: every
	// metric has a value for every assigned unit).
	shares := make([]float64, len(spec.Variants))
	for i, v := range spec.Variants {
		shares[i] = v.Allocation
	}
	srmChecks := make([]SRMCheck, 0, len(cohorts))
	tested := 0
	for _, coh := range cohorts {
		chk := SRMCheck{Cohort: coh, Threshold: st.SRMThreshold, PValue: 1, AdjPValue: 1, Status: "ok"}
		obs := make([]float64, len(spec.Variants))
		for i, v := range spec.Variants {
			n := idx[key{coh, v.Name, spec.Metrics[0].Name}].N
			chk.Observed = append(chk.Observed, n)
			obs[i] = float64(n)
		}
		res, err := stats.SRM(obs, shares)
		if err != nil {
			chk.Status = "not tested: no units"
			chk.Expected = make([]float64, len(shares))
		} else {
			chk.ChiSquare, chk.PValue, chk.AdjPValue, chk.Expected = res.ChiSquare, res.PValue, res.PValue, res.Expected
			if coh != AllCohort {
				tested++
			}
		}
		srmChecks = append(srmChecks, chk)
	}
	srmInvalid := false
	srmByCohort := map[string]SRMCheck{}
	for i := range srmChecks {
		c := &srmChecks[i]
		if c.Cohort != AllCohort && c.Status == "ok" {
			c.AdjPValue = math.Min(1, c.PValue*float64(tested)) // Bonferroni across cohorts
		}
		if c.Status == "ok" {
			r := stats.SRMResult{PValue: c.PValue, AdjPValue: c.AdjPValue, Expected: c.Expected}
			c.Invalid = r.Invalid(st.SRMThreshold)
		}
		srmInvalid = srmInvalid || c.Invalid
		srmByCohort[c.Cohort] = *c
	}

	var rows []ResultRow
	type famRef struct {
		row                int
		control, treatment stats.Arm
		kind               stats.Kind
		opts               stats.Options
	}
	var family []famRef
	var guardrails []stats.GuardrailResult
	var goals []stats.GoalResult
	var goalRows []int

	for _, coh := range cohorts {
		for _, m := range spec.Metrics {
			kind, err := stats.ParseKind(m.Kind)
			if err != nil {
				return nil, Decisions{}, err
			}
			cuped := st.CUPED != nil
			var sd *noiseSD
			if noise != nil {
				x, ok := noise[noiseKey(coh, m.Name)]
				if !ok {
					return nil, Decisions{}, fmt.Errorf("privacy: no noise scale for cohort %s metric %s", coh, m.Name)
				}
				sd = &x
			}
			bx, by := bounds(m)
			arms := make([]stats.Arm, len(spec.Variants))
			for i, v := range spec.Variants {
				arms[i] = armOf(idx[key{coh, v.Name, m.Name}], kind, scale, cuped, sd, bx, by)
			}
			o := opts
			var theta *float64
			if cuped {
				if c, err := stats.NewCUPED(arms, kind); err == nil {
					o.CUPED = &c
					theta = &c.Theta
				}
				// A degenerate covariate (no variance, no units) leaves the
				// comparison unadjusted; cuped_theta stays empty.
			}
			var ca stats.Arm
			var cc Cell
			for i, v := range spec.Variants {
				if v.Control {
					ca, cc = arms[i], idx[key{coh, v.Name, m.Name}]
				}
			}
			for i, v := range spec.Variants {
				if v.Control {
					continue
				}
				ta, tc := arms[i], idx[key{coh, v.Name, m.Name}]
				cmp := stats.Compare(ca, ta, kind, o)
				srm := srmByCohort[coh]
				row := ResultRow{
					Experiment: spec.Experiment, Cohort: coh, Metric: m.Name, Kind: m.Kind, Role: m.Role,
					Variant: v.Name, Control: control, NControl: cc.N, NVariant: tc.N,
					CILevel: 1 - st.Alpha, Interval: interval, Status: cmp.Status,
					SRMPValue: opt(srm.AdjPValue), SRM: srm.Invalid, Underpowered: cmp.Underpowered,
					Private: sd != nil, CollapsedFrom: collapsed[coh],
				}
				if sd != nil {
					row.NoiseSDN = opt(sd.N)
					row.NoiseSDSum = opt(sd.Sums[0] / float64(scale))
				}
				row.MeanControl, row.SDControl = armSummary(ca, kind)
				row.MeanVariant, row.SDVariant = armSummary(ta, kind)
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
				if cmp.Status == stats.StatusOK {
					row.RelEffect, row.RelCILow, row.RelCIHigh = opt(cmp.RelDiff), opt(cmp.RelLow), opt(cmp.RelHigh)
					row.MDERel = opt(cmp.RelMDE)
				}
				rows = append(rows, row)
				r := len(rows) - 1
				inFamily := m.Role == "goal" && (coh == AllCohort || st.CorrectionScope == "cohorts")
				if inFamily {
					family = append(family, famRef{row: r, control: ca, treatment: ta, kind: kind, opts: o})
				}
				if coh == AllCohort && m.Role == "goal" {
					dir, _ := stats.ParseDirection(m.Direction)
					goals = append(goals, stats.GoalResult{Metric: m.Name, Variant: v.Name, Cohort: coh, Desired: dir, Comparison: cmp, Alpha: st.Alpha})
					goalRows = append(goalRows, r)
				}
				if coh == AllCohort && m.Role == "guardrail" {
					harm, _ := stats.ParseDirection(m.Guardrail.Harmful)
					guardrails = append(guardrails, stats.GuardrailResult{
						Guardrail: stats.Guardrail{Metric: m.Name, Harmful: harm, Margin: m.Guardrail.Margin, Relative: m.Guardrail.Relative},
						Variant:   v.Name, Cohort: coh, Comparison: cmp,
					})
				}
			}
		}
	}

	// Multiple testing over the family; rows whose comparison is not valid
	// take part with p = 1 so the family size does not depend on the data.
	if len(family) > 0 {
		p := make([]float64, len(family))
		for i, f := range family {
			p[i] = 1
			if rows[f.row].PValue != nil {
				p[i] = *rows[f.row].PValue
			}
		}
		corr, err := stats.ParseCorrection(st.Correction)
		if err != nil {
			return nil, Decisions{}, err
		}
		adj := stats.Adjust(corr, p)
		alphas := stats.AdjustedAlphas(corr, p, st.Alpha)
		adjByRow := map[int]float64{}
		adjCmp := map[int]stats.Comparison{}
		for i, f := range family {
			row := &rows[f.row]
			adjByRow[f.row] = adj[i]
			if row.PValue == nil {
				continue
			}
			row.PValueAdjusted = opt(adj[i])
			o := f.opts
			o.Alpha = alphas[i]
			ac := stats.Compare(f.control, f.treatment, f.kind, o)
			adjCmp[f.row] = ac
			if ac.Valid() {
				row.AdjCILow, row.AdjCIHigh = opt(ac.DiffLow), opt(ac.DiffHigh)
			}
		}
		for i, r := range goalRows {
			goals[i].AdjPValue = adjByRow[r]
			if ac, ok := adjCmp[r]; ok {
				goals[i].Comparison = ac
			}
			goals[i].Alpha = st.Alpha
		}
	}

	d := stats.DecideUnder(goals, guardrails, decisionConditions(spec, srmInvalid))
	dec := Decisions{
		Experiment: spec.Experiment, NominalDate: date, Verdict: d.Verdict, Rule: d.Rule, Reason: d.Reason,
		Variants: nonNil(d.Variants), Correction: st.Correction, Interval: interval, Horizon: horizonOf(spec), SRM: srmChecks, Evidence: d.Evidence,
	}
	if dec.Evidence == nil {
		dec.Evidence = []stats.Evidence{}
	}
	return rows, dec, nil
}

// armSummary returns the arm's reported mean and standard deviation: the
// per-unit mean and sample SD for proportions and means, the ratio of
// means (and no SD) for ratios. Both are nil where undefined.
func armSummary(a stats.Arm, kind stats.Kind) (mean, sd *float64) {
	if a.N == 0 {
		return nil, nil
	}
	if kind == stats.Ratio {
		if a.DenMean == 0 {
			return nil, nil
		}
		return opt(a.Mean / a.DenMean), nil
	}
	if a.N < 2 {
		return opt(a.Mean), nil
	}
	return opt(a.Mean), opt(math.Sqrt(a.Var))
}

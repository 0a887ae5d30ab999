package analysis

import (
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Variance-reduced estimates (spec: variance_reduction; issue 21 item 3).
//
// Every estimate is of the (all) cohort's effect of a treatment against
// the control and is computed from the exact moments of the persona-leaf
// cells (CompleteCells), which partition the (all) cohort: post-
// stratification needs each stratum's n, mean and variance; Lin's
// regression on persona indicators needs, per arm, the moments of (y, c,
// D₁…D_{K−1}), which merge exactly from the leaves' moments of (y, c)
// because each indicator is constant within a leaf (stats.MergeArmMoments).
// A ratio metric is linearised around the experiment's pooled ratio
// (stats.LinearizeRatio over every leaf and arm). Intervals are
// fixed-horizon Student t intervals at the metric's α (also under a
// sequential design: the adjusted estimates are reported, not decided on).

// Estimator sources, as labelled in adjusted.csv and the report.
const (
	SourceCUPED        = "Deng, Xu, Kohavi & Walker (2013), WSDM '13 (CUPED): theta pooled within arms, Welch-Satterthwaite t interval"
	SourcePostStratify = "Miratrix, Sekhon & Yu (2013), JRSS B 75(2):369-396, sec. 4: conditional variance plus the stratum-share term, Satterthwaite t interval"
	SourceRegression   = "Lin (2013), Ann. Appl. Stat. 7(1):295-318: interacted OLS (Eppo CUPED++ without ridge), per-arm OLS variance plus Negi & Wooldridge (2021) covariate term, Satterthwaite t interval"
)

// VarianceReductionWords describes, for the manifest's effective block,
// each variance-reduced estimate of metric m: its label, estimator and the
// settings in effect (defaults included). Nil when m lists none.
func VarianceReductionWords(spec *expspec.Spec, m expspec.Metric) []string {
	var out []string
	for _, v := range spec.VarianceReductionOf(m) {
		w := v.Label() + ": "
		switch v.Method {
		case expspec.VRCUPED:
			w += SourceCUPED
		case expspec.VRPostStratify:
			w += SourcePostStratify + fmt.Sprintf("; strata: the persona leaves, a leaf with fewer than %d units in an arm pooled", stats.DefaultMinStratumUnits)
		case expspec.VRRegression:
			w += SourceRegression
			if slices.Contains(v.Covariates, expspec.CovariatePersona) {
				w += fmt.Sprintf("; persona leaves with fewer than %d units in an arm pooled", stats.DefaultMinStratumUnits)
			}
		}
		out = append(out, w+"; cohort (all), fixed-horizon interval at the metric's alpha")
	}
	return out
}

// AdjustedRow is one variance-reduced estimate: a metric × treatment ×
// method of the (all) cohort. Numbers are nil when the estimator could not
// be computed (Status says why).
type AdjustedRow struct {
	Experiment, Cohort, Metric, Kind, Variant, Control string
	Method, Estimator                                  string
	NControl, NVariant                                 int64
	// Strata is the number of strata (poststratify) or of persona groups
	// (regression with persona) the estimate used after pooling thin
	// ones; 0 when not stratified.
	Strata                    int
	Unadjusted, UnadjustedSE  *float64
	Estimate, SE              *float64
	CILevel                   float64
	CILow, CIHigh, DF, PValue *float64
	// VarianceReduction is 1 − SE²/UnadjustedSE²: the share of the
	// unadjusted estimate's variance the method removed (negative when
	// it added variance).
	VarianceReduction *float64
	Status            string
}

// VarianceReductions computes every variance-reduced estimate the spec
// lists, in metric order, then treatment order, then the metric's list
// order. cells are CompleteCells' (exact).
//
// cross are the crossmoments template's cells of the experiment (nil when
// no regression adjusts for another metric's pre-period value).
func VarianceReductions(spec *expspec.Spec, cells []engine.Cell, cross []engine.CrossCell) ([]AdjustedRow, error) {
	if !spec.HasVarianceReduction() {
		return nil, nil
	}
	idx := map[cellKey]engine.Cell{}
	for _, c := range cells {
		idx[cellKey{c.Cohort, c.Variant, c.Metric}] = c
	}
	crossIdx := map[crossKey]engine.CrossCell{}
	for _, c := range cross {
		crossIdx[crossKey{c.Cohort, c.Variant, c.MetricA, c.MetricB}] = c
	}
	leaves := CohortOrder(spec)[1:]
	var out []AdjustedRow
	for _, m := range spec.Metrics {
		list := spec.VarianceReductionOf(m)
		if len(list) == 0 {
			continue
		}
		kind, err := stats.ParseKind(m.Kind)
		if err != nil {
			return nil, err
		}
		v := vrMetric{spec: spec, metric: m, kind: kind, alpha: spec.MetricAlpha(m), scale: spec.Scale(), leafNames: leaves, cells: idx, cross: crossIdx}
		for _, variant := range spec.Variants {
			v.all = append(v.all, idx[cellKey{expspec.AllCohort, variant.Name, m.Name}])
			var byLeaf []engine.Cell
			for _, l := range leaves {
				byLeaf = append(byLeaf, idx[cellKey{l, variant.Name, m.Name}])
			}
			v.leaves = append(v.leaves, byLeaf)
			if variant.Control {
				v.control = len(v.all) - 1
			}
		}
		for i, variant := range spec.Variants {
			if i == v.control {
				continue
			}
			for _, r := range list {
				row := AdjustedRow{
					Experiment: spec.Experiment, Cohort: expspec.AllCohort, Metric: m.Name, Kind: m.Kind,
					Variant: variant.Name, Control: spec.Control(), Method: r.Label(),
					NControl: v.all[v.control].N, NVariant: v.all[i].N, CILevel: 1 - v.alpha, Status: stats.StatusOK,
				}
				var err error
				switch r.Method {
				case expspec.VRCUPED:
					row.Estimator = SourceCUPED
					err = v.cuped(i, &row)
				case expspec.VRPostStratify:
					row.Estimator = SourcePostStratify
					err = v.postStratify(i, &row)
				case expspec.VRRegression:
					row.Estimator = SourceRegression
					err = v.regression(i, r.Covariates, &row)
				}
				if err != nil {
					row.Status = "not estimated: " + v.explain(err, i)
				} else if r.Method == expspec.VRPostStratify && row.Strata < 2 {
					// Every leaf pooled into one stratum: the estimate is
					// the unadjusted difference, which "ok" would hide.
					row.Status = "single stratum: every persona leaf was too thin and was pooled, so the estimate is the unadjusted difference"
				}
				out = append(out, row)
			}
		}
	}
	return out, nil
}

// vrMetric is one metric's cells: every variant's (all) cell and leaf
// cells (in CohortOrder), the control's index.
type vrMetric struct {
	spec    *expspec.Spec
	metric  expspec.Metric
	kind    stats.Kind
	alpha   float64
	scale   int64
	all     []engine.Cell
	leaves  [][]engine.Cell // [variant][leaf]
	control int
	// leafNames are the persona leaves, in the order of leaves[variant].
	leafNames []string
	// cells are every metric's cells and cross the cross-moment cells
	// (another metric's pre-period value as covariate).
	cells map[cellKey]engine.Cell
	cross map[crossKey]engine.CrossCell
}

// crossKey identifies a cross-moment cell: cohort, variant, metric a,
// covariate metric b.
type crossKey struct{ cohort, variant, a, b string }

// explain names the cell a stats error points at by its persona leaf and
// variant instead of the table's indices: post-stratification's strata
// are (leaf, [control, treatment i]); the regression's arms are the
// control, then the other variants in spec order (linearised names a
// ratio's leaf cells itself).
func (v *vrMetric) explain(err error, i int) string {
	var ce *stats.CellError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	variants := v.spec.Variants
	switch ce.Table {
	case "stratum":
		if ce.Row >= 0 && ce.Row < len(v.leafNames) && (ce.Col == 0 || ce.Col == 1) {
			arm := variants[v.control].Name
			if ce.Col == 1 {
				arm = variants[i].Name
			}
			return fmt.Sprintf("persona %s, variant %s: %v", v.leafNames[ce.Row], arm, ce.Err)
		}
	case "arm":
		order := []int{v.control}
		for a := range variants {
			if a != v.control {
				order = append(order, a)
			}
		}
		if ce.Row >= 0 && ce.Row < len(order) {
			return fmt.Sprintf("variant %s: %v", variants[order[ce.Row]].Name, ce.Err)
		}
	}
	return err.Error()
}

func (v *vrMetric) setEffect(row *AdjustedRow, est, se, df, low, high, p, unadj, unadjSE, vr float64) {
	row.Estimate, row.SE, row.DF = opt(est), opt(se), opt(df)
	row.CILow, row.CIHigh, row.PValue = opt(low), opt(high), opt(p)
	row.Unadjusted, row.UnadjustedSE, row.VarianceReduction = opt(unadj), opt(unadjSE), opt(vr)
}

// cuped is the comparison statistics.cuped makes (θ fitted on every arm
// of the (all) cohort, as the result row's), against the same comparison
// without it.
func (v *vrMetric) cuped(i int, row *AdjustedRow) error {
	bx, by := bounds(v.metric)
	var arms []stats.Arm
	for _, c := range v.all {
		arms = append(arms, armOf(c, v.kind, v.scale, true, nil, bx, by, false))
	}
	opts := stats.Options{Alpha: v.alpha}
	plain := stats.Compare(arms[v.control], arms[i], v.kind, opts)
	c, err := stats.NewCUPED(arms, v.kind)
	if err != nil {
		return err
	}
	opts.CUPED = &c
	adj := stats.Compare(arms[v.control], arms[i], v.kind, opts)
	if !adj.Valid() || !plain.Valid() || !adj.CUPEDApplied {
		return fmt.Errorf("comparison status %s", adj.Status)
	}
	var red float64
	if plain.SE > 0 {
		red = 1 - adj.SE*adj.SE/(plain.SE*plain.SE)
	}
	v.setEffect(row, adj.Diff, adj.SE, adj.DF, adj.DiffLow, adj.DiffHigh, adj.PValue, plain.Diff, plain.SE, red)
	return nil
}

// leafMoments returns every variant's leaf moments of (x[, y][, c][, c_k…])
// (y for ratios, c with the pre-period covariate, c_k the pre-period value
// of each metric in others): [variant][leaf]. The moments with another
// metric's pre-period value come from its cells and the cross-moment
// cells; a leaf without them (their sums could exceed 128 bits) is an
// error naming it.
func (v *vrMetric) leafMoments(withC bool, others []string) ([][]stats.ArmMoments, error) {
	out := make([][]stats.ArmMoments, len(v.leaves))
	for a, byLeaf := range v.leaves {
		for k, c := range byLeaf {
			// The vector's components, each as (its sum, a function
			// giving its sum of products with another component).
			type comp struct {
				sum  *big.Int
				prod func(j int) (*big.Int, error)
			}
			var comps []comp
			own := []*big.Int{c.Sum}
			ownSq := [][]*big.Int{{c.SumSq}}
			if v.kind == stats.Ratio {
				own = append(own, c.SumY)
				ownSq = [][]*big.Int{{c.SumSq, c.SumXY}, {c.SumXY, c.SumY2}}
			}
			if withC {
				own = append(own, c.SumC)
				if v.kind == stats.Ratio {
					ownSq = [][]*big.Int{{c.SumSq, c.SumXY, c.SumXC}, {c.SumXY, c.SumY2, c.SumYC}, {c.SumXC, c.SumYC, c.SumC2}}
				} else {
					ownSq = [][]*big.Int{{c.SumSq, c.SumXC}, {c.SumXC, c.SumC2}}
				}
			}
			// ownPart names each own component's cross-moment sum with a
			// covariate metric: x·c_k, y·c_k, c·c_k.
			ownPart := []string{"x"}
			if v.kind == stats.Ratio {
				ownPart = append(ownPart, "y")
			}
			if withC {
				ownPart = append(ownPart, "c")
			}
			for i := range own {
				comps = append(comps, comp{sum: own[i], prod: func(j int) (*big.Int, error) {
					if j < len(own) {
						return ownSq[i][j], nil
					}
					return v.crossSum(c, v.metric.Name, others[j-len(own)], ownPart[i])
				}})
			}
			for oi, name := range others {
				oc, ok := v.cells[cellKey{c.Cohort, c.Variant, name}]
				if !ok || oc.SumC == nil || oc.N != c.N {
					return nil, fmt.Errorf("persona %s, variant %s: no cell of %s over the same units", v.leafNames[k], v.spec.Variants[a].Name, name)
				}
				comps = append(comps, comp{sum: oc.SumC, prod: func(j int) (*big.Int, error) {
					switch {
					case j < len(own):
						return v.crossSum(c, v.metric.Name, name, ownPart[j])
					case j-len(own) == oi:
						return oc.SumC2, nil
					}
					return v.crossSum(c, name, others[j-len(own)], "c")
				}})
			}
			p := len(comps)
			am := stats.ArmMoments{N: float64(c.N), Mean: make([]float64, p), Cov: make([]float64, p*p)}
			for i := range comps {
				am.Mean[i] = exactMean(c.N, v.scale, comps[i].sum)
				for j := range comps {
					ab, err := comps[i].prod(j)
					if err != nil {
						return nil, fmt.Errorf("persona %s, variant %s: %w", v.leafNames[k], v.spec.Variants[a].Name, err)
					}
					am.Cov[i*p+j] = exactCov(c.N, v.scale, ab, comps[i].sum, comps[j].sum)
				}
			}
			out[a] = append(out[a], am)
		}
	}
	return out, nil
}

// crossSum returns the sum over cell c's units of metric a's part (x, y or
// c) times metric b's pre-period value, from the cross-moment cell of
// (a, b) — or of (b, a) for two pre-period values, whose product is
// symmetric. An empty cell's sum is zero.
func (v *vrMetric) crossSum(c engine.Cell, a, b, part string) (*big.Int, error) {
	if c.N == 0 {
		return new(big.Int), nil
	}
	x, ok := v.cross[crossKey{c.Cohort, c.Variant, a, b}]
	if !ok && part == "c" {
		x, ok = v.cross[crossKey{c.Cohort, c.Variant, b, a}]
	}
	switch {
	case !ok:
		return nil, fmt.Errorf("no cross-moments of %s and %s's pre-period value", a, b)
	case x.Overflow:
		return nil, fmt.Errorf("the cross-moments of %s and %s's pre-period value could exceed 128 bits", a, b)
	case x.N != c.N:
		return nil, fmt.Errorf("cross-moments of %s and %s over %d units, the cell has %d", a, b, x.N, c.N)
	}
	switch part {
	case "x":
		return x.SumXC, nil
	case "y":
		return x.SumYC, nil
	}
	return x.SumCC, nil
}

// linearised returns the leaf moments with a ratio's (x, y) replaced by
// its linearised value around the pooled ratio of every leaf and arm.
func (v *vrMetric) linearised(leaves [][]stats.ArmMoments) ([][]stats.ArmMoments, error) {
	if v.kind != stats.Ratio {
		return leaves, nil
	}
	var flat []stats.ArmMoments
	for _, l := range leaves {
		flat = append(flat, l...)
	}
	lin, err := stats.LinearizeRatio(flat)
	var ce *stats.CellError
	if errors.As(err, &ce) && len(v.leafNames) > 0 && ce.Row >= 0 && ce.Row < len(flat) {
		// flat holds the leaves of every variant in turn: name the cell.
		a, k := ce.Row/len(v.leafNames), ce.Row%len(v.leafNames)
		return nil, fmt.Errorf("persona %s, variant %s: %w", v.leafNames[k], v.spec.Variants[a].Name, ce.Err)
	}
	if err != nil {
		return nil, err
	}
	out := make([][]stats.ArmMoments, len(leaves))
	k := 0
	for a := range leaves {
		out[a] = lin[k : k+len(leaves[a])]
		k += len(leaves[a])
	}
	return out, nil
}

// postStratify is stats.PostStratify on the persona leaves of the control
// and treatment i.
func (v *vrMetric) postStratify(i int, row *AdjustedRow) error {
	leaves, err := v.leafMoments(false, nil)
	if err != nil {
		return err
	}
	if leaves, err = v.linearised(leaves); err != nil {
		return err
	}
	strata := make([][2]stats.Cell, len(leaves[0]))
	for k := range strata {
		for j, a := range [2]int{v.control, i} {
			m := leaves[a][k]
			strata[k][j] = stats.Cell{N: m.N, Mean: m.Mean[0], Var: m.Cov[0]}
		}
	}
	res, err := stats.PostStratify(strata, stats.PostStratOptions{Alpha: v.alpha})
	if err != nil {
		return err
	}
	row.Strata = len(res.Strata)
	v.setEffect(row, res.Estimate, res.SE, res.DF, res.Low, res.High, res.PValue, res.Unadjusted, res.UnadjustedSE, res.VarianceReduction)
	return nil
}

// regression is stats.RegressionAdjust on every arm (control first), with
// the covariates listed: the pre-period value and/or indicators of the
// persona groups (thin leaves pooled as PostStratify pools them, over
// every arm).
func (v *vrMetric) regression(i int, covariates []string, row *AdjustedRow) error {
	withC, withP := false, false
	var others []string
	for _, c := range covariates {
		withC = withC || c == expspec.CovariatePrePeriod
		withP = withP || c == expspec.CovariatePersona
		if k, ok := expspec.OtherPrePeriod(c); ok {
			others = append(others, k)
		}
	}
	leaves, err := v.leafMoments(withC, others)
	if err != nil {
		return err
	}
	if leaves, err = v.linearised(leaves); err != nil {
		return err
	}
	var groups [][]int
	if withP {
		groups = personaGroups(leaves)
		row.Strata = len(groups)
	}
	order := []int{v.control}
	for a := range leaves {
		if a != v.control {
			order = append(order, a)
		}
	}
	arms := make([]stats.ArmMoments, len(order))
	for j, a := range order {
		if arms[j], err = withIndicators(leaves[a], groups); err != nil {
			return err
		}
	}
	res, err := stats.RegressionAdjust(arms, stats.RegressionOptions{Alpha: v.alpha})
	if err != nil {
		return err
	}
	for _, e := range res.Effects {
		if order[e.Arm] == i {
			v.setEffect(row, e.Estimate, e.SE, e.DF, e.Low, e.High, e.PValue, e.Unadjusted, e.UnadjustedSE, e.VarianceReduction)
			return nil
		}
	}
	return fmt.Errorf("no comparison for arm %d", i)
}

// personaGroups groups the leaves for persona indicators: a leaf with
// fewer than stats.DefaultMinStratumUnits units in some arm is pooled
// with the other thin ones, and the pool, if still thin, joins the
// largest group (the rule of stats.PostStratify, over every arm); empty
// leaves are left out. Depends on counts only.
func personaGroups(leaves [][]stats.ArmMoments) [][]int {
	const minUnits = stats.DefaultMinStratumUnits
	var groups [][]int
	var thin []int
	total := func(g []int) (n float64) {
		for _, k := range g {
			for a := range leaves {
				n += leaves[a][k].N
			}
		}
		return n
	}
	thinIn := func(g []int) bool {
		for a := range leaves {
			var n float64
			for _, k := range g {
				n += leaves[a][k].N
			}
			if n < minUnits {
				return true
			}
		}
		return false
	}
	for k := range leaves[0] {
		switch {
		case total([]int{k}) == 0:
		case thinIn([]int{k}):
			thin = append(thin, k)
		default:
			groups = append(groups, []int{k})
		}
	}
	if len(thin) > 0 {
		if !thinIn(thin) || len(groups) == 0 {
			groups = append(groups, thin)
		} else {
			big := 0
			for j, g := range groups {
				if total(g) > total(groups[big]) {
					big = j
				}
			}
			groups[big] = append(groups[big], thin...)
		}
	}
	return groups
}

// withIndicators returns one arm's moments of (z, D₂…D_K) merged over its
// leaves, D_j the indicator of persona group j (the first group is the
// reference); with fewer than two groups, of z alone.
func withIndicators(leaves []stats.ArmMoments, groups [][]int) (stats.ArmMoments, error) {
	extra := max(len(groups)-1, 0)
	var parts []stats.ArmMoments
	for g, members := range groups {
		for _, k := range members {
			parts = append(parts, extend(leaves[k], extra, g-1))
		}
	}
	if len(groups) == 0 {
		parts = leaves
	}
	m, err := stats.MergeArmMoments(parts...)
	if err != nil {
		return stats.ArmMoments{}, fmt.Errorf("persona moments: %w", err)
	}
	return m, nil
}

// extend appends extra constant coordinates to m's vector, the one at
// index one (if any) equal to 1 and the others 0: a leaf's values of the
// group indicators.
func extend(m stats.ArmMoments, extra, one int) stats.ArmMoments {
	p := m.Dim()
	q := p + extra
	out := stats.ArmMoments{N: m.N, Mean: make([]float64, q), Cov: make([]float64, q*q)}
	copy(out.Mean, m.Mean)
	if one >= 0 {
		out.Mean[p+one] = 1
	}
	for r := range p {
		copy(out.Cov[r*q:r*q+p], m.Cov[r*p:r*p+p])
	}
	return out
}

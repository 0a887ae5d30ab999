package stats

import (
	"fmt"
	"math"
	"slices"
)

// Post-stratification (Miratrix, Sekhon & Yu 2013, "Adjusting treatment
// effect estimates by post-stratification in randomized experiments",
// JRSS B 75(2):369–396).
//
// The units of a completely randomised experiment fall into K strata known
// before exposure (a persona, a declared dimension). With n_k units in
// stratum k (both arms), n = Σn_k and w_k = n_k/n, the post-stratified
// estimator is the weighted mean of the within-stratum differences:
//
//	τ̂ = Σ_k w_k·τ̂_k,   τ̂_k = ȳ_kt − ȳ_kc.
//
// Its variance conditional on the stratum counts (MSY §4, "conditioning
// on W", which they recommend because it reflects how close the realised
// split is to a blocked one), with the unidentifiable treatment-effect
// variance term dropped (conservative), is
//
//	V_cond = Σ_k w_k²·(s²_kt/n_kt + s²_kc/n_kc),
//
// which is also, exactly, the HC2 variance of the treatment coefficient in
// the interacted regression y ~ T + D + T·D with D the centred stratum
// indicators (Lin's estimator with indicator covariates; see
// RegressionAdjust). Verity's intervals are for the population effect (as
// Compare's Welch intervals are), for which the stratum shares are random
// too: that adds the variance of Σ w_k τ_k around τ,
//
//	V_het = Σ_k w_k·(τ̂_k − τ̂)² / (n − 1),
//
// the term RegressionAdjust adds for its covariate mean (with indicator
// covariates the two coincide). It is negligible unless effects differ a
// lot between strata. The interval is τ̂ ± t_{ν,1−α/2}·√(V_cond + V_het)
// with Satterthwaite's degrees of freedom for the sampled variances,
//
//	ν = V_cond² / Σ_{k,a} (w_k²s²_ka/n_ka)²/(n_ka − 1),
//
// so that one stratum gives Compare's Welch test exactly.
//
// Variance reduction is reported against the unstratified Welch comparison
// of the same units, 1 − V/V_Welch. It can be negative: MSY show that many
// small, poorly chosen strata can cost precision.
//
// Empty and thin strata. A stratum with no units in either arm is dropped
// (it has no weight). A stratum with fewer than MinUnits units in an arm
// (default 2: a variance needs two) cannot be estimated on its own: all such
// strata are pooled into one stratum, their cells merged exactly
// (MergeCells). If the pooled stratum is still thin it joins the largest
// stratum (most units, the first on ties). If no stratum is left with
// enough units the comparison itself is impossible (ErrDegenerate). The
// pooling depends only on the counts, never on the outcomes, and is
// reported in the result.

// DefaultMinStratumUnits is the fewest units an arm of a stratum may have
// before PostStratify pools the stratum.
const DefaultMinStratumUnits = 2

// PostStratOptions are the settings of PostStratify.
type PostStratOptions struct {
	// Alpha is the two-sided level; zero means DefaultAlpha.
	Alpha float64
	// MinUnits is the fewest units either arm of a stratum must have for
	// the stratum to stand alone; zero means DefaultMinStratumUnits, and
	// values below 2 are invalid.
	MinUnits float64
}

// PostStratum is one stratum of the estimate: an input stratum, or the
// pooled thin ones.
type PostStratum struct {
	Strata               []int // input strata in it, ascending
	NControl, NTreatment float64
	Weight               float64 // w_k = n_k/n
	Effect               float64 // τ̂_k = ȳ_kt − ȳ_kc
	EffectSE             float64 // √(s²_kt/n_kt + s²_kc/n_kc)
}

// PostStratResult is the post-stratified comparison of treatment with
// control. Every field is finite.
type PostStratResult struct {
	Alpha     float64
	Estimate  float64 // τ̂ = Σ w_k τ̂_k
	SE        float64 // √(V_cond + V_het)
	DF        float64 // ν (Satterthwaite)
	Statistic float64 // τ̂/SE
	PValue    float64 // 2·P(T_ν ≥ |τ̂|/SE)
	Low, High float64 // τ̂ ∓ Critical·SE
	Critical  float64 // t_{ν,1−α/2}

	// SEConditional is √V_cond, MSY's conditional standard error (the HC2
	// standard error of the interacted regression on stratum indicators).
	SEConditional float64

	// Unadjusted is the difference of the arms' means over all strata and
	// UnadjustedSE its Welch standard error.
	Unadjusted, UnadjustedSE float64
	// VarianceReduction is 1 − SE²/UnadjustedSE² (0 when UnadjustedSE is 0).
	VarianceReduction float64

	Strata []PostStratum // in order of their first input stratum
	Empty  []int         // input strata without units
}

// PostStratify computes the post-stratified estimate of the treatment
// effect from each stratum's control and treatment cells, strata[k][0]
// the control and strata[k][1] the treatment (see the formulas above).
//
// Errors: ErrLength when there are no strata; a *CellError wrapping
// ErrInvalidInput for a NaN, infinite or negative moment; ErrInvalidInput
// for bad options; ErrDegenerate when no stratum (even pooled) has
// MinUnits units in both arms, or every cell has zero variance.
func PostStratify(strata [][2]Cell, opts PostStratOptions) (PostStratResult, error) {
	alpha, minUnits := opts.Alpha, opts.MinUnits
	if alpha == 0 {
		alpha = DefaultAlpha
	}
	if minUnits == 0 {
		minUnits = DefaultMinStratumUnits
	}
	if !(alpha > 0 && alpha < 1) || !(minUnits >= 2) || math.IsInf(minUnits, 1) {
		return PostStratResult{}, fmt.Errorf("post-stratify: alpha %v, min units %v: %w", opts.Alpha, opts.MinUnits, ErrInvalidInput)
	}
	if len(strata) == 0 {
		return PostStratResult{}, fmt.Errorf("post-stratify: no strata: %w", ErrLength)
	}
	for k, s := range strata {
		for a, c := range s {
			if err := c.validate(); err != nil {
				return PostStratResult{}, fmt.Errorf("post-stratify: %w", &CellError{Table: "stratum", Row: k, Col: a, Err: err})
			}
		}
	}
	res := PostStratResult{Alpha: alpha}
	groups, empty, err := stratumGroups(strata, minUnits)
	if err != nil {
		return PostStratResult{}, err
	}
	res.Empty = empty

	// Estimate and the conditional variance, with its Satterthwaite terms.
	var n, vCond, dfDen float64
	for _, g := range groups {
		n += g.NControl + g.NTreatment
	}
	cells := make([][2]Cell, len(groups))
	for i, g := range groups {
		c, t, err := mergeStrata(strata, g.Strata)
		if err != nil {
			return PostStratResult{}, err
		}
		cells[i] = [2]Cell{c, t}
		w := (c.N + t.N) / n
		groups[i].Weight = w
		groups[i].Effect = t.Mean - c.Mean
		vt, vc := t.Var/t.N, c.Var/c.N
		groups[i].EffectSE = math.Sqrt(vt + vc)
		res.Estimate += w * groups[i].Effect
		for _, v := range [...]struct{ v, n float64 }{{vc, c.N}, {vt, t.N}} {
			term := w * w * v.v
			vCond += term
			dfDen += term * term / (v.n - 1)
		}
	}
	if vCond == 0 {
		return PostStratResult{}, fmt.Errorf("post-stratify: every cell has zero variance: %w", ErrDegenerate)
	}
	var vHet float64
	for _, g := range groups {
		d := g.Effect - res.Estimate
		vHet += g.Weight * d * d
	}
	vHet /= n - 1
	res.Strata = groups
	res.SEConditional = math.Sqrt(vCond)
	res.SE = math.Sqrt(vCond + vHet)
	res.DF = NoiseOnlyDF
	if dfDen > 0 {
		// ν = V²/Σ(term²/(n−1)), scaled against overflow.
		res.DF = math.Min(1/(dfDen/vCond/vCond), NoiseOnlyDF)
	}
	res.Statistic = res.Estimate / res.SE
	// gonum panics on a non-finite or zero ν: check before any quantile.
	if !(finite(res.Estimate) && finite(res.SE) && finite(res.Statistic) && res.SE > 0 && res.DF > 0) {
		return PostStratResult{}, fmt.Errorf("post-stratify: overflow: %w", ErrInvalidInput)
	}
	res.Critical = tQuantileTwoSided(alpha, res.DF)
	res.PValue = tTwoSidedP(res.Statistic, res.DF)
	res.Low, res.High = res.Estimate-res.Critical*res.SE, res.Estimate+res.Critical*res.SE

	// The unstratified Welch comparison of the same units.
	var cs, ts []Cell
	for _, c := range cells {
		cs, ts = append(cs, c[0]), append(ts, c[1])
	}
	c, _ := MergeCells(cs...)
	t, _ := MergeCells(ts...)
	res.Unadjusted = t.Mean - c.Mean
	vu := t.Var/t.N + c.Var/c.N
	res.UnadjustedSE = math.Sqrt(vu)
	if vu > 0 {
		res.VarianceReduction = 1 - res.SE*res.SE/vu
	}
	if !res.finite() {
		return PostStratResult{}, fmt.Errorf("post-stratify: overflow: %w", ErrInvalidInput)
	}
	return res, nil
}

func (r PostStratResult) finite() bool {
	for _, v := range [...]float64{r.Estimate, r.SE, r.DF, r.Statistic, r.PValue, r.Low, r.High, r.Critical,
		r.SEConditional, r.Unadjusted, r.UnadjustedSE, r.VarianceReduction} {
		if !finite(v) {
			return false
		}
	}
	for _, g := range r.Strata {
		if !(finite(g.Weight) && finite(g.Effect) && finite(g.EffectSE)) {
			return false
		}
	}
	return true
}

// stratumGroups applies the pooling rule (see PostStratify): it returns the
// strata of the estimate with their unit counts, in order of their first
// input stratum, and the empty input strata.
func stratumGroups(strata [][2]Cell, minUnits float64) ([]PostStratum, []int, error) {
	var groups []PostStratum
	var empty, thin []int
	for k, s := range strata {
		switch {
		case s[0].N == 0 && s[1].N == 0:
			empty = append(empty, k)
		case s[0].N < minUnits || s[1].N < minUnits:
			thin = append(thin, k)
		default:
			groups = append(groups, PostStratum{Strata: []int{k}, NControl: s[0].N, NTreatment: s[1].N})
		}
	}
	if len(thin) > 0 {
		pooled := PostStratum{Strata: thin}
		for _, k := range thin {
			pooled.NControl += strata[k][0].N
			pooled.NTreatment += strata[k][1].N
		}
		if pooled.NControl >= minUnits && pooled.NTreatment >= minUnits {
			groups = append(groups, pooled)
		} else if len(groups) > 0 {
			big := 0
			for i, g := range groups {
				if g.NControl+g.NTreatment > groups[big].NControl+groups[big].NTreatment {
					big = i
				}
			}
			g := &groups[big]
			g.Strata = append(g.Strata, thin...)
			slices.Sort(g.Strata)
			g.NControl += pooled.NControl
			g.NTreatment += pooled.NTreatment
		} else {
			return nil, nil, fmt.Errorf("post-stratify: %v control and %v treatment units in all, fewer than %v in an arm: %w",
				pooled.NControl, pooled.NTreatment, minUnits, ErrDegenerate)
		}
	}
	if len(groups) == 0 {
		return nil, nil, fmt.Errorf("post-stratify: no units: %w", ErrDegenerate)
	}
	slices.SortFunc(groups, func(a, b PostStratum) int { return a.Strata[0] - b.Strata[0] })
	return groups, empty, nil
}

// mergeStrata returns the control and treatment cells of the union of the
// input strata idx.
func mergeStrata(strata [][2]Cell, idx []int) (c, t Cell, err error) {
	cs := make([]Cell, len(idx))
	ts := make([]Cell, len(idx))
	for i, k := range idx {
		cs[i], ts[i] = strata[k][0], strata[k][1]
	}
	if c, err = MergeCells(cs...); err != nil {
		return Cell{}, Cell{}, fmt.Errorf("post-stratify: %w", err)
	}
	if t, err = MergeCells(ts...); err != nil {
		return Cell{}, Cell{}, fmt.Errorf("post-stratify: %w", err)
	}
	return c, t, nil
}

package privacy

import (
	"errors"
	"fmt"
	"math"
	"math/big"
)

// Accounting names the unit in which a budget is kept and spent.
type Accounting string

// The accounting units.
const (
	// AccountingZCDP keeps ρ of zero-concentrated DP (Bun & Steinke 2016):
	// composition adds ρ. Used with the discrete Gaussian.
	AccountingZCDP Accounting = "zcdp_rho"
	// AccountingPure keeps ε of pure DP: composition adds ε. Used with the
	// discrete Laplace.
	AccountingPure Accounting = "pure_epsilon"
)

// Significant decimal digits kept when budgets and mechanism parameters are
// turned into exact rationals. Budgets are rounded down, noise parameters
// up, so what is spent never exceeds what was allowed.
const (
	budgetDigits = 9
	paramDigits  = 6
)

// Budget is an experiment's total privacy budget and the share of it each
// nightly run may spend.
//
// Delta > 0 selects the discrete Gaussian under zCDP: the total (ε, δ) is
// converted once to ρ_total = CDPRho(ε, δ) (the tight CKS20 conversion,
// rounded down to 9 significant digits), runs spend ρ and the ledger adds
// ρ, so the whole experiment is (ε, δ)-DP. Delta = 0 selects the discrete
// Laplace under pure ε-DP: runs spend ε and the ledger adds ε.
type Budget struct {
	// Epsilon is the experiment's total ε, > 0.
	Epsilon float64 `json:"epsilon"`
	// Delta is the experiment's total δ: 0 for pure DP, else in (0, 1).
	Delta float64 `json:"delta"`
	// RunShare is the fraction of the total one run may spend, in (0, 1]
	// (e.g. 1/30 for a month of nightly runs).
	RunShare float64 `json:"run_share"`
}

// Validate checks the budget's ranges.
func (b Budget) Validate() error {
	if !(b.Epsilon > 0) || math.IsInf(b.Epsilon, 0) {
		return fmt.Errorf("privacy: budget ε = %v: want a finite number > 0", b.Epsilon)
	}
	if b.Delta != 0 {
		if err := checkDelta(b.Delta); err != nil {
			return fmt.Errorf("privacy: budget: %w", err)
		}
	}
	if !(b.RunShare > 0 && b.RunShare <= 1) {
		return fmt.Errorf("privacy: budget run share = %v: want 0 < share ≤ 1", b.RunShare)
	}
	return nil
}

// Accounting is AccountingPure when Delta is 0 and AccountingZCDP otherwise.
func (b Budget) Accounting() Accounting {
	if b.Delta == 0 {
		return AccountingPure
	}
	return AccountingZCDP
}

// Mechanism is the mechanism kind the budget is spent with.
func (b Budget) Mechanism() MechanismKind {
	if b.Delta == 0 {
		return KindDiscreteLaplace
	}
	return KindDiscreteGaussian
}

// Total returns the experiment's total in accounting units as an exact
// rational: ρ_total = CDPRho(ε, δ), or ε for pure DP, rounded down to 9
// significant digits.
func (b Budget) Total() (*big.Rat, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	v := b.Epsilon
	if b.Delta != 0 {
		rho, err := CDPRho(b.Epsilon, b.Delta)
		if err != nil {
			return nil, err
		}
		v = rho
	}
	if !(v > 0) {
		return nil, fmt.Errorf("privacy: budget (ε=%v, δ=%v) allows no spending", b.Epsilon, b.Delta)
	}
	return roundSig(new(big.Rat).SetFloat64(v), budgetDigits, false), nil
}

// PerRun returns Total × RunShare, rounded down to 9 significant digits.
func (b Budget) PerRun() (*big.Rat, error) {
	t, err := b.Total()
	if err != nil {
		return nil, err
	}
	t.Mul(t, new(big.Rat).SetFloat64(b.RunShare))
	return roundSig(t, budgetDigits, false), nil
}

// roundSig rounds x > 0 to the given number of significant decimal digits,
// up (ceiling) or down (floor), returning m·10^e exactly. x ≤ 0 is returned
// unchanged (copied).
func roundSig(x *big.Rat, digits int, up bool) *big.Rat {
	if x.Sign() <= 0 {
		return new(big.Rat).Set(x)
	}
	// Estimate log10(x) from the bit lengths (no float overflow for huge or
	// tiny x); the loop below corrects the estimate exactly.
	bitsLog2 := x.Num().BitLen() - x.Denom().BitLen()
	e := int(math.Floor(float64(bitsLog2)*math.Log10(2))) - digits + 1 // want x/10^e to have `digits` integer digits
	lower := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits-1)), nil)
	upper := new(big.Int).Mul(lower, big.NewInt(10))
	var m, r big.Int
	for {
		scaled := new(big.Rat).Mul(x, pow10Rat(-e))
		m.QuoRem(scaled.Num(), scaled.Denom(), &r) // floor: scaled > 0
		switch {
		case m.Cmp(lower) < 0:
			e--
			continue
		case m.Cmp(upper) >= 0:
			e++
			continue
		}
		if up && r.Sign() != 0 {
			m.Add(&m, bigOne)
		}
		return new(big.Rat).Mul(new(big.Rat).SetInt(&m), pow10Rat(e))
	}
}

func pow10Rat(e int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(e))), nil)
	if e >= 0 {
		return new(big.Rat).SetInt(p)
	}
	return new(big.Rat).SetFrac(bigOne, p)
}

func abs(e int) int {
	if e < 0 {
		return -e
	}
	return e
}

// StatSpec asks Allocate for the mechanism of one released statistic of a
// cell (cohort × variant). Each unit contributes to one cell only, so by
// parallel composition one cell's statistics are what a run spends; every
// cell reuses the same parameters.
type StatSpec struct {
	// Metric names the metric; empty for a cell's unit count.
	Metric string `json:"metric"`
	// Statistic is the sufficient statistic.
	Statistic Statistic `json:"statistic"`
	// Sensitivity is the statistic's sensitivity in scaled integer units
	// (1 for a count; see SumSensitivity and friends), ≥ 1.
	Sensitivity *big.Int `json:"sensitivity"`
	// Weight overrides DefaultWeight when > 0.
	Weight int64 `json:"weight,omitempty"`
}

// DefaultWeight is a statistic's default share weight. The statistics that
// set an interval's width get more: first moments of the outcome (sum_x,
// sum_y) 4, the unit count n and the covariate sum sum_c 2, second moments
// and cross terms (sum_x2, sum_xy, sum_c2, sum_xc, …) and any other name 1.
// Weights split ρ (or ε) proportionally, so a statistic's noise standard
// deviation scales as Δ/√weight under zCDP and Δ/weight under pure DP.
func DefaultWeight(s Statistic) int64 {
	switch s {
	case StatSumX, StatSumY:
		return 4
	case StatN, StatSumC:
		return 2
	default:
		return 1
	}
}

// Share is one statistic's allocated mechanism.
type Share struct {
	Metric      string    `json:"metric"`
	Statistic   Statistic `json:"statistic"`
	Sensitivity *big.Int  `json:"sensitivity"`
	Weight      int64     `json:"weight"`
	// Allowed is the statistic's share of the run budget,
	// PerRun × Weight / ΣWeight, in accounting units.
	Allowed *big.Rat `json:"allowed"`
	// Mechanism is the noise mechanism, its parameter rounded up to 6
	// significant digits so that Spent ≤ Allowed.
	Mechanism Mechanism `json:"mechanism"`
	// Spent is the exact cost of the release: Δ²/(2σ²) or Δ/t.
	Spent *big.Rat `json:"spent"`
}

// Allocation is a run's split of its budget across one cell's statistics.
type Allocation struct {
	Accounting Accounting `json:"accounting"`
	// PerRun is the run's budget, in accounting units.
	PerRun *big.Rat `json:"per_run"`
	// Shares are in the order of the request.
	Shares []Share `json:"shares"`
	// Spent is ΣShares.Spent ≤ PerRun: what the run costs.
	Spent *big.Rat `json:"spent"`
}

// Allocate splits the run budget b.PerRun() across stats by weight and
// returns each statistic's mechanism:
//
//   - zCDP (discrete Gaussian): ρᵢ = PerRun·wᵢ/Σw, σᵢ² = Δᵢ²/(2ρᵢ) rounded up
//     to 6 significant digits, spentᵢ = Δᵢ²/(2σᵢ²) ≤ ρᵢ;
//   - pure DP (discrete Laplace): εᵢ = PerRun·wᵢ/Σw, tᵢ = Δᵢ/εᵢ rounded up,
//     spentᵢ = Δᵢ/tᵢ ≤ εᵢ.
//
// A (metric, statistic) pair may appear only once.
func Allocate(b Budget, stats []StatSpec) (Allocation, error) {
	return AllocateGroups(b, []Group{{Fraction: big.NewRat(1, 1), Stats: stats}})
}

// Group is a part of the run budget: Fraction of PerRun, split across
// Stats by weight as Allocate does.
type Group struct {
	Fraction *big.Rat
	Stats    []StatSpec
}

// AllocateGroups splits the run budget across groups (their fractions must
// be positive and add up to at most 1), then within each group by weight,
// as Allocate describes. Shares are in the order of the groups and their
// statistics; a (metric, statistic) pair may appear only once overall.
func AllocateGroups(b Budget, groups []Group) (Allocation, error) {
	perRun, err := b.PerRun()
	if err != nil {
		return Allocation{}, err
	}
	a := Allocation{Accounting: b.Accounting(), PerRun: perRun, Spent: new(big.Rat)}
	type key struct {
		m string
		s Statistic
	}
	seen := map[key]bool{}
	sum := new(big.Rat)
	for gi, g := range groups {
		if g.Fraction == nil || g.Fraction.Sign() <= 0 {
			return Allocation{}, fmt.Errorf("privacy: allocate: group %d: fraction must be > 0", gi)
		}
		if sum.Add(sum, g.Fraction).Cmp(big.NewRat(1, 1)) > 0 {
			return Allocation{}, errors.New("privacy: allocate: group fractions add up to more than 1")
		}
		if len(g.Stats) == 0 {
			return Allocation{}, errors.New("privacy: allocate: no statistics")
		}
		for _, st := range g.Stats {
			k := key{st.Metric, st.Statistic}
			if seen[k] {
				return Allocation{}, fmt.Errorf("privacy: allocate: metric %q statistic %s appears twice", st.Metric, st.Statistic)
			}
			seen[k] = true
		}
		shares, err := allocateWithin(a.Accounting, new(big.Rat).Mul(perRun, g.Fraction), g.Stats)
		if err != nil {
			return Allocation{}, err
		}
		for _, sh := range shares {
			a.Spent.Add(a.Spent, sh.Spent)
		}
		a.Shares = append(a.Shares, shares...)
	}
	if len(a.Shares) == 0 {
		return Allocation{}, errors.New("privacy: allocate: no statistics")
	}
	return a, nil
}

// allocateWithin splits budget across stats by weight.
func allocateWithin(acc Accounting, budget *big.Rat, stats []StatSpec) ([]Share, error) {
	weights := make([]int64, len(stats))
	var total int64
	for i, st := range stats {
		if err := st.Statistic.Validate(); err != nil {
			return nil, fmt.Errorf("allocate: statistic %d: %w", i, err)
		}
		if st.Sensitivity == nil || st.Sensitivity.Sign() <= 0 {
			return nil, fmt.Errorf("privacy: allocate: metric %q statistic %s: sensitivity must be ≥ 1", st.Metric, st.Statistic)
		}
		w := st.Weight
		if w < 0 {
			return nil, fmt.Errorf("privacy: allocate: metric %q statistic %s: negative weight", st.Metric, st.Statistic)
		}
		if w == 0 {
			w = DefaultWeight(st.Statistic)
		}
		if w > math.MaxInt64-total {
			return nil, errors.New("privacy: allocate: weights overflow")
		}
		weights[i] = w
		total += w
	}
	shares := make([]Share, len(stats))
	for i, st := range stats {
		allowed := new(big.Rat).Mul(budget, big.NewRat(weights[i], total))
		delta := new(big.Rat).SetInt(st.Sensitivity)
		var mech Mechanism
		if acc == AccountingZCDP {
			sigma2 := new(big.Rat).Mul(delta, delta)
			sigma2.Quo(sigma2, new(big.Rat).Mul(allowed, big.NewRat(2, 1)))
			mech = Mechanism{Kind: KindDiscreteGaussian, Param: roundSig(sigma2, paramDigits, true)}
		} else {
			scale := new(big.Rat).Quo(delta, allowed)
			mech = Mechanism{Kind: KindDiscreteLaplace, Param: roundSig(scale, paramDigits, true)}
		}
		spent, _, err := mech.Cost(st.Sensitivity)
		if err != nil {
			return nil, err
		}
		if spent.Cmp(allowed) > 0 { // cannot happen: the parameter was rounded up
			return nil, fmt.Errorf("privacy: allocate: internal error: %s spends %s > %s", st.Statistic, spent, allowed)
		}
		shares[i] = Share{
			Metric:      st.Metric,
			Statistic:   st.Statistic,
			Sensitivity: new(big.Int).Set(st.Sensitivity),
			Weight:      weights[i],
			Allowed:     allowed,
			Mechanism:   mech,
			Spent:       spent,
		}
	}
	return shares, nil
}

package privacy

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundSig(t *testing.T) {
	tests := []struct {
		x        string
		digits   int
		up       bool
		want     string
		wantSame bool
	}{
		{x: "123456789", digits: 6, up: false, want: "123456000"},
		{x: "123456789", digits: 6, up: true, want: "123457000"},
		{x: "123456", digits: 6, up: true, wantSame: true},
		{x: "999999.5", digits: 6, up: true, want: "1000000"},
		{x: "0.000123456789", digits: 6, up: true, want: "0.000123457"},
		{x: "0.000123456789", digits: 6, up: false, want: "0.000123456"},
		{x: "1/3", digits: 9, up: false, want: "0.333333333"},
		{x: "2/3", digits: 9, up: true, want: "0.666666667"},
		{x: "100000000000000000000000000000000000000000000000001", digits: 6, up: true, want: "100001000000000000000000000000000000000000000000000"},
		{x: "1/100000000000000000000000000000000000000000000000003", digits: 6, up: false, want: "9.99999e-51"},
	}
	for _, tt := range tests {
		x := rat(t, tt.x)
		got := roundSig(x, tt.digits, tt.up)
		want := x
		if !tt.wantSame {
			want = rat(t, tt.want)
		}
		if got.Cmp(want) != 0 {
			t.Errorf("roundSig(%s, %d, up=%v) = %s, want %s", tt.x, tt.digits, tt.up, got.FloatString(60), want.FloatString(60))
		}
		if c := got.Cmp(x); (tt.up && c < 0) || (!tt.up && c > 0) {
			t.Errorf("roundSig(%s) = %s rounds the wrong way", tt.x, got)
		}
	}
}

// TestAllocatePureExact: with ε = 1 per run and weights 2:4:1 the scales
// are exact and the whole ε is spent.
func TestAllocatePureExact(t *testing.T) {
	b := Budget{Epsilon: 1, RunShare: 1}
	a, err := Allocate(b, []StatSpec{
		{Metric: "", Statistic: StatN, Sensitivity: big.NewInt(1)},
		{Metric: "revenue", Statistic: StatSumX, Sensitivity: big.NewInt(10)},
		{Metric: "revenue", Statistic: StatSumX2, Sensitivity: big.NewInt(100)},
	})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Stat                 Statistic
		Weight               int64
		Kind                 MechanismKind
		Param, Allowed, Cost string
	}
	var got []row
	for _, s := range a.Shares {
		got = append(got, row{s.Statistic, s.Weight, s.Mechanism.Kind, s.Mechanism.Param.RatString(), s.Allowed.RatString(), s.Spent.RatString()})
	}
	want := []row{
		{StatN, 2, KindDiscreteLaplace, "7/2", "2/7", "2/7"},     // t = 1/(2/7)
		{StatSumX, 4, KindDiscreteLaplace, "35/2", "4/7", "4/7"}, // t = 10/(4/7)
		{StatSumX2, 1, KindDiscreteLaplace, "700", "1/7", "1/7"}, // t = 100/(1/7)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}
	if a.Accounting != AccountingPure || a.Spent.Cmp(big.NewRat(1, 1)) != 0 || a.PerRun.Cmp(big.NewRat(1, 1)) != 0 {
		t.Errorf("accounting %s, per run %s, spent %s; want pure, 1, 1", a.Accounting, a.PerRun, a.Spent)
	}
}

func TestAllocateGaussian(t *testing.T) {
	b := Budget{Epsilon: 1, Delta: 1e-6, RunShare: 0.1}
	total, err := b.Total()
	if err != nil {
		t.Fatal(err)
	}
	// ρ_total = CDPRho(1, 1e-6) = 0.024355970359538372 (reference), rounded
	// down to 9 significant digits; a run gets a tenth.
	if want := rat(t, "0.0243559703"); total.Cmp(want) != 0 {
		t.Errorf("total ρ = %s, want %s", total.FloatString(12), want.FloatString(12))
	}
	stats := []StatSpec{
		{Statistic: StatN, Sensitivity: big.NewInt(1)},
		{Metric: "m", Statistic: StatSumX, Sensitivity: big.NewInt(1000)},
		{Metric: "m", Statistic: StatSumX2, Sensitivity: big.NewInt(1_000_000)},
	}
	a, err := Allocate(b, stats)
	if err != nil {
		t.Fatal(err)
	}
	if want := rat(t, "0.00243559703"); a.PerRun.Cmp(want) != 0 {
		t.Errorf("per run ρ = %s, want %s", a.PerRun.FloatString(14), want.FloatString(14))
	}
	perRun, _ := a.PerRun.Float64()
	for i, s := range a.Shares {
		w := []float64{2, 4, 1}[i]
		rho := perRun * w / 7
		d, _ := new(big.Float).SetInt(stats[i].Sensitivity).Float64()
		sigma2 := d * d / (2 * rho)
		p, _ := s.Mechanism.Param.Float64()
		if s.Mechanism.Kind != KindDiscreteGaussian || p < sigma2*(1-1e-12) || p > sigma2*(1+1e-5) {
			t.Errorf("%s: σ² = %v (%g), want %g rounded up to 6 digits", s.Statistic, s.Mechanism.Param, p, sigma2)
		}
		if s.Spent.Cmp(s.Allowed) > 0 {
			t.Errorf("%s spends %s > allowed %s", s.Statistic, s.Spent, s.Allowed)
		}
	}
	// The sums that set interval width get less noise per unit of
	// sensitivity than the squares.
	rel := func(i int) float64 {
		p, _ := a.Shares[i].Mechanism.Param.Float64()
		d, _ := new(big.Float).SetInt(stats[i].Sensitivity).Float64()
		return math.Sqrt(p) / d
	}
	if !(rel(1) < rel(0) && rel(0) < rel(2)) {
		t.Errorf("σ/Δ for sum_x, n, sum_x2 = %g, %g, %g: want increasing", rel(1), rel(0), rel(2))
	}
}

// TestAllocateNeverOverspends over random budgets and statistics.
func TestAllocateNeverOverspends(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	names := []Statistic{StatN, StatSumX, StatSumX2, StatSumY, StatSumXY, StatSumC, StatSumXC, "custom"}
	for i := range 300 {
		b := Budget{Epsilon: math.Exp(rng.Float64()*6 - 4), RunShare: rng.Float64()*0.99 + 0.01}
		if rng.IntN(3) > 0 {
			b.Delta = math.Pow(10, -3-rng.Float64()*9)
		}
		var stats []StatSpec
		for j, n := range names[:1+rng.IntN(len(names))] {
			sens := new(big.Int).Lsh(big.NewInt(1+rng.Int64N(1000)), uint(rng.IntN(90)))
			stats = append(stats, StatSpec{Metric: "m", Statistic: n, Sensitivity: sens, Weight: int64(rng.IntN(3) * j)})
		}
		a, err := Allocate(b, stats)
		if err != nil {
			t.Fatalf("case %d %+v: %v", i, b, err)
		}
		if a.Spent.Cmp(a.PerRun) > 0 {
			t.Fatalf("case %d: spent %s > per run %s", i, a.Spent, a.PerRun)
		}
		sum := new(big.Rat)
		for _, s := range a.Shares {
			if s.Spent.Cmp(s.Allowed) > 0 {
				t.Fatalf("case %d: %s spends %s > %s", i, s.Statistic, s.Spent, s.Allowed)
			}
			lost := new(big.Rat).Quo(s.Spent, s.Allowed)
			if f, _ := lost.Float64(); f < 1-1e-5 {
				t.Errorf("case %d: %s spends only %g of its share", i, s.Statistic, f)
			}
			if want := b.Mechanism(); s.Mechanism.Kind != want {
				t.Errorf("case %d: mechanism %s, want %s", i, s.Mechanism.Kind, want)
			}
			sum.Add(sum, s.Spent)
		}
		if sum.Cmp(a.Spent) != 0 {
			t.Errorf("case %d: Spent %s is not the sum of the shares %s", i, a.Spent, sum)
		}
	}
}

func TestAllocateErrors(t *testing.T) {
	one := big.NewInt(1)
	good := Budget{Epsilon: 1, Delta: 1e-6, RunShare: 0.5}
	tests := []struct {
		name  string
		b     Budget
		stats []StatSpec
	}{
		{"no stats", good, nil},
		{"zero sensitivity", good, []StatSpec{{Statistic: StatN, Sensitivity: big.NewInt(0)}}},
		{"nil sensitivity", good, []StatSpec{{Statistic: StatN}}},
		{"duplicate", good, []StatSpec{{Statistic: StatN, Sensitivity: one}, {Statistic: StatN, Sensitivity: one}}},
		{"bad name", good, []StatSpec{{Statistic: "Sum X", Sensitivity: one}}},
		{"negative weight", good, []StatSpec{{Statistic: StatN, Sensitivity: one, Weight: -1}}},
		{"ε = 0", Budget{Epsilon: 0, Delta: 1e-6, RunShare: 1}, []StatSpec{{Statistic: StatN, Sensitivity: one}}},
		{"δ = 1", Budget{Epsilon: 1, Delta: 1, RunShare: 1}, []StatSpec{{Statistic: StatN, Sensitivity: one}}},
		{"share 0", Budget{Epsilon: 1, Delta: 1e-6}, []StatSpec{{Statistic: StatN, Sensitivity: one}}},
		{"share > 1", Budget{Epsilon: 1, Delta: 1e-6, RunShare: 1.5}, []StatSpec{{Statistic: StatN, Sensitivity: one}}},
		{"NaN ε", Budget{Epsilon: math.NaN(), RunShare: 1}, []StatSpec{{Statistic: StatN, Sensitivity: one}}},
	}
	for _, tt := range tests {
		if _, err := Allocate(tt.b, tt.stats); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestSensitivities(t *testing.T) {
	i := big.NewInt
	tests := []struct {
		name      string
		got, want *big.Int
	}{
		{"sum [−5, 3]", SumSensitivity(i(-5), i(3)), i(5)},
		{"sum [0, 7]", SumSensitivity(i(0), i(7)), i(7)},
		{"square [−5, 3]", SquareSensitivity(i(-5), i(3)), i(25)},
		{"product [−2, 3]×[0, 10]", ProductSensitivity(i(-2), i(3), i(0), i(10)), i(30)},
	}
	for _, tt := range tests {
		if tt.got.Cmp(tt.want) != 0 {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	rho := GaussianRho(i(3), big.NewRat(9, 4)) // 9 / (2 · 9/4) = 2
	eps := LaplaceEpsilon(i(3), big.NewRat(3, 2))
	if rho.Cmp(big.NewRat(2, 1)) != 0 || eps.Cmp(big.NewRat(2, 1)) != 0 {
		t.Errorf("GaussianRho = %s, LaplaceEpsilon = %s; want 2, 2", rho, eps)
	}
}

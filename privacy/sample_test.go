package privacy

import (
	"fmt"
	"math"
	"math/big"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// Statistical checks use a fixed key and release, so they are deterministic;
// the tolerances are what a correct sampler passes with probability about
// 1 − 1e-5 for a fresh key (4.42 standard errors, two-sided).
const (
	zTol     = 4.42
	minP     = 1e-5
	numDraws = 100_000
)

func draws(t *testing.T, m Mechanism, n int) []int64 {
	t.Helper()
	s := NewStream(testKey(t), baseRelease(m))
	out := make([]int64, n)
	for i := range out {
		z, err := s.Sample(m)
		if err != nil {
			t.Fatal(err)
		}
		if !z.IsInt64() {
			t.Fatalf("draw %v does not fit int64", z)
		}
		out[i] = z.Int64()
	}
	return out
}

// pmf returns the exact pmf of m on the integers in float64, its
// normalisation summed as a series.
func pmf(m Mechanism) func(z int64) float64 {
	x, _ := m.Param.Float64()
	w := func(z float64) float64 { return math.Exp(-z * z / (2 * x)) }
	if m.Kind == KindDiscreteLaplace {
		w = func(z float64) float64 { return math.Exp(-math.Abs(z) / x) }
	}
	norm := w(0)
	for z := 1.0; ; z++ {
		v := 2 * w(z)
		if norm+v == norm {
			break
		}
		norm += v
	}
	return func(z int64) float64 { return w(float64(z)) / norm }
}

// chiSquare bins the draws by integer value, keeping values whose expected
// count is ≥ 20 and pooling the two tails, and returns the statistic, the
// degrees of freedom and the p-value.
func chiSquare(xs []int64, p func(int64) float64) (stat float64, df int, pval float64) {
	n := float64(len(xs))
	lo, hi := int64(0), int64(0)
	for p(lo-1)*n >= 20 {
		lo--
	}
	for p(hi+1)*n >= 20 {
		hi++
	}
	counts := make(map[int64]float64)
	var below, above float64
	for _, x := range xs {
		switch {
		case x < lo:
			below++
		case x > hi:
			above++
		default:
			counts[x]++
		}
	}
	central := 0.0
	for z := lo; z <= hi; z++ {
		e := p(z) * n
		central += p(z)
		stat += (counts[z] - e) * (counts[z] - e) / e
		df++
	}
	tail := (1 - central) / 2 * n // symmetric pmfs
	for _, o := range []float64{below, above} {
		if tail >= 5 {
			stat += (o - tail) * (o - tail) / tail
			df++
		} else if o > 3*tail+10 {
			stat += 1e9 // many draws where almost none belong
		}
	}
	df--
	return stat, df, distuv.ChiSquared{K: float64(df)}.Survival(stat)
}

func TestSamplerMomentsAndFit(t *testing.T) {
	r := ref(t)
	type tc struct {
		mech     Mechanism
		variance float64 // exact, from the reference script
		m4       float64
	}
	var cases []tc
	for _, g := range r.DGauss {
		if g.Sigma2 == "10000" || g.Sigma2 == "3/1000" {
			continue // checked by TestNoiseVariance only
		}
		cases = append(cases, tc{DiscreteGaussian(rat(t, g.Sigma2)), g.Variance, g.M4})
	}
	for _, l := range r.DLaplace {
		cases = append(cases, tc{DiscreteLaplace(rat(t, l.Scale)), l.Variance, l.M4})
	}
	for _, c := range cases {
		t.Run(c.mech.String(), func(t *testing.T) {
			xs := draws(t, c.mech, numDraws)
			n := float64(len(xs))
			var s1, s2 float64
			for _, x := range xs {
				f := float64(x)
				s1 += f
				s2 += f * f
			}
			mean, m2 := s1/n, s2/n
			if tol := zTol * math.Sqrt(c.variance/n); math.Abs(mean) > tol {
				t.Errorf("mean %g, want 0 ± %g", mean, tol)
			}
			// The second moment about the known mean 0 estimates the
			// variance with standard error √((μ4 − σ⁴)/n).
			if tol := zTol * math.Sqrt((c.m4-c.variance*c.variance)/n); math.Abs(m2-c.variance) > tol {
				t.Errorf("variance %g, want %g ± %g", m2, c.variance, tol)
			}
			stat, df, p := chiSquare(xs, pmf(c.mech))
			if p < minP {
				t.Errorf("χ² = %.1f on %d df, p = %.3g < %g", stat, df, p, minP)
			}
			// The same draws must be rejected against a 10% wider
			// distribution: the fit test has power.
			wider := Mechanism{Kind: c.mech.Kind, Param: new(big.Rat).Mul(c.mech.Param, big.NewRat(11, 10))}
			if _, _, pw := chiSquare(xs, pmf(wider)); pw >= minP {
				t.Errorf("χ² against %v: p = %.3g, want < %g (test has no power)", wider, pw, minP)
			}
		})
	}
}

// TestSamplerHugeParameters exercises the big.Int paths (t and the
// Bernoulli denominators beyond 64 bits) through the standardised moments.
func TestSamplerHugeParameters(t *testing.T) {
	tests := []struct {
		mech Mechanism
		// standardised second moment: E[Z²]/scale², and Var(Z²)/scale⁴
		scale2, m2, varZ2 float64
	}{
		// σ² ≈ 1.43e49: t = ⌊σ⌋+1 > 2⁶⁴. E[Z²] = σ², Var(Z²) = 2σ⁴.
		{DiscreteGaussian(big.NewRat(0, 1).SetFrac(
			new(big.Int).Add(new(big.Int).Exp(big.NewInt(10), big.NewInt(50), nil), bigOne), big.NewInt(7))), 1e50 / 7, 1, 2},
		// t ≈ 3.3e39: E[Z²] = 2t², Var(Z²) = 24t⁴ − 4t⁴ = 20t⁴.
		{DiscreteLaplace(new(big.Rat).SetFrac(new(big.Int).Exp(big.NewInt(10), big.NewInt(40), nil), big.NewInt(3))), 1e80 / 9, 2, 20},
	}
	for _, tt := range tests {
		t.Run(tt.mech.String(), func(t *testing.T) {
			s := NewStream(testKey(t), baseRelease(tt.mech))
			var s1, s2 float64
			for range numDraws {
				z, err := s.Sample(tt.mech)
				if err != nil {
					t.Fatal(err)
				}
				f, _ := new(big.Float).SetInt(z).Float64()
				f /= math.Sqrt(tt.scale2)
				s1 += f
				s2 += f * f
			}
			n := float64(numDraws)
			if tol := zTol * math.Sqrt(tt.m2/n); math.Abs(s1/n) > tol {
				t.Errorf("standardised mean %g, want 0 ± %g", s1/n, tol)
			}
			if tol := zTol * math.Sqrt(tt.varZ2/n); math.Abs(s2/n-tt.m2) > tol {
				t.Errorf("standardised E[Z²] %g, want %g ± %g", s2/n, tt.m2, tol)
			}
		})
	}
}

func TestBernoulliExp(t *testing.T) {
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
	tests := []*big.Rat{
		big.NewRat(0, 1), big.NewRat(1, 3), big.NewRat(1, 1), big.NewRat(5, 2), big.NewRat(7, 1),
		new(big.Rat).SetFrac(huge, new(big.Int).Add(huge, bigOne)), // ≈ 1, big denominators
	}
	for _, g := range tests {
		t.Run(g.String(), func(t *testing.T) {
			s := NewStream(testKey(t), baseRelease(DiscreteGaussian(big.NewRat(1, 1))))
			gf, _ := g.Float64()
			p := math.Exp(-gf)
			hits := 0
			for range numDraws {
				ok, err := s.BernoulliExp(g)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					hits++
				}
			}
			got := float64(hits) / numDraws
			tol := zTol * math.Sqrt(p*(1-p)/numDraws)
			if math.Abs(got-p) > tol || (p == 1 && hits != numDraws) {
				t.Errorf("frequency %g, want exp(−%s) = %g ± %g", got, g, p, tol)
			}
		})
	}
}

func TestUniform(t *testing.T) {
	// For n = k·2^s, u >> s must be uniform on [0, k): a χ² test over k
	// cells covers both the uint64 path and the big.Int path.
	tests := []struct {
		k     int64
		shift uint
	}{{3, 0}, {5, 0}, {7, 0}, {256, 0}, {257, 0}, {3, 6}, {3, 62}, {3, 70}, {5, 100}, {6, 61}}
	for _, tt := range tests {
		n := new(big.Int).Lsh(big.NewInt(tt.k), tt.shift)
		t.Run(n.String(), func(t *testing.T) {
			s := NewStream(testKey(t), baseRelease(DiscreteGaussian(big.NewRat(1, 1))))
			counts := make([]float64, tt.k)
			for range numDraws {
				u, err := s.Uniform(n)
				if err != nil {
					t.Fatal(err)
				}
				if u.Sign() < 0 || u.Cmp(n) >= 0 {
					t.Fatalf("draw %v outside [0, %v)", u, n)
				}
				counts[new(big.Int).Rsh(u, tt.shift).Int64()]++
			}
			e := float64(numDraws) / float64(tt.k)
			stat := 0.0
			for _, c := range counts {
				stat += (c - e) * (c - e) / e
			}
			if p := (distuv.ChiSquared{K: float64(tt.k - 1)}).Survival(stat); p < minP {
				t.Errorf("χ² = %.1f on %d df, p = %.3g", stat, tt.k-1, p)
			}
		})
	}
}

func TestSamplerErrors(t *testing.T) {
	s := NewStream(testKey(t), baseRelease(DiscreteGaussian(big.NewRat(1, 1))))
	if _, err := s.DiscreteGaussian(big.NewRat(0, 1)); err == nil {
		t.Error("σ² = 0 accepted")
	}
	if _, err := s.DiscreteLaplace(big.NewRat(-1, 2)); err == nil {
		t.Error("negative scale accepted")
	}
	if _, err := s.BernoulliExp(big.NewRat(-1, 2)); err == nil {
		t.Error("negative γ accepted")
	}
	if _, err := s.Uniform(big.NewInt(0)); err == nil {
		t.Error("uniform on [0, 0) accepted")
	}
	if _, err := s.Sample(Mechanism{Kind: "gaussian", Param: big.NewRat(1, 1)}); err == nil {
		t.Error("unknown mechanism accepted")
	}
}

// TestSamplerPinned pins the first draws of fixed streams. A change here
// changes every released number for a given key: it must come with a new
// SamplerVersion (which changes the streams, so these values must then be
// regenerated and reviewed).
func TestSamplerPinned(t *testing.T) {
	tests := []struct {
		mech Mechanism
		want string
	}{
		{DiscreteGaussian(big.NewRat(9, 4)), "[-4 -1 -2 2 1 2 -3 -2 2 1 -1 0]"},
		{DiscreteLaplace(big.NewRat(5, 1)), "[-5 -12 -2 3 4 7 11 -10 -10 -2 18 1]"},
		{DiscreteGaussian(rat(t, "1000000000000000000001/3")), "[-17589680777 -4021755813 1741933466 13756947481 7042256127 168626365 4021070142 -1258462690 -2152333218 508723273 3110818984 1995597391]"},
	}
	for _, tt := range tests {
		t.Run(tt.mech.String(), func(t *testing.T) {
			got := fmt.Sprint(draws(t, tt.mech, 12))
			if got != tt.want {
				t.Errorf("draws = %s\nwant    %s", got, tt.want)
			}
		})
	}
}

func TestNoiseVariance(t *testing.T) {
	r := ref(t)
	for _, g := range r.DGauss {
		m := DiscreteGaussian(rat(t, g.Sigma2))
		checkRel(t, m.String()+" variance", m.Variance(), g.Variance, 1e-12)
		if s2, _ := m.Param.Float64(); m.Variance() > s2 {
			t.Errorf("%v: variance %g exceeds σ² %g", m, m.Variance(), s2)
		}
	}
	for _, l := range r.DLaplace {
		m := DiscreteLaplace(rat(t, l.Scale))
		checkRel(t, m.String()+" variance", m.Variance(), l.Variance, 1e-12)
	}
	if v := (Mechanism{}).Variance(); !math.IsNaN(v) {
		t.Errorf("invalid mechanism variance = %g, want NaN", v)
	}
}

func checkRel(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol*math.Abs(want) {
		t.Errorf("%s = %.17g, want %.17g (relative tolerance %g)", what, got, want, tol)
	}
}

package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// privateSimCase is one private-mean setting: units per arm, the standard
// deviations of the Gaussian noise on Σx, Σx² and the count (metric
// units), the clamp's upper bound and the unit-level distribution.
type privateSimCase struct {
	name             string
	n                int
	sumSD, sqSD, nSD float64
	hi               float64
	draw             func(r *rand.Rand) float64
	mean             float64 // population mean (both arms: the truth of Δ is 0)
}

// revenueUnit is a zero-inflated sum of lognormal purchases, like the
// calibration suite's revenue metric (mean 0.15·1.25·e^{3.72}).
func revenueUnit(r *rand.Rand) float64 {
	if r.Float64() >= 0.15 {
		return 0
	}
	s := 0.0
	for range 1 + int(poisson(r, 0.25)) {
		s += math.Exp(3.4 + 0.8*r.NormFloat64())
	}
	return math.Min(s, 1000)
}

// pageViewUnit is an overdispersed count: Poisson with a Gamma(2, 2) rate.
func pageViewUnit(r *rand.Rand) float64 {
	lam := 2 * (r.ExpFloat64() + r.ExpFloat64())
	if lam >= 30 {
		return math.Min(math.Max(0, math.Round(lam+math.Sqrt(lam)*r.NormFloat64())), 60)
	}
	return math.Min(poisson(r, lam), 60)
}

// privateArm draws one arm's units, adds noise to Σx and Σx² and builds
// the Arm as the pipeline does for a comparison (pipeline/analysis/statistics.go
// armOf): the unclamped noisy mean and the raw noisy variance (Compare
// truncates it at zero), the noise variance of the mean, and the noise
// variance of s².
func privateArm(r *rand.Rand, c privateSimCase) Arm {
	n := float64(c.n)
	var s1, s2 float64
	for range c.n {
		x := c.draw(r)
		s1 += x
		s2 += x * x
	}
	s1 += c.sumSD * r.NormFloat64()
	s2 += c.sqSD * r.NormFloat64()
	mean := s1 / n
	v := (s2 - s1*s1/n) / (n - 1)
	return Arm{N: n, Mean: mean, Var: v,
		NoiseVarMean: c.sumSD*c.sumSD/(n*n) + mean*mean*c.nSD*c.nSD/(n*n),
		MomentNoise:  MomentNoise{Var: (c.sqSD*c.sqSD + 4*mean*mean*c.sumSD*c.sumSD) / ((n - 1) * (n - 1))}}
}

// TestPrivateMeanCoverage: private intervals cover a zero difference
// 95% of the time, neither less (a variance estimate treated as exact)
// nor more (the Satterthwaite degrees of freedom that counted the noise in
// s², which gave 98–100% in the calibration suite's private cells). The
// noise levels are the suite's (ε = 8, revenue clamped at 1000, page views
// at 60; the "(all)" cases sum six cohorts' noise), where the noise on Σx²
// exceeds the variance it estimates several times over, plus a case with a
// quarter of that noise, where the sampling variance and its noise are
// comparable. 3000 replicates each: a Monte Carlo standard error of 0.4
// points; the band [93%, 97.5%] and one-sided misses ≤ 3.5% are about four
// standard errors wide. Measured (seed below): 94.6–97.1%; with the Satterthwaite degrees of
// freedom of before, 98.5–99.9% in five of the nine (fails).
func TestPrivateMeanCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("3000 replicates of 9 settings")
	}
	revMean := 0.15 * 1.25 * math.Exp(3.4+0.32)
	var cases []privateSimCase
	for _, n := range []int{500, 1800, 5000} {
		k := 1.0
		if n == 5000 {
			k = math.Sqrt(6)
		}
		cases = append(cases,
			privateSimCase{fmt.Sprintf("revenue n=%d", n), n, 1957 * k, 3.91e6 * k, 14 * k, 1000, revenueUnit, revMean},
			privateSimCase{fmt.Sprintf("page views n=%d", n), n, 117.9 * k, 14117 * k, 14 * k, 60, pageViewUnit, 4},
			privateSimCase{fmt.Sprintf("revenue, quarter noise n=%d", n), n, 1957 * k / 4, 3.91e6 * k / 4, 14 * k, 1000, revenueUnit, revMean},
		)
	}
	const reps = 3000
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(20261204, uint64(i)))
			var cov, below, above int
			for range reps {
				cmp := Compare(privateArm(r, c), privateArm(r, c), Mean, Options{})
				switch {
				case !cmp.Valid():
					t.Fatalf("status %q: every private cell must have an interval", cmp.Status)
				case cmp.DiffHigh < 0:
					below++
				case cmp.DiffLow > 0:
					above++
				default:
					cov++
				}
			}
			rate := float64(cov) / reps
			if rate < 0.93 || rate > 0.975 || float64(below)/reps > 0.035 || float64(above)/reps > 0.035 {
				t.Errorf("coverage %.4f (below %d, above %d of %d), want 0.95 within [0.93, 0.975] and each side ≤ 0.035", rate, below, above, reps)
			}
			t.Logf("coverage %.4f, below %.4f, above %.4f", rate, float64(below)/reps, float64(above)/reps)
		})
	}
}

// privateRatioArm draws one arm of a revenue-per-session ratio (revenue
// as revenueUnit, sessions Poisson(1.5) clamped at 40), adds Gaussian
// noise of the given standard deviations to Σx, Σx², Σy, Σy², Σxy, and
// builds the Arm as the pipeline does for a comparison (armOf): raw noisy
// means and moments. With clamp set it builds it the way the pipeline did
// before: means clamped into their bounds, variances into [0, (hi−lo)²/4].
func privateRatioArm(r *rand.Rand, n int, sd [5]float64, clamp bool) Arm {
	var s [5]float64
	for range n {
		x := revenueUnit(r)
		y := math.Min(poisson(r, 1.5), 40)
		s[0], s[1], s[2], s[3], s[4] = s[0]+x, s[1]+x*x, s[2]+y, s[3]+y*y, s[4]+x*y
	}
	for i := range s {
		s[i] += sd[i] * r.NormFloat64()
	}
	fn := float64(n)
	a := Arm{N: fn, Mean: s[0] / fn, DenMean: s[2] / fn,
		Var: (s[1] - s[0]*s[0]/fn) / (fn - 1), DenVar: (s[3] - s[2]*s[2]/fn) / (fn - 1), CovXY: (s[4] - s[0]*s[2]/fn) / (fn - 1),
		NoiseVarMean: sd[0] * sd[0] / (fn * fn), NoiseVarDenMean: sd[2] * sd[2] / (fn * fn)}
	d2 := (fn - 1) * (fn - 1)
	a.MomentNoise = MomentNoise{
		Var:    (sd[1]*sd[1] + 4*a.Mean*a.Mean*sd[0]*sd[0]) / d2,
		DenVar: (sd[3]*sd[3] + 4*a.DenMean*a.DenMean*sd[2]*sd[2]) / d2,
		CovXY:  (sd[4]*sd[4] + a.DenMean*a.DenMean*sd[0]*sd[0] + a.Mean*a.Mean*sd[2]*sd[2]) / d2,
	}
	if clamp {
		a.Mean, a.DenMean = math.Min(math.Max(a.Mean, 0), 1000), math.Min(math.Max(a.DenMean, 0), 40)
		a.Var, a.DenVar = math.Min(math.Max(a.Var, 0), 1000*1000/4), math.Min(math.Max(a.DenVar, 0), 40*40/4)
	}
	return a
}

// TestPrivateRatioCoverage: private ratio intervals built from the raw
// noisy moments cover a zero difference 95% of the time at the
// calibration suite's noise (ε = 8: σ = Δ·3.914/√weight, revenue clamped
// at 1000, sessions at 40) in its collapsed parents (500 units an arm)
// and leaves (1800). Clamping the noisy means and variances first, as the
// pipeline did, over-covers there: the clamped means err less than the
// noise variance the interval counts, and each variance clamped at zero
// adds its negative noise back. 4000 replicates: a Monte Carlo standard
// error of 0.35 points. Measured (seed below): raw 96.7% (n = 500) and
// 95.5% (n = 1800); clamped 97.8% and 96.3%, so the parent case fails on
// the old construction. The raw construction's remaining excess at
// n = 500 is the pivot's plug-in of a truncated Ŝ (see noisyPivot).
func TestPrivateRatioCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("4000 replicates of 2 settings")
	}
	sd := [5]float64{1957, 3.914e6, 78.28, 6262, 156560}
	const reps = 4000
	for i, n := range []int{500, 1800} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			var cov, below, above, covClamped int
			// Two generators in lockstep: the same draws feed both
			// constructions.
			r := rand.New(rand.NewPCG(20261205, uint64(i)))
			r2 := rand.New(rand.NewPCG(20261205, uint64(i)))
			for range reps {
				c, tr := privateRatioArm(r, n, sd, false), privateRatioArm(r, n, sd, false)
				cc, tc := privateRatioArm(r2, n, sd, true), privateRatioArm(r2, n, sd, true)
				cmp := Compare(c, tr, Ratio, Options{})
				if !cmp.Valid() {
					t.Fatalf("status %q: every private cell must have an interval", cmp.Status)
				}
				switch {
				case cmp.DiffHigh < 0:
					below++
				case cmp.DiffLow > 0:
					above++
				default:
					cov++
				}
				if old := Compare(cc, tc, Ratio, Options{}); old.Valid() && old.DiffLow <= 0 && old.DiffHigh >= 0 {
					covClamped++
				}
			}
			rate := float64(cov) / reps
			if rate < 0.93 || rate > 0.975 || float64(below)/reps > 0.035 || float64(above)/reps > 0.035 {
				t.Errorf("coverage %.4f (below %d, above %d of %d), want 0.95 within [0.93, 0.975] and each side ≤ 0.035", rate, below, above, reps)
			}
			t.Logf("coverage %.4f (below %.4f, above %.4f); with clamped means and variances %.4f", rate, float64(below)/reps, float64(above)/reps, float64(covClamped)/reps)
		})
	}
}

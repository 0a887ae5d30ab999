package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The simulation tests draw unit-level data with explicit seeds, reduce it
// to the moments the pipeline would compute, and check the calibration of
// Compare. Each is deterministic; the bands are wide enough (about four
// Monte Carlo standard errors) that a correct estimator passes for any
// seed, and narrow enough that a wrong variance (for example dropping the
// ratio covariance term, or using z instead of a Welch interval for small
// arms) fails.

// unitData is one arm's unit-level values: metric x, ratio denominator y,
// covariate c.
type unitData struct{ x, y, c []float64 }

func (u *unitData) reset() { u.x, u.y, u.c = u.x[:0], u.y[:0], u.c[:0] }

// moments reduces unit data to an Arm (two-pass, sample (co)variances).
func (u *unitData) moments(ratio, covariate bool) Arm {
	n := float64(len(u.x))
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / n
	}
	cov := func(a, b []float64, ma, mb float64) float64 {
		s := 0.0
		for i := range a {
			s += (a[i] - ma) * (b[i] - mb)
		}
		return s / (n - 1)
	}
	a := Arm{N: n, Mean: mean(u.x)}
	a.Var = cov(u.x, u.x, a.Mean, a.Mean)
	if ratio {
		a.DenMean = mean(u.y)
		a.DenVar = cov(u.y, u.y, a.DenMean, a.DenMean)
		a.CovXY = cov(u.x, u.y, a.Mean, a.DenMean)
	}
	if covariate {
		a.HasCovariate = true
		a.CovMean = mean(u.c)
		a.CovVar = cov(u.c, u.c, a.CovMean, a.CovMean)
		a.CovXC = cov(u.x, u.c, a.Mean, a.CovMean)
		if ratio {
			a.CovYC = cov(u.y, u.c, a.DenMean, a.CovMean)
		}
	}
	return a
}

// poisson draws a Poisson(lambda) variate by Knuth's method (small lambda).
func poisson(rng *rand.Rand, lambda float64) float64 {
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func bernoulli(rng *rand.Rand, p float64) float64 {
	if rng.Float64() < p {
		return 1
	}
	return 0
}

// scenario draws one arm of n units with effect parameter theta.
type scenario struct {
	name         string
	kind         Kind
	n            int
	control      float64 // parameter of the control arm
	treatment    float64 // parameter of the treatment arm
	draw         func(rng *rand.Rand, u *unitData, n int, param float64)
	truth        func(param float64) float64 // the arm's true estimand
	wantCoverage bool
}

var (
	// Exponential revenue-like values: skewed, mean = param.
	drawExp = func(rng *rand.Rand, u *unitData, n int, mu float64) {
		for range n {
			u.x = append(u.x, mu*rng.ExpFloat64())
		}
	}
	drawBernoulli = func(rng *rand.Rand, u *unitData, n int, p float64) {
		for range n {
			u.x = append(u.x, bernoulli(rng, p))
		}
	}
	// Sessions y = 1 + Poisson(2), clicks x ~ Binomial(y, ctr): Σx/Σy → ctr.
	drawClicks = func(rng *rand.Rand, u *unitData, n int, ctr float64) {
		for range n {
			y := 1 + poisson(rng, 2)
			x := 0.0
			for range int(y) {
				x += bernoulli(rng, ctr)
			}
			u.x, u.y = append(u.x, x), append(u.y, y)
		}
	}
	identity = func(p float64) float64 { return p }
)

func TestCoverageSimulation(t *testing.T) {
	const reps = 2000
	scenarios := []scenario{
		{"mean A/A", Mean, 1000, 10, 10, drawExp, identity, true},
		{"mean A/B", Mean, 1000, 10, 10.5, drawExp, identity, true},
		{"mean A/B small unequal arms", Mean, 30, 10, 14, drawExp, identity, true},
		{"proportion A/A", Proportion, 2000, 0.1, 0.1, drawBernoulli, identity, true},
		{"proportion A/B", Proportion, 2000, 0.1, 0.12, drawBernoulli, identity, true},
		{"ratio A/A", Ratio, 1000, 0.2, 0.2, drawClicks, identity, true},
		{"ratio A/B", Ratio, 1000, 0.2, 0.22, drawClicks, identity, true},
	}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(2026, uint64(i)))
			var uc, ut unitData
			var covered, relCovered, rejected int
			wantDiff := sc.truth(sc.treatment) - sc.truth(sc.control)
			wantRel := sc.truth(sc.treatment)/sc.truth(sc.control) - 1
			for range reps {
				uc.reset()
				ut.reset()
				sc.draw(rng, &uc, sc.n, sc.control)
				// Unequal arms: the treatment gets 10% more units.
				sc.draw(rng, &ut, sc.n+sc.n/10, sc.treatment)
				c := Compare(uc.moments(sc.kind == Ratio, false), ut.moments(sc.kind == Ratio, false), sc.kind, Options{})
				if c.Status != StatusOK {
					t.Fatalf("status %q", c.Status)
				}
				if c.DiffLow <= wantDiff && wantDiff <= c.DiffHigh {
					covered++
				}
				if c.RelLow <= wantRel && wantRel <= c.RelHigh {
					relCovered++
				}
				if c.PValue < 0.05 {
					rejected++
				}
			}
			cov, relCov := float64(covered)/reps, float64(relCovered)/reps
			t.Logf("coverage %.4f, relative %.4f, rejection rate %.4f", cov, relCov, float64(rejected)/reps)
			if cov < 0.93 || cov > 0.97 {
				t.Errorf("95%% interval covers the true difference in %.4f of %d runs, want [0.93, 0.97]", cov, reps)
			}
			// The relative interval is a normal (delta-method) interval, so it
			// is held to the band only with large arms.
			if sc.n >= 1000 && (relCov < 0.93 || relCov > 0.97) {
				t.Errorf("95%% relative interval covers the true lift in %.4f of %d runs, want [0.93, 0.97]", relCov, reps)
			}
			if wantDiff == 0 {
				if fpr := float64(rejected) / reps; fpr < 0.03 || fpr > 0.07 {
					t.Errorf("A/A false-positive rate %.4f, want [0.03, 0.07]", fpr)
				}
			}
		})
	}
}

// TestSequentialPeekingSimulation looks at an A/A test after each of 30
// simulated days. Reading the fixed-horizon p-value every day inflates the
// false-positive rate well above alpha; the always-valid p-value keeps it
// below alpha. Under an A/B effect the confidence sequence covers the true
// effect at all 30 looks at once in at least 1-alpha of the runs.
func TestSequentialPeekingSimulation(t *testing.T) {
	const (
		reps    = 2000
		days    = 30
		perDay  = 100 // units per arm per day
		alpha   = 0.05
		nStar   = 2 * days * perDay
		muC     = 10.0
		effectB = 0.5
	)
	for _, tc := range []struct {
		name   string
		effect float64
	}{{"A/A", 0}, {"A/B", effectB}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(30, uint64(tc.effect*1000)))
			seq := Options{Alpha: alpha, Sequential: &Sequential{NStar: nStar}}
			fixed := Options{Alpha: alpha}
			var everSeq, everFixed, everMiss int
			for range reps {
				// Running sums of x and x² per arm.
				var nc, sc, qc, nt, st, qt float64
				rejSeq, rejFixed, miss := false, false, false
				for range days {
					for range perDay {
						x := muC * rng.ExpFloat64()
						nc, sc, qc = nc+1, sc+x, qc+x*x
						y := (muC + tc.effect) * rng.ExpFloat64()
						nt, st, qt = nt+1, st+y, qt+y*y
					}
					c := Arm{N: nc, Mean: sc / nc, Var: (qc - sc*sc/nc) / (nc - 1)}
					tr := Arm{N: nt, Mean: st / nt, Var: (qt - st*st/nt) / (nt - 1)}
					s := Compare(c, tr, Mean, seq)
					f := Compare(c, tr, Mean, fixed)
					if s.Status != StatusOK || f.Status != StatusOK {
						t.Fatalf("status %q %q", s.Status, f.Status)
					}
					// The always-valid p-value and interval agree.
					if (s.PValue <= alpha) != (s.DiffLow > 0 || s.DiffHigh < 0) {
						t.Fatalf("sequential p %v disagrees with interval [%v, %v]", s.PValue, s.DiffLow, s.DiffHigh)
					}
					rejSeq = rejSeq || s.PValue <= alpha
					rejFixed = rejFixed || f.PValue <= alpha
					miss = miss || s.DiffLow > tc.effect || s.DiffHigh < tc.effect
				}
				if rejSeq {
					everSeq++
				}
				if rejFixed {
					everFixed++
				}
				if miss {
					everMiss++
				}
			}
			seqRate, fixedRate, missRate := float64(everSeq)/reps, float64(everFixed)/reps, float64(everMiss)/reps
			t.Logf("rejected at some look: sequential %.4f, fixed-horizon %.4f; sequence missed the effect: %.4f", seqRate, fixedRate, missRate)
			if missRate > alpha {
				t.Errorf("confidence sequence missed the true effect at some look in %.4f of runs, want ≤ %v", missRate, alpha)
			}
			if tc.effect == 0 {
				if seqRate > alpha {
					t.Errorf("sequential false-positive rate with %d looks = %.4f, want ≤ %v", days, seqRate, alpha)
				}
				if fixedRate < 2*alpha {
					t.Errorf("naive peeking false-positive rate = %.4f, want > %v: the simulation no longer shows the problem", fixedRate, 2*alpha)
				}
			}
		})
	}
}

// TestCUPEDSimulation checks that CUPED narrows the interval on correlated
// data, stays unbiased and keeps 95% coverage, for each metric kind.
func TestCUPEDSimulation(t *testing.T) {
	const reps = 2000
	type draw func(rng *rand.Rand, u *unitData, n int, effect float64)
	// Mean: pre-period spend c ~ Gamma-like, in-experiment x = 2 + 0.8c + noise.
	drawMean := func(rng *rand.Rand, u *unitData, n int, effect float64) {
		for range n {
			c := 5 * (rng.ExpFloat64() + rng.ExpFloat64())
			u.c = append(u.c, c)
			u.x = append(u.x, 2+effect+0.8*c+4*rng.NormFloat64())
		}
	}
	// Proportion: converting before makes converting again likelier.
	drawProp := func(rng *rand.Rand, u *unitData, n int, effect float64) {
		for range n {
			c := bernoulli(rng, 0.3)
			u.c = append(u.c, c)
			u.x = append(u.x, bernoulli(rng, 0.1+effect+0.4*c))
		}
	}
	// Ratio: each unit has a persistent click-through propensity p that
	// drives both its pre-period clicks c (about 30 sessions' worth, drawn
	// from the normal approximation) and its in-experiment clicks x over
	// y = 1+Poisson(6) sessions, so Σx/Σy → E[p] + effect.
	drawRatio := func(rng *rand.Rand, u *unitData, n int, effect float64) {
		for range n {
			p := 0.05 + 0.5*rng.Float64()
			c := 30*p + math.Sqrt(30*p*(1-p))*rng.NormFloat64()
			y, x := 1+poisson(rng, 6), 0.0
			for range int(y) {
				x += bernoulli(rng, p+effect)
			}
			u.c = append(u.c, c)
			u.x, u.y = append(u.x, x), append(u.y, y)
		}
	}
	for i, tc := range []struct {
		name     string
		kind     Kind
		n        int
		effect   float64
		truth    float64 // true treatment − control difference
		draw     draw
		maxRatio float64 // mean CUPED width / unadjusted width must be below this
	}{
		{"mean", Mean, 500, 0.5, 0.5, drawMean, 0.85},
		{"proportion", Proportion, 2000, 0.02, 0.02, drawProp, 0.97},
		{"ratio", Ratio, 800, 0.02, 0.02, drawRatio, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(77, uint64(i)))
			truth := tc.truth
			var uc, ut unitData
			var sumEst, sumEst2, sumPlain, widthCUPED, widthPlain float64
			covered, plainCovered := 0, 0
			for range reps {
				uc.reset()
				ut.reset()
				tc.draw(rng, &uc, tc.n, 0)
				tc.draw(rng, &ut, tc.n, tc.effect)
				arms := []Arm{uc.moments(tc.kind == Ratio, true), ut.moments(tc.kind == Ratio, true)}
				cu, err := NewCUPED(arms, tc.kind)
				if err != nil {
					t.Fatal(err)
				}
				adj := Compare(arms[0], arms[1], tc.kind, Options{CUPED: &cu})
				plain := Compare(arms[0], arms[1], tc.kind, Options{})
				if adj.Status != StatusOK || !adj.CUPEDApplied || plain.Status != StatusOK {
					t.Fatalf("status %q / %q", adj.Status, plain.Status)
				}
				sumEst += adj.Diff
				sumEst2 += adj.Diff * adj.Diff
				sumPlain += plain.Diff
				widthCUPED += adj.DiffHigh - adj.DiffLow
				widthPlain += plain.DiffHigh - plain.DiffLow
				if adj.DiffLow <= truth && truth <= adj.DiffHigh {
					covered++
				}
				if plain.DiffLow <= truth && truth <= plain.DiffHigh {
					plainCovered++
				}
			}
			mean := sumEst / reps
			sd := math.Sqrt((sumEst2 - sumEst*sumEst/reps) / (reps - 1))
			mcse := sd / math.Sqrt(reps)
			ratio := widthCUPED / widthPlain
			cov := float64(covered) / reps
			t.Logf("truth %.5g: mean CUPED estimate %.5g (MC s.e. %.2g), unadjusted %.5g; width ratio %.3f; coverage %.4f (unadjusted %.4f)",
				truth, mean, mcse, sumPlain/reps, ratio, cov, float64(plainCovered)/reps)
			// Unbiased: the average estimate is within 4 Monte Carlo standard
			// errors of the truth.
			if math.Abs(mean-truth) > 4*mcse {
				t.Errorf("mean CUPED estimate %.6g, truth %.6g: bias %.3g exceeds 4 MC s.e. (%.3g)", mean, truth, mean-truth, 4*mcse)
			}
			if ratio >= tc.maxRatio {
				t.Errorf("CUPED interval width is %.3f of the unadjusted width, want < %v", ratio, tc.maxRatio)
			}
			if cov < 0.93 || cov > 0.97 {
				t.Errorf("CUPED 95%% interval coverage %.4f, want [0.93, 0.97]", cov)
			}
		})
	}
}

// TestThreeArmComparisons compares two treatments with one control, with
// a CUPED θ pooled over the three arms, and checks coverage of both
// comparisons.
func TestThreeArmComparisons(t *testing.T) {
	const reps = 1500
	rng := rand.New(rand.NewPCG(3, 3))
	effects := []float64{0, 0.3, -0.4}
	var u [3]unitData
	covered := make([]int, 3)
	for range reps {
		arms := make([]Arm, 3)
		for i, e := range effects {
			u[i].reset()
			for range 400 {
				c := 3 * rng.NormFloat64()
				u[i].c = append(u[i].c, c)
				u[i].x = append(u[i].x, 5+e+0.6*c+2*rng.NormFloat64())
			}
			arms[i] = u[i].moments(false, true)
		}
		cu, err := NewCUPED(arms, Mean)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < 3; i++ {
			c := Compare(arms[0], arms[i], Mean, Options{CUPED: &cu})
			if c.Status != StatusOK {
				t.Fatalf("arm %d: %s", i, c.Status)
			}
			if c.DiffLow <= effects[i] && effects[i] <= c.DiffHigh {
				covered[i]++
			}
		}
	}
	for i := 1; i < 3; i++ {
		if cov := float64(covered[i]) / reps; cov < 0.93 || cov > 0.97 {
			t.Errorf("treatment %d: coverage %.4f, want [0.93, 0.97]", i, cov)
		}
	}
}

func BenchmarkCompare(b *testing.B) {
	control := Arm{N: 52000, Mean: 3.2, Var: 14, DenMean: 2.1, DenVar: 3, CovXY: 4.1,
		HasCovariate: true, CovMean: 3.1, CovVar: 13, CovXC: 9, CovYC: 2}
	treatment := Arm{N: 51000, Mean: 3.3, Var: 15, DenMean: 2.1, DenVar: 3.1, CovXY: 4.3,
		HasCovariate: true, CovMean: 3.1, CovVar: 13.2, CovXC: 9.1, CovYC: 2.1}
	cu, err := NewCUPED([]Arm{control, treatment}, Ratio)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		kind Kind
		opts Options
	}{
		{"mean", Mean, Options{}},
		{"ratio", Ratio, Options{}},
		{"ratio_cuped", Ratio, Options{CUPED: &cu}},
		{"mean_sequential", Mean, Options{Sequential: &Sequential{NStar: 200000}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := Compare(control, treatment, bc.kind, bc.opts)
				if c.Status != StatusOK {
					b.Fatal(c.Status)
				}
			}
		})
	}
}

func BenchmarkHolm(b *testing.B) {
	p := make([]float64, 40)
	for i := range p {
		p[i] = float64(i) / 40
	}
	b.ReportAllocs()
	for b.Loop() {
		Holm(p)
	}
}

func ExampleCompare() {
	control := Arm{N: 10000, Mean: 0.100, Var: 0.100 * 0.900 * 10000 / 9999}
	treatment := Arm{N: 10000, Mean: 0.110, Var: 0.110 * 0.890 * 10000 / 9999}
	c := Compare(control, treatment, Proportion, Options{})
	fmt.Printf("%s: diff %.4f [%.4f, %.4f], lift %.1f%%, p %.4f\n",
		c.Status, c.Diff, c.DiffLow, c.DiffHigh, 100*c.RelDiff, c.PValue)
	// Output: ok: diff 0.0100 [0.0015, 0.0185], lift 10.0%, p 0.0211
}

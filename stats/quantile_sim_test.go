package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The quantile coverage simulations draw unit-level data with explicit
// seeds, run the comparison the pipeline would run, and count how often
// the 95% interval of the difference covers the planted difference of the
// population quantiles. With R replications a correct 95% interval's
// coverage is Binomial(R, 0.95)/R, standard deviation √(0.95·0.05/R); the
// band is ±4 of those (for R = 2000: [0.9305, 0.9695]), so a correct
// method passes for any seed while a variance 20% off (coverage ≈ 0.91 or
// 0.975) fails. Each scenario also checks that the obvious wrong variance
// fails: the event level without the cluster adjustment, the private grid
// without the count noise.

const quantileSimReps = 2000

// coverageBand returns the ±4 Monte Carlo standard error band around 0.95.
func coverageBand(reps int) (lo, hi float64) {
	sd := math.Sqrt(0.95 * 0.05 / float64(reps))
	return 0.95 - 4*sd, 0.95 + 4*sd
}

func checkCoverage(t *testing.T, name string, covered, reps int) {
	t.Helper()
	lo, hi := coverageBand(reps)
	rate := float64(covered) / float64(reps)
	t.Logf("%s: coverage %.4f (%d/%d), band [%.4f, %.4f]", name, rate, covered, reps, lo, hi)
	if rate < lo || rate > hi {
		t.Errorf("%s: coverage %.4f outside [%.4f, %.4f]", name, rate, lo, hi)
	}
}

// fixedQuantile is the definition-1 quantile of V = round(10^d·X) for a
// continuous X with quantile function xq: P(V ≤ v) = F((v+½)/10^d), so
// the smallest v with P(V ≤ v) ≥ ν is ⌈10^d·xq(ν) − ½⌉, as a float.
func fixedQuantile(xq float64, d int) float64 {
	s := math.Pow10(d)
	return math.Ceil(s*xq-0.5) / s
}

func toFixed(x float64, d int) int64 { return int64(math.Round(x * math.Pow10(d))) }

func TestQuantileCoverageSimulation(t *testing.T) {
	t.Run("unit level", func(t *testing.T) {
		t.Parallel()
		for _, sc := range []struct {
			name   string
			p      float64
			n      int
			draw   func(rng *rand.Rand, theta float64) float64
			xq     func(theta, p float64) float64 // population quantile of X
			c, trt float64
		}{
			{"median of exponential spend", 0.5, 1000,
				func(rng *rand.Rand, mu float64) float64 { return mu * rng.ExpFloat64() },
				func(mu, p float64) float64 { return -mu * math.Log(1-p) }, 10, 11},
			{"p90 of lognormal latency", 0.9, 800,
				func(rng *rand.Rand, mu float64) float64 { return math.Exp(mu + 0.6*rng.NormFloat64()) },
				func(mu, p float64) float64 { return math.Exp(mu + 0.6*normalQuantile(p)) }, 5, 5.05},
			{"p99 of exponential, 2000 units", 0.99, 2000,
				func(rng *rand.Rand, mu float64) float64 { return mu * rng.ExpFloat64() },
				func(mu, p float64) float64 { return -mu * math.Log(1-p) }, 10, 10},
		} {
			const d = 3
			truthC, truthT := fixedQuantile(sc.xq(sc.c, sc.p), d), fixedQuantile(sc.xq(sc.trt, sc.p), d)
			diff, rel := truthT-truthC, (truthT-truthC)/math.Abs(truthC)
			rng := rand.New(rand.NewPCG(20261230, 1))
			xs := make([]int64, sc.n)
			arm := func(theta float64) Histogram {
				for i := range xs {
					xs[i] = toFixed(sc.draw(rng, theta), d)
				}
				h, _ := HistogramOf(d, xs)
				return h
			}
			var covered, relCovered, fieller int
			for range quantileSimReps {
				r, err := CompareQuantiles(arm(sc.c), arm(sc.trt), sc.p, QuantileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if r.DiffLow <= diff && diff <= r.DiffHigh {
					covered++
				}
				if r.RelLow <= rel && rel <= r.RelHigh {
					relCovered++
				}
				if r.FiellerShape == SetBounded && r.FiellerLow <= rel && rel <= r.FiellerHigh {
					fieller++
				}
			}
			checkCoverage(t, sc.name+", difference", covered, quantileSimReps)
			checkCoverage(t, sc.name+", relative (delta method)", relCovered, quantileSimReps)
			checkCoverage(t, sc.name+", relative (Fieller)", fieller, quantileSimReps)
		}
	})

	t.Run("event level", func(t *testing.T) {
		t.Parallel()
		// Sessions within users: unit effect u ~ N(μ, 0.8²), events
		// exp(u + e), e ~ N(0, 0.3²), 1 + Poisson(4) events per unit
		// independent of u, so the pooled events have the lognormal CDF
		// Φ((ln y − μ)/s), s = √(0.8² + 0.3²).
		const (
			d, p, k        = 3, 0.9, 300
			su, se, lambda = 0.8, 0.3, 4.0
			muC, muT       = 5.0, 5.1
		)
		s := math.Hypot(su, se)
		truth := func(mu float64) float64 { return fixedQuantile(math.Exp(mu+s*normalQuantile(p)), d) }
		diff := truth(muT) - truth(muC)
		rng := rand.New(rand.NewPCG(20261230, 2))
		var units [][]int64
		arm := func(mu float64) EventQuantileArm {
			units = units[:0]
			for range k {
				u := mu + su*rng.NormFloat64()
				m := 1 + int(poisson(rng, lambda))
				ev := make([]int64, m)
				for j := range ev {
					ev[j] = toFixed(math.Exp(u+se*rng.NormFloat64()), d)
				}
				units = append(units, ev)
			}
			a, _ := eventArm(t, d, units, p)
			return a
		}
		var covered, naive int
		for range quantileSimReps {
			c, tr := arm(muC), arm(muT)
			r, err := CompareEventQuantiles(c, tr, p, QuantileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.DiffLow <= diff && diff <= r.DiffHigh {
				covered++
			}
			n, err := CompareQuantiles(c.Events, tr.Events, p, QuantileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.DiffLow <= diff && diff <= n.DiffHigh {
				naive++
			}
		}
		checkCoverage(t, "p90 of clustered events, difference", covered, quantileSimReps)
		rate := float64(naive) / quantileSimReps
		t.Logf("without the cluster adjustment: coverage %.4f", rate)
		if lo, _ := coverageBand(quantileSimReps); rate >= lo {
			t.Errorf("the interval without the cluster adjustment covers %.4f; the scenario does not test the adjustment", rate)
		}
	})

	t.Run("private grid", func(t *testing.T) {
		t.Parallel()
		// Exponential spend at 2 decimals on the grid 0, 1, …, 40, each
		// count with two-sided geometric (discrete Laplace) noise at
		// ε = 0.2: variance 2a/(1−a)², a = e^−0.2 (about 49.8). The
		// estimand is the quantile of each arm's population ogive on the
		// grid (see quantilegrid.go), computed from the exact bucket
		// probabilities.
		const (
			d, p, n  = 2, 0.5, 2000
			muC, muT = 10.0, 11.0
			eps      = 0.2
		)
		edges := make([]int64, 41)
		for i := range edges {
			edges[i] = int64(100 * i)
		}
		a := math.Exp(-eps)
		noiseVar := 2 * a / ((1 - a) * (1 - a))
		nv := make([]float64, len(edges)-1)
		for i := range nv {
			nv[i] = noiseVar
		}
		diff := ogiveTruth(edges, d, muT, p) - ogiveTruth(edges, d, muC, p)
		rng := rand.New(rand.NewPCG(20261230, 3))
		geometric := func() float64 { return math.Floor(math.Log(1-rng.Float64()) / math.Log(a)) }
		xs := make([]int64, n)
		arm := func(mu float64) GridCounts {
			for i := range xs {
				xs[i] = toFixed(mu*rng.ExpFloat64(), d)
			}
			h, _ := HistogramOf(d, xs)
			exact, err := h.BucketCounts(edges)
			if err != nil {
				t.Fatal(err)
			}
			g := GridCounts{Edges: edges, Decimals: d, Counts: make([]float64, len(exact)), NoiseVar: nv}
			for j, c := range exact {
				g.Counts[j] = float64(c) + geometric() - geometric()
			}
			return g
		}
		var covered, noNoise int
		for range quantileSimReps {
			c, tr := arm(muC), arm(muT)
			r, err := CompareGridQuantiles(c, tr, p, QuantileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.DiffLow <= diff && diff <= r.DiffHigh {
				covered++
			}
			c.NoiseVar, tr.NoiseVar = make([]float64, len(nv)), make([]float64, len(nv))
			r, err = CompareGridQuantiles(c, tr, p, QuantileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.DiffLow <= diff && diff <= r.DiffHigh {
				noNoise++
			}
		}
		checkCoverage(t, "private median on a grid, difference", covered, quantileSimReps)
		rate := float64(noNoise) / quantileSimReps
		t.Logf("without the count noise in the variance: coverage %.4f", rate)
		if lo, _ := coverageBand(quantileSimReps); rate >= lo {
			t.Errorf("the interval without the noise covers %.4f; the scenario does not test the noise term", rate)
		}
	})
}

// ogiveTruth is the p-quantile of the population ogive of V = round(10^d·X),
// X exponential with mean mu, on the grid edges (bucket j = (e_j, e_{j+1}],
// the end buckets open): bucket probabilities from P(V ≤ v) =
// F((v+½)/10^d), then linear interpolation within the bucket where the
// cumulative probability reaches p.
func ogiveTruth(edges []int64, d int, mu, p float64) float64 {
	s := math.Pow10(d)
	cdf := func(v int64) float64 { return 1 - math.Exp(-(float64(v)+0.5)/s/mu) }
	prev := 0.0
	for j := 0; j < len(edges)-1; j++ {
		cum := 1.0
		if j < len(edges)-2 {
			cum = cdf(edges[j+1])
		}
		if cum >= p {
			lo, hi := float64(edges[j])/s, float64(edges[j+1])/s
			return lo + (p-prev)/(cum-prev)*(hi-lo)
		}
		prev = cum
	}
	return float64(edges[len(edges)-1]) / s
}

package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// With no noise the noise-aware statistic is Pearson's χ².
func TestSRMNoisyWithoutNoiseIsPearson(t *testing.T) {
	cases := []struct{ obs, shares []float64 }{
		{[]float64{1040, 960}, []float64{0.5, 0.5}},
		{[]float64{300, 520, 180}, []float64{1, 2, 1}},
		{[]float64{90, 110, 95, 105}, []float64{0.25, 0.25, 0.25, 0.25}},
	}
	for _, c := range cases {
		want, err := SRM(c.obs, c.shares)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SRMNoisy(c.obs, c.shares, make([]float64, len(c.obs)))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.ChiSquare-want.ChiSquare) > 1e-9*want.ChiSquare || math.Abs(got.PValue-want.PValue) > 1e-9 {
			t.Errorf("%v: noise-aware χ² %v p %v, Pearson %v p %v", c.obs, got.ChiSquare, got.PValue, want.ChiSquare, want.PValue)
		}
	}
}

// TestSRMNoisyCalibrated plants a correct allocation in small cohorts,
// adds Gaussian noise of sd 10 to each count (a private release's unit
// counts), and counts false alarms at α = 0.05: the noise-aware test stays
// at α within its binomial error, Pearson's on the same counts does not;
// and a real 60/40 mismatch is still found.
func TestSRMNoisyCalibrated(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const reps, alpha = 4000, 0.05
	sd := []float64{10, 10, 10}
	for _, k := range []int{2, 3} {
		shares := make([]float64, k)
		for i := range shares {
			shares[i] = 1
		}
		var noisy, pearson, power int
		for r := 0; r < reps; r++ {
			obs := multinomialDraw(rng, 60, shares)
			for i := range obs {
				obs[i] += sd[i] * rng.NormFloat64()
			}
			res, err := SRMNoisy(obs, shares, sd[:k])
			if err != nil {
				t.Fatal(err)
			}
			if res.PValue < alpha {
				noisy++
			}
			if pr, err := SRM(clampNonNeg(obs), shares); err == nil && pr.PValue < alpha {
				pearson++
			}
			skew := append([]float64{1.5}, shares[1:]...)
			bad := multinomialDraw(rng, 2000, skew)
			for i := range bad {
				bad[i] += sd[i] * rng.NormFloat64()
			}
			if res, err := SRMNoisy(bad, shares, sd[:k]); err == nil && res.PValue < alpha {
				power++
			}
		}
		rate := float64(noisy) / reps
		t.Logf("k=%d: false alarms at α=0.05: noise-aware %.4f, Pearson %.4f; power %.4f", k, rate, float64(pearson)/reps, float64(power)/reps)
		// 99.9% binomial band around α for 4000 draws: ±3.3·sqrt(α(1-α)/n) ≈ ±0.011.
		if rate < alpha-0.012 || rate > alpha+0.012 {
			t.Errorf("k=%d: noise-aware false-alarm rate %.4f, want %.2f ± 0.012", k, rate, alpha)
		}
		if pr := float64(pearson) / reps; pr < 0.2 {
			t.Errorf("k=%d: Pearson's false-alarm rate on noisy counts %.3f: the planted noise should inflate it", k, pr)
		}
		if pw := float64(power) / reps; pw < 0.99 {
			t.Errorf("k=%d: power against a 1.5:1 allocation on 2000 units %.3f", k, pw)
		}
	}
}

func multinomialDraw(rng *rand.Rand, n int, shares []float64) []float64 {
	var sum float64
	for _, s := range shares {
		sum += s
	}
	out := make([]float64, len(shares))
	for u := 0; u < n; u++ {
		x := rng.Float64() * sum
		for i, s := range shares {
			if x < s || i == len(shares)-1 {
				out[i]++
				break
			}
			x -= s
		}
	}
	return out
}

func clampNonNeg(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Max(0, math.Round(x))
	}
	return out
}

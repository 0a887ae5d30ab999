package privacy

import (
	"fmt"
	"math"
	"math/big"
	"testing"
)

// releaseCounts publishes the count `value` through n independent keyed
// streams (one release per trial, told apart by the input digest, as
// nightly reruns on different inputs would be) and tallies the outputs.
func releaseCounts(t *testing.T, dataset string, value int64, m Mechanism, n int) map[int64]float64 {
	t.Helper()
	key := testKey(t)
	out := make(map[int64]float64)
	v := big.NewInt(value)
	for i := range n {
		r := Release{
			Analysis: "neighbours", SpecHash: "spec", DataDigest: fmt.Sprintf("%s-%d", dataset, i),
			Cohort: "all", Variant: "control", Statistic: StatN, Mechanism: m,
		}
		noisy, err := AddNoise(NewStream(key, r), v, m)
		if err != nil {
			t.Fatal(err)
		}
		out[noisy.Int64()]++
	}
	return out
}

// ratioViolations compares the output frequencies a (dataset D, count c)
// and b (neighbour D′, count c+1) on every output seen ≥ minCount times in
// both. The margin for the log-ratio is 4.42·√(1/a + 1/b), the normal
// approximation to its standard error. It reports outputs whose empirical
// log-ratio exceeds ε + margin in absolute value, or is more than the margin
// away from the exact privacy loss exactLoss(k) = ln(P[k|D]/P[k|D′]).
func ratioViolations(a, b map[int64]float64, eps float64, exactLoss func(k int64) float64, minCount float64) (checked int, bad []string) {
	for k, na := range a {
		nb := b[k]
		if na < minCount || nb < minCount {
			continue
		}
		checked++
		lr := math.Log(na / nb)
		margin := zTol * math.Sqrt(1/na+1/nb)
		if math.Abs(lr) > eps+margin {
			bad = append(bad, fmt.Sprintf("output %d: |ln ratio| = %.3f > ε %.3f + margin %.3f", k, math.Abs(lr), eps, margin))
		}
		if want := exactLoss(k); math.Abs(lr-want) > margin {
			bad = append(bad, fmt.Sprintf("output %d: ln ratio %.3f, exact privacy loss %.3f (margin %.3f)", k, lr, want, margin))
		}
	}
	return checked, bad
}

// TestNeighbouringDatasets releases a count on two datasets that differ in
// one unit (10 vs 11 units) through many independent keyed streams, and
// checks that for every well-populated output the ratio of output
// probabilities stays within e^ε (times the statistical margin) and
// matches the exact privacy loss.
func TestNeighbouringDatasets(t *testing.T) {
	const n = 100_000
	const minCount = 1000
	laplace := DiscreteLaplace(big.NewRat(1, 1)) // Δ = 1, t = 1: ε = 1
	gauss := DiscreteGaussian(big.NewRat(4, 1))  // Δ = 1, σ² = 4: ρ = 1/8
	gaussEps, err := CDPEpsilon(0.125, 1e-6)     // ≈ 2.419: (ε, 1e-6)-DP
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mech Mechanism
		eps  float64
		loss func(k int64) float64 // ln P[k | count 10] / P[k | count 11]
	}{
		{laplace, 1, func(k int64) float64 {
			return math.Abs(float64(k-11)) - math.Abs(float64(k-10))
		}},
		{gauss, gaussEps, func(k int64) float64 {
			return (math.Pow(float64(k-11), 2) - math.Pow(float64(k-10), 2)) / 8
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mech.String(), func(t *testing.T) {
			a := releaseCounts(t, "D", 10, tt.mech, n)
			b := releaseCounts(t, "D'", 11, tt.mech, n)
			checked, bad := ratioViolations(a, b, tt.eps, tt.loss, minCount)
			if checked < 5 {
				t.Fatalf("only %d well-populated outputs", checked)
			}
			for _, s := range bad {
				t.Error(s)
			}
			t.Logf("%d outputs checked against e^ε = e^%.3f", checked, tt.eps)
		})
	}
	// The check has power: noise at half the claimed scale (ε = 2 in fact)
	// must be caught.
	t.Run("detects too little noise", func(t *testing.T) {
		weak := DiscreteLaplace(big.NewRat(1, 2))
		a := releaseCounts(t, "D", 10, weak, n)
		b := releaseCounts(t, "D'", 11, weak, n)
		claimed := func(k int64) float64 { return math.Abs(float64(k-11)) - math.Abs(float64(k-10)) }
		if _, bad := ratioViolations(a, b, 1, claimed, minCount); len(bad) == 0 {
			t.Error("a mechanism with ε = 2 passed the ε = 1 check")
		}
	})
}

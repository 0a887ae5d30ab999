package analysis

import (
	"math"
	"math/big"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
)

func TestMomentsExact(t *testing.T) {
	// Values 1.5, 2.5 and 4 at scale 10^6; mean 8/3, sample variance 19/12.
	scale := int64(1_000_000)
	xs := []int64{1_500_000, 2_500_000, 4_000_000}
	c := engine.NewCell("", "", "")
	c.N = 3
	for _, x := range xs {
		c.Sum.Add(c.Sum, big.NewInt(x))
		c.SumSq.Add(c.SumSq, new(big.Int).Mul(big.NewInt(x), big.NewInt(x)))
	}
	mean, v := Moments(c, scale)
	if mean != 8.0/3 || v != 19.0/12 {
		t.Errorf("moments = %v, %v; want %v, %v", mean, v, 8.0/3, 19.0/12)
	}
	// Catastrophic cancellation in float64 would lose this variance: values
	// 1e12 + {0, 1e-6, 2e-6} have variance 1e-12.
	big12 := new(big.Int).Mul(big.NewInt(1_000_000_000_000), big.NewInt(scale))
	c = engine.NewCell("", "", "")
	c.N = 3
	for i := int64(0); i < 3; i++ {
		x := new(big.Int).Add(big12, big.NewInt(i))
		c.Sum.Add(c.Sum, x)
		c.SumSq.Add(c.SumSq, new(big.Int).Mul(x, x))
	}
	if _, v := Moments(c, scale); math.Abs(v-1e-12) > 1e-24 {
		t.Errorf("variance = %v, want 1e-12", v)
	}
	if m, v := Moments(engine.NewCell("", "", ""), scale); m != 0 || v != 0 {
		t.Errorf("empty cell moments = %v, %v", m, v)
	}
}

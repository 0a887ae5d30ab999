package privacy

import (
	"math/big"
	"testing"
)

func BenchmarkDiscreteGaussian(b *testing.B) {
	for _, s := range []string{"1", "100", "1000000000000", "100000000000000000000000000000000000000001/7"} {
		b.Run("sigma2="+s, func(b *testing.B) {
			sigma2 := rat(b, s)
			st := NewStream(testKey(b), baseRelease(DiscreteGaussian(sigma2)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.DiscreteGaussian(sigma2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDiscreteLaplace(b *testing.B) {
	for _, s := range []string{"1/3", "1", "100", "1000000000000000000000000000000/7"} {
		b.Run("scale="+s, func(b *testing.B) {
			scale := rat(b, s)
			st := NewStream(testKey(b), baseRelease(DiscreteLaplace(scale)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.DiscreteLaplace(scale); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBernoulliExp(b *testing.B) {
	gamma := big.NewRat(5, 2)
	st := NewStream(testKey(b), baseRelease(DiscreteGaussian(big.NewRat(1, 1))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.BernoulliExp(gamma); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddNoise is the per-released-number cost: stream derivation
// (HMAC-SHA256, AES key schedule) plus one discrete Gaussian draw.
func BenchmarkAddNoise(b *testing.B) {
	m := DiscreteGaussian(rat(b, "718.510"))
	r := baseRelease(m)
	key := testKey(b)
	v := big.NewInt(123456)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AddNoise(NewStream(key, r), v, m); err != nil {
			b.Fatal(err)
		}
	}
}

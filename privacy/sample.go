package privacy

import (
	"math/big"
	"math/bits"
)

// The samplers below follow Canonne, Kamath & Steinke (2020), "The Discrete
// Gaussian for Differential Privacy", Algorithms 1–3, with exact integer
// arithmetic. A rational γ = num/den is carried as two non-negative
// big.Ints; uint64 fast paths are taken only where the operands provably
// fit. All randomness comes from uniform64 / uniform.

var bigOne = big.NewInt(1)

// uniform64 returns a uniform integer on [0, n), n ≥ 1. With k the bit
// length of n−1: no bytes for k = 0; otherwise read ⌈k/8⌉ bytes as a
// big-endian integer, keep its low k bits, accept if < n, else repeat.
// Each try succeeds with probability > 1/2; there is no modulo bias.
func (s *Stream) uniform64(n uint64) uint64 {
	if n <= 1 {
		return 0
	}
	k := bits.Len64(n - 1)
	nb := (k + 7) / 8
	mask := uint64(1)<<uint(k) - 1 // k = 64 gives 0 − 1 = all ones
	for {
		var v uint64
		for range nb {
			v = v<<8 | uint64(s.byte())
		}
		v &= mask
		if v < n {
			return v
		}
	}
}

// uniform sets z to a uniform integer on [0, n), n ≥ 1, with the same byte
// consumption rule as uniform64, and returns z.
func (s *Stream) uniform(z, n *big.Int) *big.Int {
	if n.IsUint64() {
		return z.SetUint64(s.uniform64(n.Uint64()))
	}
	k := new(big.Int).Sub(n, bigOne).BitLen()
	nb := (k + 7) / 8
	top := byte(0xff >> uint(8*nb-k))
	buf := make([]byte, nb)
	for {
		for i := range buf {
			buf[i] = s.byte()
		}
		buf[0] &= top
		z.SetBytes(buf)
		if z.Cmp(n) < 0 {
			return z
		}
	}
}

// bernoulliExp returns true with probability exp(−num/den), num ≥ 0,
// den > 0 (CKS20 Algorithm 1). For γ ≤ 1 it runs the alternating-series
// loop directly; for γ > 1 it needs ⌊γ⌋ successes of Bernoulli(exp(−1))
// and then one Bernoulli(exp(−(γ−⌊γ⌋))), stopping at the first failure.
func (s *Stream) bernoulliExp(num, den *big.Int) bool {
	if num.Cmp(den) <= 0 {
		return s.bernoulliExpSmall(num, den)
	}
	var q, r big.Int
	q.QuoRem(num, den, &r)
	for ; q.Sign() > 0; q.Sub(&q, bigOne) {
		if !s.bernoulliExpSmall(bigOne, bigOne) {
			return false
		}
	}
	return s.bernoulliExpSmall(&r, den)
}

// bernoulliExpSmall returns true with probability exp(−γ), γ = num/den in
// [0, 1]: K ← 1; while Bernoulli(γ/K) succeeds, K ← K+1; return K odd.
// Bernoulli(a/b) succeeds when a uniform draw on [0, b) is < a. γ = 0
// returns true without drawing (the loop would stop at K = 1 for sure).
func (s *Stream) bernoulliExpSmall(num, den *big.Int) bool {
	if num.Sign() == 0 {
		return true
	}
	if num.IsUint64() && den.IsUint64() {
		n, d := num.Uint64(), den.Uint64()
		for k := uint64(1); ; k++ {
			hi, dk := bits.Mul64(d, k)
			if hi != 0 {
				return s.bernoulliExpSmallBig(num, den, k)
			}
			if s.uniform64(dk) >= n {
				return k%2 == 1
			}
		}
	}
	return s.bernoulliExpSmallBig(num, den, 1)
}

// bernoulliExpSmallBig continues bernoulliExpSmall's loop at K = k in
// big.Int arithmetic.
func (s *Stream) bernoulliExpSmallBig(num, den *big.Int, k uint64) bool {
	var kk, dk, u big.Int
	for ; ; k++ {
		kk.SetUint64(k)
		dk.Mul(den, &kk)
		if s.uniform(&u, &dk).Cmp(num) >= 0 {
			return k%2 == 1
		}
	}
}

// discreteLaplace returns a draw with P[Z = z] ∝ exp(−|z|·sd/t), the
// discrete Laplace with scale t/sd, t, sd ≥ 1 (CKS20 Algorithm 2):
//
//	loop:
//	  U ← uniform on [0, t); reject unless Bernoulli(exp(−U/t))
//	  V ← number of successes of Bernoulli(exp(−1)) before the first failure
//	  X ← U + t·V                      (geometric: P[X = x] ∝ exp(−x/t))
//	  Y ← ⌊X/sd⌋                       (geometric: P[Y = y] ∝ exp(−y·sd/t))
//	  B ← Bernoulli(1/2); reject if B = 1 and Y = 0
//	  return (1 − 2B)·Y
func (s *Stream) discreteLaplace(t, sd *big.Int) *big.Int {
	var u, tv big.Int
	for {
		s.uniform(&u, t)
		if !s.bernoulliExp(&u, t) {
			continue
		}
		var v uint64
		for s.bernoulliExpSmall(bigOne, bigOne) {
			v++
		}
		y := new(big.Int).Add(&u, tv.Mul(t, tv.SetUint64(v)))
		if !(sd.IsUint64() && sd.Uint64() == 1) {
			y.Quo(y, sd) // y ≥ 0, so truncation is the floor
		}
		b := s.uniform64(2) == 1
		if b && y.Sign() == 0 {
			continue
		}
		if b {
			y.Neg(y)
		}
		return y
	}
}

// discreteGaussian returns a draw with P[Z = z] ∝ exp(−z²/(2σ²)),
// σ² = p/q > 0 (CKS20 Algorithm 3): with t = ⌊σ⌋ + 1, draw Y from the
// discrete Laplace with scale t and accept it with probability
// exp(−(|Y| − σ²/t)²/(2σ²)). In integers the exponent is
// (|Y|·q·t − p)² / (2·p·q·t²). ⌊σ⌋ = ⌊√⌊p/q⌋⌋ exactly.
func (s *Stream) discreteGaussian(p, q *big.Int) *big.Int {
	var t, qt, den, num big.Int
	t.Quo(p, q)
	t.Sqrt(&t)
	t.Add(&t, bigOne)
	qt.Mul(q, &t)
	den.Mul(&qt, &t)
	den.Mul(&den, p)
	den.Lsh(&den, 1)
	for {
		y := s.discreteLaplace(&t, bigOne)
		num.Abs(y)
		num.Mul(&num, &qt)
		num.Sub(&num, p)
		num.Mul(&num, &num)
		if s.bernoulliExp(&num, &den) {
			return y
		}
	}
}

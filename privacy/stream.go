package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
)

// streamBuffer is how many keystream bytes a Stream generates at a time; it
// does not change the byte sequence.
const streamBuffer = 512

// Errors carried by a Stream.
var (
	// ErrKeyTooShort: NewStream was given fewer than MinKeyBytes key bytes
	// (returned by every draw from that stream).
	ErrKeyTooShort = errors.New("privacy: noise key shorter than 32 bytes")
	// ErrStreamUsed: AddNoise was given a stream that was already read from;
	// each released number draws from a fresh stream of its own.
	ErrStreamUsed = errors.New("privacy: noise stream already used")
)

// Stream is the keyed, reproducible random byte stream of one release: the
// AES-256-CTR keystream (zero IV, 128-bit big-endian counter) under the key
// seed = HMAC-SHA256(key, release.Encode()). The samplers read it through
// uniform integer draws only. A Stream is not safe for concurrent use.
type Stream struct {
	ctr  cipher.Stream
	buf  [streamBuffer]byte
	off  int   // next unread byte of buf
	used int64 // bytes handed out
	mech Mechanism
	err  error
}

// NewStream derives the noise stream of release r under key. The key must
// have at least MinKeyBytes bytes and r must be valid; otherwise the stream
// carries the error and every draw returns it (see Err).
func NewStream(key []byte, r Release) *Stream {
	s := &Stream{off: streamBuffer}
	if len(key) < MinKeyBytes {
		s.err = ErrKeyTooShort
		return s
	}
	enc, err := r.Encode()
	if err != nil {
		s.err = err
		return s
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(enc)
	seed := mac.Sum(nil)
	block, err := aes.NewCipher(seed) // 32-byte seed: AES-256
	if err != nil {
		s.err = fmt.Errorf("privacy: stream cipher: %w", err)
		return s
	}
	s.ctr = cipher.NewCTR(block, make([]byte, aes.BlockSize))
	s.mech = r.Mechanism.clone()
	return s
}

// Err returns the error that makes the stream unusable, if any.
func (s *Stream) Err() error { return s.err }

// read fills p with the next keystream bytes (for tests against the
// reference keystream). It fails only for a stream that carries an error.
func (s *Stream) read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for i := range p {
		p[i] = s.byte()
	}
	return len(p), nil
}

func (s *Stream) byte() byte {
	if s.off == len(s.buf) {
		clear(s.buf[:])
		s.ctr.XORKeyStream(s.buf[:], s.buf[:])
		s.off = 0
	}
	b := s.buf[s.off]
	s.off++
	s.used++
	return b
}

// Uniform returns an integer uniformly distributed on [0, n), n ≥ 1, by
// rejection (see the package comment for the exact byte consumption).
func (s *Stream) Uniform(n *big.Int) (*big.Int, error) {
	if s.err != nil {
		return nil, s.err
	}
	if n == nil || n.Sign() <= 0 {
		return nil, errors.New("privacy: uniform: bound must be ≥ 1")
	}
	return s.uniform(new(big.Int), n), nil
}

// BernoulliExp returns true with probability exp(−γ), γ ≥ 0 rational
// (CKS20 Algorithm 1).
func (s *Stream) BernoulliExp(gamma *big.Rat) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	if gamma == nil || gamma.Sign() < 0 {
		return false, errors.New("privacy: bernoulli exp: γ must be ≥ 0")
	}
	return s.bernoulliExp(gamma.Num(), gamma.Denom()), nil
}

// DiscreteLaplace returns one draw from the discrete Laplace distribution
// with scale t > 0 rational, P[Z = z] ∝ exp(−|z|/t) (CKS20 Algorithm 2).
func (s *Stream) DiscreteLaplace(scale *big.Rat) (*big.Int, error) {
	if s.err != nil {
		return nil, s.err
	}
	if scale == nil || scale.Sign() <= 0 {
		return nil, errors.New("privacy: discrete laplace: scale must be > 0")
	}
	return s.discreteLaplace(scale.Num(), scale.Denom()), nil
}

// DiscreteGaussian returns one draw from the discrete Gaussian distribution
// with parameter σ² > 0 rational, P[Z = z] ∝ exp(−z²/(2σ²)) (CKS20
// Algorithm 3).
func (s *Stream) DiscreteGaussian(sigma2 *big.Rat) (*big.Int, error) {
	if s.err != nil {
		return nil, s.err
	}
	if sigma2 == nil || sigma2.Sign() <= 0 {
		return nil, errors.New("privacy: discrete gaussian: σ² must be > 0")
	}
	return s.discreteGaussian(sigma2.Num(), sigma2.Denom()), nil
}

// Sample returns one noise draw from mechanism m.
func (s *Stream) Sample(m Mechanism) (*big.Int, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	switch m.Kind {
	case KindDiscreteGaussian:
		return s.DiscreteGaussian(m.Param)
	default:
		return s.DiscreteLaplace(m.Param)
	}
}

// AddNoise returns value + noise, the noise drawn from stream with mech.
// mech must be the mechanism of the stream's release (it is part of the
// stream's derivation) and the stream must be fresh: each released number
// has its own stream.
func AddNoise(stream *Stream, value *big.Int, mech Mechanism) (*big.Int, error) {
	if stream == nil {
		return nil, errors.New("privacy: add noise: nil stream")
	}
	if stream.err != nil {
		return nil, stream.err
	}
	if value == nil {
		return nil, errors.New("privacy: add noise: nil value")
	}
	if !mech.Equal(stream.mech) {
		return nil, fmt.Errorf("privacy: add noise: mechanism %v is not the stream's release mechanism %v", mech, stream.mech)
	}
	if stream.used != 0 {
		return nil, ErrStreamUsed
	}
	noise, err := stream.Sample(mech)
	if err != nil {
		return nil, err
	}
	return noise.Add(noise, value), nil
}

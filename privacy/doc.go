// Package privacy releases Verity's integer sufficient statistics with
// differential privacy: exact discrete noise drawn from keyed, reproducible
// streams, a budget accountant and ledger, and the small-cohort collapsing
// rule. It is pure computation: no file I/O, no SQL, no clock, no global
// state.
//
// # Unit of privacy and sensitivities
//
// Neighbouring datasets differ by adding or removing one unit_id. Each unit
// contributes to exactly one cell (cohort × variant) and its per-unit values
// are clamped to [lo, hi] in scaled integer (fixed-point) units, so every
// released sum has an exact integer sensitivity Δ: 1 for the count n,
// max(|lo|, |hi|) for Σx (SumSensitivity), max(lo², hi²) for Σx²
// (SquareSensitivity), max|x|·max|y| for Σxy (ProductSensitivity).
//
// # Mechanisms
//
// Noise is added to the exact integer statistics (AddNoise):
//
//   - discrete Gaussian N_Z(0, σ²), P[Z = z] ∝ exp(−z²/(2σ²)), the default;
//     it is ρ-zCDP with ρ = Δ²/(2σ²) (Canonne, Kamath & Steinke 2020,
//     Theorem 4);
//   - discrete Laplace with scale t, P[Z = z] ∝ exp(−|z|/t), for pure ε-DP
//     with ε = Δ/t.
//
// Both are sampled exactly, following Canonne, Kamath & Steinke (2020), "The
// Discrete Gaussian for Differential Privacy" (CKS20): Algorithm 1 gives
// Bernoulli(exp(−γ)) for rational γ, Algorithm 2 the discrete Laplace with a
// rational scale, Algorithm 3 the discrete Gaussian with rational σ² by
// rejection from the discrete Laplace. Parameters are exact rationals
// (math/big.Rat); the only arithmetic is on integers (math/big.Int, and
// uint64 where operands provably fit), and the only randomness is uniform
// integers on [0, n) drawn by rejection, so the output distribution is
// exactly the stated one. Mironov (2012, "On Significance of the Least
// Significant Bits for Differential Privacy") showed why this matters:
// floating-point Laplace samplers can produce only an irregular, value-
// dependent subset of the doubles, so the low-order bits of a noisy output
// reveal which true value it came from and the promised ε is void. Integer
// noise on integer statistics has no such gaps: every output is reachable
// from every input with the probabilities the analysis assumes.
//
// Mechanism.Variance gives the noise variance in float64 so that intervals
// can include it: the discrete Laplace's closed form, and for the discrete
// Gaussian its exact series (which is < σ²) summed to float64 precision.
//
// # Keyed, reproducible streams
//
// Each released number has its own stream (NewStream): seed =
// HMAC-SHA256(key, Release.Encode()), and the stream is the AES-256-CTR
// keystream under the seed with a zero IV. Release.Encode is an
// unambiguous, length-prefixed encoding of, in order, SamplerVersion, the
// analysis id, spec hash, input digest, cohort, variant, metric,
// statistic, mechanism, parameter name and exact parameter. The same key and
// release give the same noise; any changed field (a new input digest
// included) or another key gives independent noise. Privacy is therefore
// computational: it holds against anyone without the key, assuming HMAC-
// SHA256 and AES are pseudorandom. The key (at least 32 bytes; see
// ParseKey for the accepted forms) is never printed: Key redacts itself to
// KeyFingerprint, which is what manifests record.
//
// The byte contract, fixed by SamplerVersion: a uniform draw on [0, n) with
// k = bitlen(n−1) bits reads ⌈k/8⌉ keystream bytes as a big-endian integer,
// keeps its low k bits and retries while the result is ≥ n (no bytes when
// n = 1). Bernoulli(a/b) is a uniform draw on [0, b) compared with a. The
// CKS20 algorithms draw in the order written in their comments.
//
// # Accounting
//
// Under zCDP (Bun & Steinke 2016, "Concentrated Differential Privacy:
// Simplifications, Extensions, and Lower Bounds") composition adds ρ. An
// experiment's total (ε, δ) is converted once to ρ_total with the tight
// conversion of CKS20 (Proposition 12, Corollary 13; CDPRho), which allows
// more ρ than inverting the simple bound ε = ρ + 2√(ρ·ln(1/δ)) of Bun &
// Steinke (Proposition 1.3; CDPEpsilonSimple). Both directions are
// provided (CDPDelta, CDPEpsilon, CDPRho, GaussianDelta, GaussianSigma).
// Under pure DP composition adds ε. Each run may spend Budget.RunShare of
// the total; Allocate splits a run's share across one cell's statistics by
// weight (DefaultWeight favours the first-moment sums that set interval
// width) and rounds each noise parameter up, so the exact rational cost
// never exceeds the allocation. By parallel composition every cell reuses the
// same parameters. The Ledger adds the exact costs of successive runs,
// refuses a run that would exceed the total, and charges nothing for a run
// whose RunDigest (what it published) is already recorded.
//
// # Small-cohort collapsing
//
// Collapse applies the persona-taxonomy rule to noisy leaf counts (summed
// over arms): a leaf below the minimum cell size merges into its parent's
// remainder bucket "P/*", buckets still below the minimum move further up,
// and the root bucket "*" absorbs the smallest released cohorts if it must.
// The released cohorts always partition the leaves and each reaches the
// minimum; if the whole taxonomy does not, nothing is released
// (ErrBelowMinimum). Because the decision uses only noisy counts and the
// public taxonomy, it is post-processing and costs no extra budget.
package privacy

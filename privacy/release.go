package privacy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"sort"
)

// SamplerVersion names the exact sampling contract: the stream derivation,
// the canonical release encoding, the byte consumption of the uniform
// sampler and the order of the random choices in the CKS20 algorithms. Any
// change to one of them changes the noise a key produces, so it must come
// with a new SamplerVersion (it is part of every stream's derivation).
const SamplerVersion = "verity-dp-cks20-aesctr-v1"

// releaseDomain separates the HMAC input of a release stream from every
// other use of the key.
const releaseDomain = "verity/privacy/release\x00"

// releaseFieldCount is the number of length-prefixed fields after the domain.
const releaseFieldCount = 11

// Statistic names one released sufficient statistic of a cell.
type Statistic string

// The sufficient statistics the pipeline releases. x is the metric value (the
// numerator of a ratio metric), y the denominator of a ratio metric, c the
// CUPED covariate. Other names matching [a-z0-9_]+ are accepted.
const (
	StatN     Statistic = "n"      // unit count
	StatSumX  Statistic = "sum_x"  // Σx
	StatSumX2 Statistic = "sum_x2" // Σx²
	StatSumY  Statistic = "sum_y"  // Σy
	StatSumY2 Statistic = "sum_y2" // Σy²
	StatSumXY Statistic = "sum_xy" // Σxy
	StatSumC  Statistic = "sum_c"  // Σc
	StatSumC2 Statistic = "sum_c2" // Σc²
	StatSumXC Statistic = "sum_xc" // Σxc
	StatSumYC Statistic = "sum_yc" // Σyc
)

var statisticName = regexp.MustCompile(`^[a-z0-9_]+$`)

// Validate reports whether s is a well-formed statistic name.
func (s Statistic) Validate() error {
	if !statisticName.MatchString(string(s)) {
		return fmt.Errorf("privacy: statistic %q: want a name matching [a-z0-9_]+", string(s))
	}
	return nil
}

// Release is the canonical, public description of one released number. Its
// encoding (see Encode) is the HMAC input of the number's noise stream, so
// two releases that differ in any field draw independent noise, and a rerun
// of the same release with the same key draws the same noise.
//
// The pipeline must make SpecHash and DataDigest cover everything the true
// value depends on: if the true value could change while the Release stays
// the same, the same noise would be added to two different values and their
// difference would be published exactly. Conversely, a DataDigest computed
// from the exact values themselves (not from how they were computed) lets a
// rerun whose true values are identical publish identical bytes, whatever
// build or template version produced them.
type Release struct {
	// Analysis is the experiment (analysis) id.
	Analysis string `json:"analysis"`
	// SpecHash is the hash of the resolved analysis spec.
	SpecHash string `json:"spec_hash"`
	// DataDigest binds the release to the data: a digest of every exact
	// value the run's releases are computed from (and the night they
	// describe).
	DataDigest string `json:"data_digest"`
	// Cohort is the released cohort's label (see Collapse).
	Cohort string `json:"cohort"`
	// Variant is the arm.
	Variant string `json:"variant"`
	// Metric is the metric name; it may be empty for a statistic that
	// belongs to no metric (the unit count of a cell).
	Metric string `json:"metric"`
	// Statistic is the released sufficient statistic.
	Statistic Statistic `json:"statistic"`
	// Mechanism is the noise mechanism with its exact parameter.
	Mechanism Mechanism `json:"mechanism"`
}

// Validate checks that every field needed to tell releases apart is present.
func (r Release) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"analysis", r.Analysis},
		{"spec hash", r.SpecHash},
		{"data digest", r.DataDigest},
		{"cohort", r.Cohort},
		{"variant", r.Variant},
	} {
		if f.v == "" {
			return fmt.Errorf("privacy: release: %s is empty", f.name)
		}
	}
	if err := r.Statistic.Validate(); err != nil {
		return fmt.Errorf("privacy: release: %w", err)
	}
	if err := r.Mechanism.Validate(); err != nil {
		return fmt.Errorf("privacy: release: %w", err)
	}
	return nil
}

// Encode returns the canonical encoding of r:
//
//	"verity/privacy/release" 0x00
//	uint32 big-endian field count (11)
//	11 fields, each a uint32 big-endian byte length followed by the bytes:
//	  SamplerVersion, Analysis, SpecHash, DataDigest, Cohort, Variant,
//	  Metric, Statistic, Mechanism.Kind, the parameter's name ("sigma2" or
//	  "scale"), the parameter as a reduced fraction "a/b" (big.Rat.String,
//	  so 4 is "4/1").
//
// The fixed order and the length prefixes make the encoding injective: no
// two distinct releases share an encoding, whatever bytes their fields hold.
func (r Release) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	fields := [releaseFieldCount]string{
		SamplerVersion,
		r.Analysis,
		r.SpecHash,
		r.DataDigest,
		r.Cohort,
		r.Variant,
		r.Metric,
		string(r.Statistic),
		string(r.Mechanism.Kind),
		r.Mechanism.ParamName(),
		r.Mechanism.Param.String(),
	}
	n := len(releaseDomain) + 4
	for _, f := range fields {
		if len(f) > math.MaxUint32 {
			return nil, errors.New("privacy: release: a field is longer than 4 GiB")
		}
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, releaseDomain...)
	b = binary.BigEndian.AppendUint32(b, releaseFieldCount)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// Released pairs a release with the noisy value that was published for it.
type Released struct {
	Release Release
	Value   *big.Int
}

// runDomain separates run digests from other SHA-256 uses.
const runDomain = "verity/privacy/run\x00"

// RunDigest returns the hex SHA-256 digest that identifies what one run
// published, for the budget Ledger: the key fingerprint, then every release's
// canonical encoding with its published noisy value, sorted by encoding. Two
// runs with the same digest published exactly the same numbers, so the second
// one reveals nothing new and is free. A changed input, spec, key, mechanism
// parameter or computed value gives a new digest.
//
// It is an error for two items to share a release: two numbers never share a
// stream.
func RunDigest(keyFingerprint string, items []Released) (string, error) {
	type enc struct {
		rel []byte
		val string
	}
	encs := make([]enc, len(items))
	for i, it := range items {
		e, err := it.Release.Encode()
		if err != nil {
			return "", fmt.Errorf("item %d: %w", i, err)
		}
		if it.Value == nil {
			return "", fmt.Errorf("privacy: run digest: item %d has no value", i)
		}
		encs[i] = enc{e, it.Value.String()}
	}
	sort.Slice(encs, func(i, j int) bool { return string(encs[i].rel) < string(encs[j].rel) })
	h := sha256.New()
	var lb [8]byte
	put := func(s []byte) {
		binary.BigEndian.PutUint64(lb[:], uint64(len(s)))
		h.Write(lb[:])
		h.Write(s)
	}
	h.Write([]byte(runDomain))
	put([]byte(keyFingerprint))
	binary.BigEndian.PutUint64(lb[:], uint64(len(encs)))
	h.Write(lb[:])
	for i, e := range encs {
		if i > 0 && string(encs[i-1].rel) == string(e.rel) {
			return "", errors.New("privacy: run digest: two items share a release (and would share a noise stream)")
		}
		put(e.rel)
		put([]byte(e.val))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

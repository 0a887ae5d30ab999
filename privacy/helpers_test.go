package privacy

import (
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"sync"
	"testing"
)

// testKeyHex is a fixed key for tests only (bytes 0x00…0x1f); the
// reference script uses the same one.
const testKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := ParseKey([]byte("hex:" + testKeyHex))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rat(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rational %q", s)
	}
	return r
}

func baseRelease(m Mechanism) Release {
	return Release{
		Analysis:   "checkout-v2",
		SpecHash:   "sha256:aa11",
		DataDigest: "sha256:bb22",
		Cohort:     "power/mobile",
		Variant:    "treatment",
		Metric:     "revenue",
		Statistic:  StatSumX,
		Mechanism:  m,
	}
}

// reference mirrors testdata/reference.json, written by
// testdata/reference.py (mpmath and the cryptography package).
type reference struct {
	TestKeyHex  string `json:"test_key_hex"`
	Fingerprint string `json:"fingerprint"`
	Streams     []struct {
		Release struct {
			Analysis    string `json:"analysis"`
			SpecHash    string `json:"spec_hash"`
			InputDigest string `json:"input_digest"`
			Cohort      string `json:"cohort"`
			Variant     string `json:"variant"`
			Metric      string `json:"metric"`
			Statistic   string `json:"statistic"`
			Kind        string `json:"kind"`
			Param       string `json:"param"`
		} `json:"release"`
		EncodingHex  string `json:"encoding_hex"`
		SeedHex      string `json:"seed_hex"`
		KeystreamHex string `json:"keystream_hex"`
	} `json:"streams"`
	CDPDelta []struct{ Rho, Eps, Delta float64 } `json:"cdp_delta"`
	CDPEps   []struct{ Rho, Delta, Eps float64 } `json:"cdp_eps"`
	CDPRho   []struct{ Eps, Delta, Rho float64 } `json:"cdp_rho"`
	DGauss   []struct {
		Sigma2   string  `json:"sigma2"`
		Variance float64 `json:"variance"`
		M4       float64 `json:"m4"`
	} `json:"discrete_gaussian"`
	DLaplace []struct {
		Scale    string  `json:"scale"`
		Variance float64 `json:"variance"`
		M4       float64 `json:"m4"`
	} `json:"discrete_laplace"`
}

var loadRef = sync.OnceValues(func() (reference, error) {
	var r reference
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(b, &r)
	return r, err
})

func ref(t testing.TB) reference {
	t.Helper()
	r, err := loadRef()
	if err != nil {
		t.Fatalf("reference values: %v", err)
	}
	if r.TestKeyHex != testKeyHex {
		t.Fatalf("reference.json was made with key %s, tests use %s", r.TestKeyHex, testKeyHex)
	}
	return r
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package privacy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// TestStreamAgainstReference checks the canonical encoding, the HMAC seed
// and the AES-256-CTR keystream against the independent Python
// implementation in testdata/reference.py.
func TestStreamAgainstReference(t *testing.T) {
	r := ref(t)
	key := testKey(t)
	if got := KeyFingerprint(key); got != r.Fingerprint {
		t.Errorf("KeyFingerprint = %s, want %s", got, r.Fingerprint)
	}
	for _, c := range r.Streams {
		rel := Release{
			Analysis: c.Release.Analysis, SpecHash: c.Release.SpecHash, DataDigest: c.Release.InputDigest,
			Cohort: c.Release.Cohort, Variant: c.Release.Variant, Metric: c.Release.Metric,
			Statistic: Statistic(c.Release.Statistic),
			Mechanism: Mechanism{Kind: MechanismKind(c.Release.Kind), Param: rat(t, c.Release.Param)},
		}
		t.Run(rel.Mechanism.String(), func(t *testing.T) {
			enc, err := rel.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(enc); got != c.EncodingHex {
				t.Errorf("encoding\n got %s\nwant %s", got, c.EncodingHex)
			}
			s := NewStream(key, rel)
			got := make([]byte, len(c.KeystreamHex)/2)
			if _, err := s.read(got); err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, c.KeystreamHex); !bytes.Equal(got, want) {
				t.Errorf("keystream\n got %x\nwant %x", got, want)
			}
		})
	}
}

func firstBytes(t *testing.T, key []byte, r Release) []byte {
	t.Helper()
	s := NewStream(key, r)
	b := make([]byte, 32)
	if _, err := s.read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStreamReproducible(t *testing.T) {
	m := DiscreteGaussian(big.NewRat(9, 4))
	a := fmt.Sprint(draws(t, m, 1000))
	b := fmt.Sprint(draws(t, m, 1000))
	if a != b {
		t.Error("same key and release gave different draws")
	}
	// AddNoise on a fresh stream equals value + the stream's first draw.
	n, err := AddNoise(NewStream(testKey(t), baseRelease(m)), big.NewInt(1000), m)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1000 + draws(t, m, 1)[0]; n.Int64() != want {
		t.Errorf("AddNoise = %v, want %d", n, want)
	}
}

// TestStreamFieldsMatter: changing any one field of the release, or the
// key, gives another stream.
func TestStreamFieldsMatter(t *testing.T) {
	key := testKey(t)
	base := baseRelease(DiscreteGaussian(big.NewRat(9, 4)))
	want := firstBytes(t, key, base)
	mutations := map[string]func(*Release){
		"analysis":       func(r *Release) { r.Analysis += "x" },
		"spec hash":      func(r *Release) { r.SpecHash += "x" },
		"data digest":    func(r *Release) { r.DataDigest = "sha256:bb23" },
		"cohort":         func(r *Release) { r.Cohort = "power/*" },
		"variant":        func(r *Release) { r.Variant = "control" },
		"metric":         func(r *Release) { r.Metric = "" },
		"statistic":      func(r *Release) { r.Statistic = StatSumX2 },
		"mechanism kind": func(r *Release) { r.Mechanism.Kind = KindDiscreteLaplace },
		"parameter":      func(r *Release) { r.Mechanism.Param = big.NewRat(9, 5) },
	}
	for name, mut := range mutations {
		t.Run(name, func(t *testing.T) {
			r := base
			r.Mechanism = base.Mechanism.clone()
			mut(&r)
			if got := firstBytes(t, key, r); bytes.Equal(got, want) {
				t.Errorf("changing the %s left the stream unchanged", name)
			}
		})
	}
	t.Run("key", func(t *testing.T) {
		other := bytes.Clone(key)
		other[31] ^= 1
		if bytes.Equal(firstBytes(t, other, base), want) {
			t.Error("another key gave the same stream")
		}
		m := base.Mechanism
		a, _ := AddNoise(NewStream(key, base), big.NewInt(0), m)
		b, _ := AddNoise(NewStream(other, base), big.NewInt(0), m)
		c, _ := NewStream(other, base).Sample(m)
		if a == nil || b == nil || b.Cmp(c) != 0 {
			t.Fatalf("AddNoise: %v %v %v", a, b, c)
		}
	})
}

// TestEncodingInjective: distinct releases never share an encoding (and
// so never share a stream), including when bytes move across a field
// boundary.
func TestEncodingInjective(t *testing.T) {
	base := baseRelease(DiscreteGaussian(big.NewRat(9, 4)))
	// Adjacent string fields, each pair with ("ab","c") vs ("a","bc").
	fields := []func(*Release) *string{
		func(r *Release) *string { return &r.Analysis },
		func(r *Release) *string { return &r.SpecHash },
		func(r *Release) *string { return &r.DataDigest },
		func(r *Release) *string { return &r.Cohort },
		func(r *Release) *string { return &r.Variant },
		func(r *Release) *string { return &r.Metric },
		func(r *Release) *string { return (*string)(&r.Statistic) },
	}
	for i := 0; i+1 < len(fields); i++ {
		a, b := base, base
		*fields[i](&a), *fields[i+1](&a) = "ab", "c"
		*fields[i](&b), *fields[i+1](&b) = "a", "bc"
		ea, err1 := a.Encode()
		eb, err2 := b.Encode()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if bytes.Equal(ea, eb) {
			t.Errorf("fields %d/%d: (ab,c) and (a,bc) share an encoding", i, i+1)
		}
		if bytes.Equal(firstBytes(t, testKey(t), a), firstBytes(t, testKey(t), b)) {
			t.Errorf("fields %d/%d: (ab,c) and (a,bc) share a stream", i, i+1)
		}
	}
	// Random releases over a tiny alphabet, with separators and length-like
	// bytes: equal encodings only for equal releases.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "ab", "a\x00", "\x00\x00\x00\x01", "/", "1/2"}
	pick := func() string { return alphabet[rng.IntN(len(alphabet))] }
	seen := map[string]string{}
	for range 20000 {
		r := Release{
			Analysis: pick(), SpecHash: pick(), DataDigest: pick(), Cohort: pick(), Variant: pick(),
			Metric: []string{"", "a", "ab"}[rng.IntN(3)], Statistic: []Statistic{"n", "sum_x", "a"}[rng.IntN(3)],
			Mechanism: Mechanism{
				Kind:  []MechanismKind{KindDiscreteGaussian, KindDiscreteLaplace}[rng.IntN(2)],
				Param: big.NewRat(int64(1+rng.IntN(3)), int64(1+rng.IntN(3))),
			},
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("%q", []string{r.Analysis, r.SpecHash, r.DataDigest, r.Cohort, r.Variant, r.Metric, string(r.Statistic), r.Mechanism.String()})
		if prev, ok := seen[string(enc)]; ok && prev != desc {
			t.Fatalf("releases %s and %s share an encoding", prev, desc)
		}
		seen[string(enc)] = desc
	}
}

func TestStreamErrors(t *testing.T) {
	m := DiscreteGaussian(big.NewRat(1, 1))
	t.Run("short key", func(t *testing.T) {
		s := NewStream(make([]byte, 31), baseRelease(m))
		if _, err := AddNoise(s, big.NewInt(1), m); !errors.Is(err, ErrKeyTooShort) {
			t.Errorf("err = %v, want ErrKeyTooShort", err)
		}
		if _, err := s.read(make([]byte, 1)); !errors.Is(err, ErrKeyTooShort) {
			t.Errorf("Read err = %v", err)
		}
	})
	t.Run("invalid release", func(t *testing.T) {
		r := baseRelease(m)
		r.DataDigest = ""
		if _, err := NewStream(testKey(t), r).Sample(m); err == nil || !strings.Contains(err.Error(), "data digest") {
			t.Errorf("err = %v, want a missing data digest", err)
		}
	})
	t.Run("used stream", func(t *testing.T) {
		s := NewStream(testKey(t), baseRelease(m))
		if _, err := AddNoise(s, big.NewInt(1), m); err != nil {
			t.Fatal(err)
		}
		if _, err := AddNoise(s, big.NewInt(1), m); !errors.Is(err, ErrStreamUsed) {
			t.Errorf("second AddNoise err = %v, want ErrStreamUsed", err)
		}
	})
	t.Run("mechanism mismatch", func(t *testing.T) {
		s := NewStream(testKey(t), baseRelease(m))
		if _, err := AddNoise(s, big.NewInt(1), DiscreteGaussian(big.NewRat(2, 1))); err == nil {
			t.Error("AddNoise with another mechanism accepted")
		}
	})
}

func TestRunDigest(t *testing.T) {
	fp := KeyFingerprint(testKey(t))
	a := baseRelease(DiscreteGaussian(big.NewRat(9, 4)))
	b := a
	b.Statistic = StatN
	items := []Released{{a, big.NewInt(10)}, {b, big.NewInt(3)}}
	d1, err := RunDigest(fp, items)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := RunDigest(fp, []Released{items[1], items[0]})
	if d1 != d2 || !digestPattern.MatchString(d1) {
		t.Errorf("digest depends on order or is malformed: %s %s", d1, d2)
	}
	for name, other := range map[string][]Released{
		"value": {{a, big.NewInt(11)}, {b, big.NewInt(3)}},
		"fewer": {{a, big.NewInt(10)}},
	} {
		if d, _ := RunDigest(fp, other); d == d1 {
			t.Errorf("changing the %s kept the digest", name)
		}
	}
	if d, _ := RunDigest("0000000000000000", items); d == d1 {
		t.Error("another key fingerprint kept the digest")
	}
	if _, err := RunDigest(fp, []Released{{a, big.NewInt(1)}, {a, big.NewInt(2)}}); err == nil {
		t.Error("two values for one release accepted")
	}
}

func TestParseKey(t *testing.T) {
	raw := []byte("0123456789abcdefghijklmnopqrstuvwxyz!\n")
	// A key file holds the same forms as the environment: raw bytes and
	// bare hex text are refused (bare hex would be used as its ASCII).
	tests := []struct {
		name     string
		material string
		want     []byte // nil: error
		wantErr  error
	}{
		{"hex", "hex:" + testKeyHex + "\n", mustHex(t, testKeyHex), nil},
		{"hex upper", "  hex:" + strings.ToUpper(testKeyHex), mustHex(t, testKeyHex), nil},
		{"base64 padded", "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", mustHex(t, testKeyHex), nil},
		{"base64 unpadded", "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", mustHex(t, testKeyHex), nil},
		{"raw bytes", string(raw), nil, ErrBadKey},
		{"bare hex", testKeyHex + "\n", nil, ErrBadKey},
		{"short hex", "hex:" + testKeyHex[:62], nil, ErrBadKey},
		{"bad hex", "hex:" + testKeyHex[:60] + "zz", nil, ErrBadKey},
		{"odd hex", "hex:" + testKeyHex + "f", nil, ErrBadKey},
		{"bad base64", "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8*", nil, ErrBadKey},
		{"constant", "hex:" + strings.Repeat("00", 32), nil, ErrBadKey},
		{"empty", "", nil, ErrNoKey},
		{"blank", " \n", nil, ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey([]byte(tt.material))
			if tt.want != nil {
				if err != nil || !bytes.Equal(k, tt.want) {
					t.Errorf("ParseKey = %x, %v; want %x", []byte(k), err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			assertNoKeyMaterial(t, err.Error(), tt.material)
		})
	}
}

// assertNoKeyMaterial fails if s contains any 6-byte window of the
// material's body (after a form prefix) — the key must never be quoted.
func assertNoKeyMaterial(t *testing.T, s, material string) {
	t.Helper()
	body := strings.TrimSpace(material)
	for _, p := range []string{"hex:", "base64:"} {
		body = strings.TrimPrefix(body, p)
	}
	for i := 0; i+6 <= len(body); i++ {
		if strings.Contains(s, body[i:i+6]) {
			t.Fatalf("%q quotes key material %q", s, body[i:i+6])
		}
	}
	// A single quoted character of the material is also a leak.
	for _, c := range []string{"'z'", "'*'", "'f'"} {
		if strings.Contains(s, c) {
			t.Fatalf("%q quotes a key character %s", s, c)
		}
	}
}

func TestLoadKey(t *testing.T) {
	secret := "hex:" + testKeyHex[:60] + "zz" // malformed, must not be echoed
	env := map[string]string{
		"VERITY_KEY":   "hex:" + testKeyHex,
		"EMPTY":        "",
		"BAD":          secret,
		"RAW_IN_ENV":   "0123456789abcdefghijklmnopqrstuvwxyz",
		"SHORT_BASE64": "base64:AAEC",
	}
	files := map[string][]byte{
		"/keys/raw.key": []byte("0123456789abcdefghijklmnopqrstuvwxyz"),
		"/keys/hex.key": []byte("hex:" + testKeyHex + "\n"),
		"/keys/bad.key": []byte(secret),
	}
	getenv := func(k string) string { return env[k] }
	readFile := func(p string) ([]byte, error) {
		b, ok := files[p]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
		}
		return bytes.Clone(b), nil
	}
	tests := []struct {
		env, file string
		want      []byte
		wantErr   error
		mention   string
	}{
		{env: "VERITY_KEY", want: mustHex(t, testKeyHex)},
		{file: "/keys/raw.key", wantErr: ErrBadKey, mention: "/keys/raw.key"},
		{file: "/keys/hex.key", want: mustHex(t, testKeyHex)},
		{env: "UNSET", wantErr: ErrNoKey, mention: "UNSET"},
		{env: "EMPTY", wantErr: ErrNoKey, mention: "EMPTY"},
		{env: "BAD", wantErr: ErrBadKey, mention: "BAD"},
		{env: "RAW_IN_ENV", wantErr: ErrBadKey, mention: "RAW_IN_ENV"},
		{env: "SHORT_BASE64", wantErr: ErrBadKey, mention: "3 bytes"},
		{file: "/keys/bad.key", wantErr: ErrBadKey, mention: "/keys/bad.key"},
		{file: "/keys/missing.key", wantErr: os.ErrNotExist, mention: "/keys/missing.key"},
		{env: "VERITY_KEY", file: "/keys/raw.key", wantErr: ErrBadKey, mention: "name one"},
		{wantErr: ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.env+tt.file, func(t *testing.T) {
			k, err := LoadKey(tt.env, tt.file, getenv, readFile)
			if tt.want != nil {
				if err != nil || !bytes.Equal(k, tt.want) {
					t.Errorf("LoadKey = %v, %v", k, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.mention)
			}
			assertNoKeyMaterial(t, err.Error(), secret)
			assertNoKeyMaterial(t, err.Error(), "hex:"+testKeyHex)
			assertNoKeyMaterial(t, err.Error(), string(files["/keys/raw.key"]))
		})
	}
}

// TestKeyNeverPrinted: fmt verbs, log/slog and encoding/json never show
// the key bytes.
func TestKeyNeverPrinted(t *testing.T) {
	k := testKey(t)
	fp := k.Fingerprint()
	type holder struct{ Key Key }
	var outs []string
	for _, verb := range []string{"%v", "%s", "%x", "%X", "%d", "%q", "%#v", "%+v"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, holder{k}))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("run", "key", k)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("run", "key", k)
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(strings.ToLower(o), testKeyHex[:12]) || strings.Contains(o, "[0 1 2 3") || strings.Contains(o, "AAECAwQF") {
			t.Errorf("key material printed: %s", o)
		}
		if !strings.Contains(o, fp) {
			t.Errorf("output %q lacks the fingerprint %s", o, fp)
		}
	}
	if b, err := json.Marshal(holder{k}); err == nil {
		t.Errorf("json.Marshal of a key succeeded: %s", b)
	}
}

package privacy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// MinKeyBytes is the shortest noise key accepted, after decoding.
const MinKeyBytes = 32

// fingerprintDomain separates key fingerprints from every other hash.
const fingerprintDomain = "verity/privacy/key-fingerprint\x00"

// Errors returned by LoadKey and ParseKey (wrapped, so test with errors.Is).
// Their messages never contain key material.
var (
	// ErrNoKey: no key source was named, or the named one is empty.
	ErrNoKey = errors.New("privacy: no noise key")
	// ErrBadKey: the key material is malformed or too weak.
	ErrBadKey = errors.New("privacy: invalid noise key")
)

// Key is secret noise-key material. Its String, GoString, Format and
// LogValue methods print only its fingerprint, and it refuses to be
// marshalled as text or JSON, so it cannot leak through fmt, log/slog or
// encoding/json by accident. (fmt cannot call methods on unexported struct
// fields: never keep a Key in one.) A Key converts to []byte implicitly
// where NewStream wants one.
type Key []byte

// KeyFingerprint identifies a key without revealing it: the first 16 hex
// digits (64 bits) of SHA-256("verity/privacy/key-fingerprint" 0x00 ‖ key).
func KeyFingerprint(key []byte) string {
	h := sha256.New()
	h.Write([]byte(fingerprintDomain))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Fingerprint returns KeyFingerprint(k).
func (k Key) Fingerprint() string { return KeyFingerprint(k) }

func (k Key) redacted() string { return "privacy.Key(fingerprint=" + KeyFingerprint(k) + ")" }

// String returns the redacted form "privacy.Key(fingerprint=…)".
func (k Key) String() string { return k.redacted() }

// GoString returns the redacted form, for %#v.
func (k Key) GoString() string { return k.redacted() }

// Format prints the redacted form whatever the verb (%x and %d included).
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.redacted()) }

// LogValue logs the redacted form.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.redacted()) }

// MarshalText refuses: a key is never serialised. Record its Fingerprint.
func (k Key) MarshalText() ([]byte, error) {
	return nil, errors.New("privacy: a noise key is never serialised; record its fingerprint")
}

// ParseKey decodes key material. The accepted forms, the same for a key
// file and an environment variable:
//
//   - "hex:" followed by hexadecimal digits (either case);
//   - "base64:" followed by standard-alphabet base64, padding optional.
//
// ASCII whitespace around them (a trailing newline) is ignored. Anything
// else is refused: bare hexadecimal text would otherwise be used as its
// ASCII bytes, a key with half the entropy its length suggests. The decoded
// key must have at least MinKeyBytes bytes that are not all identical.
// Errors wrap ErrBadKey or ErrNoKey and never quote the material.
func ParseKey(material []byte) (Key, error) {
	text := bytes.TrimSpace(material)
	var key []byte
	switch {
	case len(text) == 0:
		return nil, fmt.Errorf("%w: the key material is empty", ErrNoKey)
	case bytes.HasPrefix(text, []byte("hex:")):
		body := text[len("hex:"):]
		key = make([]byte, hex.DecodedLen(len(body)))
		if _, err := hex.Decode(key, body); err != nil {
			// hex errors quote the offending character: do not wrap them.
			return nil, fmt.Errorf("%w: the hex: form is not valid hexadecimal", ErrBadKey)
		}
	case bytes.HasPrefix(text, []byte("base64:")):
		body := bytes.TrimRight(text[len("base64:"):], "=")
		key = make([]byte, base64.RawStdEncoding.DecodedLen(len(body)))
		n, err := base64.RawStdEncoding.Decode(key, body)
		if err != nil {
			return nil, fmt.Errorf("%w: the base64: form is not valid standard base64", ErrBadKey)
		}
		key = key[:n]
	case isHex(text):
		return nil, fmt.Errorf("%w: the key is bare hexadecimal; write it as \"hex:<digits>\" (raw key bytes are not accepted)", ErrBadKey)
	default:
		return nil, fmt.Errorf("%w: want \"hex:<digits>\" or \"base64:<text>\" (e.g. printf 'hex:%%s\\n' \"$(openssl rand -hex 32)\")", ErrBadKey)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes after decoding, want at least %d", ErrBadKey, len(key), MinKeyBytes)
	}
	if bytes.Count(key, key[:1]) == len(key) {
		return nil, fmt.Errorf("%w: all %d bytes are identical; use random bytes", ErrBadKey, len(key))
	}
	return Key(key), nil
}

// LoadKey reads the noise key from exactly one source: the environment
// variable named envName (looked up with getenv, e.g. os.Getenv; its value
// must use the "hex:" or "base64:" form) or the file at path (read with
// readFile, e.g. os.ReadFile); both in a form ParseKey accepts.
// Naming neither, or naming an unset or empty variable, is ErrNoKey: without
// a key there is no private release. Error messages name the variable or the
// file, never the material.
func LoadKey(envName, path string, getenv func(string) string, readFile func(string) ([]byte, error)) (Key, error) {
	switch {
	case envName != "" && path != "":
		return nil, fmt.Errorf("%w: both environment variable %s and file %s are named; name one", ErrBadKey, envName, path)
	case envName != "":
		if getenv == nil {
			return nil, errors.New("privacy: LoadKey: getenv is nil")
		}
		k, err := ParseKey([]byte(getenv(envName)))
		if err != nil {
			return nil, fmt.Errorf("noise key from environment variable %s: %w", envName, err)
		}
		return k, nil
	case path != "":
		if readFile == nil {
			return nil, errors.New("privacy: LoadKey: readFile is nil")
		}
		b, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("noise key file: %w", err)
		}
		k, err := ParseKey(b)
		clear(b)
		if err != nil {
			return nil, fmt.Errorf("noise key file %s: %w", path, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: no environment variable or key file named", ErrNoKey)
	}
}

// isHex reports whether b is non-empty hexadecimal text.
func isHex(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

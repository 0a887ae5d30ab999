package privacy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func ent(exp, date, digest string, spent *big.Rat) Entry {
	return Entry{Experiment: exp, NominalDate: date, ReleaseDigest: digest, Spent: spent}
}

func date(day int) string { return fmt.Sprintf("2026-11-%02d", day) }

// TestLedgerMarshal pins the ledger's canonical JSON.
func TestLedgerMarshal(t *testing.T) {
	l, err := NewLedger("prod", "/data/prod", ScopeExperiment, Budget{Epsilon: 1, RunShare: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	// Spend out of date order: the ledger keeps entries sorted.
	for _, e := range []Entry{
		ent("checkout-v2", "2026-11-21", digestOf("b"), big.NewRat(1, 4)),
		ent("checkout-v2", "2026-11-20", digestOf("a"), big.NewRat(1, 8)),
	} {
		if err := l.Spend(e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 2,
  "source": "prod",
  "root": "/data/prod",
  "scope": "experiment",
  "accounting": "pure_epsilon",
  "budget": {
    "epsilon": 1,
    "delta": 0,
    "run_share": 0.25
  },
  "total": "1",
  "entries": [
    {
      "experiment": "checkout-v2",
      "nominal_date": "2026-11-20",
      "release_digest": "` + digestOf("a") + `",
      "spent": "1/8"
    },
    {
      "experiment": "checkout-v2",
      "nominal_date": "2026-11-21",
      "release_digest": "` + digestOf("b") + `",
      "spent": "1/4"
    }
  ]
}
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
	back, err := UnmarshalLedger(got)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Marshal()
	if !bytes.Equal(again, got) {
		t.Errorf("round trip changed the bytes:\n%s", again)
	}
	if r := back.Remaining(); r.Cmp(big.NewRat(5, 8)) != 0 {
		t.Errorf("remaining = %s, want 5/8", r)
	}
}

// TestLedgerProperty runs random sequences of nightly runs: some nights
// rerun on identical inputs (same digest), some rerun on changed inputs
// (new digest, same night), costs vary. The spent total never exceeds the
// total, identical reruns spend nothing, refusals leave the ledger
// unchanged, and a spend that fits is never refused.
func TestLedgerProperty(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 99))
		b := Budget{Epsilon: 0.5 + rng.Float64()*4, Delta: 1e-6, RunShare: 1.0 / float64(3+rng.IntN(18))}
		l, err := NewLedger("prod", "/data/prod", ScopeExperiment, b)
		if err != nil {
			t.Fatal(err)
		}
		perRun, _ := b.PerRun()
		var published []Entry
		refused := 0
		for night := 1; night <= 60; night++ {
			cost := new(big.Rat).Mul(perRun, big.NewRat(int64(50+rng.IntN(51)), 100))
			e := ent("exp", fmt.Sprintf("2026-%02d-%02d", 1+night/28, 1+night%28), digestOf(fmt.Sprint(seed, night)), cost)
			if len(published) > 0 && rng.IntN(4) == 0 {
				e = published[rng.IntN(len(published))] // byte-identical rerun
			} else if len(published) > 0 && rng.IntN(6) == 0 {
				prev := published[len(published)-1] // changed input, same night
				e = ent("exp", prev.NominalDate, digestOf(fmt.Sprint(seed, night, "changed")), cost)
			}
			before, _ := l.Marshal()
			spentBefore := l.Spent()
			_, repeat := l.Lookup(e.ReleaseDigest)
			err := l.Spend(e)
			after, _ := l.Marshal()
			fits := new(big.Rat).Add(spentBefore, e.Spent).Cmp(l.Total) <= 0
			switch {
			case repeat:
				if err != nil || !bytes.Equal(before, after) {
					t.Fatalf("seed %d night %d: identical rerun changed the ledger or failed: %v", seed, night, err)
				}
			case err != nil:
				if !errors.Is(err, ErrBudgetExhausted) || fits {
					t.Fatalf("seed %d night %d: refused a spend that fits: %v", seed, night, err)
				}
				var be *BudgetError
				if !errors.As(err, &be) || !strings.Contains(err.Error(), `"exp"`) {
					t.Fatalf("seed %d: refusal is not a clear BudgetError: %v", seed, err)
				}
				if !bytes.Equal(before, after) {
					t.Fatalf("seed %d night %d: refusal changed the ledger", seed, night)
				}
				refused++
			default:
				if !fits {
					t.Fatalf("seed %d night %d: accepted a spend past the total", seed, night)
				}
				published = append(published, e)
			}
			if l.Spent().Cmp(l.Total) > 0 {
				t.Fatalf("seed %d night %d: spent %s > total %s", seed, night, l.Spent(), l.Total)
			}
			back, err := UnmarshalLedger(after)
			if err != nil {
				t.Fatalf("seed %d night %d: %v", seed, night, err)
			}
			if again, _ := back.Marshal(); !bytes.Equal(again, after) {
				t.Fatalf("seed %d night %d: round trip changed the bytes", seed, night)
			}
		}
		if refused == 0 {
			t.Errorf("seed %d: 60 nights never exhausted the budget; the test exercises nothing", seed)
		}
		// The bytes do not depend on the order entries were spent in.
		want, _ := l.Marshal()
		shuffled, _ := NewLedger("prod", "/data/prod", ScopeExperiment, b)
		order := rng.Perm(len(l.Entries))
		for _, i := range order {
			if err := shuffled.Spend(l.Entries[i]); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := shuffled.Marshal(); !bytes.Equal(got, want) {
			t.Errorf("seed %d: ledger bytes depend on spend order", seed)
		}
	}
}

func TestLedgerErrors(t *testing.T) {
	l, err := NewLedger("prod", "/data/prod", ScopeExperiment, Budget{Epsilon: 1, RunShare: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ok := ent("exp", "2026-11-20", digestOf("a"), big.NewRat(1, 2))
	if err := l.Spend(ok); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		e    Entry
		want error
	}{
		{"bad date", ent("exp", "20261120", digestOf("b"), big.NewRat(1, 10)), nil},
		{"bad digest", ent("exp", "2026-11-20", "abc", big.NewRat(1, 10)), nil},
		{"negative", ent("exp", "2026-11-20", digestOf("b"), big.NewRat(-1, 10)), nil},
		{"nil spent", ent("exp", "2026-11-20", digestOf("b"), nil), nil},
		{"conflict", ent("exp", "2026-11-21", digestOf("a"), big.NewRat(1, 3)), ErrDigestConflict},
		{"exhausted", ent("exp", "2026-11-21", digestOf("c"), big.NewRat(2, 3)), ErrBudgetExhausted},
	}
	for _, b := range bad {
		err := l.Spend(b.e)
		if err == nil || (b.want != nil && !errors.Is(err, b.want)) {
			t.Errorf("%s: err = %v, want %v", b.name, err, b.want)
		}
	}
	if len(l.Entries) != 1 {
		t.Errorf("refused entries were recorded: %d entries", len(l.Entries))
	}
	// Exactly the remainder fits.
	if err := l.Spend(ent("exp", "2026-11-21", digestOf("c"), big.NewRat(1, 2))); err != nil {
		t.Errorf("spending exactly the remainder: %v", err)
	}

	good, _ := l.Marshal()
	corrupt := map[string]string{
		"unknown field": strings.Replace(string(good), `"version": 2,`, `"version": 2, "extra": 2,`, 1),
		"trailing data": string(good) + "{}",
		"version":       strings.Replace(string(good), `"version": 2`, `"version": 1`, 1),
		"unknown scope": strings.Replace(string(good), `"scope": "experiment"`, `"scope": "everything"`, 1),
		"overspent":     strings.Replace(string(good), `"total": "1"`, `"total": "1/2"`, 1),
		"out of order":  strings.Replace(strings.Replace(string(good), "2026-11-21", "2026-11-19", 1), "2026-11-20", "2026-11-21", 1),
		"bad rational":  strings.Replace(string(good), `"spent": "1/2"`, `"spent": "half"`, 1),
	}
	for name, data := range corrupt {
		if data == string(good) {
			t.Fatalf("%s: corruption did not apply", name)
		}
		if _, err := UnmarshalLedger([]byte(data)); err == nil {
			t.Errorf("%s: UnmarshalLedger accepted it", name)
		}
	}
}

// TestLedgerScopes: a source-scoped ledger caps every experiment's releases
// together; an experiment-scoped one caps each experiment on its own.
func TestLedgerScopes(t *testing.T) {
	b := Budget{Epsilon: 1, RunShare: 1}
	for _, c := range []struct {
		scope     Scope
		secondOK  bool
		wantSpent string
	}{{ScopeSource, false, "3/4"}, {ScopeExperiment, true, "3/4"}} {
		l, err := NewLedger("prod", "/data/prod", c.scope, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Spend(ent("a", "2026-11-20", digestOf("a1"), big.NewRat(3, 4))); err != nil {
			t.Fatal(err)
		}
		err = l.Spend(ent("b", "2026-11-20", digestOf("b1"), big.NewRat(3, 4)))
		if (err == nil) != c.secondOK {
			t.Errorf("%s scope: second experiment's release: err %v, want ok=%v", c.scope, err, c.secondOK)
		}
		if got := l.SpentBy("a").RatString(); got != c.wantSpent && c.scope == ScopeExperiment {
			t.Errorf("%s scope: experiment a spent %s", c.scope, got)
		}
		if err := l.Spend(ent("a", "2026-11-21", digestOf("a2"), big.NewRat(1, 2))); err == nil {
			t.Errorf("%s scope: experiment a went past its total", c.scope)
		}
	}
}

package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"sort"
	"time"
)

// LedgerVersion is the only ledger format version this package reads.
// Version 1 ledgers (one per experiment, kept under the output folder) are
// read by UnmarshalLedgerV1 so that a host can import them.
const LedgerVersion = 2

// Scope says what a ledger's total caps.
type Scope string

const (
	// ScopeSource: every private release over the data source draws from
	// one total, so a unit that takes part in several experiments is
	// protected over all of them together.
	ScopeSource Scope = "source"
	// ScopeExperiment: each experiment_id draws from its own total; a unit
	// in k experiments can lose up to k totals.
	ScopeExperiment Scope = "experiment"
)

// Errors returned by Ledger.Spend (test with errors.Is).
var (
	// ErrBudgetExhausted: the entry would take the spent total past the
	// ledger's total. The error is a *BudgetError with the figures.
	ErrBudgetExhausted = errors.New("privacy budget exhausted")
	// ErrDigestConflict: an entry repeats a recorded release digest with a
	// different cost, which a byte-identical rerun cannot produce.
	ErrDigestConflict = errors.New("privacy: release digest already recorded with another cost")
)

// BudgetError reports a refused Spend.
type BudgetError struct {
	Source      string
	Scope       Scope
	Experiment  string
	NominalDate string
	Accounting  Accounting
	Total       *big.Rat // the experiment's total
	Spent       *big.Rat // spent before this run
	Need        *big.Rat // what this run would spend
}

func (e *BudgetError) Error() string {
	f := func(r *big.Rat) string { return r.FloatString(9) }
	unit := "ρ"
	if e.Accounting == AccountingPure {
		unit = "ε"
	}
	rem := new(big.Rat).Sub(e.Total, e.Spent)
	of := fmt.Sprintf("data source %q", e.Source)
	if e.Scope == ScopeExperiment {
		of = fmt.Sprintf("experiment %q of data source %q", e.Experiment, e.Source)
	}
	return fmt.Sprintf("privacy budget exhausted for %s: the release of %s for %s needs %s=%s but only %s of the total %s remains (spent %s); refusing to release",
		of, e.Experiment, e.NominalDate, unit, f(e.Need), f(rem), f(e.Total), f(e.Spent))
}

// Unwrap returns ErrBudgetExhausted.
func (e *BudgetError) Unwrap() error { return ErrBudgetExhausted }

// Entry is one release's spending: experiment (the data's experiment_id),
// nominal date (YYYY-MM-DD), the RunDigest of what it published, its cost
// in the ledger's units, and the fingerprint of the key it was noised with.
type Entry struct {
	Experiment     string   `json:"experiment"`
	NominalDate    string   `json:"nominal_date"`
	ReleaseDigest  string   `json:"release_digest"`
	Spent          *big.Rat `json:"spent"`
	KeyFingerprint string   `json:"key_fingerprint,omitempty"`
	// Imported names the version-1 ledger file an entry was imported from.
	Imported string `json:"imported,omitempty"`
}

// Ledger accumulates what the private releases over one data source spent,
// whatever key, output folder or spec produced them. It is a plain value:
// the pipeline reads and writes its bytes (Marshal, UnmarshalLedger); the
// methods do no I/O. Entries are kept sorted by (NominalDate,
// ReleaseDigest). Amounts are exact rationals, written as "a/b" strings, so
// sums never round.
type Ledger struct {
	Version int `json:"version"`
	// Source names the data source; Root is its folder (absolute, symlinks
	// resolved): every input of a release charged here lies under it.
	Source string `json:"source"`
	Root   string `json:"root"`
	// Scope says whether Total caps the whole source or each experiment.
	Scope      Scope      `json:"scope"`
	Accounting Accounting `json:"accounting"`
	// Budget is the host's total (ε, δ) when the ledger was created (for
	// people reading the file; Total is what is enforced).
	Budget Budget `json:"budget"`
	// Total is Budget.Total(): the most the entries in one scope may add
	// up to.
	Total   *big.Rat `json:"total"`
	Entries []Entry  `json:"entries"`
}

// NewLedger returns an empty ledger for a data source with b's total.
func NewLedger(source, root string, scope Scope, b Budget) (Ledger, error) {
	if source == "" || root == "" {
		return Ledger{}, errors.New("privacy: ledger: empty source name or root")
	}
	if scope != ScopeSource && scope != ScopeExperiment {
		return Ledger{}, fmt.Errorf("privacy: ledger: scope %q: want %q or %q", scope, ScopeSource, ScopeExperiment)
	}
	total, err := b.Total()
	if err != nil {
		return Ledger{}, err
	}
	return Ledger{
		Version:    LedgerVersion,
		Source:     source,
		Root:       root,
		Scope:      scope,
		Accounting: b.Accounting(),
		Budget:     b,
		Total:      total,
		Entries:    []Entry{},
	}, nil
}

// SpentBy returns what the entries in the scope of experiment spent: all
// of them for ScopeSource, the experiment's for ScopeExperiment.
func (l Ledger) SpentBy(experiment string) *big.Rat {
	s := new(big.Rat)
	for _, e := range l.Entries {
		if e.Spent != nil && (l.Scope == ScopeSource || e.Experiment == experiment) {
			s.Add(s, e.Spent)
		}
	}
	return s
}

// Spent returns the sum of the entries' costs.
func (l Ledger) Spent() *big.Rat {
	s := new(big.Rat)
	for _, e := range l.Entries {
		if e.Spent != nil {
			s.Add(s, e.Spent)
		}
	}
	return s
}

// Remaining returns Total − Spent.
func (l Ledger) Remaining() *big.Rat {
	r := new(big.Rat)
	if l.Total != nil {
		r.Set(l.Total)
	}
	return r.Sub(r, l.Spent())
}

// EpsilonSpent returns the ε that the releases in experiment's scope (see
// SpentBy) guarantee together at the ledger's δ: what was spent, for pure
// DP; for zCDP the tight conversion CDPEpsilon(ρ spent, δ).
func (l Ledger) EpsilonSpent(experiment string) (float64, error) {
	spent, _ := l.SpentBy(experiment).Float64()
	if l.Accounting != AccountingZCDP || spent == 0 {
		return spent, nil
	}
	return CDPEpsilon(spent, l.Budget.Delta)
}

// EpsilonRemaining returns how much further the scope's ε guarantee may
// weaken before the ledger refuses a release: Total − spent for pure DP;
// for zCDP the total ε minus EpsilonSpent (ε does not add under zCDP, so
// this is not an amount a single release could spend; ρ is what the
// ledger enforces). Never below 0.
func (l Ledger) EpsilonRemaining(experiment string) (float64, error) {
	if l.Accounting != AccountingZCDP {
		r, _ := new(big.Rat).Sub(l.Total, l.SpentBy(experiment)).Float64()
		return max(r, 0), nil
	}
	spent, err := l.EpsilonSpent(experiment)
	if err != nil {
		return 0, err
	}
	return max(l.Budget.Epsilon-spent, 0), nil
}

// Lookup returns the recorded entry with e's release digest, if any.
func (l Ledger) Lookup(digest string) (Entry, bool) {
	for _, x := range l.Entries {
		if x.ReleaseDigest == digest {
			return x, true
		}
	}
	return Entry{}, false
}

var (
	digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (l Ledger) checkEntry(e Entry) error {
	if e.Experiment == "" {
		return errors.New("privacy: ledger entry: empty experiment")
	}
	if _, err := time.Parse(time.DateOnly, e.NominalDate); err != nil {
		return fmt.Errorf("privacy: ledger entry: nominal date %q: want YYYY-MM-DD", e.NominalDate)
	}
	if !digestPattern.MatchString(e.ReleaseDigest) {
		return fmt.Errorf("privacy: ledger entry: release digest %q: want 64 lowercase hex digits (RunDigest)", e.ReleaseDigest)
	}
	if e.Spent == nil || e.Spent.Sign() < 0 {
		return errors.New("privacy: ledger entry: spent must be ≥ 0")
	}
	return nil
}

// Cost returns what Spend(e) would add: zero when e repeats a recorded
// release digest (a byte-identical rerun publishes the same numbers),
// e.Spent otherwise. It does not check the total.
func (l Ledger) Cost(e Entry) (*big.Rat, error) {
	if err := l.checkEntry(e); err != nil {
		return nil, err
	}
	if x, ok := l.Lookup(e.ReleaseDigest); ok {
		if x.Spent.Cmp(e.Spent) != 0 {
			return nil, fmt.Errorf("%w: digest %s recorded on %s with %s, now %s", ErrDigestConflict, e.ReleaseDigest, x.NominalDate, x.Spent, e.Spent)
		}
		return new(big.Rat), nil
	}
	return new(big.Rat).Set(e.Spent), nil
}

// Spend records e. A repeat of a recorded release digest is free and
// changes nothing. Otherwise, if Spent + e.Spent would exceed Total, Spend
// refuses with a *BudgetError (wrapping ErrBudgetExhausted) and the ledger is
// unchanged; else the entry is inserted in order.
func (l *Ledger) Spend(e Entry) error {
	if l.Total == nil {
		return errors.New("privacy: ledger has no total (use NewLedger)")
	}
	cost, err := l.Cost(e)
	if err != nil {
		return err
	}
	if cost.Sign() == 0 {
		if _, ok := l.Lookup(e.ReleaseDigest); ok {
			return nil
		}
	}
	spent := l.SpentBy(e.Experiment)
	if new(big.Rat).Add(spent, cost).Cmp(l.Total) > 0 {
		return &BudgetError{
			Source:      l.Source,
			Scope:       l.Scope,
			Experiment:  e.Experiment,
			NominalDate: e.NominalDate,
			Accounting:  l.Accounting,
			Total:       new(big.Rat).Set(l.Total),
			Spent:       spent,
			Need:        cost,
		}
	}
	e.Spent = new(big.Rat).Set(e.Spent)
	i := sort.Search(len(l.Entries), func(i int) bool { return !entryLess(l.Entries[i], e) })
	entries := make([]Entry, 0, len(l.Entries)+1)
	entries = append(entries, l.Entries[:i]...)
	entries = append(entries, e)
	l.Entries = append(entries, l.Entries[i:]...)
	return nil
}

func entryLess(a, b Entry) bool {
	if a.NominalDate != b.NominalDate {
		return a.NominalDate < b.NominalDate
	}
	return a.ReleaseDigest < b.ReleaseDigest
}

// Validate checks the ledger's invariants: version, units, entries valid,
// sorted, digests unique, and spent ≤ total.
func (l Ledger) Validate() error {
	if l.Version != LedgerVersion {
		return fmt.Errorf("privacy: ledger version %d: this binary reads version %d", l.Version, LedgerVersion)
	}
	if l.Source == "" || l.Root == "" {
		return errors.New("privacy: ledger: empty source or root")
	}
	if l.Scope != ScopeSource && l.Scope != ScopeExperiment {
		return fmt.Errorf("privacy: ledger: unknown scope %q", string(l.Scope))
	}
	if l.Accounting != AccountingZCDP && l.Accounting != AccountingPure {
		return fmt.Errorf("privacy: ledger: unknown accounting %q", string(l.Accounting))
	}
	if l.Total == nil || l.Total.Sign() <= 0 {
		return errors.New("privacy: ledger: total must be > 0")
	}
	seen := make(map[string]bool, len(l.Entries))
	for i, e := range l.Entries {
		if err := l.checkEntry(e); err != nil {
			return fmt.Errorf("ledger entry %d: %w", i, err)
		}
		if seen[e.ReleaseDigest] {
			return fmt.Errorf("privacy: ledger entry %d: release digest %s recorded twice", i, e.ReleaseDigest)
		}
		seen[e.ReleaseDigest] = true
		if i > 0 && !entryLess(l.Entries[i-1], e) {
			return fmt.Errorf("privacy: ledger entry %d: entries out of order", i)
		}
	}
	for _, e := range l.Entries {
		if sp := l.SpentBy(e.Experiment); sp.Cmp(l.Total) > 0 {
			return fmt.Errorf("privacy: ledger: spent %s exceeds total %s", sp.FloatString(9), l.Total.FloatString(9))
		}
	}
	return nil
}

// Marshal returns the ledger's canonical JSON: fields in declaration order,
// two-space indentation, a trailing newline, entries sorted, rationals as
// reduced "a/b" strings (integers as "a"). Equal ledgers give equal bytes.
func (l Ledger) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if l.Entries == nil {
		l.Entries = []Entry{}
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("privacy: ledger: %w", err)
	}
	return append(b, '\n'), nil
}

// UnmarshalLedger decodes and validates a ledger. Unknown fields, trailing
// data and invalid ledgers are errors. Marshal of the result reproduces
// canonical input byte for byte.
func UnmarshalLedger(data []byte) (Ledger, error) {
	var l Ledger
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Ledger{}, fmt.Errorf("privacy: ledger: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Ledger{}, errors.New("privacy: ledger: trailing data after the JSON object")
	}
	if l.Entries == nil {
		l.Entries = []Entry{}
	}
	if err := l.Validate(); err != nil {
		return Ledger{}, err
	}
	return l, nil
}

// LedgerV1 is the version-1 ledger: one experiment's releases, kept in its
// output folder. Hosts import its entries into a data source's ledger
// (verity ledger init --import).
type LedgerV1 struct {
	Version    int        `json:"version"`
	Experiment string     `json:"experiment"`
	Accounting Accounting `json:"accounting"`
	Budget     Budget     `json:"budget"`
	Total      *big.Rat   `json:"total"`
	Entries    []Entry    `json:"entries"`
}

// UnmarshalLedgerV1 decodes a version-1 ledger.
func UnmarshalLedgerV1(data []byte) (LedgerV1, error) {
	var l LedgerV1
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return LedgerV1{}, fmt.Errorf("privacy: version-1 ledger: %w", err)
	}
	if l.Version != 1 || l.Experiment == "" || l.Total == nil {
		return LedgerV1{}, fmt.Errorf("privacy: not a version-1 ledger (version %d)", l.Version)
	}
	for i, e := range l.Entries {
		if e.Spent == nil || e.Spent.Sign() < 0 || !digestPattern.MatchString(e.ReleaseDigest) {
			return LedgerV1{}, fmt.Errorf("privacy: version-1 ledger entry %d is malformed", i)
		}
	}
	return l, nil
}

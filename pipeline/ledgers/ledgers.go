package ledgers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/privacy"
)

// Host is the host configuration of private runs: where the privacy
// ledgers and the restricted records live. A spec author does not control
// it; a nightly host sets it with flags or the environment
// (VERITY_STATE_DIR, VERITY_RESTRICTED_DIR).
//
// StateDir holds sources.json (the registered data sources) and
// ledgers/<source>.json (one ledger per source). RestrictedDir (default
// StateDir/restricted) receives each private run's exact operational
// record: never inside an output folder, folders 0700 and files 0600.
type Host struct {
	StateDir      string
	RestrictedDir string
	// AllowTestKey lets a private run use the committed test-only key
	// (fixtures/keys/TEST-ONLY-noise.key): tests and --allow-test-key.
	AllowTestKey bool
}

// RestrictedRoot returns the restricted area's root.
func (h Host) RestrictedRoot() string {
	if h.RestrictedDir != "" {
		return h.RestrictedDir
	}
	if h.StateDir == "" {
		return ""
	}
	return filepath.Join(h.StateDir, "restricted")
}

// HostError is a problem with the host's privacy state: a missing or
// corrupt ledger or registry, a data source that is not registered. It
// names the path. Exit code 78.
type HostError struct {
	Path string
	Err  error
}

func (e *HostError) Error() string {
	if e.Path == "" {
		return "privacy host configuration: " + e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}
func (e *HostError) Unwrap() error { return e.Err }

// TestKeyFingerprint is the fingerprint of the committed test-only key. A
// private run refuses it unless Host.AllowTestKey.
const TestKeyFingerprint = "abd20aba67ae9fd3"

// Source is one registered data source: a name, the folder every input of
// its releases lies under, and its ledger file (relative to the state dir).
type Source struct {
	Name   string `json:"name"`
	Root   string `json:"root"`
	Ledger string `json:"ledger"`
	// Keys are the fingerprints of the noise keys the host allows for the
	// source's releases; empty allows any key. Whoever holds the key can
	// test candidate datasets against a release, so a host that binds its
	// keys here keeps a spec author from choosing one they know.
	Keys []string `json:"keys,omitempty"`
}

type registry struct {
	Version int      `json:"version"`
	Sources []Source `json:"sources"`
}

const registryFile = "sources.json"

var sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// realPath returns the absolute path with every symlink resolved: the
// spelling-independent identity of a file or folder.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// Within reports whether path lies under root (both real paths).
func Within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func readRegistry(stateDir string) (registry, error) {
	path := filepath.Join(stateDir, registryFile)
	b, err := readStateFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return registry{}, &HostError{Path: path, Err: errors.New("no data source is registered in this state folder; a host registers one with `verity ledger init --state-dir DIR --source NAME --root DATA_DIR --epsilon E --delta D`")}
	}
	if err != nil {
		return registry{}, &HostError{Path: path, Err: fmt.Errorf("the data-source registry cannot be read (%v); refusing to release without knowing the ledgers", err)}
	}
	var r registry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return registry{}, &HostError{Path: path, Err: fmt.Errorf("the data-source registry is corrupt (%v); refusing to release without knowing the ledgers", err)}
	}
	if r.Version != 1 {
		return registry{}, &HostError{Path: path, Err: fmt.Errorf("the data-source registry has version %d, this binary reads version 1; refusing to release without knowing the ledgers", r.Version)}
	}
	return r, nil
}

// LedgerInit registers a data source and creates its empty ledger. It is the
// only way a ledger comes into being: a private run never creates one, so a
// lost ledger refuses the release instead of starting over. imports are
// version-1 ledgers (privacy-ledger.json of earlier releases) whose entries
// are carried over.
func LedgerInit(stateDir, name, root string, scope privacy.Scope, b privacy.Budget, imports []string, keyFingerprints ...string) (string, error) {
	if stateDir == "" {
		return "", fmt.Errorf("%w: a state folder is required (--state-dir or VERITY_STATE_DIR)", expspec.ErrUsage)
	}
	if !sourceNameRE.MatchString(name) {
		return "", fmt.Errorf("%w: source name %q: want lowercase letters, digits, '.', '_' or '-' (at most 64)", expspec.ErrUsage, name)
	}
	b.RunShare = 1
	if err := b.Validate(); err != nil {
		return "", fmt.Errorf("%w: %v", expspec.ErrUsage, err)
	}
	rootReal, err := realPath(root)
	if err != nil {
		return "", fmt.Errorf("%w: data source root %s: %v", expspec.ErrUsage, root, err)
	}
	if fi, err := os.Stat(rootReal); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%w: data source root %s is not a folder", expspec.ErrUsage, root)
	}
	if err := os.MkdirAll(filepath.Join(stateDir, "ledgers"), 0o700); err != nil {
		return "", diskio.OutputFileError(filepath.Join(stateDir, "ledgers"), "--state-dir", err)
	}
	lock, err := lockFile(filepath.Join(stateDir, registryFile+".lock"))
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	reg := registry{Version: 1}
	if _, err := os.Stat(filepath.Join(stateDir, registryFile)); err == nil {
		if reg, err = readRegistry(stateDir); err != nil {
			return "", err
		}
	}
	for _, s := range reg.Sources {
		switch {
		case s.Name == name:
			return "", &HostError{Path: filepath.Join(stateDir, registryFile), Err: fmt.Errorf("source %q is already registered (ledger %s); a ledger is never re-created", name, s.Ledger)}
		case Within(s.Root, rootReal) || Within(rootReal, s.Root):
			return "", &HostError{Path: filepath.Join(stateDir, registryFile), Err: fmt.Errorf("root %s overlaps source %q's root %s: a file must belong to one source", rootReal, s.Name, s.Root)}
		}
	}
	l, err := privacy.NewLedger(name, rootReal, scope, b)
	if err != nil {
		return "", fmt.Errorf("%w: %v", expspec.ErrUsage, err)
	}
	for _, p := range imports {
		if err := importLedgerV1(&l, p); err != nil {
			return "", err
		}
	}
	rel := filepath.Join("ledgers", name+".json")
	out, err := l.Marshal()
	if err != nil {
		return "", err
	}
	path := filepath.Join(stateDir, rel)
	if _, err := os.Lstat(path); err == nil {
		return "", &HostError{Path: path, Err: errors.New("a ledger file is already there but not registered; move it away or register it by hand")}
	}
	if err := diskio.WriteAtomicMode(path, out, 0o600); err != nil {
		return "", diskio.OutputFileError(path, "--state-dir", err)
	}
	reg.Sources = append(reg.Sources, Source{Name: name, Root: rootReal, Ledger: rel, Keys: keyFingerprints})
	sort.Slice(reg.Sources, func(i, j int) bool { return reg.Sources[i].Name < reg.Sources[j].Name })
	rb, err := json.MarshalIndent(reg, "", "  ")
	if err != nil {
		return "", err
	}
	if err := diskio.WriteAtomicMode(filepath.Join(stateDir, registryFile), append(rb, '\n'), 0o600); err != nil {
		return "", diskio.OutputFileError(filepath.Join(stateDir, registryFile), "--state-dir", err)
	}
	return path, nil
}

// importLedgerV1 carries a version-1 ledger's entries into l.
func importLedgerV1(l *privacy.Ledger, path string) error {
	b, err := diskio.ReadRegularFile(path)
	if err != nil {
		return &HostError{Path: path, Err: err}
	}
	old, err := privacy.UnmarshalLedgerV1(b)
	if err != nil {
		return &HostError{Path: path, Err: err}
	}
	if old.Accounting != l.Accounting {
		return &HostError{Path: path, Err: fmt.Errorf("accounting %s does not match the new ledger's %s", old.Accounting, l.Accounting)}
	}
	for _, e := range old.Entries {
		e.Imported = filepath.Base(path)
		if err := l.Spend(e); err != nil {
			return &HostError{Path: path, Err: fmt.Errorf("importing %s/%s: %w", e.Experiment, e.NominalDate, err)}
		}
	}
	return nil
}

// sourceOf finds the registered data source whose root holds every input
// file (by real path, so no spelling of a path picks another ledger).
func sourceOf(stateDir string, files []intake.InputFile) (Source, error) {
	if stateDir == "" {
		return Source{}, &HostError{Err: errors.New("a private run needs the host's state folder (--state-dir or VERITY_STATE_DIR), which holds the privacy ledgers")}
	}
	reg, err := readRegistry(stateDir)
	if err != nil {
		return Source{}, err
	}
	var found *Source
	for _, f := range files {
		p, err := realPath(f.Abs)
		if err != nil {
			return Source{}, &HostError{Path: f.Abs, Err: err}
		}
		var hit *Source
		for i := range reg.Sources {
			if Within(reg.Sources[i].Root, p) {
				hit = &reg.Sources[i]
			}
		}
		switch {
		case hit == nil:
			return Source{}, &HostError{Path: filepath.Join(stateDir, registryFile), Err: fmt.Errorf("input %s lies under no registered data source; a private release is charged to its source's ledger (verity ledger init)", p)}
		case found != nil && found.Name != hit.Name:
			return Source{}, &HostError{Path: filepath.Join(stateDir, registryFile), Err: fmt.Errorf("inputs span data sources %q and %q; one release is charged to one ledger", found.Name, hit.Name)}
		}
		found = hit
	}
	if found == nil {
		return Source{}, &HostError{Err: errors.New("no input files")}
	}
	return *found, nil
}

// PrivateHostReady finds a private release's data source and checks that
// its ledger is readable and that there is a restricted area.
func PrivateHostReady(h Host, files []intake.InputFile, key privacy.Key) (Source, error) {
	src, err := sourceOf(h.StateDir, files)
	if err != nil {
		return Source{}, err
	}
	if len(src.Keys) > 0 && !slices.Contains(src.Keys, key.Fingerprint()) {
		return Source{}, &HostError{Path: filepath.Join(h.StateDir, registryFile), Err: fmt.Errorf("the noise key (fingerprint %s) is not one the host registered for data source %q (%s)", key.Fingerprint(), src.Name, strings.Join(src.Keys, ", "))}
	}
	if _, err := ReadLedger(filepath.Join(h.StateDir, src.Ledger)); err != nil {
		return Source{}, err
	}
	if h.RestrictedRoot() == "" {
		return Source{}, &HostError{Err: errors.New("a private run needs a restricted area for its exact record (--restricted-dir, or the state folder)")}
	}
	return src, nil
}

// ReadLedger reads a source's ledger; missing or corrupt is a HostError.
func ReadLedger(path string) (privacy.Ledger, error) {
	b, err := readStateFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return privacy.Ledger{}, &HostError{Path: path, Err: errors.New("the privacy ledger of a registered data source is missing; refusing to release (a lost ledger is never a fresh start: restore it from backup)")}
	}
	if err != nil {
		return privacy.Ledger{}, &HostError{Path: path, Err: fmt.Errorf("the privacy ledger cannot be read (%v); refusing to release without knowing what was spent", err)}
	}
	l, err := privacy.UnmarshalLedger(b)
	if err != nil {
		return privacy.Ledger{}, &HostError{Path: path, Err: fmt.Errorf("the privacy ledger is unreadable (%v); refusing to release without knowing what was spent", err)}
	}
	return l, nil
}

// readStateFile reads a state file (the registry or a ledger), which must
// be a regular file: a folder or anything else in its place is named in the
// error, without the path repeated (the caller's HostError names it).
func readStateFile(path string) ([]byte, error) {
	b, err := diskio.ReadRegularFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) {
		return nil, pe.Err
	}
	return b, err
}

// ChargeLedger records a release in its source's ledger, under the
// ledger's lock, before anything is released. A release with a recorded
// digest is free. It returns the ledger after the charge and the cost.
func ChargeLedger(stateDir string, src Source, e privacy.Entry, budget privacy.Budget) (privacy.Ledger, *big.Rat, error) {
	path := filepath.Join(stateDir, src.Ledger)
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return privacy.Ledger{}, nil, err
	}
	defer lock.Unlock()
	l, err := ReadLedger(path)
	if err != nil {
		return privacy.Ledger{}, nil, err
	}
	if l.Source != src.Name {
		return privacy.Ledger{}, nil, &HostError{Path: path, Err: fmt.Errorf("ledger of source %q, registered as %q", l.Source, src.Name)}
	}
	if l.Accounting != budget.Accounting() {
		return privacy.Ledger{}, nil, &HostError{Path: path, Err: fmt.Errorf("the ledger accounts in %s, the spec's budget in %s: set the spec's delta to match", l.Accounting, budget.Accounting())}
	}
	cost, err := l.Cost(e)
	if err == nil {
		err = l.Spend(e)
	}
	if err != nil {
		return privacy.Ledger{}, nil, &HostError{Path: path, Err: fmt.Errorf("refusing to release: %w", err)}
	}
	out, err := l.Marshal()
	if err != nil {
		return privacy.Ledger{}, nil, err
	}
	if err := diskio.WriteAtomicMode(path, out, 0o600); err != nil {
		return privacy.Ledger{}, nil, &HostError{Path: path, Err: err}
	}
	return l, cost, nil
}

// LedgerStatus describes every registered source's ledger for `verity
// ledger show`. Amounts in the ledger's unit (ρ for zCDP, ε for pure DP)
// are shown as the exact rationals the ledger keeps and as decimals; each
// scope also shows ε spent and remaining at the ledger's δ (see
// privacy.Ledger.EpsilonSpent and EpsilonRemaining).
func LedgerStatus(stateDir string, w io.Writer) error {
	reg, err := readRegistry(stateDir)
	if err != nil {
		return err
	}
	for _, s := range reg.Sources {
		path := filepath.Join(stateDir, s.Ledger)
		l, err := ReadLedger(path)
		if err != nil {
			return err
		}
		unit := ledgerUnit(l)
		fmt.Fprintf(w, "source %s  root %s  scope %s  accounting %s\n", s.Name, s.Root, l.Scope, l.Accounting)
		fmt.Fprintf(w, "  budget: ε %s, δ %s; total %s %s (%s)\n", strconv.FormatFloat(l.Budget.Epsilon, 'g', -1, 64), strconv.FormatFloat(l.Budget.Delta, 'g', -1, 64), unit, l.Total.RatString(), ratDecimal(l.Total))
		scopes := map[string]bool{"": l.Scope == privacy.ScopeSource}
		for _, e := range l.Entries {
			if l.Scope == privacy.ScopeExperiment {
				scopes[e.Experiment] = true
			}
		}
		if len(scopes) == 1 && !scopes[""] {
			fmt.Fprintf(w, "  each experiment: nothing spent yet; each may spend %s %s (%s)\n", unit, l.Total.RatString(), ratDecimal(l.Total))
		}
		for _, k := range slices.Sorted(maps.Keys(scopes)) {
			if !scopes[k] {
				continue
			}
			spent := l.SpentBy(k)
			remaining := new(big.Rat).Sub(l.Total, spent)
			label := "whole source"
			if k != "" {
				label = "experiment " + k
			}
			epsSpent, err := l.EpsilonSpent(k)
			if err != nil {
				return &HostError{Path: path, Err: fmt.Errorf("ε of what was spent: %w", err)}
			}
			epsLeft, err := l.EpsilonRemaining(k)
			if err != nil {
				return &HostError{Path: path, Err: fmt.Errorf("ε remaining: %w", err)}
			}
			fmt.Fprintf(w, "  %s: spent %s %s (%s), remaining %s %s (%s); ε spent %s, ε remaining %s of %s (δ %s)\n",
				label, unit, spent.RatString(), ratDecimal(spent), unit, remaining.RatString(), ratDecimal(remaining),
				decimal(epsSpent), decimal(epsLeft), strconv.FormatFloat(l.Budget.Epsilon, 'g', -1, 64), strconv.FormatFloat(l.Budget.Delta, 'g', -1, 64))
		}
		for _, e := range l.Entries {
			fmt.Fprintf(w, "  %s  %s  spent %s %s (%s)  release %.12s  key %s\n", e.NominalDate, e.Experiment, unit, e.Spent.RatString(), ratDecimal(e.Spent), e.ReleaseDigest, e.KeyFingerprint)
		}
	}
	return nil
}

// EpsilonText converts an amount in a ledger's units to ε (for zCDP at the
// ledger's δ).
func EpsilonText(l privacy.Ledger, r *big.Rat) string {
	f, _ := r.Float64()
	if l.Accounting != privacy.AccountingZCDP {
		return "ε " + strconv.FormatFloat(f, 'g', -1, 64)
	}
	if f == 0 {
		return "ε 0"
	}
	eps, err := privacy.CDPEpsilon(f, l.Budget.Delta)
	if err != nil {
		return "ε ?"
	}
	return fmt.Sprintf("ε %.4g at δ %s", eps, strconv.FormatFloat(l.Budget.Delta, 'g', -1, 64))
}

// ledgerUnit names the unit a ledger keeps: ρ (zCDP) or ε (pure DP).
func ledgerUnit(l privacy.Ledger) string {
	if l.Accounting == privacy.AccountingZCDP {
		return "ρ"
	}
	return "ε"
}

// ratDecimal is r as a decimal of 6 significant digits (the exact value is
// shown beside it).
func ratDecimal(r *big.Rat) string {
	f, _ := r.Float64()
	return decimal(f)
}

func decimal(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// RestrictedDir is where the restricted record of a private release lives:
// <restricted>/<experiment>/<date>/<first 16 hex digits of its digest>/.
func RestrictedDir(root, experiment, date, releaseDigest string) string {
	d := releaseDigest
	if len(d) > 16 {
		d = d[:16]
	}
	return filepath.Join(root, experiment, date, d)
}

// fileLock is an exclusive flock on a lock file.
type fileLock struct{ f *os.File }

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &HostError{Path: path, Err: err}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, &HostError{Path: path, Err: err}
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) Unlock() {
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

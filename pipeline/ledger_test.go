package pipeline_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/replay"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// ledgerRig runs the private fixture spec (copied with its data, so that
// paths can be spelled several ways) against one host.
type ledgerRig struct {
	t    *testing.T
	dir  string
	host ledgers.Host
}

func newLedgerRig(t *testing.T, epsilon float64) *ledgerRig {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	fx := filepath.Join(filepath.Dir(file), "..", "fixtures")
	dir := t.TempDir()
	for _, sub := range []string{"specs", filepath.Join("data", "basic")} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join(fx, sub))); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	if _, err := ledgers.LedgerInit(state, "fixtures", filepath.Join(dir, "data"), privacy.ScopeSource, privacy.Budget{Epsilon: epsilon, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	return &ledgerRig{t: t, dir: dir, host: ledgers.Host{StateDir: state}}
}

// run runs the private fixture spec, edited by edit, with key k.
func (r *ledgerRig) run(out, date string, k string, edit func(string) string) (*pipeline.Outcome, error) {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "specs", "checkout-button-private.yaml"))
	if err != nil {
		r.t.Fatal(err)
	}
	text := strings.Replace(string(b), "key_file: ../keys/TEST-ONLY-noise.key", "key_env: VERITY_LEDGER_TEST_KEY", 1)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(r.dir, "specs", "ledger-test.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(k))
	r.t.Setenv("VERITY_LEDGER_TEST_KEY", fmt.Sprintf("hex:%x", sum))
	spec, err := expspec.LoadSpec(path)
	if err != nil {
		return nil, err
	}
	return pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: filepath.Join(r.dir, out), Date: date, Engine: engine.Engine{Threads: 2}, Host: r.host})
}

func (r *ledgerRig) spent() string {
	r.t.Helper()
	return readSourceLedger(r.t, r.host).Spent().RatString()
}

func (r *ledgerRig) results(o *pipeline.Outcome) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(o.Dir, "results.csv"))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// TestLedgerRoutes tries every route around the budget that a spec author
// or an operator could take without touching the data. Each one is either
// free because it republishes identical bytes, charged to the same data
// source's ledger, or refused.
func TestLedgerRoutes(t *testing.T) {
	r := newLedgerRig(t, 40)
	first, err := r.run("out", "", "key", nil)
	if err != nil {
		t.Fatal(err)
	}
	spent1 := r.spent()

	// A second --out republishes the same bytes: free, and identical.
	second, err := r.run("other-out", "", "key", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.results(first) != r.results(second) || r.spent() != spent1 {
		t.Error("a second --out published other numbers or was charged again")
	}

	// Everything that could change the numbers or the noise is charged to
	// the same ledger: a renamed spec file, another spelling of the input
	// paths, --date, another key.
	routes := []struct {
		name string
		out  string
		date string
		key  string
		edit func(string) string
	}{
		{"absolute input paths", "out", "", "key", func(s string) string {
			return strings.ReplaceAll(s, `"../data/`, `"`+filepath.Join(r.dir, "data")+`/`)
		}},
		{"path through a symlink", "out", "", "key", func(s string) string {
			link := filepath.Join(r.dir, "via-link")
			os.Symlink(filepath.Join(r.dir, "data"), link)
			return strings.ReplaceAll(s, `"../data/`, `"../via-link/`)
		}},
		{"--date", "out", "2026-11-19", "key", nil},
		{"another key", "out3", "", "another key", nil},
	}
	prev := r.spent()
	for _, rt := range routes {
		if _, err := r.run(rt.out, rt.date, rt.key, rt.edit); err != nil {
			t.Fatalf("%s: %v", rt.name, err)
		}
		if now := r.spent(); now == prev {
			t.Errorf("%s: published fresh noise without a charge", rt.name)
		} else {
			prev = now
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(r.host.StateDir, "ledgers", "*.json")); len(entries) != 1 {
		t.Errorf("ledgers: %v, want the one of the data source", entries)
	}
	if entries, _ := filepath.Glob(filepath.Join(r.dir, "out", "checkout-button-private", "*.json")); len(entries) != 0 {
		t.Errorf("a ledger or other state under --out: %v", entries)
	}

	// A renamed experiment that maps experiment_id (or unit_id) onto the
	// same data is refused before any data is read.
	for _, col := range []string{"experiment_id", "unit_id"} {
		spec := strings.Replace(mustRead(t, filepath.Join(r.dir, "specs", "checkout-button-private.yaml")), "events: [\"../data/basic/events/\"]",
			"events: [\"../data/basic/events/\"]\n  columns: {traces: {"+col+": "+col+"}}", 1)
		if _, err := expspec.ParseSpec("mapped.yaml", []byte(spec)); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "cannot map "+col) {
			t.Errorf("mapping %s in a private spec: want a refusal naming it, got %v", col, err)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLedgerMissingCorruptOrUnregistered: a private run never starts a
// ledger; a lost, corrupt or absent one refuses with exit 78 naming the path,
// and nothing is published.
func TestLedgerMissingCorruptOrUnregistered(t *testing.T) {
	cases := []struct {
		name   string
		damage func(r *ledgerRig) string // returns the path the error must name
	}{
		{"missing ledger", func(r *ledgerRig) string {
			p := filepath.Join(r.host.StateDir, "ledgers", "fixtures.json")
			os.Remove(p)
			return p
		}},
		{"corrupt ledger", func(r *ledgerRig) string {
			p := filepath.Join(r.host.StateDir, "ledgers", "fixtures.json")
			os.WriteFile(p, []byte("{\"version\": 2, "), 0o600)
			return p
		}},
		{"no registry", func(r *ledgerRig) string {
			p := filepath.Join(r.host.StateDir, "sources.json")
			os.Remove(p)
			return p
		}},
		{"no state folder", func(r *ledgerRig) string {
			r.host.StateDir = ""
			r.host.RestrictedDir = filepath.Join(r.dir, "restricted")
			return "--state-dir"
		}},
		{"inputs outside the source", func(r *ledgerRig) string {
			state := filepath.Join(r.dir, "state2")
			other := filepath.Join(r.dir, "elsewhere")
			os.MkdirAll(other, 0o755)
			if _, err := ledgers.LedgerInit(state, "other", other, privacy.ScopeSource, privacy.Budget{Epsilon: 4, Delta: 1e-6}, nil); err != nil {
				t.Fatal(err)
			}
			r.host.StateDir = state
			return "lies under no registered data source"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newLedgerRig(t, 40)
			want := c.damage(r)
			_, err := r.run("out", "", "key", nil)
			if err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), want) {
				t.Fatalf("want exit 78 naming %s, got %v (exit %d)", want, err, pipeline.ExitCode(err))
			}
			if entries, _ := os.ReadDir(filepath.Join(r.dir, "out", "checkout-button-private")); len(entries) > 1 {
				t.Errorf("a refused release left %v", entries)
			}
		})
	}
}

// TestLedgerInitRefuses: a ledger is never re-created, and one file belongs
// to one source.
func TestLedgerInitRefuses(t *testing.T) {
	state, data := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(data, "a", "b"), 0o755)
	b := privacy.Budget{Epsilon: 1, Delta: 1e-6}
	if _, err := ledgers.LedgerInit(state, "a", filepath.Join(data, "a"), privacy.ScopeSource, b, nil); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"same name": func() error {
			_, err := ledgers.LedgerInit(state, "a", filepath.Join(data, "a"), privacy.ScopeSource, b, nil)
			return err
		},
		"nested root": func() error {
			_, err := ledgers.LedgerInit(state, "b", filepath.Join(data, "a", "b"), privacy.ScopeSource, b, nil)
			return err
		},
		"outer root": func() error { _, err := ledgers.LedgerInit(state, "c", data, privacy.ScopeSource, b, nil); return err },
		"bad name": func() error {
			_, err := ledgers.LedgerInit(state, "../x", data, privacy.ScopeSource, b, nil)
			return err
		},
		"bad scope": func() error {
			_, err := ledgers.LedgerInit(state, "d", t.TempDir(), privacy.Scope("everything"), b, nil)
			return err
		},
	} {
		if err := call(); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig {
			t.Errorf("%s: want a refusal (exit 78), got %v", name, err)
		}
	}
	st, err := os.Stat(filepath.Join(state, "ledgers", "a.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ledger file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

// TestLedgerImportsVersionOne: a host migrates an experiment folder's
// version-1 ledger into its source's ledger; what it spent still counts.
func TestLedgerImportsVersionOne(t *testing.T) {
	v1 := `{
  "version": 1,
  "experiment": "checkout-button",
  "accounting": "zcdp_rho",
  "budget": {"epsilon": 4, "delta": 0.000001, "run_share": 0.25},
  "total": "137894501/100000000",
  "entries": [{"experiment": "checkout-button", "nominal_date": "2026-11-19", "release_digest": "` + strings.Repeat("ab", 32) + `", "spent": "1/10"}]
}`
	old := filepath.Join(t.TempDir(), "privacy-ledger.json")
	if err := os.WriteFile(old, []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	path, err := ledgers.LedgerInit(state, "prod", t.TempDir(), privacy.ScopeSource, privacy.Budget{Epsilon: 4, Delta: 1e-6}, []string{old})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledgers.ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Spent().RatString() != "1/10" || len(l.Entries) != 1 || l.Entries[0].Imported != "privacy-ledger.json" {
		t.Errorf("imported ledger: spent %s, entries %+v", l.Spent().RatString(), l.Entries)
	}
	// A pure-ε ledger cannot take zCDP entries.
	if _, err := ledgers.LedgerInit(t.TempDir(), "pure", t.TempDir(), privacy.ScopeSource, privacy.Budget{Epsilon: 4}, []string{old}); err == nil {
		t.Error("a pure-epsilon ledger imported zCDP entries")
	}
}

// TestPrivateRunRefusals: the test key without the host's permission, a
// bare-hex key file, a template folder whose templates are not the
// binary's released ones, a restricted area inside --out.
func TestPrivateRunRefusals(t *testing.T) {
	r := newLedgerRig(t, 40)
	spec, err := expspec.LoadSpec(filepath.Join(r.dir, "specs", "checkout-button-private.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	spec.Privacy.KeyFile = filepath.Join(filepath.Dir(file), "..", "fixtures", "keys", "TEST-ONLY-noise.key")
	out := filepath.Join(r.dir, "out")
	if _, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: r.host}); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "--allow-test-key") {
		t.Errorf("test key without permission: want exit 78 naming --allow-test-key, got %v", err)
	}

	bare := filepath.Join(r.dir, "bare.key")
	os.WriteFile(bare, []byte(strings.Repeat("3f", 32)+"\n"), 0o600)
	spec.Privacy.KeyFile = bare
	if _, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: r.host}); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), `"hex:<digits>"`) {
		t.Errorf("bare hex key file: want exit 78 with the hex: hint, got %v", err)
	}

	// A template folder with its own consistent lock, whose unit_metrics@v5
	// is edited: any byte, since the binary cannot tell a harmless edit from
	// one that drops a clamp.
	qdir := filepath.Join(r.dir, "queries")
	if err := os.CopyFS(qdir, queries.FS()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(qdir, "unit_metrics", "v5.sql")
	b, _ := os.ReadFile(p)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, append(b, []byte("\n-- edited\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its own lock, consistent with the edited file (as `queries lock`
	// would write for a development folder).
	var lock queries.Lock
	fs.WalkDir(os.DirFS(qdir), ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".sql") {
			data, _ := fs.ReadFile(os.DirFS(qdir), path)
			lock.Entries = append(lock.Entries, queries.LockEntry{Path: path, SHA256: queries.Sum(data)})
		}
		return nil
	})
	os.Chmod(filepath.Join(qdir, "queries.lock"), 0o644)
	if err := os.WriteFile(filepath.Join(qdir, "queries.lock"), lock.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := queries.Verify(os.DirFS(qdir)); err != nil {
		t.Fatalf("the edited folder should verify against its own lock: %v", err)
	}
	spec.Privacy.KeyFile = ""
	spec.Privacy.KeyEnv = "VERITY_LEDGER_TEST_KEY"
	t.Setenv("VERITY_LEDGER_TEST_KEY", "hex:"+strings.Repeat("5a17", 16))
	if _, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: r.host, Queries: os.DirFS(qdir)}); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "unit_metrics/v5.sql") {
		t.Errorf("edited template folder: want exit 78 naming unit_metrics/v5.sql, got %v", err)
	}

	h := r.host
	h.RestrictedDir = filepath.Join(out, "restricted")
	if _, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: h}); err == nil || !errors.Is(err, expspec.ErrUsage) {
		t.Errorf("restricted area inside --out: want a usage error, got %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) > 1 {
		t.Errorf("refused runs left %v in --out", entries)
	}

	// The restricted record is the host's only: folders 0700, files 0600.
	if _, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: r.host}); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(r.host.RestrictedRoot(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if p != r.host.RestrictedRoot() && info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrivateReplayIsCharged: replaying a private release with another key
// (or any change that alters its bytes) writes a new noisy release, which
// is charged to the same source ledger; a byte-identical replay is free.
func TestPrivateReplayIsCharged(t *testing.T) {
	r := newLedgerRig(t, 40)
	o, err := r.run("out", "", "key", nil)
	if err != nil {
		t.Fatal(err)
	}
	before := r.spent()
	sum := sha256.Sum256([]byte("a different key"))
	t.Setenv("VERITY_LEDGER_TEST_KEY", fmt.Sprintf("hex:%x", sum))
	_, err = replay.Replay(context.Background(), filepath.Join(o.Dir, "manifest.json"), replay.ReplayOptions{OutDir: filepath.Join(r.dir, "replayed"), Host: r.host})
	var mm *replay.ReplayMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("replay with another key: want a mismatch, got %v", err)
	}
	if r.spent() == before {
		t.Error("a replay with another key published fresh noise without a charge")
	}
}

// TestPrivateClampsCannotOverflow: a private spec whose clamps could let an
// exact sum overflow is refused before any data is read (the overflow
// check is decided on exact data, and its exit status would otherwise
// publish one unit's influence uncharged).
func TestPrivateClampsCannotOverflow(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	base := mustRead(t, filepath.Join(filepath.Dir(file), "..", "fixtures", "specs", "checkout-button-private.yaml"))
	for name, edit := range map[string]func(string) string{
		"wide clamp": func(s string) string {
			return strings.Replace(s, "clamp: {lower: 0, upper: 60}", "clamp: {lower: 0, upper: 9.0e9}", 1) + "statistics: {fixed_point_decimals: 9}\n"
		},
	} {
		_, err := expspec.ParseSpec("wide.yaml", []byte(edit(base)))
		if err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "2^31") {
			t.Errorf("%s: want a refusal naming the 2^31 bound, got %v", name, err)
		}
	}
	if _, err := expspec.ParseSpec("ok.yaml", []byte(base)); err != nil {
		t.Errorf("the fixture's clamp fits: %v", err)
	}
}

// TestPrivateMissingEvent: in a private run a goal whose event name is
// misspelt is flagged on the noisy release (no name from the data is
// published): a warning by default, a block when the spec sets the block
// threshold; the correct name passes.
func TestPrivateMissingEvent(t *testing.T) {
	r := newLedgerRig(t, 40)
	typo := func(s string) string {
		return strings.Replace(s, "{name: converted, kind: proportion, event: purchase,", "{name: converted, kind: proportion, event: purchases,", 1)
	}
	o, err := r.run("out", "", "key", typo)
	if err != nil {
		t.Fatal(err)
	}
	q := mustRead(t, filepath.Join(o.Dir, "quality.json"))
	if !strings.Contains(q, `no evidence of event \"purchases\"`) || !strings.Contains(q, `"outcome": "warn"`) {
		t.Errorf("misspelt goal event: want a warning naming the metric's own event:\n%s", q)
	}
	o, err = r.run("out2", "", "key", func(s string) string {
		return typo(s) + "quality: {metric_event_missing: {block: 0}}\n"
	})
	var gate *analysis.GateError
	if !errors.As(err, &gate) || pipeline.ExitCode(err) != pipeline.ExitData || o.Verdict != "invalid" {
		t.Fatalf("misspelt goal event with an explicit block: want a blocking gate (exit 65, invalid), got %v", err)
	}
	o, err = r.run("out3", "", "key", nil)
	if err != nil || o.Verdict == "invalid" || strings.Contains(mustRead(t, filepath.Join(o.Dir, "quality.json")), "no evidence of event") {
		t.Fatalf("correct event names: %v (verdict %s)", err, o.Verdict)
	}
}

// TestEveryGateHasAPrivateForm: a private run decides each check of
// gateDefaults on noisy values or skips it; none falls through with an
// exact or empty figure.
func TestEveryGateHasAPrivateForm(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	spec, err := expspec.LoadSpec(filepath.Join(filepath.Dir(file), "..", "fixtures", "specs", "checkout-button-private.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	key := sha256.Sum256([]byte("gates"))
	rel, err := privatize.Privatize(spec, nil, nil, engine.Quality{}, key[:], "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	checks, _ := analysis.EvaluatePrivateGates(spec, rel, &analysis.Baseline{Date: "2026-11-18", UnitsExposed: 100})
	if len(checks) != len(expspec.GateDefaults) {
		t.Fatalf("%d checks, want one per gate (%d)", len(checks), len(expspec.GateDefaults))
	}
	for i, c := range checks {
		if c.Name != expspec.GateDefaults[i].Name || !strings.Contains(c.Rule, "noisy") && c.Outcome != "skipped" && !strings.Contains(c.Rule, "noise") && !strings.Contains(c.Rule, "private run") {
			t.Errorf("check %s: rule %q, outcome %s: not decided on noisy values", c.Name, c.Rule, c.Outcome)
		}
	}
}

// TestSourceBoundToItsKeys: a host that registers its keys' fingerprints
// with the source refuses a release under any other key (a spec author
// who names a key they know could test candidate datasets against it).
func TestSourceBoundToItsKeys(t *testing.T) {
	r := newLedgerRig(t, 40)
	state := filepath.Join(r.dir, "bound")
	good := sha256.Sum256([]byte("host key"))
	k, err := privacy.ParseKey([]byte(fmt.Sprintf("hex:%x", good)))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(r.dir, "data-bound")
	if err := os.Rename(filepath.Join(r.dir, "data"), other); err != nil {
		t.Fatal(err)
	}
	os.Symlink(other, filepath.Join(r.dir, "data"))
	if _, err := ledgers.LedgerInit(state, "bound", other, privacy.ScopeSource, privacy.Budget{Epsilon: 40, Delta: 1e-6}, nil, k.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	r.host = ledgers.Host{StateDir: state}
	if _, err := r.run("out", "", "a spec author's key", nil); err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "not one the host registered") {
		t.Errorf("unregistered key: want exit 78, got %v", err)
	}
	if _, err := r.run("out", "", "host key", nil); err != nil {
		t.Errorf("registered key: %v", err)
	}
}

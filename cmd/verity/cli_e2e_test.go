package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/verity-analytics/verity/fixtures"
)

// TestHelp: every command's -h / --help / `verity help CMD` exits 0 and
// prints a synopsis: a usage line, the positional arguments, every flag
// (listed here independently of the code) with its default, and an example.
func TestHelp(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args     []string
		want     []string // beyond "usage: verity" and "examples:"
		defaults []string
	}{
		{[]string{"run", "-h"}, []string{"arguments:", "SPEC|DIR", "--out DIR", "--date", "--threads", "--memory-limit", "--temp-dir", "--queries-dir", "--log", "--state-dir", "--restricted-dir", "--allow-test-key", "--dry-run", "73"}, []string{`(default "runs")`, `(default "auto")`}},
		{[]string{"run", "--help"}, []string{"arguments:", "--out DIR"}, []string{`(default "runs")`}},
		{[]string{"help", "run"}, []string{"arguments:", "--out DIR"}, nil},
		{[]string{"validate", "-h"}, []string{"arguments:", "SPEC|DIR", "--date", "--data", "--log", "--state-dir"}, []string{`(default "auto")`}},
		{[]string{"replay", "--help"}, []string{"arguments:", "MANIFEST|RUN_DIR", "--pin NAME=vN", "--inputs-dir", "--out", "--against", "--tol", "--export-snapshot", "--columns", "--max-diffs", "--log", "--threads"}, []string{"(default 200)", `(default "json")`}},
		{[]string{"gen", "-h"}, []string{"--out", "--config", "--units", "--seed", "--experiment", "--effect", "--fault-srm", "--hive"}, []string{"(default 3000)", "(default 20261116)"}},
		{[]string{"check-truth", "-h"}, []string{"arguments:", "RUN", "--truth", "--aa-tail", "-v"}, []string{"(default 0.001)"}},
		{[]string{"queries", "--help"}, []string{"queries verify", "queries list", "queries lock --dir DIR"}, nil},
		{[]string{"queries", "-h"}, []string{"queries verify"}, nil},
		{[]string{"help", "queries"}, []string{"queries verify"}, nil},
		{[]string{"queries", "verify", "-h"}, []string{"--dir"}, nil},
		{[]string{"queries", "list", "--help"}, []string{"--dir"}, nil},
		{[]string{"queries", "lock", "-h"}, []string{"--dir"}, nil},
		{[]string{"ledger", "--help"}, []string{"ledger init", "ledger show"}, nil},
		{[]string{"ledger", "init", "-h"}, []string{"--state-dir", "--source", "--root", "--epsilon", "--delta", "--scope", "--key-env", "--key-file", "--import"}, []string{`(default "source")`}},
		{[]string{"ledger", "show", "--help"}, []string{"--state-dir", "ε spent"}, nil},
		{[]string{"help", "ledger", "show"}, []string{"--state-dir"}, nil},
		{[]string{"version", "-h"}, nil, nil},
		{[]string{"plan", "-h"}, []string{"arguments:", "SPEC", "--pre-start", "--pre-end", "--json", "--log", "--threads", "private spec is refused", "78"}, []string{`(default "auto")`}},
		{[]string{"help", "plan"}, []string{"--pre-start"}, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := verityEnv(t, dir, nil, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.HasPrefix(r.stdout, "usage: verity ") {
				t.Errorf("no usage line first:\n%s", r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("help wrote to stderr: %s", r.stderr)
			}
			for _, w := range append(append([]string{"examples:\n  verity "}, tc.want...), tc.defaults...) {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		r := verity(t, dir, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: verity <command>") {
			t.Errorf("%v: exit %d\n%s", args, r.code, r.stdout)
		}
		for _, c := range []string{"run", "validate", "replay", "gen", "check-truth", "queries", "ledger", "version", "help"} {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c) + ` `).MatchString(r.stdout) {
				t.Errorf("%v: command list lacks %s", args, c)
			}
		}
	}
	// Usage errors stay errors: exit 78 and a pointer to the help.
	for _, args := range [][]string{{"run", "--bogus", "x.yaml"}, {"queries"}, {"queries", "bogus"}, {"ledger", "bogus"}, {"bogus"}} {
		r := verity(t, dir, args...)
		if r.code != 78 || !strings.Contains(r.stderr, "-h") && !strings.Contains(r.stderr, "usage: verity") {
			t.Errorf("%v: exit %d, want 78 pointing at -h\n%s", args, r.code, r.stderr)
		}
	}
}

func verityEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VERITY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return runCmdResult(t, cmd)
}

func runCmdResult(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// unprivileged returns a command running the binary as a user that file
// permissions apply to: the current user, or nobody (65534) when the tests
// run as root (root writes through any mode). dir must be reachable by it.
func unprivileged(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	if os.Geteuid() == 0 {
		bin := filepath.Join(openTempDir(t), "verity")
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd.Path = bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = append(os.Environ(), "HOME=/", "TMPDIR="+openTempDir(t))
	}
	return cmd
}

// openTempDir is a temporary folder every user can read and enter (and
// write, with the sticky bit, like /tmp), with its parents reachable.
func openTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/" && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chmod(d, 0o1777)
	return d
}

// TestOutputCannotBeCreated: an --out that no retry can make usable — a
// regular file, a path through a file, a folder without write permission,
// a read-only file system — exits 73 naming the path, writes nothing, and
// does not run the analysis; the same for gen --out, replay --out and
// replay --export-snapshot.
func TestOutputCannotBeCreated(t *testing.T) {
	root := repoRoot(t)
	spec := filepath.Join(root, "fixtures", "specs", "checkout-button.yaml")
	dir := openTempDir(t)
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	noWrite := filepath.Join(dir, "no-write")
	os.Mkdir(noWrite, 0o555)
	os.Chmod(noWrite, 0o555)

	runs := filepath.Join(dir, "runs")
	if r := verity(t, dir, "run", "--log", "none", "--out", runs, spec); r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	run := filepath.Join(runs, "checkout-button", "2026-11-19")
	os.Chmod(filepath.Join(dir, "runs"), 0o755)
	filepath.WalkDir(runs, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		} else if err == nil {
			os.Chmod(p, 0o644)
		}
		return nil
	})

	for _, tc := range []struct {
		name string
		args []string
		path string // must be named
	}{
		{"run --out a regular file", []string{"run", "--log", "none", "--out", file, spec}, file},
		{"run --out below a regular file", []string{"run", "--log", "none", "--out", filepath.Join(file, "sub"), spec}, filepath.Join(file, "sub")},
		{"run --out without write permission", []string{"run", "--log", "none", "--out", noWrite, spec}, noWrite},
		{"run --out not yet created below a folder without write permission", []string{"run", "--log", "none", "--out", filepath.Join(noWrite, "new", "runs"), spec}, filepath.Join(noWrite, "new", "runs")},
		{"gen --out a regular file", []string{"gen", "--units", "20", "--out", file}, file},
		{"gen --out without write permission", []string{"gen", "--units", "20", "--out", filepath.Join(noWrite, "data")}, filepath.Join(noWrite, "data")},
		{"replay --out a regular file", []string{"replay", "--log", "none", "--out", file, run}, file},
		{"replay --export-snapshot without write permission", []string{"replay", "--export-snapshot", filepath.Join(noWrite, "snap.csv"), run}, filepath.Join(noWrite, "snap.csv")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmdResult(t, unprivileged(t, dir, tc.args...))
			if r.code != 73 || !strings.Contains(r.stderr, "cannot create output "+tc.path) {
				t.Errorf("exit %d, want 73 naming %s\nstdout: %s\nstderr: %s", r.code, tc.path, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "ok ") || strings.Contains(r.stdout, "wrote") {
				t.Errorf("went on after the output check:\n%s", r.stdout)
			}
		})
	}
	if entries, _ := os.ReadDir(noWrite); len(entries) != 0 {
		t.Errorf("something was written in the read-only folder: %v", entries)
	}

	t.Run("run --out on a read-only file system", func(t *testing.T) {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o755)
		args := []string{"-m"}
		if os.Geteuid() != 0 {
			args = []string{"-r", "-m"}
		}
		script := fmt.Sprintf("mount -t tmpfs -o ro none %s || exit 99; exec %s run --log none --out %s/runs %s", ro, binary, ro, spec)
		r := runCmdResult(t, exec.Command("unshare", append(args, "sh", "-c", script)...))
		if r.code == 99 || strings.Contains(r.stderr, "unshare failed") || strings.Contains(r.stderr, "unshare:") {
			t.Skipf("no mount namespace here: %s", r.stderr)
		}
		if r.code != 73 || !strings.Contains(r.stderr, "cannot create output "+ro+"/runs") || !strings.Contains(r.stderr, "read-only file system") {
			t.Errorf("exit %d, want 73 naming %s/runs and the read-only file system\n%s%s", r.code, ro, r.stdout, r.stderr)
		}
	})
}

// TestURLPathsAreNotRead: a URL given as a spec, an input glob, a manifest
// or a path flag is a configuration error (78) naming it and saying that
// object stores and URLs are not read — never "matched no file" (66, which
// a scheduler reads as "data not landed yet").
func TestURLPathsAreNotRead(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	base, err := os.ReadFile(filepath.Join(root, "fixtures", "specs", "checkout-button.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name string
		args []string
		url  string
	}
	var cases []tc
	for _, u := range []string{"s3://bucket/data/", "gs://bucket/data/", "http://host/data/", "https://host/data/", "abfs://container@account.dfs.core.windows.net/data/", "hdfs://namenode/data/", "file://data/"} {
		scheme := u[:strings.Index(u, ":")]
		spec := filepath.Join(dir, scheme+".yaml")
		os.WriteFile(spec, bytes.ReplaceAll(base, []byte("../data/"), []byte(u)), 0o644)
		cases = append(cases,
			tc{"run with " + scheme + " inputs", []string{"run", "--log", "none", "--out", "runs", spec}, u + "basic/traces/"},
			tc{"validate with " + scheme + " inputs", []string{"validate", "--log", "none", spec}, u + "basic/traces/"},
			tc{"run " + scheme + " spec", []string{"run", "--log", "none", u + "spec.yaml"}, u + "spec.yaml"},
		)
	}
	good := filepath.Join(root, "fixtures", "specs", "checkout-button.yaml")
	cases = append(cases,
		tc{"run --out s3", []string{"run", "--log", "none", "--out", "s3://bucket/runs", good}, "s3://bucket/runs"},
		tc{"replay https manifest", []string{"replay", "https://host/runs/x/2026-11-19/manifest.json"}, "https://host/runs/x/2026-11-19/manifest.json"},
		tc{"replay --against gs", []string{"replay", "--against", "gs://b/snap.csv", "runs/x/2026-11-19"}, "gs://b/snap.csv"},
		tc{"check-truth --truth s3", []string{"check-truth", "--truth", "s3://b/truth.json", "runs/x/2026-11-19"}, "s3://b/truth.json"},
		tc{"gen --out abfs", []string{"gen", "--out", "abfs://c@a.dfs.core.windows.net/data"}, "abfs://c@a.dfs.core.windows.net/data"},
		tc{"ledger show --state-dir s3", []string{"ledger", "show", "--state-dir", "s3://b/state"}, "s3://b/state"},
		tc{"ledger init --root gs", []string{"ledger", "init", "--state-dir", "st", "--source", "x", "--root", "gs://b/data", "--epsilon", "1", "--delta", "1e-6"}, "gs://b/data"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := verity(t, dir, c.args...)
			if r.code != 78 || !strings.Contains(r.stderr, strconv.Quote(c.url)+" is a URL") || !strings.Contains(r.stderr, "does not read object stores or URLs") {
				t.Errorf("exit %d, want 78 naming %s as a URL\nstdout: %s\nstderr: %s", r.code, c.url, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, "matched no file") {
				t.Error(`reported as "matched no file"`)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "s3:")); err == nil {
		t.Error("a URL was created as a local folder")
	}
}

// TestCorruptStateFiles: a damaged registry (sources.json) or ledger
// (ledgers/<source>.json) — truncated JSON, a wrong type, an unknown
// version, a folder in place of the file — stops `ledger show` and a
// private run with exit 78 naming the file, and is left as it was.
func TestCorruptStateFiles(t *testing.T) {
	root := repoRoot(t)
	spec := filepath.Join(root, "fixtures", "specs", "checkout-button-private.yaml")
	good := filepath.Join(t.TempDir(), "state")
	if r := verity(t, t.TempDir(), "ledger", "init", "--state-dir", good, "--source", "fixtures", "--root", filepath.Join(root, "fixtures", "data"), "--epsilon", "40", "--delta", "1e-6"); r.code != 0 {
		t.Fatalf("ledger init: %+v", r)
	}
	versionRE := regexp.MustCompile(`"version": [0-9]+`)
	for _, file := range []string{"sources.json", filepath.Join("ledgers", "fixtures.json")} {
		for _, damage := range []struct {
			name string
			do   func(b []byte) []byte // nil: a folder in place of the file
			msg  string
		}{
			{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "unexpected EOF"},
			{"wrong type", func(b []byte) []byte { return versionRE.ReplaceAll(b, []byte(`"version": "two"`)) }, "cannot unmarshal string"},
			{"wrong version", func(b []byte) []byte { return versionRE.ReplaceAll(b, []byte(`"version": 9`)) }, "version 9"},
			{"folder in place of the file", nil, "is a directory, not a regular file"},
		} {
			t.Run(file+" "+damage.name, func(t *testing.T) {
				dir := t.TempDir()
				state := filepath.Join(dir, "state")
				copyTree(t, good, state)
				path := filepath.Join(state, file)
				if damage.do == nil {
					os.Remove(path)
					os.Mkdir(path, 0o700)
				} else {
					b, _ := os.ReadFile(path)
					os.WriteFile(path, damage.do(b), 0o600)
				}
				before := snapshot(t, path)
				show := verity(t, dir, "ledger", "show", "--state-dir", state)
				run := verity(t, dir, "run", "--log", "none", "--out", "runs", "--state-dir", state, "--allow-test-key", spec)
				for what, r := range map[string]result{"ledger show": show, "private run": run} {
					if r.code != 78 || !strings.Contains(r.stderr, path+": ") || !strings.Contains(r.stderr, damage.msg) {
						t.Errorf("%s: exit %d, want 78 naming %s and %q\n%s%s", what, r.code, path, damage.msg, r.stdout, r.stderr)
					}
				}
				if _, err := os.Stat(filepath.Join(dir, "runs", "checkout-button-private", "2026-11-19")); err == nil {
					t.Error("a private run released with a damaged state file")
				}
				if snapshot(t, path) != before {
					t.Error("the damaged file was changed")
				}
			})
		}
	}
}

func snapshot(t *testing.T, path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	if st.IsDir() {
		return "dir"
	}
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestGenCustomExperiment: gen with a custom --experiment (and no --effect)
// plants the default effects on it, truth.json names it, and a run of a
// spec over it recovers them (check-truth).
func TestGenCustomExperiment(t *testing.T) {
	dir := t.TempDir()
	r := verity(t, dir, "gen", "--out", "data", "--units", "6000", "--seed", "11", "--experiment", "signup:control=0.5,treatment=0.5")
	if r.code != 0 {
		t.Fatalf("gen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var truth fixtures.Truth
	b, _ := os.ReadFile(filepath.Join(dir, "data", "truth.json"))
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	if len(truth.Config.Experiments) != 1 || truth.Config.Experiments[0].ID != "signup" {
		t.Fatalf("truth experiments %+v", truth.Config.Experiments)
	}
	want := []fixtures.Effect{
		{Experiment: "signup", Variant: "treatment", Event: "purchase", Param: "prob", Relative: true, Size: 0.35},
		{Experiment: "signup", Variant: "treatment", Event: "purchase", Persona: "power/desktop", Param: "prob", Relative: true, Size: 0.5},
		{Experiment: "signup", Variant: "treatment", Event: "purchase", Param: "value", Relative: true, Size: 0.06},
	}
	if fmt.Sprint(truth.Config.Effects) != fmt.Sprint(want) {
		t.Errorf("planted effects\n got %+v\nwant %+v", truth.Config.Effects, want)
	}
	if !strings.Contains(r.stdout, "checkout-button:treatment:purchase:prob:rel:0.35 -> signup:treatment:purchase:prob:rel:0.35") || !strings.Contains(r.stdout, "left out: onboarding-flow:short:page_view") {
		t.Errorf("gen does not say where the default effects went:\n%s", r.stdout)
	}
	spec := `version: 1
experiment: signup
inputs:
  traces: ["data/traces/"]
  events: ["data/events/"]
window: {start: 2026-11-16T00:00:00Z, end: 2026-11-20T00:00:00Z}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}
cohorts:
  dimension: persona
  taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 100000}}
statistics:
  alpha: 0.01
privacy: {enabled: false}
`
	os.WriteFile(filepath.Join(dir, "signup.yaml"), []byte(spec), 0o644)
	if r := verity(t, dir, "run", "--log", "none", "--out", "runs", "signup.yaml"); r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = verity(t, dir, "check-truth", "-v", "--truth", "data/truth.json", "runs/signup/2026-11-19")
	if r.code != 0 {
		t.Fatalf("check-truth: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "planted") {
		t.Errorf("check-truth checked no planted effect:\n%s", r.stdout)
	}
	// Explicit effects are never moved: --effect none plants none.
	if r := verity(t, dir, "gen", "--out", "none", "--units", "50", "--experiment", "signup:control=1,treatment=1", "--effect", "none"); r.code != 0 || strings.Contains(r.stdout, "default effects") {
		t.Errorf("gen --effect none: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestReplayExperimentFolder: replay pointed at an experiment folder or an
// output root lists the runs it found and exits 78 naming the folder.
func TestReplayExperimentFolder(t *testing.T) {
	spec := filepath.Join(repoRoot(t), "fixtures", "specs", "checkout-button.yaml")
	dir := t.TempDir()
	for _, date := range []string{"2026-11-18", "2026-11-19"} {
		if r := verity(t, dir, "run", "--log", "none", "--out", "runs", "--date", date, spec); r.code != 0 {
			t.Fatalf("run %s: exit %d\n%s%s", date, r.code, r.stdout, r.stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"replay", "runs/checkout-button"}, []string{"runs/checkout-button is not a run folder", "experiment folder with runs for the dates 2026-11-18, 2026-11-19", "runs/checkout-button/2026-11-19"}},
		{[]string{"replay", "--against", "x.csv", "runs/checkout-button"}, []string{"dates 2026-11-18, 2026-11-19"}},
		{[]string{"replay", "runs"}, []string{"runs is not a run folder", "checkout-button/2026-11-18, checkout-button/2026-11-19"}},
	} {
		r := verity(t, dir, tc.args...)
		if r.code != 78 {
			t.Errorf("%v: exit %d, want 78\n%s", tc.args, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, r.stderr)
			}
		}
	}
	// A run folder still replays, and an empty folder is a missing manifest.
	if r := verity(t, dir, "replay", "--log", "none", "runs/checkout-button/2026-11-19"); r.code != 0 {
		t.Errorf("replay of a run folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	if r := verity(t, dir, "replay", "empty"); r.code != 66 {
		t.Errorf("replay of an empty folder: exit %d, want 66\n%s", r.code, r.stderr)
	}
}

// TestLedgerShowDecimals: ledger show gives the exact rationals and their
// decimals, and ε spent and remaining at the ledger's δ. A pure-ε ledger
// written by hand checks the arithmetic exactly; a zCDP ledger charged by
// a private run checks the ε conversion against an independent evaluation
// of the CKS20 bound.
func TestLedgerShowDecimals(t *testing.T) {
	t.Run("pure ε, experiment scope", func(t *testing.T) {
		state := t.TempDir()
		data := t.TempDir()
		os.MkdirAll(filepath.Join(state, "ledgers"), 0o700)
		reg := fmt.Sprintf(`{"version": 1, "sources": [{"name": "src", "root": %q, "ledger": "ledgers/src.json"}]}`, data)
		digest := func(c string) string { return strings.Repeat(c, 64) }
		ledger := fmt.Sprintf(`{"version": 2, "source": "src", "root": %q, "scope": "experiment", "accounting": "pure_epsilon",
  "budget": {"epsilon": 8, "delta": 0, "run_share": 1}, "total": "8",
  "entries": [
    {"experiment": "a", "nominal_date": "2026-11-18", "release_digest": %q, "spent": "1/3"},
    {"experiment": "a", "nominal_date": "2026-11-19", "release_digest": %q, "spent": "1/6"},
    {"experiment": "b", "nominal_date": "2026-11-19", "release_digest": %q, "spent": "5/4"}]}`, data, digest("a"), digest("b"), digest("c"))
		os.WriteFile(filepath.Join(state, "sources.json"), []byte(reg), 0o600)
		os.WriteFile(filepath.Join(state, "ledgers", "src.json"), []byte(ledger), 0o600)
		r := verity(t, t.TempDir(), "ledger", "show", "--state-dir", state)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		// a: 1/3 + 1/6 = 1/2 of 8, 15/2 left; b: 5/4, 27/4 left.
		for _, w := range []string{
			"budget: ε 8, δ 0; total ε 8 (8)",
			"experiment a: spent ε 1/2 (0.5), remaining ε 15/2 (7.5); ε spent 0.5, ε remaining 7.5 of 8 (δ 0)",
			"experiment b: spent ε 5/4 (1.25), remaining ε 27/4 (6.75); ε spent 1.25, ε remaining 6.75 of 8 (δ 0)",
			"2026-11-18  a  spent ε 1/3 (0.333333)",
		} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("ledger show lacks %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("zCDP after a private run", func(t *testing.T) {
		root := t.TempDir()
		flags := privateHostArgs(t)
		state := flags[1]
		spec := filepath.Join(repoRoot(t), "fixtures", "specs", "checkout-button-private.yaml")
		if r := verity(t, root, append(append([]string{"run", "--log", "none", "--out", "out"}, flags...), spec)...); r.code != 0 {
			t.Fatalf("private run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r := verity(t, root, "ledger", "show", "--state-dir", state)
		if r.code != 0 {
			t.Fatalf("ledger show: exit %d\n%s", r.code, r.stderr)
		}
		var l struct {
			Total   string `json:"total"`
			Entries []struct {
				Spent string `json:"spent"`
			} `json:"entries"`
		}
		b, _ := os.ReadFile(filepath.Join(state, "ledgers", "fixtures.json"))
		if err := json.Unmarshal(b, &l); err != nil || len(l.Entries) != 1 {
			t.Fatalf("ledger: %v %s", err, b)
		}
		total, _ := new(big.Rat).SetString(l.Total)
		spent, _ := new(big.Rat).SetString(l.Entries[0].Spent)
		rem := new(big.Rat).Sub(total, spent)
		m := regexp.MustCompile(`whole source: spent ρ (\S+) \((\S+)\), remaining ρ (\S+) \((\S+)\); ε spent (\S+), ε remaining (\S+) of 40 \(δ 1e-06\)`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("no scope line:\n%s", r.stdout)
		}
		if m[1] != spent.RatString() || m[3] != rem.RatString() {
			t.Errorf("exact amounts %s, %s; want %s, %s", m[1], m[3], spent.RatString(), rem.RatString())
		}
		num := func(s string) float64 {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%q is not a decimal", s)
			}
			return f
		}
		rho, _ := spent.Float64()
		left, _ := rem.Float64()
		if d := math.Abs(num(m[2])-rho) / rho; d > 1e-5 {
			t.Errorf("ρ spent decimal %s, exact %v", m[2], rho)
		}
		if d := math.Abs(num(m[4])-left) / left; d > 1e-5 {
			t.Errorf("ρ remaining decimal %s, exact %v", m[4], left)
		}
		eps := num(m[5])
		// At the printed ε (6 digits), the CKS20 δ of ρ must be 1e-6.
		if got := cks20Delta(rho, eps); math.Abs(got-1e-6)/1e-6 > 2e-3 {
			t.Errorf("ε spent %v: δ(ρ=%v, ε) = %v, want 1e-06", eps, rho, got)
		}
		if math.Abs(num(m[6])-(40-eps)) > 1e-4 {
			t.Errorf("ε remaining %s, want 40 − %v", m[6], eps)
		}
	})
}

// cks20Delta is δ(ρ, ε) = inf_{α>1} exp((α−1)(αρ−ε))/(α−1)·(1−1/α)^α
// (Canonne, Kamath, Steinke 2020), minimised by a dense grid over log(α−1)
// and a golden-section refinement: a different method from the privacy
// package's bisection on the derivative.
func cks20Delta(rho, eps float64) float64 {
	logObj := func(a float64) float64 {
		return (a-1)*(a*rho-eps) + a*math.Log(1-1/a) - math.Log(a-1)
	}
	best, bestX := math.Inf(1), 0.0
	for i := 0; i <= 200000; i++ {
		x := -12 + 24*float64(i)/200000 // log(α−1) in [−12, 12]
		if v := logObj(1 + math.Exp(x)); v < best {
			best, bestX = v, x
		}
	}
	lo, hi := bestX-24.0/200000, bestX+24.0/200000
	g := (math.Sqrt(5) - 1) / 2
	for range 200 {
		a, b := hi-g*(hi-lo), lo+g*(hi-lo)
		if logObj(1+math.Exp(a)) < logObj(1+math.Exp(b)) {
			hi = b
		} else {
			lo = a
		}
	}
	return math.Exp(logObj(1 + math.Exp((lo+hi)/2)))
}

// TestOutputModesFollowUmask: committed run folders and files get 0777 and
// 0666 less the umask (umask 022: readable by a shared result store; 077:
// private); a private run's restricted record stays 0700/0600 whatever the
// umask.
func TestOutputModesFollowUmask(t *testing.T) {
	root := repoRoot(t)
	spec := filepath.Join(root, "fixtures", "specs", "checkout-button.yaml")
	private := filepath.Join(root, "fixtures", "specs", "checkout-button-private.yaml")
	for _, tc := range []struct {
		umask           string
		dirMode, fileMo fs.FileMode
	}{
		{"022", 0o755, 0o644},
		{"077", 0o700, 0o600},
		{"002", 0o775, 0o664},
	} {
		t.Run("umask "+tc.umask, func(t *testing.T) {
			dir := t.TempDir()
			flags := privateHostArgs(t)
			restricted := filepath.Join(dir, "restricted")
			script := fmt.Sprintf("umask %s && %s run --log none --out runs %s && %s run --log none --out private %s --restricted-dir %s %s",
				tc.umask, binary, spec, binary, strings.Join(flags, " "), restricted, private)
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = dir
			if r := runCmdResult(t, cmd); r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			var checked int
			check := func(top string, dirMode, fileMode fs.FileMode) {
				filepath.WalkDir(filepath.Join(dir, top), func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						t.Error(err)
						return nil
					}
					st, _ := os.Stat(p)
					want := fileMode
					if d.IsDir() {
						want = dirMode
					}
					if st.Mode().Perm() != want {
						t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
					}
					checked++
					return nil
				})
			}
			check("runs", tc.dirMode, tc.fileMo)
			check("private", tc.dirMode, tc.fileMo)
			check("restricted", 0o700, 0o600)
			if _, err := os.Stat(filepath.Join(dir, "private", "checkout-button-private", "2026-11-19", "manifest.json")); err != nil {
				t.Error(err)
			}
			if checked < 20 {
				t.Errorf("checked only %d paths", checked)
			}
		})
	}
}

// TestPartialsEnvIsForShardsOnly: a worker whose environment carries
// VERITY_PARTIALS (a cluster's configuration for its shard tasks) still runs
// a plain nightly pass, writing nothing under the partials folder; the flag
// given by hand to a run without --shard is a usage error.
func TestPartialsEnvIsForShardsOnly(t *testing.T) {
	root := repoRoot(t)
	spec := filepath.Join(root, "fixtures", "specs", "checkout-button.yaml")
	dir := openTempDir(t)
	partials := filepath.Join(dir, "partials")
	r := verityEnv(t, dir, []string{"VERITY_PARTIALS=" + partials}, "run", "--log", "none", "--out", filepath.Join(dir, "runs"), spec)
	if r.code != 0 {
		t.Fatalf("run with VERITY_PARTIALS set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs", "checkout-button", "2026-11-19", "manifest.json")); err != nil {
		t.Errorf("plain run released nothing: %v", err)
	}
	if _, err := os.Stat(partials); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plain run touched the partials folder: %v", err)
	}
	r = verity(t, dir, "run", "--log", "none", "--partials", partials, "--out", filepath.Join(dir, "runs2"), spec)
	if r.code != 78 || !strings.Contains(r.stderr, "--partials is for a shard") {
		t.Errorf("run --partials without --shard: exit %d, want 78 naming the flag\n%s", r.code, r.stderr)
	}
}

package pipeline_test

// Bad input files and how they are named (issue 14, "Bad input"): inputs
// that are not regular files, an overflow DuckDB refuses, a memory limit
// too small to run, and input identity under other spellings of a path.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
	"github.com/verity-analytics/verity/queries"
)

// runWithin runs dir/spec.yaml like runIn, but fails the test when the run
// has not returned after limit (a hang). release, when set, is called on a
// hang to unblock what the run is stuck on, so the test can end.
func runWithin(t *testing.T, dir string, limit time.Duration, release func()) error {
	t.Helper()
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(ctx, spec, pipeline.Options{
			OutDir: filepath.Join(dir, "out"),
			Engine: engine.Engine{Threads: 2, MemoryLimit: "1GB", TempDir: filepath.Join(dir, "spill")},
		})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cancel()
		if release != nil {
			release()
		}
		t.Fatalf("the run hung: no result after %v", limit)
		return nil
	}
}

// TestBadInputNotRegularFile: an input path that is not a regular file (a
// FIFO, a device behind a symlink, a socket) is refused by name before it
// is opened: an *InputError naming the file and what it is, exit 65, at
// once. A FIFO used to block the run forever in open(2) and /dev/zero to be
// hashed until killed.
func TestBadInputNotRegularFile(t *testing.T) {
	tests := []struct {
		name string
		file string // relative to the spec
		make func(t *testing.T, path string) (release func())
		what string
	}{
		{"FIFO named *.parquet", "traces/x.parquet", func(t *testing.T, p string) func() {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			// A writer that opens the FIFO unblocks a reader stuck in open.
			return func() {
				if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
		}, "named pipe (FIFO)"},
		{"FIFO in a folder the glob walks", "traces/sub.parquet/y.parquet", func(t *testing.T, p string) func() {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return func() {
				if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
		}, "named pipe (FIFO)"},
		{"symlink to /dev/zero", "events/zero.parquet", func(t *testing.T, p string) func() {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Skipf("symlink: %v", err)
			}
			return nil
		}, "character device"},
		{"unix socket", "events/s.parquet", func(t *testing.T, p string) func() {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			t.Cleanup(func() { l.Close() })
			return nil
		}, "socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			baseData().write(t, dir)
			release := tc.make(t, filepath.Join(dir, filepath.FromSlash(tc.file)))
			err := runWithin(t, dir, 20*time.Second, release)
			checkInputError(t, err, tc.file, "", "input "+tc.file+": is a "+tc.what+", not a regular file; inputs must be regular Parquet files (or symlinks to them)")
			assertNoManifest(t, filepath.Join(dir, "out"))
		})
	}
}

// TestBadInputSymlinkToRegularFile: a symlink to a regular file is read
// like the file: the numbers are those of the run without the link, and the
// manifest names the file it resolves to.
func TestBadInputSymlinkToRegularFile(t *testing.T) {
	clean := runData(t, baseData())
	dir := t.TempDir()
	baseData().write(t, dir)
	store := filepath.Join(dir, "store")
	os.MkdirAll(store, 0o755)
	if err := os.Rename(filepath.Join(dir, "events", "part-0.parquet"), filepath.Join(store, "real.parquet")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "store", "real.parquet"), filepath.Join(dir, "events", "part-0.parquet")); err != nil {
		t.Skipf("symlink: %v", err)
	}
	if err := runWithin(t, dir, time.Minute, nil); err != nil {
		t.Fatalf("run through a symlink: %v", err)
	}
	final := filepath.Join(dir, "out", badExperiment, badDate)
	assertSameResults(t, clean, readOutput(t, final))
	m := readManifestInputs(t, final)
	if got := m["events"]; !cmp.Equal(got, []string{"store/real.parquet"}) {
		t.Errorf("manifest events inputs %v, want [store/real.parquet] (the file the link resolves to)", got)
	}
}

// readManifestInputs returns the manifest's input paths by role.
func readManifestInputs(t *testing.T, final string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(final, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m publish.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, in := range m.Inputs {
		out[in.Role] = append(out[in.Role], in.Path)
	}
	return out
}

// TestBadInputOverflowNamesMetricAndClamp: when DuckDB refuses a 128-bit
// addition (golden/singlejoin_test.go's overflowing cell: units at the top
// of a clamp near the int64 limit), the error names the experiment, the
// metric, its clamp and fixed-point scale, and a clamp (or scale) that
// would prevent it, instead of DuckDB's raw text. Exit 65, no output.
func TestBadInputOverflowNamesMetricAndClamp(t *testing.T) {
	dir := t.TempDir()
	s := func(v string) *string { return &v }
	day := time.Date(2025, 11, 16, 0, 0, 0, 0, time.UTC).UnixMicro()
	at := func(min int) *int64 { v := day + 86_400_000_000 + int64(min)*60_000_000; return &v }
	var tr []fixtures.TraceRow
	var ev []fixtures.EventRow
	for u := 0; u < 3; u++ {
		unit := s(fmt.Sprintf("u%d", u))
		tr = append(tr, fixtures.TraceRow{TS: at(u), UnitID: unit, ExperimentID: s("exp"), Variant: s("control"), Persona: s("a"), EventID: s(fmt.Sprintf("t%d", u))})
		if u < 2 {
			v := 9.19e12
			ev = append(ev, fixtures.EventRow{TS: at(u + 5), UnitID: unit, Metric: s("buy"), Value: &v, EventID: s(fmt.Sprintf("e%d", u))})
		}
	}
	os.MkdirAll(filepath.Join(dir, "traces"), 0o755)
	os.MkdirAll(filepath.Join(dir, "events"), 0o755)
	if err := fixtures.WriteTraceFile(filepath.Join(dir, "traces", "t.parquet"), tr); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteEventFile(filepath.Join(dir, "events", "e.parquet"), ev); err != nil {
		t.Fatal(err)
	}
	for _, pins := range []string{
		"{traces: v2, assignment: v2, events: v2, unit_metrics: v3, sufstats: v2, quality: v2}",
		"{traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}",
	} {
		t.Run(pins, func(t *testing.T) {
			spec := `version: 1
experiment: exp
inputs: {traces: ["traces/*.parquet"], events: ["events/*.parquet"]}
window: {start: 2025-11-16, end: 2025-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: ` + pins + `
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy}
  - {name: revenue, kind: mean, event: buy, aggregate: sum, clamp: {lower: 9.1e12, upper: 9.19e12}, attribution_hours: 96}
privacy: {enabled: false}
`
			if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(filepath.Join(dir, "out"))
			err := runIn(t, dir)
			if err == nil {
				t.Fatal("the run succeeded; want an overflow error")
			}
			if code := pipeline.ExitCode(err); code != pipeline.ExitData {
				t.Errorf("exit %d, want %d: %v", code, pipeline.ExitData, err)
			}
			msg := err.Error()
			t.Logf("exit %d: %s", pipeline.ExitCode(err), msg)
			for _, want := range []string{
				"experiment exp", "metric revenue", "clamp [9.1e+12, 9.19e+12]", "fixed_point_decimals 6",
				"3 units", "clamp revenue within ±5.3e+12", "fixed_point_decimals to 5",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "metric converted") {
				t.Errorf("message blames the proportion, which cannot overflow:\n%s", msg)
			}
			if strings.Contains(msg, "Out of Range Error") || strings.Contains(msg, "\n") {
				t.Errorf("message shows DuckDB's raw text or spans lines:\n%s", msg)
			}
			var oe *engine.OverflowError
			if !errors.As(err, &oe) || oe.Metric != "revenue" || oe.Experiment != "exp" {
				t.Errorf("error is not an *OverflowError for exp/revenue: %#v", err)
			}
			assertNoManifest(t, filepath.Join(dir, "out"))
		})
	}
}

// TestMemoryLimitTooSmallIsConfiguration: a memory limit under which the
// data cannot be analysed fails every retry the same way, so it is a
// configuration error (exit 78), not transient (1); the message says which
// limit was tried and what to try instead.
func TestMemoryLimitTooSmallIsConfiguration(t *testing.T) {
	dir := t.TempDir()
	baseData().write(t, dir)
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []string{"256KB", "8MB"} {
		t.Run(limit, func(t *testing.T) {
			_, err := pipeline.Run(context.Background(), spec, pipeline.Options{
				OutDir: filepath.Join(dir, "out"),
				Engine: engine.Engine{Threads: 2, MemoryLimit: limit},
			})
			if err == nil {
				t.Skipf("the run fits in %s", limit)
			}
			t.Logf("exit %d: %v", pipeline.ExitCode(err), err)
			if code := pipeline.ExitCode(err); code != pipeline.ExitConfig {
				t.Errorf("exit %d, want %d: %v", code, pipeline.ExitConfig, err)
			}
			for _, want := range []string{"--memory-limit " + limit, "fails the same way on every retry", "raise --memory-limit", "--temp-dir"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q: %v", want, err)
				}
			}
			assertNoManifest(t, filepath.Join(dir, "out"))
		})
	}
}

// hookFS calls hook the second time name is opened. Run reads every
// template once to verify the lock before it hashes the inputs, and again
// when it renders the templates, after hashing and before any SQL runs.
type hookFS struct {
	fs.FS
	name  string
	opens int
	hook  func()
}

func (h *hookFS) Open(name string) (fs.File, error) {
	if name == h.name {
		if h.opens++; h.opens == 2 {
			h.hook()
		}
	}
	return h.FS.Open(name)
}

// sameSizeVariant returns events bytes that differ from the clean file's
// but have exactly its size: two units' buy values swapped.
func sameSizeVariant(t *testing.T, clean []byte) []byte {
	t.Helper()
	d := baseData()
	rows := d.events["part-0"]
	var buys []int
	for i, r := range rows {
		if *r.Metric == "buy" {
			buys = append(buys, i)
		}
	}
	tmp := filepath.Join(t.TempDir(), "e.parquet")
	for k := 1; k < len(buys); k++ {
		swapped := append([]fixtures.EventRow{}, rows...)
		a, b := swapped[buys[0]], swapped[buys[k]]
		if *a.Value == *b.Value {
			continue
		}
		a.Value, b.Value = b.Value, a.Value
		swapped[buys[0]], swapped[buys[k]] = a, b
		if err := fixtures.WriteEventFile(tmp, swapped); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == len(clean) && !bytes.Equal(got, clean) {
			return got
		}
	}
	t.Fatal("no same-size variant of the events file")
	return nil
}

// TestBadInputRewrittenDuringRun: an input rewritten after it was hashed
// and before the SQL ends, with the same size and its modification time
// put back, must not be analysed under its old hash: the run fails
// (transient: a rerun reads a consistent state) naming the file, and
// commits nothing. The change shows in the file's ctime (and inode, when
// it is replaced by a rename).
func TestBadInputRewrittenDuringRun(t *testing.T) {
	for _, how := range []string{"rewritten in place", "replaced by rename"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			baseData().write(t, dir)
			events := filepath.Join(dir, "events", "part-0.parquet")
			clean, err := os.ReadFile(events)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(events)
			if err != nil {
				t.Fatal(err)
			}
			variant := sameSizeVariant(t, clean)
			fired := false
			h := &hookFS{FS: queries.FS(), name: "sufstats/v1.sql", hook: func() {
				fired = true
				target := events
				if how == "replaced by rename" {
					target = events + ".tmp"
				}
				if err := os.WriteFile(target, variant, 0o644); err != nil {
					t.Error(err)
				}
				if err := os.Chtimes(target, st.ModTime(), st.ModTime()); err != nil {
					t.Error(err)
				}
				if target != events {
					if err := os.Rename(target, events); err != nil {
						t.Error(err)
					}
				}
			}}
			spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = pipeline.Run(context.Background(), spec, pipeline.Options{
				OutDir:  filepath.Join(dir, "out"),
				Engine:  engine.Engine{Threads: 2},
				Queries: h,
			})
			if !fired {
				t.Fatalf("the rewrite hook did not fire (run error: %v)", err)
			}
			if after, _ := os.Stat(events); after.Size() != st.Size() || !after.ModTime().Equal(st.ModTime()) {
				t.Fatalf("the rewrite changed size or mtime: %v %v -> %v %v", st.Size(), st.ModTime(), after.Size(), after.ModTime())
			}
			if err == nil {
				t.Fatal("the run analysed a file rewritten after it was hashed, and committed it under the old hash")
			}
			if code := pipeline.ExitCode(err); code != pipeline.ExitTransient || !strings.Contains(err.Error(), "events/part-0.parquet changed while the run read it") {
				t.Errorf("exit %d, %v; want exit 1 naming events/part-0.parquet", code, err)
			}
			assertNoManifest(t, filepath.Join(dir, "out"))
		})
	}
}

// spellingSpec is badSpec with its globs replaced.
func spellingSpec(traces, events string) string {
	s := strings.Replace(badSpec, `traces: ["traces/*.parquet"]`, `traces: [`+strconvQuote(traces)+`]`, 1)
	return strings.Replace(s, `events: ["events/*.parquet"]`, `events: [`+strconvQuote(events)+`]`, 1)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestInputIdentityDoesNotDependOnSpelling: the same data reached through
// other spellings of its path — absolute globs with a relative spec path, a
// spec loaded through a symlinked folder (at another depth, so that ".."
// means something else lexically), a symlinked data folder — gets the same
// manifest input paths and input digest, and replaying any of these runs,
// with or without --inputs-dir spelled in any of these ways, is identical
// (no input "added since the run"). An error about a symlinked spec shows
// the path it resolves to.
func TestInputIdentityDoesNotDependOnSpelling(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	baseData().write(t, data)
	for _, role := range []string{"traces", "events"} {
		if err := os.Rename(filepath.Join(data, role), filepath.Join(root, "data", role)); err != nil {
			os.MkdirAll(filepath.Join(root, "data"), 0o755)
			if err := os.Rename(filepath.Join(data, role), filepath.Join(root, "data", role)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustSymlink := func(target, link string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(link), 0o755)
		if err := os.Symlink(target, link); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	mustSymlink(filepath.Join(root, "data"), filepath.Join(root, "datalink"))
	mustSymlink(filepath.Join(root, "specs"), filepath.Join(root, "links", "deep", "specs"))
	write := func(name, content string) {
		os.MkdirAll(filepath.Join(root, "specs"), 0o755)
		if err := os.WriteFile(filepath.Join(root, "specs", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rel.yaml", spellingSpec("../data/traces/*.parquet", "../data/events/"))
	write("abs.yaml", spellingSpec(filepath.Join(root, "data", "traces", "*.parquet"), filepath.Join(root, "data", "events")))
	write("link.yaml", spellingSpec("../datalink/traces/*.parquet", "../datalink/events/"))
	write("none.yaml", spellingSpec("../nothing/*.parquet", "../data/events/"))
	t.Chdir(root)

	type run struct {
		name, spec string
	}
	runs := []run{
		{"relative spec, relative globs", "specs/rel.yaml"},
		{"relative spec, absolute globs", "specs/abs.yaml"},
		{"absolute spec, absolute globs", filepath.Join(root, "specs", "abs.yaml")},
		{"spec through a symlinked folder", "links/deep/specs/rel.yaml"},
		{"absolute globs, spec through a symlinked folder", "links/deep/specs/abs.yaml"},
		{"globs through a symlinked data folder", "specs/link.yaml"},
	}
	var want *publish.Manifest
	manifests := map[string]string{}
	for i, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			spec, err := expspec.LoadSpec(r.spec)
			if err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: fmt.Sprintf("out-%d", i), Engine: engine.Engine{Threads: 2}})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			manifests[r.name] = filepath.Join(res.Dir, "manifest.json")
			b, err := os.ReadFile(manifests[r.name])
			if err != nil {
				t.Fatal(err)
			}
			var m publish.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = &m
				for _, in := range m.Inputs {
					if !strings.HasPrefix(in.Path, "../data/") {
						t.Errorf("input path %s, want ../data/... (relative to the resolved spec folder)", in.Path)
					}
				}
				return
			}
			wantIn, _ := json.MarshalIndent(want.Inputs, "", "  ")
			gotIn, _ := json.MarshalIndent(m.Inputs, "", "  ")
			if diff := cmp.Diff(string(wantIn), string(gotIn)); diff != "" {
				t.Errorf("manifest inputs differ from %q's (-want +got):\n%s", runs[0].name, diff)
			}
			if m.InputDigest != want.InputDigest {
				t.Errorf("input digest %s, want %s", m.InputDigest, want.InputDigest)
			}
		})
	}
	for _, r := range runs {
		for _, inputsDir := range []string{"", "specs", filepath.Join(root, "specs"), "links/deep/specs"} {
			t.Run("replay "+r.name+" --inputs-dir "+inputsDir, func(t *testing.T) {
				if manifests[r.name] == "" {
					t.Skip("the run failed")
				}
				rep, err := replay.Replay(context.Background(), manifests[r.name], replay.ReplayOptions{InputsDir: inputsDir, Engine: engine.Engine{Threads: 2}})
				if err != nil {
					t.Fatalf("replay: %v", err)
				}
				if !rep.Identical() {
					t.Errorf("replay: %s", rep.Summary())
				}
			})
		}
	}
	t.Run("error about a symlinked spec", func(t *testing.T) {
		spec, err := expspec.LoadSpec("links/deep/specs/none.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: "out-none"})
		if code := pipeline.ExitCode(err); code != pipeline.ExitNoInput {
			t.Errorf("exit %d, want %d: %v", code, pipeline.ExitNoInput, err)
		}
		for _, want := range []string{"links/deep/specs/none.yaml (resolved: " + filepath.Join(root, "specs", "none.yaml") + ")", filepath.Join(root, "nothing", "*.parquet")} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v lacks %q", err, want)
			}
		}
	})
}

// TestBadInputSymlinkedPartition: a folder glob walks into a symlinked
// partition folder (traces/dt=.../ -> elsewhere) instead of skipping it
// silently, and reads a file reached twice (through a link and directly)
// once.
func TestBadInputSymlinkedPartition(t *testing.T) {
	clean := runData(t, baseData())
	dir := t.TempDir()
	d := baseData()
	all := d.traces["part-0"]
	d.traces = map[string][]fixtures.TraceRow{"part-0": all[:len(all)/2]}
	d.write(t, dir)
	elsewhere := filepath.Join(dir, "store", "dt=2026-11-18")
	os.MkdirAll(elsewhere, 0o755)
	if err := fixtures.WriteTraceFile(filepath.Join(elsewhere, "part-1.parquet"), all[len(all)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "store", "dt=2026-11-18"), filepath.Join(dir, "traces", "dt=2026-11-18")); err != nil {
		t.Skipf("symlink: %v", err)
	}
	for _, globs := range []string{`"traces/"`, `"traces/", "store/dt=2026-11-18/part-1.parquet"`} {
		t.Run(globs, func(t *testing.T) {
			spec := strings.Replace(spellingSpec("traces/", "events/*.parquet"), `traces: ["traces/"]`, `traces: [`+globs+`]`, 1)
			os.RemoveAll(filepath.Join(dir, "out"))
			testSymlinkedPartition(t, dir, spec, clean)
		})
	}
}

func testSymlinkedPartition(t *testing.T, dir, spec string, clean runOutput) {
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runWithin(t, dir, time.Minute, nil); err != nil {
		t.Fatalf("run: %v", err)
	}
	final := filepath.Join(dir, "out", badExperiment, badDate)
	assertSameResults(t, clean, readOutput(t, final))
	if got := readManifestInputs(t, final)["traces"]; !cmp.Equal(got, []string{"store/dt=2026-11-18/part-1.parquet", "traces/part-0.parquet"}) {
		t.Errorf("manifest traces inputs %v", got)
	}
}

// TestOutputFolderUnusableIsCantCreate: an output root that cannot hold
// folders (a file where the folder must be, or a symlink to one) fails the
// same way on every retry: exit 73 (EX_CANTCREAT) naming it, not 1.
func TestOutputFolderUnusableIsCantCreate(t *testing.T) {
	dir := t.TempDir()
	baseData().write(t, dir)
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "not-a-folder")
	os.WriteFile(file, []byte("x"), 0o644)
	link := filepath.Join(dir, "link-to-file")
	if err := os.Symlink(file, link); err != nil {
		t.Skipf("symlink: %v", err)
	}
	for _, out := range []string{file, link} {
		_, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 2}})
		if code := pipeline.ExitCode(err); code != pipeline.ExitCantCreate || err == nil || !strings.Contains(err.Error(), out) {
			t.Errorf("--out %s: exit %d, %v; want exit 73 naming it", out, code, err)
		}
	}
}

// TestBadInputSameBytesTwice: a partition delivered twice under two names
// (a re-sent file) is refused before any output, exit 65 naming both
// copies: rows without an event_id cannot be deduplicated, so the run
// would count them twice. Files without rows may repeat (empty hourly
// partitions are byte-identical), and give the clean numbers.
func TestBadInputSameBytesTwice(t *testing.T) {
	clean := runData(t, baseData())
	d := baseData()
	var noID []fixtures.EventRow
	for _, e := range d.events["part-0"] {
		e.EventID = nil
		noID = append(noID, e)
	}
	d.events = map[string][]fixtures.EventRow{"part-0": noID, "part-0-resent": noID}
	dir := t.TempDir()
	d.write(t, dir)
	err := runIn(t, dir)
	var ie *intake.InputError
	if !errors.As(err, &ie) || pipeline.ExitCode(err) != pipeline.ExitData || ie.File != "events/part-0.parquet" ||
		!strings.Contains(err.Error(), "same bytes as events/part-0-resent.parquet") {
		t.Fatalf("got %v (exit %d), want exit 65 naming both copies", err, pipeline.ExitCode(err))
	}
	if _, serr := os.Stat(filepath.Join(dir, "out", badExperiment, badDate)); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("outputs were written for a refused run: %v", serr)
	}

	// Two empty event files (same bytes, no rows) beside the real ones.
	d = baseData()
	d.events["empty-a"], d.events["empty-b"] = nil, nil
	dir = t.TempDir()
	d.write(t, dir)
	a, _ := os.ReadFile(filepath.Join(dir, "events", "empty-a.parquet"))
	b, _ := os.ReadFile(filepath.Join(dir, "events", "empty-b.parquet"))
	if !bytes.Equal(a, b) {
		t.Fatal("the two empty files differ; the case needs identical bytes")
	}
	if err := runIn(t, dir); err != nil {
		t.Fatalf("two identical empty files: %v", err)
	}
	got := readOutput(t, filepath.Join(dir, "out", badExperiment, badDate))
	assertSameResults(t, clean, got)
}

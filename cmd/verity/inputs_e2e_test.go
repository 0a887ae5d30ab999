package main

// Bad input files and signals with the real binary (issue 14, "Bad input"):
// no input, spec, key or manifest that is not a regular file can hang a
// run, and SIGTERM stops a run within seconds in every phase.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verity-analytics/verity/pipeline"
)

// mkfifo makes a FIFO at path, or skips the test where it cannot.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// waitOrTerm waits up to limit for p to exit. If it has not, it sends
// SIGTERM and waits up to stopWithin more; a process still running then is
// killed and the test fails: the run hung and ignored SIGTERM.
func waitOrTerm(t *testing.T, p *verityProc, limit, stopWithin time.Duration) (code int, termed bool) {
	t.Helper()
	select {
	case <-p.done:
		return p.code(), false
	case <-time.After(limit):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.code(), true
	case <-time.After(stopWithin):
		p.cmd.Process.Kill()
		t.Fatalf("the run hung for %v and then ignored SIGTERM for %v; last phase done %s\nstderr: %s", limit, stopWithin, p.lastPhase(), p.stderr.String())
		return -1, true
	}
}

// TestNotRegularInputFailsAtOnce: a FIFO named like a Parquet file in an
// input folder, or a symlink to /dev/zero, fails the run at once with exit
// 65 naming the file and what it is; the lock is released (the next run,
// without the bad file, succeeds).
func TestNotRegularInputFailsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, file, what string
		make             func(t *testing.T, path string)
	}{
		{"FIFO", "traces/x.parquet", "named pipe (FIFO)", mkfifo},
		{"symlink to /dev/zero", "events/zero.parquet", "character device", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Skipf("symlink: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := miniDir(t)
			bad := filepath.Join(dir, filepath.FromSlash(tc.file))
			tc.make(t, bad)
			p := startVerity(t, dir, "run", "--log", "none", "--out", "out", "spec.yaml")
			code, termed := waitOrTerm(t, p, 15*time.Second, 10*time.Second)
			msg := finalErrorLine(p.stderr.String())
			if termed {
				t.Fatalf("the run hung on %s until SIGTERM (then exit %d: %s)", tc.file, code, msg)
			}
			want := "input " + tc.file + ": is a " + tc.what + ", not a regular file"
			if code != pipeline.ExitData || !strings.Contains(msg, want) {
				t.Errorf("exit %d, %q; want exit 65 and %q", code, msg, want)
			}
			assertNoCompleteOutput(t, filepath.Join(dir, "out"))
			os.Remove(bad)
			if r := verity(t, dir, "run", "--log", "none", "--out", "out", "spec.yaml"); r.code != 0 {
				t.Errorf("the next run without %s: exit %d: %s", tc.file, r.code, r.stderr)
			}
		})
	}
}

// TestNotRegularSpecManifestSnapshot: a spec, a manifest or a --against
// snapshot that is a FIFO is refused at once by name (exit 78, or 66 for
// the manifest of a replay, like a missing one), never read until a writer
// comes.
func TestNotRegularSpecManifestSnapshot(t *testing.T) {
	dir := miniDir(t)
	if r := verity(t, dir, "run", "--log", "none", "--out", "out", "spec.yaml"); r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	manifest := filepath.Join("out", "mini", "2026-11-19", "manifest.json")
	mkfifo(t, filepath.Join(dir, "fifo.yaml"))
	mkfifo(t, filepath.Join(dir, "manifest-fifo.json"))
	mkfifo(t, filepath.Join(dir, "snapshot.csv"))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"spec", []string{"run", "--log", "none", "--out", "out2", "fifo.yaml"}, pipeline.ExitConfig, "fifo.yaml: open fifo.yaml: is a named pipe (FIFO), not a regular file"},
		{"validate spec", []string{"validate", "--log", "none", "fifo.yaml"}, pipeline.ExitConfig, "is a named pipe (FIFO)"},
		{"manifest", []string{"replay", "--log", "none", "manifest-fifo.json"}, pipeline.ExitConfig, "manifest-fifo.json: is a named pipe (FIFO)"},
		{"snapshot", []string{"replay", "--against", "snapshot.csv", manifest}, pipeline.ExitConfig, "snapshot.csv: is a named pipe (FIFO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startVerity(t, dir, tc.args...)
			code, termed := waitOrTerm(t, p, 15*time.Second, 10*time.Second)
			out := p.stdout.String() + p.stderr.String()
			if termed {
				t.Fatalf("%v hung until SIGTERM (then exit %d): %s", tc.args, code, out)
			}
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
			}
		})
	}
}

// TestSIGTERMStopsAStuckRun: a run blocked in a call that no context can
// interrupt (here reading a private spec's key_file, a FIFO no one writes)
// still stops within seconds of SIGTERM, exit 1, saying it was
// interrupted, and holds no lock afterwards. (If the key file is refused
// as not a regular file first, the run ends at once with exit 78.)
func TestSIGTERMStopsAStuckRun(t *testing.T) {
	dir := miniDir(t)
	spec := strings.Replace(miniSpec, "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 4, delta: 1e-6, run_share: 0.25, key_file: key.fifo}", 1)
	spec = strings.Replace(spec, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
		"templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}", 1)
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "key.fifo"))
	p := startVerity(t, dir, "run", "--log", "json", "--out", "out", "spec.yaml")
	time.Sleep(time.Second)
	if p.exited() {
		msg := finalErrorLine(p.stderr.String())
		if p.code() != pipeline.ExitConfig || !strings.Contains(msg, "key.fifo") {
			t.Fatalf("the run ended before SIGTERM with exit %d: %s", p.code(), msg)
		}
		t.Logf("the key file was refused at once: %s", msg)
		return
	}
	signalled := time.Now()
	code, _ := waitOrTerm(t, p, 0, 15*time.Second)
	latency := time.Since(signalled)
	msg := finalErrorLine(p.stderr.String())
	t.Logf("exit %d %v after SIGTERM: %s", code, latency.Round(time.Millisecond), msg)
	if code == pipeline.ExitConfig && strings.Contains(msg, "key.fifo") && strings.Contains(msg, "named pipe") {
		// On a loaded machine the run can take more than the second above
		// to reach the key file, which it then refuses at once (the
		// refusal path of the early return): it was never stuck.
		t.Logf("the key file was refused, not waited for (the run was slow to reach it)")
		return
	}
	if code != pipeline.ExitTransient || !strings.Contains(msg, "interrupted") {
		t.Errorf("exit %d, %q; want exit 1 saying the run was interrupted", code, msg)
	}
	if latency > 10*time.Second {
		t.Errorf("SIGTERM took %v to stop the run", latency)
	}
}

// manyFilesDir writes a mini dataset whose traces are split into n files,
// so that reading the footers takes seconds.
func manyFilesDir(t *testing.T, n int) string {
	t.Helper()
	dir := miniDir(t)
	t0 := time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		writeParquet(t, filepath.Join(dir, "traces", fmt.Sprintf("more-%05d.parquet", i)), []traceRow{{t0.Add(time.Duration(i) * time.Second), fmt.Sprintf("m%05d", i), "mini", "control", "a/x"}})
	}
	return dir
}

// TestSIGTERMWhileReadingFooters: SIGTERM while the run reads its inputs'
// Parquet footers and schemas (after hashing, before the SQL) stops it
// within seconds with exit 1, saying it was interrupted, and commits
// nothing. (Hashing, SQL and commit are covered by TestSIGTERMWhileHashing
// IsTransient, TestSIGTERMInSQLSaysInterruptedOnOneLine and
// TestKilledRunThenRerun.)
func TestSIGTERMWhileReadingFooters(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 3,000 input files")
	}
	dir := manyFilesDir(t, 3000)
	p := startVerity(t, dir, "run", "--log", "json", "--out", "out", "spec.yaml")
	if !p.waitForLog(`"phase":"hash_inputs"`) {
		t.Fatalf("the run ended (exit %d) before hashing its inputs: %s", p.code(), p.stderr.String())
	}
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(p.stderr.String(), `"phase":"inspect_inputs"`) || p.exited() {
		t.Skipf("the footers were read before SIGTERM could land (last phase %s)", p.lastPhase())
	}
	signalled := time.Now()
	code, _ := waitOrTerm(t, p, 0, 15*time.Second)
	latency := time.Since(signalled)
	msg := finalErrorLine(p.stderr.String())
	t.Logf("exit %d %v after SIGTERM, last phase done %s: %s", code, latency.Round(time.Millisecond), p.lastPhase(), msg)
	if code != pipeline.ExitTransient || !strings.Contains(msg, "interrupted") {
		t.Errorf("exit %d, %q; want exit 1 saying the run was interrupted", code, msg)
	}
	if latency > 5*time.Second {
		t.Errorf("SIGTERM took %v to stop the run", latency)
	}
	assertNoCompleteOutput(t, filepath.Join(dir, "out"))
}

// TestReplayEditedResults: `verity replay` of a run whose results.csv was
// edited by hand exits 70 naming the file, instead of "5 outputs
// byte-identical"; `replay --against` of it exits 70 the same way.
func TestReplayEditedResults(t *testing.T) {
	dir := miniDir(t)
	if r := verity(t, dir, "run", "--log", "none", "--out", "out", "spec.yaml"); r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	run := filepath.Join("out", "mini", "2026-11-19")
	snap := verity(t, dir, "replay", "--export-snapshot", "snap.csv", run)
	if snap.code != 0 {
		t.Fatalf("export: exit %d: %s", snap.code, snap.stderr)
	}
	res := filepath.Join(dir, run, "results.csv")
	b, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(",ok"), []byte(",ok "), 1)
	if err := os.WriteFile(res, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"replay", "--log", "none", run},
		{"replay", "--against", "snap.csv", run},
	} {
		r := verity(t, dir, args...)
		if r.code != pipeline.ExitMismatch || !strings.Contains(r.stderr, "results.csv") || !strings.Contains(r.stderr, "edited since the run") || strings.Contains(r.stdout, "byte-identical") {
			t.Errorf("%v: exit %d, want 70 naming results.csv\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestMemoryLimitTooSmallExit78: the committed fixtures with a memory limit
// too small for them exit 78 (configuration), saying which limit was tried
// and what to try; every retry would fail the same way.
func TestMemoryLimitTooSmallExit78(t *testing.T) {
	spec := filepath.Join(repoRoot(t), "fixtures", "specs", "checkout-button.yaml")
	r := verity(t, t.TempDir(), "run", "--log", "none", "--threads", "2", "--memory-limit", "16MB", "--out", "out", spec)
	if r.code != pipeline.ExitConfig || !strings.Contains(r.stderr, "--memory-limit 16MB") || !strings.Contains(r.stderr, "try 64MB or more") {
		t.Errorf("exit %d, want 78 naming the limit and a suggestion\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := verity(t, t.TempDir(), "run", "--log", "none", "--threads", "2", "--memory-limit", "64MB", "--out", "out", spec); r.code != 0 {
		t.Errorf("the suggested 64MB: exit %d: %s", r.code, r.stderr)
	}
}

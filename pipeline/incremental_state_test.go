package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// incrBench is the fixture (multi-variant units dropped, so that nights
// run incrementally), a state folder, and one output folder per mode.
type incrBench struct {
	t          *testing.T
	dir, state string
	outI, outF string
	spec       *expspec.Spec
	log        bytes.Buffer
	runID      string
}

func newIncrBench(t *testing.T) *incrBench {
	t.Helper()
	dir, spec := incrFixture(t, true, incrSpec)
	return &incrBench{t: t, dir: dir, state: filepath.Join(dir, "state"), outI: filepath.Join(dir, "incr"), outF: filepath.Join(dir, "full"), spec: spec}
}

// night runs date incrementally (logging into b.log, which it resets) and
// in full, checks every output file is the same and the mode starts with
// wantMode, and returns the incremental run's log.
func (b *incrBench) night(date, wantMode string) string {
	t := b.t
	t.Helper()
	b.log.Reset()
	ri, err := pipeline.Run(context.Background(), b.spec, pipeline.Options{OutDir: b.outI, Date: date, Engine: engine.Engine{Threads: 2},
		Incremental: true, Host: ledgers.Host{StateDir: b.state}, Build: publish.CurrentBuild(),
		Logger: slog.New(slog.NewTextHandler(&b.log, nil)), RunID: b.runID})
	if err != nil {
		t.Fatalf("%s incremental: %v", date, err)
	}
	rf, err := pipeline.Run(context.Background(), b.spec, pipeline.Options{OutDir: b.outF, Date: date, Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if err != nil {
		t.Fatalf("%s full: %v", date, err)
	}
	if !strings.HasPrefix(ri.Mode, wantMode) {
		t.Errorf("%s: mode %q, want %q…", date, ri.Mode, wantMode)
	}
	sameOutputs(t, date, ri.Dir, rf.Dir)
	return b.log.String()
}

// stateDir is the one incremental state folder under the state root.
func (b *incrBench) stateDir() string {
	b.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(b.state, "incremental", "*"))
	if len(dirs) != 1 {
		b.t.Fatalf("state folders %v, want one", dirs)
	}
	return dirs[0]
}

func (b *incrBench) read(path string) []byte {
	b.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	return data
}

// flipByte changes one byte in the middle of a file (the file stays the
// same size; Parquet may or may not still decode it).
func (b *incrBench) flipByte(path string) {
	b.t.Helper()
	data := b.read(path)
	data[len(data)/2] ^= 0x5a
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// TestIncrementalDetectsDamagedState: one changed byte in any state file
// (a table of the generation, a key file, state.json itself) makes the
// next night a full run whose log names the file, with outputs equal to a
// full run's; that night writes a new state, and the night after runs
// incrementally again.
func TestIncrementalDetectsDamagedState(t *testing.T) {
	b := newIncrBench(t)
	if log := b.night("2026-11-16", "full: no state"); !strings.Contains(log, "level=INFO msg=incremental") {
		t.Errorf("a first night's full run is not logged as information:\n%s", log)
	}
	b.night("2026-11-17", "incremental")
	sd := b.stateDir()
	unitev, _ := filepath.Glob(filepath.Join(sd, "gen-*", "unitev.parquet"))
	keys, _ := filepath.Glob(filepath.Join(sd, "keys", "e-*.parquet"))
	if len(unitev) != 1 || len(keys) != 2 {
		t.Fatalf("state files: unitev %v, event keys %v; want 1 and 2", unitev, keys)
	}
	b.flipByte(unitev[0])
	rel, _ := filepath.Rel(sd, unitev[0])
	log := b.night("2026-11-18", "full: state file "+rel+" changed since it was written")
	if !strings.Contains(log, "state file "+rel+" changed since it was written") {
		t.Errorf("the log does not name the damaged file %s:\n%s", rel, log)
	}
	// A damaged state is a warning (it would repeat every night unseen);
	// the expected fallback of a first night is information.
	if !strings.Contains(log, "level=WARN msg=incremental") {
		t.Errorf("a damaged state is not logged as a warning:\n%s", log)
	}
	b.night("2026-11-19", "incremental")

	// The first night's key file, kept through every incremental night.
	keys, _ = filepath.Glob(filepath.Join(sd, "keys", "e-*.parquet"))
	if len(keys) != 2 {
		t.Fatalf("event key files %v, want 2", keys)
	}
	b.flipByte(keys[0])
	b.night("2026-11-19", "full: state file keys")

	// The stored cells (format v3), which the next night updates by delta.
	cells, _ := filepath.Glob(filepath.Join(sd, "gen-*", "cells.json"))
	if len(cells) != 1 {
		t.Fatalf("cells.json files %v, want 1", cells)
	}
	b.flipByte(cells[0])
	rel, _ = filepath.Rel(sd, cells[0])
	b.night("2026-11-19", "full: state file "+rel+" changed since it was written")

	// state.json: a recorded checksum edited to match an edited table is
	// caught by the file's own digest.
	sj := filepath.Join(sd, "state.json")
	text := b.read(sj)
	edited := bytes.Replace(text, []byte(`"date": "2026-11-19"`), []byte(`"date": "2026-11-18"`), 1)
	if bytes.Equal(edited, text) {
		t.Fatalf("state.json has no date to edit:\n%s", text)
	}
	if err := os.WriteFile(sj, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	b.night("2026-11-19", "full: state unreadable: state.json was edited or damaged")
}

// TestIncrementalStateLock: while another process holds the state folder's
// lock, a night runs in full (saying why), reads and writes no state, and
// equals a full run; once the lock is free, the next night runs
// incrementally from the state the holder left.
func TestIncrementalStateLock(t *testing.T) {
	b := newIncrBench(t)
	b.night("2026-11-16", "full: no state")
	sd := b.stateDir()
	before := b.read(filepath.Join(sd, "state.json"))
	f, err := os.OpenFile(filepath.Join(sd, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no lock file in the state folder: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the state lock is still held after the run: %v", err)
	}
	log := b.night("2026-11-17", "full: the state folder is locked by another incremental run")
	if !strings.Contains(log, "locked by another incremental run") {
		t.Errorf("the log does not say the state is locked:\n%s", log)
	}
	if after := b.read(filepath.Join(sd, "state.json")); !bytes.Equal(before, after) {
		t.Error("a night without the lock rewrote state.json")
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
	// The state of the 16th: the 17th and 18th are both new.
	b.night("2026-11-18", "incremental")
}

// TestIncrementalLogTexts: a rerun of an earlier night says the state is
// from a later night and keeps it (the next night is incremental from it);
// a save that fails says the previous state is kept, and the next night
// runs incrementally from it.
func TestIncrementalLogTexts(t *testing.T) {
	b := newIncrBench(t)
	b.night("2026-11-16", "full: no state")
	b.night("2026-11-17", "incremental")
	b.night("2026-11-18", "incremental")
	sd := b.stateDir()
	before := b.read(filepath.Join(sd, "state.json"))
	b.night("2026-11-17", "full: the state is from a later night (2026-11-18) than tonight's (2026-11-17)")
	if after := b.read(filepath.Join(sd, "state.json")); !bytes.Equal(before, after) {
		t.Error("a rerun of an earlier night replaced the later night's state")
	}

	// A save that cannot create its generation folder (a file is in the way).
	b.runID = "fixed-run-id"
	if err := os.WriteFile(filepath.Join(sd, "gen-"+b.runID), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := b.night("2026-11-19", "incremental")
	if !strings.Contains(log, "incremental state not saved; the state of 2026-11-18 is left as it was") || strings.Contains(log, "runs in full") {
		t.Errorf("failed save: the log should say the state of 2026-11-18 is kept:\n%s", log)
	}
	if after := b.read(filepath.Join(sd, "state.json")); !bytes.Equal(before, after) {
		t.Error("a failed save changed state.json")
	}
	if _, err := os.Stat(filepath.Join(sd, "gen-"+b.runID)); !os.IsNotExist(err) {
		t.Errorf("a failed save left gen-%s behind (%v)", b.runID, err)
	}
	b.runID = ""
	b.night("2026-11-19", "incremental")
	// The same night again: nothing is new, and the reason says why.
	b.night("2026-11-19", "full: the state already counts every input of 2026-11-19 (the night was run before)")
	// A night whose events partition has not arrived: the reason names
	// the missing kind, not "no new trace or event partition".
	if err := os.RemoveAll(filepath.Join(b.dir, "data", "events", "dt=2026-11-20")); err != nil {
		t.Fatal(err)
	}
	b.night("2026-11-20", "full: no new event partition since the stored night")
}

// TestIncrementalCarriesRowsAfterTheWindowEnd: an event whose timestamp is
// after its partition's day (here the 17th's partition holds a purchase at
// noon on the 18th, of a unit exposed on the 16th, whose pair is settled)
// lies after night 17's window end; night 18's window includes it. The
// incremental night 18 must count it as the full run does: the row is
// carried from night 17, not stored as after-window.
func TestIncrementalCarriesRowsAfterTheWindowEnd(t *testing.T) {
	b := newIncrBench(t)
	ev17 := filepath.Join(b.dir, "data", "events", "dt=2026-11-17")
	duckExec(t, `COPY (SELECT TIMESTAMPTZ '2026-11-18 12:00:00+00' AS ts, unit_id, 'purchase' AS metric, 77.25::DOUBLE AS value, 'ahead-' || unit_id AS event_id
		FROM read_parquet('`+filepath.Join(b.dir, "data", "traces", "dt=2026-11-16", "part-00000.parquet")+`')
		WHERE experiment_id = 'checkout-button' AND unit_id IS NOT NULL ORDER BY ts, unit_id LIMIT 3)
		TO '`+filepath.Join(ev17, "ahead.parquet")+`' (FORMAT parquet)`)
	b.night("2026-11-16", "full: no state")
	b.night("2026-11-17", "incremental")
	b.night("2026-11-18", "incremental")
}

// TestIncrementalPassFailureRunsInFull: a state file that cannot be read
// although state.json vouches for it (replaced by bytes that are not
// Parquet, and the state resealed, as a disk or a hand could leave it) makes
// the incremental pass fail inside DuckDB. The night must not exit with that
// error (it named the state's file and exited 1, "transient"): it runs in
// full, logs why as a warning, and equals the full run.
func TestIncrementalPassFailureRunsInFull(t *testing.T) {
	b := newIncrBench(t)
	b.night("2026-11-16", "full: no state")
	b.night("2026-11-17", "incremental")
	sd := b.stateDir()
	units, _ := filepath.Glob(filepath.Join(sd, "gen-*", "units.parquet"))
	if len(units) == 0 {
		t.Fatal("no units.parquet in the state")
	}
	for _, f := range units {
		if err := os.WriteFile(f, []byte("not parquet at all"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline.ResealIncrementalState(sd); err != nil {
		t.Fatal(err)
	}
	log := b.night("2026-11-18", "full: the incremental pass failed: ")
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "units.parquet") {
		t.Errorf("the log should warn and name the unreadable state file:\n%s", log)
	}
	b.night("2026-11-19", "incremental")
}

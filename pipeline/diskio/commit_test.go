package diskio

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCommitFolder(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "2026-11-19")
	files := []StagedFile{{"a.txt", []byte("one")}}
	manifest := func(outs []OutputFile) ([]byte, error) {
		if len(outs) != 1 || outs[0].SHA256 != SHA256Hex([]byte("one")) && outs[0].SHA256 != SHA256Hex([]byte("two")) {
			t.Errorf("outputs passed to the manifest: %+v", outs)
		}
		return []byte("{}"), nil
	}
	if err := CommitFolder(final, files, manifest); err != nil {
		t.Fatal(err)
	}
	// A leftover of a killed run is cleaned; a completed run is replaced.
	os.MkdirAll(filepath.Join(parent, StagingPrefix+"2026-11-19.123"), 0o755)
	if err := CommitFolder(final, []StagedFile{{"a.txt", []byte("two")}}, manifest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "two" {
		t.Errorf("replaced content = %q", b)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("leftovers in %s: %v", parent, entries)
	}
	// A failing manifest leaves nothing and keeps the previous run.
	boom := errors.New("boom")
	if err := CommitFolder(final, files, func([]OutputFile) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "two" {
		t.Errorf("previous run damaged: %q", b)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("failed commit left %v", entries)
	}
	// A folder that is not a Verity run is never replaced.
	other := filepath.Join(parent, "mine")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("keep"), 0o644)
	if err := CommitFolder(other, files, manifest); !errors.Is(err, ErrNoOverwrite) {
		t.Fatalf("want ErrNoOverwrite, got %v", err)
	}
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: want ErrLocked, got %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

// TestCommitRestoresReplacedRun: a run that died between its two renames
// left the previous result as .replaced-*; the next commit puts it back
// before anything else, so a failure then still leaves the old result.
func TestCommitRestoresReplacedRun(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "2026-11-19")
	old := filepath.Join(parent, ReplacedPrefix+"2026-11-19.42")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "manifest.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(old, "a.txt"), []byte("old"), 0o644)
	boom := errors.New("boom")
	err := CommitFolder(final, []StagedFile{{"a.txt", []byte("new")}}, func([]OutputFile) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "old" {
		t.Fatalf("the replaced run was not restored: a.txt = %q", b)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the .replaced folder is still there")
	}
}

package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// ResealIncrementalState rewrites the state.json of the incremental state
// folder dir with the SHA-256 of its files as they are now and a new
// digest: it forges a state whose files were edited, to test what only a
// replay can catch.
func ResealIncrementalState(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	var s incrState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, rel := range s.files() {
		if s.Checksums[rel], err = fileSHA256(filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	if s.Digest, err = s.digest(); err != nil {
		return err
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "state.json"), append(out, '\n'), 0o600)
}

// SetIncrementalCompactAfter sets how many generations an incremental
// state keeps before the save compacts them, and returns the restore.
func SetIncrementalCompactAfter(n int) func() {
	old := incrementalCompactAfter
	incrementalCompactAfter = n
	return func() { incrementalCompactAfter = old }
}

// IncrementalGenerations is the number of live generations of the one
// incremental state under stateDir (0 when there is none).
func IncrementalGenerations(stateDir string) int {
	files, _ := filepath.Glob(filepath.Join(stateDir, "incremental", "*", "state.json"))
	if len(files) != 1 {
		return 0
	}
	s, err := readIncrState(filepath.Dir(files[0]))
	if err != nil {
		return 0
	}
	return len(s.Gens)
}

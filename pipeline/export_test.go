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

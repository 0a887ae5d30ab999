package pipeline

import (
	"fmt"
	"testing"

	"github.com/verity-analytics/verity/pipeline/diskio"
)

// A run that finds its output folder locked by another run is told to
// retry: exit 75, not a configuration or data error.
func TestLockedIsTransient(t *testing.T) {
	if got := ExitCode(fmt.Errorf("runs/x: %w", diskio.ErrLocked)); got != ExitTransient {
		t.Fatalf("ExitCode(ErrLocked) = %d, want %d", got, ExitTransient)
	}
}

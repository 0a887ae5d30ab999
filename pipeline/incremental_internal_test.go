package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestIncrStateNamesStayInside: a state.json whose digest matches but which
// names a generation or key file outside the state's folder (a forged or
// hand-written state) is refused when read, naming the value.
func TestIncrStateNamesStayInside(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*incrState)
		want string
	}{
		{"ok", func(*incrState) {}, ""},
		{"gen outside", func(s *incrState) { s.Gen = "../../elsewhere" }, `generation "../../elsewhere"`},
		{"gen not a generation", func(s *incrState) { s.Gen = "keys" }, `generation "keys"`},
		{"trace key outside", func(s *incrState) { s.TraceKeys = []string{"../t-x.parquet"} }, `key file "../t-x.parquet"`},
		{"event key of another name", func(s *incrState) { s.EventKeys = []string{"state.json"} }, `key file "state.json"`},
		{"hidden key", func(s *incrState) { s.EventKeys = []string{".e-x.parquet"} }, `key file ".e-x.parquet"`},
		{"base generation outside", func(s *incrState) { s.Gens[0] = "../gen-x" }, `generation "../gen-x"`},
		{"newest generation not tonight's", func(s *incrState) { s.Gens = s.Gens[:1]; s.GenRows = s.GenRows[:1] }, "generations inconsistently"},
		{"rows of a generation missing", func(s *incrState) { s.GenRows = s.GenRows[:1] }, "generations inconsistently"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := incrState{Format: incrementalFormat, Fingerprint: "f", Date: "2026-11-17", Gen: "gen-abc123",
				Gens: []string{"gen-abc000", "gen-abc123"}, GenRows: []int64{10, 2},
				TraceKeys: []string{"t-abc123.parquet"}, EventKeys: []string{"e-abc123.parquet"}}
			tc.edit(&s)
			var err error
			if s.Digest, err = s.digest(); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(s)
			if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = readIncrState(dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("a well-formed state is refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestIncrementalRefusalNamesEveryOptionalPin: a spec outside the
// incremental set is told every optional template that keeps it out (the
// event-level quantile fixture pins histograms and eventbins; the reason
// named only the first), in a fixed order.
func TestIncrementalRefusalNamesEveryOptionalPin(t *testing.T) {
	s, err := expspec.LoadSpec(filepath.Join("..", "fixtures", "specs", "checkout-button-evquantiles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := incrementalRefusal(s); got != "pins histograms, eventbins (only the single-join set is incremental)" {
		t.Errorf("refusal %q", got)
	}
}

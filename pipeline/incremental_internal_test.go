package pipeline

import (
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
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

// TestDeltaCells checks the cell arithmetic of cells by delta on planted
// cells: stored − last night's + tonight's per cell (counts and every
// sum), a cell left without units dropped, a new cell added in
// sufstats@v3's order, the stored max|value| kept as an upper bound, and
// each inconsistency a fallback with its reason.
func TestDeltaCells(t *testing.T) {
	cell := func(cohort, metric string, n int64, sum, maxAbs int64) engine.Cell {
		c := engine.NewCell(cohort, "control", metric)
		c.N = n
		for i, p := range c.Sums() {
			(*p).SetInt64(sum * int64(i+1)) // a different value in every sum
		}
		c.MaxAbs = big.NewInt(maxAbs)
		return c
	}
	base := []engine.Cell{cell("power/mobile", "m", 5, 10, 4), cell(expspec.UnclassifiedLeaf, "m", 2, 3, 2)}
	old := []engine.Cell{cell("power/mobile", "m", 2, 4, 1), cell(expspec.UnclassifiedLeaf, "m", 2, 3, 2)}
	add := []engine.Cell{cell("power/mobile", "m", 3, 9, 3), cell("casual/desktop", "m", 1, 1, 1)}
	got, err := deltaCells("e", base, old, add)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Cell{cell("casual/desktop", "m", 1, 1, 1), cell("power/mobile", "m", 6, 15, 4)}
	if len(got) != len(want) {
		t.Fatalf("cells %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Cohort != w.Cohort || g.N != w.N || g.MaxAbs.Cmp(w.MaxAbs) != 0 {
			t.Errorf("cell %d: %s n=%d max=%v, want %s n=%d max=%v", i, g.Cohort, g.N, g.MaxAbs, w.Cohort, w.N, w.MaxAbs)
		}
		for k, p := range g.Sums() {
			if (*p).Cmp(*w.Sums()[k]) != 0 {
				t.Errorf("cell %s sum %d: %v, want %v", g.Cohort, k, *p, *w.Sums()[k])
			}
		}
	}
	huge := new(big.Int).Lsh(big.NewInt(1), 62)
	bounded := cell("power/mobile", "m", 5, 10, 0)
	bounded.MaxAbs = huge // 6 · 2^124 ≥ 2^126 with the bound
	for _, tc := range []struct {
		name           string
		base, old, add []engine.Cell
		want           string
	}{
		{"more units subtracted than stored", base, []engine.Cell{cell("power/mobile", "m", 6, 4, 1)}, nil, "negative count"},
		{"no unit left, sums left", base, []engine.Cell{cell("power/mobile", "m", 5, 4, 1)}, nil, "no unit but nonzero sums"},
		{"a touched unit's cell not stored", base, []engine.Cell{cell("casual/mobile", "m", 1, 1, 1)}, nil, "not among the stored cells"},
		{"the bound fails the proof", []engine.Cell{bounded}, nil, []engine.Cell{cell("power/mobile", "m", 1, 1, 1)}, "overflow proof of cell power/mobile/control/m"},
	} {
		_, err := deltaCells("e", tc.base, tc.old, tc.add)
		var fb *fallbackError
		if !errors.As(err, &fb) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a fallback naming %q", tc.name, err, tc.want)
		}
	}
}

// TestApplyCellDeltaUnitCounts: quality's unit counts are the stored ones
// minus last night's and plus tonight's of the touched units; a count that
// would go negative (a state that does not add up) is a fallback, never a
// published negative count.
func TestApplyCellDeltaUnitCounts(t *testing.T) {
	base := storedCells{cells: map[string][]engine.Cell{"e": nil}, units: map[string][4]int64{"e": {10, 1, 9, 2}}}
	old := map[string]engine.Quality{"e": {UnitsExposed: 3, UnitsMultiVariant: 0, UnitsAssigned: 3, UnitsUnclassified: 1}}
	tonight := map[string]engine.Quality{"e": {UnitsExposed: 5, UnitsMultiVariant: 1, UnitsAssigned: 4, UnitsUnclassified: 0, EventRows: 77}}
	_, q, err := applyCellDelta(base, nil, nil, old, tonight, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := q["e"]
	if got.UnitsExposed != 12 || got.UnitsMultiVariant != 2 || got.UnitsAssigned != 10 || got.UnitsUnclassified != 1 || got.EventRows != 77 {
		t.Errorf("quality %+v: want units 12, 2, 10, 1 and tonight's event rows 77", got)
	}
	if base.units["e"] != [4]int64{10, 1, 9, 2} {
		t.Errorf("the stored counts were changed in place: %v", base.units["e"])
	}
	old["e"] = engine.Quality{UnitsExposed: 3, UnitsUnclassified: 4}
	_, _, err = applyCellDelta(base, nil, nil, old, tonight, nil, nil)
	var fb *fallbackError
	if !errors.As(err, &fb) || !strings.Contains(err.Error(), "negative after the delta") {
		t.Errorf("a unit count below zero: %v, want a fallback", err)
	}
}

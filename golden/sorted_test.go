package golden

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// sortedPins is the unit-keyed set with events@v8, which finds duplicate
// events from the checked sort order of its inputs (issue 18).
var sortedPins = map[string]string{"traces": "v8", "assignment": "v5", "events": "v8", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4"}

// sortedTwin writes the spec's events again, sorted by (unit_id, event_id)
// and cut into as many files as the spec reads (never between two rows of
// one key, so the files' key ranges do not meet), and returns a copy of
// the spec that reads them and declares the order. Rows with a NULL key go
// first (the guarantee leaves them anywhere); rows of one key keep their
// order, reversed when reverseTies (the kept copy must not depend on it).
func sortedTwin(t *testing.T, spec *expspec.Spec, reverseTies bool) *expspec.Spec {
	t.Helper()
	files, err := intake.ResolveGlobsAt(spec, "events", spec.Inputs.Events, "")
	if err != nil {
		t.Fatal(err)
	}
	var rows []fixtures.EventRow
	for _, f := range files {
		r, err := parquet.ReadFile[fixtures.EventRow](f.Abs)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r...)
	}
	if reverseTies {
		slices.Reverse(rows)
	}
	slices.SortStableFunc(rows, compareEventKeys)
	dir := t.TempDir()
	n := len(files)
	start := 0
	for i := 0; i < n; i++ {
		end := len(rows) * (i + 1) / n
		for end > start && end < len(rows) && compareEventKeys(rows[end-1], rows[end]) == 0 {
			end++
		}
		end = max(end, start)
		if err := fixtures.WriteEventFile(filepath.Join(dir, fmt.Sprintf("part-%05d.parquet", i)), rows[start:end]); err != nil {
			t.Fatal(err)
		}
		start = end
	}
	if start != len(rows) {
		t.Fatalf("wrote %d of %d rows", start, len(rows))
	}
	s := *spec
	s.Inputs.Events = []string{dir + "/"}
	s.Inputs.SortedBy = map[string][]string{"events": {"unit_id", "event_id"}}
	return &s
}

// compareEventKeys orders rows by (unit_id, event_id) as bytes, rows with a
// NULL in the key first.
func compareEventKeys(a, b fixtures.EventRow) int {
	an, bn := a.UnitID == nil || a.EventID == nil, b.UnitID == nil || b.EventID == nil
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	if c := cmp.Compare(*a.UnitID, *b.UnitID); c != 0 {
		return c
	}
	return cmp.Compare(*a.EventID, *b.EventID)
}

// checkSortedTwin runs specs with the unit-keyed set on their own events
// and with events@v8 on sorted copies of them, and compares every output
// file byte for byte (the spec hash blanked: pins and inputs differ).
func checkSortedTwin(t *testing.T, specs ...*expspec.Spec) {
	t.Helper()
	a := runGroupWithPins(t, specs, unitKeyedPins)
	for _, reverse := range []bool{false, true} {
		var twins []*expspec.Spec
		for _, s := range specs {
			twins = append(twins, sortedTwin(t, s, reverse))
		}
		b := runGroupWithPinsThreads(t, twins, sortedPins, 3)
		if len(a) != len(specs) || len(b) != len(specs) {
			t.Fatalf("want %d experiments, got %d and %d", len(specs), len(a), len(b))
		}
		for exp, files := range a {
			for f, want := range files {
				got, ok := b[exp][f]
				want, got = withoutSpecHash(t, f, want), withoutSpecHash(t, f, got)
				if !ok || !bytes.Equal(want, got) {
					t.Errorf("%s %s differs between events@v7 and events@v8 on sorted copies (ties reversed: %v):\n%s", exp, f, reverse, firstDiff(want, got))
				}
			}
		}
	}
}

// TestSortedInputsGiveTheSameBytes (issue 18): events@v8 on sorted copies
// of the inputs gives every output file of the unit-keyed set on the
// originals, on the fixtures, the fault-laden dataset (duplicates, retries,
// NULL keys and event ids, invalid values) and the conflicting-copies
// dataset (copies that differ, so which is kept changes the numbers).
func TestSortedInputsGiveTheSameBytes(t *testing.T) {
	t.Run("fixtures", func(t *testing.T) {
		for _, s := range loadSpecs(t, false) {
			if s.Experiment == "checkout-button" && s.Name == "" {
				checkSortedTwin(t, s)
			}
		}
	})
	t.Run("faults", func(t *testing.T) {
		dir := faultyDataset(t)
		base, err := os.ReadFile("../fixtures/specs/onboarding-flow.yaml")
		if err != nil {
			t.Fatal(err)
		}
		base = bytes.ReplaceAll(base, []byte("../data/basic/"), []byte("data/"))
		p := filepath.Join(dir, "onboarding-flow.yaml")
		if err := os.WriteFile(p, base, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		checkSortedTwin(t, spec)
	})
	t.Run("conflicting copies", func(t *testing.T) { checkSortedTwin(t, conflictingCopiesSpec(t)) })
}

// TestSortedInputsSharded: a sharded run of a spec with sorted events
// checks the order on the whole inputs (its shard's copies are not in
// order) and binds the duplicate keys found there; shards and merge give
// byte for byte the single run of the same spec, whose results are the
// unit-keyed set's on the original files (spec hash blanked).
func TestSortedInputsSharded(t *testing.T) {
	base, err := expspec.LoadSpec("testdata/shard-exact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	twin := sortedTwin(t, base, true)
	twin.Templates = map[string]string{}
	for k, v := range sortedPins {
		twin.Templates[k] = v
	}
	if err := twin.Validate(); err != nil {
		t.Fatal(err)
	}
	specs := []*expspec.Spec{twin}
	single := pipeline.RunAll(context.Background(), specs, shardOpts(t.TempDir(), fixtureHost(t)))
	okOrGate(t, "single run", single)
	want := releaseBytes(t, single[0].Outcome.Dir)
	orig := runGroupWithPins(t, []*expspec.Spec{base}, unitKeyedPins)[base.Experiment]
	for f, b := range orig {
		if got := withoutSpecHash(t, f, want[f]); !bytes.Equal(withoutSpecHash(t, f, b), got) {
			t.Errorf("%s of the sorted single run differs from the unit-keyed set's on the original files:\n%s", f, firstDiff(withoutSpecHash(t, f, b), got))
		}
	}
	const k = 3
	host := fixtureHost(t)
	partials := t.TempDir()
	runShards(t, specs, partials, host, k)
	merged := pipeline.Merge(context.Background(), specs, shardOpts(t.TempDir(), host), partials, k)
	okOrGate(t, "merge", merged)
	got := releaseBytes(t, merged[0].Outcome.Dir)
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s differs between the sharded and the single run of sorted inputs", name)
		}
	}
}

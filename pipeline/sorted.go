package pipeline

import (
	"context"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// checkSortedInputs checks the sort order a group's specs declare for their
// events (inputs.sorted_by; the group key includes it, so every spec of the
// group declares the same) on the original files, before any SQL, and keeps
// the keys with more than one row for the templates ($dup_unit,
// $dup_event). A sharded run checks the whole inputs too: the keys found
// there include every key of its shard. A false guarantee fails the group
// with an *intake.InputError (exit 65) that names the file, and for exact
// specs the row and the two keys; with a private spec in the group, the
// file only.
func checkSortedInputs(ctx context.Context, st *groupState, jobs []*job) error {
	spec := jobs[0].spec
	cols, ok := spec.SortedBy("events")
	if !ok {
		return nil
	}
	key := intake.SortedKey{Role: "events"}
	for i, c := range cols {
		key.Columns[i], key.Source[i] = c, c
		if src, ok := spec.Inputs.Columns.Events[c]; ok {
			key.Source[i] = src
		}
	}
	private := false
	for _, j := range jobs {
		private = private || (j.spec.Privacy != nil && j.spec.Privacy.Enabled)
	}
	res, err := intake.CheckSorted(ctx, st.events, key, private)
	if err != nil {
		return err
	}
	st.dups = &res.Dups
	return nil
}

// addDupKeys binds the checked duplicate keys (empty lists when the specs
// declare no order: only events@v8 reads them, and it needs the order).
func addDupKeys(p map[string]any, st *groupState) map[string]any {
	var u, e []string
	if st.dups != nil {
		u, e = st.dups.Units, st.dups.Events
	}
	p["dup_unit"], p["dup_event"] = engine.NonNil(u), engine.NonNil(e)
	return p
}

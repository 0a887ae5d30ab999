package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// sortedSet is the template set whose specs read events-sorted/, the
// dataset's events sorted by (unit_id, event_id) and cut by unit ranges,
// declare that order (inputs.sorted_by), and pin events@v8, which finds
// duplicates from the checked order instead of a hash aggregate (issue 18).
const sortedSet = "unit-keyed-sorted"

// sortedParts is how many files the sorted copy has (the generator writes
// one file per day: 8 for the bench's window).
const sortedParts = 8

// ensureSortedEvents writes dir/events-sorted/ once (it is cached with the
// dataset): every events row, sorted by (unit_id, event_id) within each
// file, the files holding disjoint ranges of unit_id (NULL unit_ids in the
// first file). verity checks the order itself, so a copy that were not
// sorted would fail the run, not mislead it.
func ensureSortedEvents(ctx context.Context, dir string, e duckConfig, logf func(string, ...any)) error {
	out := filepath.Join(dir, "events-sorted")
	if _, err := os.Stat(filepath.Join(out, "done")); err == nil {
		return nil
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	q := url.Values{}
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")
	q.Set("preserve_insertion_order", "true") // COPY keeps the ORDER BY
	if e.Threads > 0 {
		q.Set("threads", strconv.Itoa(e.Threads))
	}
	if e.MemoryLimit != "" {
		q.Set("memory_limit", e.MemoryLimit)
	}
	if e.TempDir != "" {
		q.Set("temp_directory", e.TempDir)
	}
	c, err := duckdb.NewConnector("?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	src := filepath.Join(dir, "events", "**", "*.parquet")
	// The unit_id octiles, in one scan.
	qs := make([]string, sortedParts-1)
	for i := range qs {
		qs[i] = strconv.FormatFloat(float64(i+1)/sortedParts, 'g', -1, 64)
	}
	var list string
	if err := db.QueryRowContext(ctx, "SELECT CAST(to_json(quantile_disc(unit_id, ["+strings.Join(qs, ", ")+"])) AS VARCHAR) FROM read_parquet($1, hive_partitioning = false)", src).Scan(&list); err != nil {
		return fmt.Errorf("sorted copy: %w", err)
	}
	var bounds []sql.NullString
	var names []string
	if err := json.Unmarshal([]byte(list), &names); err != nil || len(names) != sortedParts-1 {
		return fmt.Errorf("sorted copy: unit_id octiles %s: %v", list, err)
	}
	for _, n := range names {
		bounds = append(bounds, sql.NullString{String: n, Valid: true})
	}
	for i := 0; i < sortedParts; i++ {
		var where string
		var args []any
		switch {
		case i == 0:
			where = "unit_id IS NULL OR unit_id < $hi"
			args = append(args, sql.Named("hi", bounds[0].String))
		case i == sortedParts-1:
			where = "unit_id >= $lo"
			args = append(args, sql.Named("lo", bounds[i-1].String))
		default:
			where = "unit_id >= $lo AND unit_id < $hi"
			args = append(args, sql.Named("lo", bounds[i-1].String), sql.Named("hi", bounds[i].String))
		}
		args = append(args, sql.Named("src", src))
		dst := filepath.Join(out, fmt.Sprintf("part-%05d.parquet", i))
		// The destination is the bench's own path (no quote in it is
		// checked below); COPY takes no parameter for it.
		if strings.ContainsRune(dst, '\'') {
			return fmt.Errorf("sorted copy: path %q has a quote", dst)
		}
		stmt := "COPY (SELECT * FROM read_parquet($src, hive_partitioning = false) WHERE " + where +
			" ORDER BY unit_id, event_id) TO '" + dst + "' (FORMAT parquet)"
		if _, err := db.ExecContext(ctx, stmt, args...); err != nil {
			return fmt.Errorf("sorted copy: %w", err)
		}
	}
	logf("sorted copy of the events in %s (%s)", out, time.Since(t0).Round(time.Millisecond))
	return os.WriteFile(filepath.Join(out, "done"), nil, 0o644)
}

// sortedEvents returns the sorted copy's files, which events@v8 reads in
// place of events/, and what an exact check of their declared order finds,
// as `verity run` does it (pipeline.checkSortedInputs): the duplicate keys
// to bind as $dup_unit and $dup_event (dupKeyParams). The sorted copy must
// exist: the bench writes it (--templates unit-keyed-sorted).
func sortedEvents(ctx context.Context, ds dataset) ([]string, intake.SortedCheck, error) {
	if _, err := os.Stat(filepath.Join(ds.Dir, "events-sorted", "done")); err != nil {
		return nil, intake.SortedCheck{}, fmt.Errorf("%s: no sorted copy of the events (events-sorted/), which events@v8 reads and takes its duplicate keys ($dup_unit, $dup_event) from: run the bench once with --templates %s on this dataset", ds.Dir, sortedSet)
	}
	files, err := inputFiles(ds, "events-sorted")
	if err != nil {
		return nil, intake.SortedCheck{}, err
	}
	in := make([]intake.InputFile, len(files))
	for i, f := range files {
		in[i] = intake.InputFile{Role: "events", Path: f, Abs: f}
	}
	key := intake.SortedKey{Role: "events", Columns: [2]string{"unit_id", "event_id"}, Source: [2]string{"unit_id", "event_id"}}
	res, err := intake.CheckSorted(ctx, in, key, false)
	return files, res, err
}

// dupKeyParams binds the duplicate keys found by sortedEvents (empty lists
// for the other sets, as the pipeline binds them: only events@v8 reads
// them).
func dupKeyParams(p map[string]any, res intake.SortedCheck) map[string]any {
	p["dup_unit"], p["dup_event"] = engine.NonNil(res.Dups.Units), engine.NonNil(res.Dups.Events)
	return p
}

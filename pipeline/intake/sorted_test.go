package intake_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline/intake"
)

var eventKey = intake.SortedKey{Role: "events", Columns: [2]string{"unit_id", "event_id"}, Source: [2]string{"unit_id", "event_id"}}

// ev is an event row with only its key set (nil = NULL).
func ev(unit, id *string) fixtures.EventRow {
	ts := int64(1794873600_000000)
	return fixtures.EventRow{TS: &ts, UnitID: unit, Metric: ptr("buy"), EventID: id}
}

func ptr(s string) *string { return &s }

// keys turns "unit/event" pairs into rows; "~" is NULL.
func keys(pairs ...string) []fixtures.EventRow {
	var out []fixtures.EventRow
	for _, p := range pairs {
		u, e, _ := strings.Cut(p, "/")
		var up, ep *string
		if u != "~" {
			up = ptr(u)
		}
		if e != "~" {
			ep = ptr(e)
		}
		out = append(out, ev(up, ep))
	}
	return out
}

// writeFiles writes each list of rows as a file and returns them as inputs.
func writeFiles(t *testing.T, noStats bool, files ...[]fixtures.EventRow) []intake.InputFile {
	t.Helper()
	dir := t.TempDir()
	var out []intake.InputFile
	for i, rows := range files {
		p := filepath.Join(dir, "part-"+string(rune('a'+i))+".parquet")
		if noStats {
			writeWithoutStats(t, p, rows)
		} else if err := fixtures.WriteEventFile(p, rows); err != nil {
			t.Fatal(err)
		}
		out = append(out, intake.InputFile{Role: "events", Path: "events/" + filepath.Base(p), Abs: p})
	}
	return out
}

// writeWithoutStats writes rows with no min/max for the key columns in
// the footer, and checks that the footer indeed has none.
func writeWithoutStats(t *testing.T, path string, rows []fixtures.EventRow) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[fixtures.EventRow](f, parquet.SkipPageBounds("unit_id"), parquet.SkipPageBounds("event_id"), parquet.DataPageStatistics(false))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.ReadFile[fixtures.EventRow](path)
	if err != nil || len(pf) != len(rows) {
		t.Fatalf("read back: %v", err)
	}
	fh, _ := os.Open(path)
	defer fh.Close()
	st, _ := fh.Stat()
	file, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range file.Metadata().RowGroups {
		for _, c := range rg.Columns {
			name := strings.Join(c.MetaData.PathInSchema, ".")
			s := c.MetaData.Statistics
			if (name == "unit_id" || name == "event_id") && (len(s.MinValue) > 0 || len(s.MaxValue) > 0 || len(s.Min) > 0 || len(s.Max) > 0) {
				t.Fatalf("%s still has footer statistics", name)
			}
		}
	}
}

func TestCheckSorted(t *testing.T) {
	ctx := context.Background()
	type want struct {
		dups    []string // "unit/event" (sorted)
		errFile string   // "" = no error
		errIn   []string // substrings of the error
	}
	tests := []struct {
		name    string
		files   [][]fixtures.EventRow
		private bool
		want    want
	}{
		{"sorted, copies next to each other", [][]fixtures.EventRow{keys("a/1", "a/2", "a/2", "a/2", "b/1", "b/3", "b/3")},
			false, want{dups: []string{"a/2", "b/3"}}},
		{"NULL keys anywhere, blank unit sorts first", [][]fixtures.EventRow{keys("~/9", "/1", "/1", "a/~", "a/1", "~/~", "a/1", "a/~", "b/~", "a/2")},
			false, want{dups: []string{"/1", "a/1"}}},
		{"unsorted file", [][]fixtures.EventRow{keys("a/1", "a/3", "a/2", "b/1")},
			false, want{errFile: "events/part-a.parquet", errIn: []string{"row 3", `(unit_id "a", event_id "2") comes after (unit_id "a", event_id "3")`}}},
		{"unsorted file, unit order", [][]fixtures.EventRow{keys("b/1", "a/9")},
			false, want{errFile: "events/part-a.parquet", errIn: []string{"row 2", `"a"`, `"b"`}}},
		{"unsorted file, private: the file only", [][]fixtures.EventRow{keys("a/1", "a/3", "a/2")},
			true, want{errFile: "events/part-a.parquet", errIn: []string{"not shown"}}},
		{"disjoint files, given in any order", [][]fixtures.EventRow{keys("c/1", "d/1", "d/1"), keys("a/1", "a/1", "b/5")},
			false, want{dups: []string{"a/1", "d/1"}}},
		{"files meeting inside a unit, different event ids", [][]fixtures.EventRow{keys("a/1", "b/1"), keys("b/2", "c/1")},
			false, want{}},
		{"overlapping files", [][]fixtures.EventRow{keys("a/1", "c/1"), keys("b/1", "d/1")},
			false, want{errFile: "events/part-b.parquet", errIn: []string{"overlaps events/part-a.parquet", `(unit_id "b", event_id "1")`}}},
		{"one file inside another's range", [][]fixtures.EventRow{keys("a/1", "z/1"), keys("m/1", "m/2")},
			false, want{errFile: "events/part-b.parquet", errIn: []string{"overlaps events/part-a.parquet"}}},
		{"a duplicate across two files", [][]fixtures.EventRow{keys("a/1", "b/7"), keys("b/7", "c/1")},
			false, want{errFile: "events/part-b.parquet", errIn: []string{"overlaps events/part-a.parquet", `(unit_id "b", event_id "7")`}}},
		{"overlapping files, private: the files only", [][]fixtures.EventRow{keys("a/1", "c/1"), keys("b/1", "d/1")},
			true, want{errFile: "events/part-b.parquet", errIn: []string{"overlaps events/part-a.parquet's (keys not shown"}}},
		{"files of NULL keys only and empty files", [][]fixtures.EventRow{keys("~/1", "a/~"), nil, keys("a/1")},
			false, want{}},
	}
	for _, tc := range tests {
		for _, noStats := range []bool{false, true} {
			name := tc.name
			if noStats {
				name += ", no footer statistics"
			}
			t.Run(name, func(t *testing.T) {
				files := writeFiles(t, noStats, tc.files...)
				res, err := intake.CheckSorted(ctx, files, eventKey, tc.private)
				if tc.want.errFile == "" {
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for i := range res.Dups.Units {
						got = append(got, res.Dups.Units[i]+"/"+res.Dups.Events[i])
					}
					if !reflect.DeepEqual(got, tc.want.dups) {
						t.Errorf("duplicate keys %q, want %q", got, tc.want.dups)
					}
					return
				}
				var ie *intake.InputError
				if !errors.As(err, &ie) || !errors.Is(err, intake.ErrNotSorted) || ie.File != tc.want.errFile {
					t.Fatalf("want an InputError (ErrNotSorted) naming %s, got %v", tc.want.errFile, err)
				}
				for _, s := range tc.want.errIn {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if tc.private {
					for _, r := range tc.files {
						for _, row := range r {
							for _, v := range []*string{row.UnitID, row.EventID} {
								if v != nil && strings.Contains(err.Error(), `"`+*v+`"`) {
									t.Errorf("a private spec's error shows the value %q: %v", *v, err)
								}
							}
						}
					}
					if ie.Row != 0 || regexp.MustCompile(`row [0-9]`).MatchString(err.Error()) {
						t.Errorf("a private spec's error names a row: %v", err)
					}
				}
			})
		}
	}
}

// TestCheckSortedRefusesMissingKeyColumn: a declared key column that a file
// lacks is an error naming the file and the column.
func TestCheckSortedRefusesMissingKeyColumn(t *testing.T) {
	files := writeFiles(t, false, keys("a/1"))
	key := eventKey
	key.Source[1] = "evt"
	_, err := intake.CheckSorted(context.Background(), files, key, false)
	var ie *intake.InputError
	if !errors.As(err, &ie) || ie.Column != "event_id" || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("want an InputError naming column event_id, got %v", err)
	}
}

// TestCheckSortedDamagedPageIsAnError: a key column page damaged behind an
// intact footer (a few bytes changed by a fuzzing review) made parquet-go
// index past its dictionary and panic in the check's goroutine, killing the
// process (exit 2) for every spec of the run. It is an error naming the
// file, as DuckDB's reader reports the same file.
func TestCheckSortedDamagedPageIsAnError(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join("testdata", "damaged-dictionary-page.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	files := []intake.InputFile{{Path: "events/damaged.parquet", Abs: abs}}
	_, err = intake.CheckSorted(context.Background(), files, eventKey, true)
	var ie *intake.InputError
	if !errors.As(err, &ie) || ie.File != "events/damaged.parquet" || !strings.Contains(err.Error(), "cannot be decoded") {
		t.Fatalf("want an InputError naming the file, got %v", err)
	}
}

// TestCheckSortedRefusesInvalidUTF8: a key that is not valid UTF-8 is an
// error naming the file, column and row (DuckDB refuses such strings, and
// aborted the process when one was bound as a duplicate key); a private
// check names no row.
func TestCheckSortedRefusesInvalidUTF8(t *testing.T) {
	files := writeFiles(t, false, keys("a/1", "b\xff/2", "b\xff/2"))
	_, err := intake.CheckSorted(context.Background(), files, eventKey, false)
	var ie *intake.InputError
	if !errors.As(err, &ie) || ie.Column != "unit_id" || ie.Row != 2 || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Fatalf("want an InputError naming column unit_id, row 2, got %v", err)
	}
	_, err = intake.CheckSorted(context.Background(), files, eventKey, true)
	if !errors.As(err, &ie) || ie.Row != 0 || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Fatalf("private: want an InputError without a row, got %v", err)
	}
}

package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// SortedKey is a key a spec may declare its input files sorted by
// (inputs.sorted_by): two string columns of the contract, compared as
// bytes, as DuckDB compares VARCHAR without a collation.
type SortedKey struct {
	Role    string    // "events"
	Columns [2]string // contract names, e.g. unit_id, event_id
	Source  [2]string // the files' own column names (after the spec's mapping)
}

// DupKeys are the keys of a sorted input that have more than one row: the
// candidates of the exact duplicate check, in pairs (Units[i], Events[i]),
// sorted and without repeats.
type DupKeys struct {
	Units, Events []string
}

// SortedCheck is the result of CheckSorted.
type SortedCheck struct {
	Dups DupKeys
	Rows int64 // rows read, NULL keys included
}

// ErrNotSorted is wrapped by the InputError CheckSorted returns when the
// declared order does not hold.
var ErrNotSorted = errors.New("not sorted as inputs.sorted_by declares")

// CheckSorted checks, exactly, the guarantee a spec declares with
// inputs.sorted_by: that in every file the rows whose key columns are both
// non-NULL come in non-decreasing key order (rows with a NULL in the key
// are never copies of each other, so they may be anywhere), and that no
// two files' key ranges overlap (so all copies of a key lie next to each
// other in one file). It reads the two key columns of every file once,
// one worker per core, comparing each row with the one before it; the
// first and last keys a file's scan sees are its exact key range, so
// cross-file overlap is decided on them (Parquet footer statistics are
// per column and optional, and writers may truncate long strings, so they
// cannot prove the composite range and are not needed).
//
// On success it returns every key with more than one row. When the
// guarantee is false it returns an *InputError wrapping ErrNotSorted that
// names the file, the row (1-based, in the file) and the two keys out of
// order; with private set it names the file only (rows and keys are data,
// and a private run's stderr is release surface).
func CheckSorted(ctx context.Context, files []InputFile, key SortedKey, private bool) (SortedCheck, error) {
	res := make([]fileKeys, len(files))
	err := onCPUs(len(files), func(i int) error {
		var err error
		res[i], err = scanSortedSafe(ctx, files[i], key, private)
		return err
	})
	if err != nil {
		return SortedCheck{}, err
	}
	if err := checkRanges(files, res, key, private); err != nil {
		return SortedCheck{}, err
	}
	var out SortedCheck
	for _, r := range res {
		out.Rows += r.rows
		for _, k := range r.dups {
			out.Dups.Units = append(out.Dups.Units, k[0])
			out.Dups.Events = append(out.Dups.Events, k[1])
		}
	}
	sortPairs(&out.Dups)
	return out, nil
}

// fileKeys is what the scan of one file found.
type fileKeys struct {
	rows        int64
	any         bool      // a row with a non-NULL key
	first, last [2]string // its first and last non-NULL keys
	dups        [][2]string
}

// checkRanges checks that no two files' key ranges overlap: ordered by
// their first key, each file's first key must come after the last key of
// the file before it.
func checkRanges(files []InputFile, res []fileKeys, key SortedKey, private bool) error {
	var idx []int
	for i, r := range res {
		if r.any {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return compareKeys(res[idx[a]].first, res[idx[b]].first) < 0 })
	for n := 1; n < len(idx); n++ {
		a, b := res[idx[n-1]], res[idx[n]]
		if compareKeys(a.last, b.first) < 0 {
			continue
		}
		i, j := idx[n-1], idx[n]
		if j < i {
			i, j = j, i // name the files in input order
		}
		detail := fmt.Sprintf(": key range [%s, %s] overlaps %s's [%s, %s]", showKey(key, res[j].first), showKey(key, res[j].last),
			files[i].Path, showKey(key, res[i].first), showKey(key, res[i].last))
		if private {
			detail = fmt.Sprintf(": its key range overlaps %s's (keys not shown: a private spec's values are data)", files[i].Path)
		}
		return &InputError{File: files[j].Path, Column: key.Columns[0], Err: fmt.Errorf("%w%s; each file must hold a range of (%s, %s) that no other file's range meets", ErrNotSorted, detail, key.Columns[0], key.Columns[1])}
	}
	return nil
}

// scanSortedSafe is scanSorted with the Parquet reader's panics (a damaged
// page behind an intact footer can index past a dictionary) turned into an
// InputError naming the file, as replay's reader does: one bad file must not
// take down every spec of the run.
func scanSortedSafe(ctx context.Context, f InputFile, key SortedKey, private bool) (out fileKeys, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = fileKeys{}, &InputError{File: f.Path, Err: fmt.Errorf("read Parquet: a data page of (%s, %s) cannot be decoded (the footer is intact)", key.Columns[0], key.Columns[1])}
		}
	}()
	return scanSorted(ctx, f, key, private)
}

// scanSorted reads one file's two key columns and compares every row with
// the one before it.
func scanSorted(ctx context.Context, f InputFile, key SortedKey, private bool) (fileKeys, error) {
	var out fileKeys
	fh, err := os.Open(f.Abs)
	if err != nil {
		return out, &InputError{File: f.Path, Err: err}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return out, &InputError{File: f.Path, Err: err}
	}
	pf, err := parquet.OpenFile(fh, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return out, &InputError{File: f.Path, Err: fmt.Errorf("read Parquet: %w", err)}
	}
	var cols [2]int
	for c, name := range key.Source {
		leaf, ok := pf.Schema().Lookup(name)
		if !ok {
			return out, &InputError{File: f.Path, Column: key.Columns[c], Err: fmt.Errorf("absent, but inputs.sorted_by.%s names it", key.Role)}
		}
		if leaf.Node.Type().Kind() != parquet.ByteArray || leaf.MaxRepetitionLevel > 0 {
			return out, &InputError{File: f.Path, Column: key.Columns[c], Err: fmt.Errorf("want a string column for inputs.sorted_by.%s, got %s", key.Role, leaf.Node.Type())}
		}
		cols[c] = leaf.ColumnIndex
	}
	var prev [2][]byte
	havePrev := false
	var lastDup [2][]byte
	haveDup := false
	row := int64(0)
	bufs := [2][]parquet.Value{make([]parquet.Value, 4096), make([]parquet.Value, 4096)}
	for _, rg := range pf.RowGroups() {
		chunks := rg.ColumnChunks()
		streams := [2]*valueStream{{pages: chunks[cols[0]].Pages()}, {pages: chunks[cols[1]].Pages()}}
		err := func() error {
			defer streams[0].pages.Close()
			defer streams[1].pages.Close()
			for remaining := rg.NumRows(); remaining > 0; {
				if err := ctx.Err(); err != nil {
					return err
				}
				n := int(min(remaining, int64(len(bufs[0]))))
				for c := range streams {
					if err := streams[c].read(bufs[c][:n]); err != nil {
						return &InputError{File: f.Path, Column: key.Columns[c], Err: fmt.Errorf("read Parquet: %w", err)}
					}
				}
				for i := 0; i < n; i++ {
					row++
					u, e := bufs[0][i], bufs[1][i]
					if u.IsNull() || e.IsNull() {
						continue
					}
					ub, eb := u.ByteArray(), e.ByteArray()
					for c, b := range [2][]byte{ub, eb} {
						if !utf8.Valid(b) {
							// DuckDB refuses such a string when it reads the
							// file (and aborts the process when one is bound
							// as a parameter): refuse it here, by name.
							e := &InputError{File: f.Path, Column: key.Columns[c], Row: row, Err: fmt.Errorf("a key is not valid UTF-8; want UTF-8 strings")}
							if private {
								e.Row, e.Err = 0, fmt.Errorf("a key is not valid UTF-8; want UTF-8 strings (row not shown: a private spec's values are data)")
							}
							return e
						}
					}
					if havePrev {
						c := bytes.Compare(prev[0], ub)
						if c == 0 {
							c = bytes.Compare(prev[1], eb)
						}
						if c > 0 {
							return notSortedError(f, key, row, prev, [2][]byte{ub, eb}, private)
						}
						if c == 0 && !(haveDup && bytes.Equal(lastDup[0], ub) && bytes.Equal(lastDup[1], eb)) {
							out.dups = append(out.dups, [2]string{string(ub), string(eb)})
							lastDup = [2][]byte{append(lastDup[0][:0], ub...), append(lastDup[1][:0], eb...)}
							haveDup = true
						}
					} else {
						out.first = [2]string{string(ub), string(eb)}
						out.any = true
					}
					prev[0], prev[1] = append(prev[0][:0], ub...), append(prev[1][:0], eb...)
					havePrev = true
				}
				remaining -= int64(n)
			}
			return nil
		}()
		if err != nil {
			return out, err
		}
	}
	if out.any {
		out.last = [2]string{string(prev[0]), string(prev[1])}
	}
	out.rows = row
	return out, nil
}

// notSortedError names the file, the row and the two keys out of order
// (the file only for a private spec).
func notSortedError(f InputFile, key SortedKey, row int64, prev, cur [2][]byte, private bool) error {
	if private {
		return &InputError{File: f.Path, Err: fmt.Errorf("%w: rows are not in (%s, %s) order (row and keys not shown: a private spec's values are data)", ErrNotSorted, key.Columns[0], key.Columns[1])}
	}
	return &InputError{File: f.Path, Row: row, Err: fmt.Errorf("%w: key %s comes after %s; want non-decreasing (%s, %s), compared as bytes",
		ErrNotSorted, showKey(key, [2]string{string(cur[0]), string(cur[1])}), showKey(key, [2]string{string(prev[0]), string(prev[1])}), key.Columns[0], key.Columns[1])}
}

// showKey formats a key for an error message.
func showKey(key SortedKey, k [2]string) string {
	return fmt.Sprintf("(%s %q, %s %q)", key.Columns[0], k[0], key.Columns[1], k[1])
}

// compareKeys compares two keys as DuckDB compares (VARCHAR, VARCHAR).
func compareKeys(a, b [2]string) int {
	if a[0] != b[0] {
		if a[0] < b[0] {
			return -1
		}
		return 1
	}
	switch {
	case a[1] < b[1]:
		return -1
	case a[1] > b[1]:
		return 1
	}
	return 0
}

// sortPairs sorts the duplicate keys (the files' own order already is,
// file by file; sorting makes the bound list independent of input order).
func sortPairs(d *DupKeys) {
	idx := make([]int, len(d.Units))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		return compareKeys([2]string{d.Units[idx[a]], d.Events[idx[a]]}, [2]string{d.Units[idx[b]], d.Events[idx[b]]}) < 0
	})
	u, e := make([]string, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		u[i], e[i] = d.Units[j], d.Events[j]
	}
	d.Units, d.Events = u, e
}

// valueStream reads one column chunk's values, page after page, one value
// per row (the column is flat; a NULL is a null Value).
type valueStream struct {
	pages parquet.Pages
	vr    parquet.ValueReader
}

// read fills buf completely or fails.
func (s *valueStream) read(buf []parquet.Value) error {
	n := 0
	for n < len(buf) {
		if s.vr == nil {
			p, err := s.pages.ReadPage()
			if err == io.EOF {
				return fmt.Errorf("column chunk ends %d values short of its row group", len(buf)-n)
			}
			if err != nil {
				return err
			}
			s.vr = p.Values()
		}
		k, err := s.vr.ReadValues(buf[n:])
		n += k
		if err == io.EOF {
			s.vr = nil
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

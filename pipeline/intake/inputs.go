package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/queries"
)

// InputFile is one resolved input file with the facts the manifest records.
// Path is slash-separated and relative to the spec's folder, so the manifest
// carries no absolute path.
type InputFile struct {
	Role      string `json:"role"` // traces or events
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Rows      int64  `json:"rows"`
	CreatedBy string `json:"created_by"`

	Abs     string            `json:"-" yaml:"-"` // resolved absolute path: what is hashed and read
	Ident   fileIdent         `json:"-" yaml:"-"` // the file's state when hashed, to detect a rewrite during the run
	Columns map[string]string `json:"-" yaml:"-"` // column name -> DuckDB type
}

// contract column types: the DuckDB types each contract column may have.
var (
	stringTypes    = []string{"VARCHAR"}
	timestampTypes = []string{"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
	integerTypes   = []string{"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"}
	numericTypes   = append([]string{"DOUBLE", "FLOAT", "DECIMAL"}, integerTypes...)
)

type ContractColumn struct {
	Name     string
	Required bool
	Types    []string
	NullType string // SQL type of the NULL stand-in when an optional column is absent
}

var TraceContract = []ContractColumn{
	{"ts", true, timestampTypes, ""},
	{"unit_id", true, stringTypes, ""},
	{"experiment_id", true, stringTypes, ""},
	{"variant", true, stringTypes, ""},
	{"flag_key", false, stringTypes, "VARCHAR"},
	{"flag_version", false, integerTypes, "BIGINT"},
	{"rule_id", false, stringTypes, "VARCHAR"},
	{"persona", false, stringTypes, "VARCHAR"},
	{"persona_algo_version", false, stringTypes, "VARCHAR"},
	{"sdk_version", false, stringTypes, "VARCHAR"},
	{"event_id", false, stringTypes, "VARCHAR"},
}

var EventContract = []ContractColumn{
	{"ts", true, timestampTypes, ""},
	{"unit_id", true, stringTypes, ""},
	{"metric", true, stringTypes, ""},
	{"value", false, numericTypes, "DOUBLE"},
	{"event_id", false, stringTypes, "VARCHAR"},
}

// ResolveGlobsAt expands the spec's globs for one role. A glob that names a
// folder (such as a hive-partitioned traces/ folder) contributes every
// *.parquet file below it. Each glob must match at least one file; the
// result is sorted and free of repeats.
//
// When date (YYYY-MM-DD) is set, files in a hive partition dt=D or date=D
// with D after the nominal date are left out: a rerun of a past night reads
// exactly the data that night could see, whatever has arrived since.
//
// Identity does not depend on how a path is spelled: globs are expanded
// from the spec's folder with its symlinks resolved, every file is resolved
// to the file it names (a symlink to a regular file reads that file), and
// Path is that file relative to the resolved spec folder. The same data
// reached through a relative or absolute glob, a relative or absolute spec
// path, or a symlinked folder gets the same Path, and is read once.
//
// Every file that will be read must be a regular file: a FIFO, device,
// socket or directory under a Parquet name is an *InputError naming it,
// found by Stat before anything is opened (a FIFO would block open(2), a
// device such as /dev/zero would be hashed for ever).
func ResolveGlobsAt(spec *expspec.Spec, role string, globs []string, date string) ([]InputFile, error) {
	base, resolved := SpecFolder(spec)
	missing := func(g string, err error) error {
		return &MissingInputError{Spec: spec.Path(), Resolved: resolved, Glob: g, Err: err}
	}
	seen := map[string]bool{}
	var out []InputFile
	for _, g := range globs {
		if err := diskio.CheckLocalPath("input", g); err != nil {
			return nil, &expspec.SpecError{File: spec.Path(), Key: "inputs." + role, Err: err}
		}
		pattern := filepath.FromSlash(g)
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(base, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, &expspec.SpecError{File: spec.Path(), Key: "inputs." + role, Err: fmt.Errorf("glob %q: %w", g, err)}
		}
		var found []string
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, missing(g, err)
			}
			if !st.IsDir() {
				found = append(found, m)
				continue
			}
			if err := walkParquet(m, map[string]bool{}, &found); err != nil {
				return nil, missing(g, err)
			}
		}
		if len(found) == 0 {
			return nil, missing(g, fmt.Errorf("matched no file (looked for %s)", pattern))
		}
		kept := found[:0]
		for _, f := range found {
			if !afterDate(f, date) {
				kept = append(kept, f)
			}
		}
		if len(kept) == 0 {
			return nil, missing(g, fmt.Errorf("matched %d files, all in partitions after the nominal date %s", len(found), date))
		}
		for _, f := range kept {
			real, err := diskio.RegularFile(f)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, missing(g, err)
				}
				return nil, &InputError{File: relSlash(base, f), Err: diskio.NotRegularInput(err)}
			}
			if seen[real] {
				continue
			}
			seen[real] = true
			out = append(out, InputFile{Role: role, Path: relSlash(base, real), Abs: real})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// walkParquet appends every *.parquet entry below dir to found. Symlinked
// folders are followed (a partition linked in from elsewhere is data, not
// something to skip in silence), each real folder once, so a link cycle
// ends. What a *.parquet entry is, is checked later.
func walkParquet(dir string, visited map[string]bool, found *[]string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		if visited[real] {
			return nil
		}
		visited[real] = true
	}
	root := dir
	if st, err := os.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		root += string(filepath.Separator) // WalkDir descends into a link's target only so
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && d.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				return walkParquet(p, visited, found)
			}
		}
		if d.IsDir() && p != root {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				if visited[real] {
					return filepath.SkipDir
				}
				visited[real] = true
			}
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			*found = append(*found, p)
		}
		return nil
	})
}

// SpecFolder returns the folder relative globs are expanded from: the
// spec's folder, absolute, with its symlinks resolved. resolved is the
// resolved spec file's path when it differs from how the spec was named
// (a symlinked spec or folder), for error messages; else "".
func SpecFolder(spec *expspec.Spec) (base, resolved string) {
	dir, err := filepath.Abs(filepath.Dir(spec.Path()))
	if err != nil {
		dir = filepath.Dir(spec.Path())
	}
	base = dir
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		base = r
	}
	if real, err := filepath.EvalSymlinks(spec.Path()); err == nil {
		if abs, err := filepath.Abs(real); err == nil {
			real = abs
		}
		if named, _ := filepath.Abs(spec.Path()); real != named {
			resolved = real
		}
	} else if base != dir {
		resolved = filepath.Join(base, filepath.Base(spec.Path()))
	}
	return base, resolved
}

// relSlash is p relative to base, slash-separated; p itself when it has no
// relative form.
func relSlash(base, p string) string {
	rel, err := filepath.Rel(base, p)
	if err != nil {
		rel = p
	}
	return filepath.ToSlash(rel)
}

// fileIdent is what identifies a file's state without reading it: a
// rewrite changes its ctime (which no user call can set back) even when
// size and mtime are restored, and a replacement by rename changes its
// inode.
type fileIdent struct {
	size         int64
	mtime, ctime time.Time
	dev, ino     uint64
}

func identOf(st fs.FileInfo) fileIdent {
	id := fileIdent{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.ctime = time.Unix(int64(sys.Ctim.Sec), int64(sys.Ctim.Nsec))
		id.dev, id.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	return id
}

// changes lists what differs between two states of a file.
func (a fileIdent) changes(b fileIdent) []string {
	var out []string
	if a.size != b.size {
		out = append(out, fmt.Sprintf("size %d -> %d", a.size, b.size))
	}
	if !a.mtime.Equal(b.mtime) {
		out = append(out, "mtime")
	}
	if !a.ctime.Equal(b.ctime) {
		out = append(out, "ctime")
	}
	if a.dev != b.dev || a.ino != b.ino {
		out = append(out, "inode (replaced)")
	}
	return out
}

// HashFile computes the size and SHA-256 of a file and records its state
// (size, mtime, ctime, inode) for checkUnchanged.
func HashFile(ctx context.Context, f *InputFile) error {
	fh, st, err := diskio.OpenRegular(f.Abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &MissingInputError{Spec: "(resolved input)", Glob: f.Path, Err: err}
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "open" {
			err = diskio.NotRegularInput(pe.Err)
		}
		return &InputError{File: f.Path, Err: err}
	}
	defer fh.Close()
	f.Ident = identOf(st)
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, fh})
	if err != nil {
		if ctx.Err() != nil {
			return &diskio.TransientError{Err: fmt.Errorf("interrupted while hashing %s: %w", f.Path, ctx.Err())}
		}
		return &InputError{File: f.Path, Err: fmt.Errorf("read: %w", err)}
	}
	if after, err := fh.Stat(); err == nil {
		if ch := f.Ident.changes(identOf(after)); len(ch) > 0 || n != after.Size() {
			return &diskio.TransientError{Err: fmt.Errorf("input %s changed while it was hashed (%s); rerun to analyse a consistent state", f.Path, strings.Join(ch, ", "))}
		}
	}
	f.Size = n
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// CheckUnchanged reports an input whose file is no longer in the state in
// which it was hashed: analysed now, its numbers would be recorded under a
// stale hash. A rerun reads a consistent state, so the error is transient.
func (f *InputFile) CheckUnchanged() error {
	st, err := os.Stat(f.Abs)
	if err != nil {
		return &diskio.TransientError{Err: fmt.Errorf("input %s changed while the run read it (%v); rerun to analyse a consistent state", f.Path, err)}
	}
	if ch := f.Ident.changes(identOf(st)); len(ch) > 0 {
		return &diskio.TransientError{Err: fmt.Errorf("input %s changed while the run read it (%s differ from when it was hashed); rerun to analyse a consistent state", f.Path, strings.Join(ch, ", "))}
	}
	return nil
}

// HashFiles hashes files on as many workers as there are CPUs (SHA-256
// is CPU-bound at about 1.5 GB/s per core). The first error, in file order,
// is returned.
func HashFiles(ctx context.Context, files []*InputFile) error {
	return onCPUs(len(files), func(i int) error { return HashFile(ctx, files[i]) })
}

// onCPUs runs fn(0) … fn(n-1) on as many workers as there are CPUs and
// returns the first error in index order.
func onCPUs(n int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.NumCPU(), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ctxReader stops a long read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// CheckSchema checks one file against the contract for its role, with the
// spec's column mapping applied. It returns the contract columns present.
func CheckSchema(f *InputFile, contract []ContractColumn, mapping map[string]string) error {
	for _, c := range contract {
		src := c.Name
		if m, ok := mapping[c.Name]; ok {
			src = m
		}
		typ, ok := f.Columns[src]
		if !ok {
			if c.Required {
				col := c.Name
				if src != c.Name {
					col = fmt.Sprintf("%s (mapped from %s)", src, c.Name)
				}
				return &InputError{File: f.Path, Column: col, Err: fmt.Errorf("required column is missing (the file has %s)", strings.Join(slices.Sorted(maps.Keys(f.Columns)), ", "))}
			}
			continue
		}
		if !typeAllowed(c.Types, typ) {
			return &InputError{File: f.Path, Column: src, Err: fmt.Errorf("has type %s, want %s", typ, strings.Join(c.Types, " or "))}
		}
		if !queries.ValidIdent(src) {
			return &InputError{File: f.Path, Column: src, Err: errors.New("column name is not a plain identifier; map it in inputs.columns")}
		}
	}
	return nil
}

// CheckRepeatedContent refuses two files of one role with the same bytes
// (SHA-256): a partition delivered twice under two names. Rows with an
// event_id would be dropped as duplicates and counted, but rows without one
// cannot be told apart, so the second copy would be counted twice without a
// word. In an exact run files without rows (empty hourly partitions) may
// repeat; in a private run they may not, since whether a file is empty can
// hang on one unit's rows (its neighbour dataset would then exit
// differently), while two copies stay identical with or without any unit.
// The message names the two paths only (sizes, hashes and row counts are
// restricted in private runs). Files are compared after hashing; a file
// without a hash is skipped.
func CheckRepeatedContent(files []InputFile, private bool) error {
	first := map[string]string{}
	for _, f := range files {
		if f.SHA256 == "" || (f.Rows == 0 && !private) {
			continue
		}
		key := f.Role + " " + f.SHA256
		if other, ok := first[key]; ok {
			return &InputError{File: f.Path, Err: fmt.Errorf("has the same bytes as %s: a partition delivered twice would count every row without an event_id twice; remove one copy from the inputs", other)}
		}
		first[key] = f.Path
	}
	return nil
}

// CheckTimestampMix refuses files of one role whose ts columns mix
// TIMESTAMP WITH TIME ZONE and TIMESTAMP_NS. DuckDB's read_parquet
// (union_by_name) reads the two as one column only when a TIMESTAMP_NS file
// comes first; the other way round it fails in the middle of the pass
// naming the first file. So whether such inputs run would depend on the
// order of the files (a new partition, or an incremental night's carried
// rows read before the new partition, would change it): they are refused
// before any SQL, naming a file of each type. Every other mix of the
// contract's types reads the same in any order. mapping is the role's
// column mapping (the ts column may be renamed).
func CheckTimestampMix(files []InputFile, mapping map[string]string) error {
	src := "ts"
	if m, ok := mapping["ts"]; ok {
		src = m
	}
	var tz, ns *InputFile
	for i := range files {
		switch files[i].Columns[src] {
		case "TIMESTAMP WITH TIME ZONE":
			if tz == nil {
				tz = &files[i]
			}
		case "TIMESTAMP_NS":
			if ns == nil {
				ns = &files[i]
			}
		}
	}
	if tz == nil || ns == nil {
		return nil
	}
	return &InputError{File: ns.Path, Column: src, Err: fmt.Errorf("has type TIMESTAMP_NS, but %s has TIMESTAMP WITH TIME ZONE: DuckDB cannot read these two as one column in every order of the files; write every %s file's %s with one timestamp type", tz.Path, ns.Role, src)}
}

// ColumnsFor builds the template column map for one role: a contract column
// is rendered from the source column when any file has it, else as a typed
// NULL. Optional columns present in some files but not others read as NULL
// where absent (read_parquet's union_by_name).
func ColumnsFor(files []InputFile, contract []ContractColumn, mapping map[string]string) queries.Columns {
	cols := queries.Columns{Source: map[string]string{}, Types: map[string]string{}}
	for _, c := range contract {
		src := c.Name
		if m, ok := mapping[c.Name]; ok {
			src = m
		}
		present := false
		for _, f := range files {
			if _, ok := f.Columns[src]; ok {
				present = true
				break
			}
		}
		if present {
			cols.Source[c.Name] = src
		} else {
			cols.Types[c.Name] = c.NullType
		}
	}
	return cols
}

// InputDigest is the SHA-256 over the sorted (role, path, sha256) lines of
// every input: it identifies the exact data a run read.
func InputDigest(files []InputFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %s %s\n", f.Role, f.Path, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// typeAllowed reports whether a DuckDB column type is one of allowed;
// "DECIMAL" admits every precision and scale.
func typeAllowed(allowed []string, typ string) bool {
	if strings.HasPrefix(typ, "DECIMAL(") {
		typ = "DECIMAL"
	}
	return slices.Contains(allowed, typ)
}

// afterDate reports whether path lies in a hive partition (dt=YYYY-MM-DD or
// date=YYYY-MM-DD) later than date. Paths without such a partition, and an
// empty date, are never after it.
func afterDate(path, date string) bool {
	if date == "" {
		return false
	}
	for _, seg := range strings.Split(filepath.ToSlash(path), "/") {
		for _, k := range []string{"dt=", "date="} {
			if v, ok := strings.CutPrefix(seg, k); ok && DateRE.MatchString(v) {
				return v > date
			}
		}
	}
	return false
}

// CheckProperties checks that an events file has every declared event
// property column (inputs.event_properties) as a string column: a filter
// compares strings exactly, so another type is refused rather than cast.
// A missing or mistyped column is an *InputError naming the file, the
// column and the type wanted (exit 65), never a column of NULLs.
func CheckProperties(f *InputFile, props []string) error {
	for _, p := range props {
		typ, ok := f.Columns[p]
		if !ok {
			return &InputError{File: f.Path, Column: p, Err: fmt.Errorf("declared in inputs.event_properties, but the file has no such column (want VARCHAR; the file has %s)", strings.Join(slices.Sorted(maps.Keys(f.Columns)), ", "))}
		}
		if !typeAllowed(stringTypes, typ) {
			return &InputError{File: f.Path, Column: p, Err: fmt.Errorf("has type %s, want VARCHAR (inputs.event_properties: metric filters compare strings exactly)", typ)}
		}
	}
	return nil
}

// drillTypes are the column types a drill-down dimension may have: its
// values are compared as text (VARCHAR), so only types whose text is the
// value itself.
var drillTypes = []string{"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}

// CheckDeclaredDrillValues checks a private spec's declared slice values
// against the dimension columns' types: a unit's value is compared as the
// text DuckDB casts the column to (an integer as its plain decimal, a
// boolean as true or false), so a declared 07, 7.0 or "7 " for an integer
// column could never match a unit and would publish an empty slice every
// night without a word. It returns the key (drilldowns.values.DIM[j]) and
// the problem of the first such value, or "".
func CheckDeclaredDrillValues(traces []InputFile, dims []string, values func(dim string) []string) (key string, err error) {
	isInt := func(v string) bool {
		if u, err := strconv.ParseUint(v, 10, 64); err == nil {
			return strconv.FormatUint(u, 10) == v
		}
		i, err := strconv.ParseInt(v, 10, 64)
		return err == nil && strconv.FormatInt(i, 10) == v
	}
	isBool := func(v string) bool { return v == "true" || v == "false" }
	for _, d := range dims {
		if len(traces) == 0 {
			break
		}
		// Only when every file holds the column as integers (or every
		// file as booleans): a column that is text in some file can hold
		// any value there.
		ints, bools := true, true
		for _, f := range traces {
			ints = ints && typeAllowed(integerTypes, f.Columns[d])
			bools = bools && f.Columns[d] == "BOOLEAN"
		}
		canonical := isInt
		switch {
		case bools:
			canonical = isBool
		case !ints:
			continue
		}
		for j, v := range values(d) {
			if !canonical(v) {
				f := traces[0]
				return fmt.Sprintf("drilldowns.values.%s[%d]", d, j), fmt.Errorf("%q can never match: column %s is %s in every traces file (%s, ...), and a unit's value is compared as its text (an integer in plain decimals such as 7, a boolean as true or false)", v, d, f.Columns[d], f.Path)
			}
		}
	}
	return "", nil
}

// CheckDrillColumns checks that every trace file has every drill-down
// dimension column (named as the file spells it) with a type in
// drillTypes: a misspelt column is an error naming the file, the column
// and what was expected, never a dimension of NULLs.
func CheckDrillColumns(traces []InputFile, dims []string) error {
	for _, f := range traces {
		for _, d := range dims {
			typ, ok := f.Columns[d]
			if !ok {
				return &InputError{File: f.Path, Column: d, Err: fmt.Errorf("drilldowns.dimensions names this column, which the file does not have (it has %s); expected a column of type %s", strings.Join(slices.Sorted(maps.Keys(f.Columns)), ", "), strings.Join(drillTypes, ", "))}
			}
			if !typeAllowed(drillTypes, typ) {
				return &InputError{File: f.Path, Column: d, Err: fmt.Errorf("a drill-down dimension has type %s, want %s", typ, strings.Join(drillTypes, " or "))}
			}
		}
	}
	return nil
}

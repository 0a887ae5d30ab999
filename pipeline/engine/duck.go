package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/queries"
)

// Engine holds the DuckDB settings of a run. Threads, MemoryLimit and TempDir
// change how the work is done, never its result.
type Engine struct {
	Threads     int    // worker threads; 0 means DuckDB's default (all cores)
	MemoryLimit string // e.g. "2GB"; empty means DuckDB's default (80% of RAM)
	TempDir     string // spill directory; empty means DuckDB's default
}

var memoryRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// Validate checks the engine settings before anything is opened.
func (e Engine) Validate() error {
	if e.Threads < 0 || e.Threads > 1024 {
		return fmt.Errorf("threads: want 0 (all cores) to 1024, got %d", e.Threads)
	}
	if e.MemoryLimit != "" && !memoryRE.MatchString(e.MemoryLimit) {
		return fmt.Errorf("memory limit: want a size such as 512MB or 4GB, got %q", e.MemoryLimit)
	}
	if strings.ContainsAny(e.TempDir, "&?#\x00") {
		return fmt.Errorf("temp dir: %q contains a character that cannot be passed to DuckDB", e.TempDir)
	}
	return nil
}

// fixedSettings are applied to every session through its DSN: they keep
// DuckDB off the network and let it drop insertion order (every result
// query has its own ORDER BY). The time zone, an ICU setting the DSN does
// not know, is pinned to UTC by the session@v1 template.
var fixedSettings = [][2]string{
	{"autoinstall_known_extensions", "false"},
	{"autoload_known_extensions", "false"},
	{"preserve_insertion_order", "false"},
}

// reportedSettings are read back from DuckDB into the manifest.
var reportedSettings = []string{"TimeZone", "autoinstall_known_extensions", "autoload_known_extensions", "memory_limit", "preserve_insertion_order", "temp_directory", "threads"}

// resultSettings are the settings that could change a result; they go in the
// stable part of the manifest. The rest are execution details.
var resultSettings = map[string]bool{"version": true, "TimeZone": true, "autoinstall_known_extensions": true, "autoload_known_extensions": true, "preserve_insertion_order": true}

// Session is one embedded DuckDB database with the single connection that
// holds the run's temporary tables.
type Session struct {
	db     *sql.DB
	Conn   *sql.Conn `json:"-" yaml:"-"`
	fsys   fs.FS
	engine Engine
	Runs   map[string]int `json:"-" yaml:"-"` // executions per template name, for the manifest's scan record
	// progress reports the statements of the shared pass while runSQL
	// Runs them; nil otherwise.
	progress *SQLProgress
	// Interactions are the interaction cells of the last RunSQL, by
	// experiment (interactions.go); nil when no spec pins the template.
	Interactions map[string][]InteractionCell `json:"-" yaml:"-"`
	// CrossMoments are the cross-moment cells of the last RunSQL, by
	// experiment (crossmoments.go); nil when no spec pins the template.
	CrossMoments map[string][]CrossCell `json:"-" yaml:"-"`
	// FilterCounts are the rows of filter_counts@v1 of the last RunSQL,
	// for every experiment of the pass (filters.go); nil when no spec pins
	// the template.
	FilterCounts []FilterCountRow `json:"-" yaml:"-"`
	// Drilldowns are the drill-down dimensions of the last RunSQL, by
	// experiment (drilldown.go); nil when no spec pins the template.
	Drilldowns map[string][]DrillDimension `json:"-" yaml:"-"`
}

func OpenSession(ctx context.Context, e Engine, fsys fs.FS) (*Session, error) {
	q := url.Values{}
	for _, kv := range fixedSettings {
		q.Set(kv[0], kv[1])
	}
	if e.Threads > 0 {
		q.Set("threads", strconv.Itoa(e.Threads))
	}
	if e.MemoryLimit != "" {
		q.Set("memory_limit", strings.ReplaceAll(e.MemoryLimit, " ", ""))
	}
	if e.TempDir != "" {
		q.Set("temp_directory", e.TempDir)
	}
	connector, err := duckdb.NewConnector("?"+q.Encode(), nil)
	if err != nil {
		return nil, &diskio.TransientError{Err: fmt.Errorf("open duckdb: %w", err)}
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, &diskio.TransientError{Err: fmt.Errorf("connect duckdb: %w", err)}
	}
	s := &Session{db: db, Conn: conn, fsys: fsys, engine: e, Runs: map[string]int{}}
	t, err := queries.Load(fsys, "session", "v1")
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.exec(ctx, Rendered{Name: t.Name, Version: t.Version, SQL: t.Text}, nil); err != nil {
		s.Close()
		if m := memoryOrNil(err); m != nil {
			return nil, m
		}
		return nil, &diskio.TransientError{Err: err}
	}
	return s, nil
}

// duckError is an error from DuckDB reduced to one line (DuckDB's messages
// can span several, which would break the one-line summaries); Unwrap keeps
// the original for errors.Is (context cancellation).
type duckError struct {
	err error
	msg string
}

func (e *duckError) Error() string { return e.msg }
func (e *duckError) Unwrap() error { return e.err }

func oneLine(err error) error {
	if err == nil {
		return nil
	}
	fields := strings.Fields(err.Error())
	return &duckError{err: err, msg: strings.Join(fields, " ")}
}

// interrupted reports whether err comes from a cancelled context or a
// DuckDB interrupt; outOfMemory whether DuckDB ran out of its memory limit.
// Neither says anything about the input data: both are transient.
func interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "INTERRUPT Error")
}

func outOfMemory(err error) bool { return strings.Contains(err.Error(), "Out of Memory Error") }

// DataError is a deterministic failure of a query on the input data (a
// value DuckDB cannot convert, an arithmetic overflow): retrying cannot
// help. Exit code 65.
type DataError struct{ Err error }

func (e *DataError) Error() string { return e.Err.Error() }
func (e *DataError) Unwrap() error { return e.Err }

// ClassifySQLError maps a failed template run: interrupts and
// out-of-memory are transient; conversion and range errors are data
// errors; binder, parser and catalog errors mean a template does not fit
// the data's schema or the code, a configuration/integrity error; the rest
// is transient.
func ClassifySQLError(ctx context.Context, err error) error {
	if t := TransientOrNil(ctx, err); t != nil {
		return t
	}
	msg := err.Error()
	for _, k := range []string{"Conversion Error", "Out of Range Error", "Overflow"} {
		if strings.Contains(msg, k) {
			return &DataError{Err: err}
		}
	}
	for _, k := range []string{"Binder Error", "Parser Error", "Catalog Error"} {
		if strings.Contains(msg, k) {
			return &expspec.IntegrityError{Err: err}
		}
	}
	return &diskio.TransientError{Err: err}
}

// TransientOrNil classifies a DuckDB error that does not concern the data:
// a *TransientError for an interrupt, a *MemoryLimitError (a configuration
// error) when DuckDB ran out of its memory limit, else nil.
func TransientOrNil(ctx context.Context, err error) error {
	switch {
	case interrupted(ctx, err):
		return &diskio.TransientError{Err: fmt.Errorf("interrupted: %w", err)}
	case outOfMemory(err):
		if m := memoryOrNil(err); m != nil {
			return m
		}
		return &MemoryLimitError{Err: err}
	}
	return nil
}

// engineError attaches the session's engine settings to an out-of-memory
// error, so that the message can say which limit was too small.
func (s *Session) engineError(err error) error {
	if outOfMemory(err) {
		return &MemoryLimitError{Engine: s.engine, Err: err}
	}
	return err
}

func memoryOrNil(err error) *MemoryLimitError {
	var m *MemoryLimitError
	if errors.As(err, &m) {
		return m
	}
	return nil
}

// MemoryLimitError is DuckDB running out of its memory limit. The same data,
// Settings and limit fail the same way on every retry, so it is a
// configuration error (exit 78), not a transient one: the message names the
// limit that was tried and what to change. Engine is the zero Engine when
// the settings are not known.
type MemoryLimitError struct {
	Engine Engine
	Err    error
}

// minSuggestedMemory is the smallest limit the message suggests. The
// committed fixtures need 32MB with 2 threads (24MB fails); 64MB leaves
// room for more threads and the first spill buffers.
const minSuggestedMemory = 64e6

func (e *MemoryLimitError) Error() string {
	msg := e.Err.Error()
	if i := strings.Index(msg, " Possible solutions:"); i >= 0 {
		msg = msg[:i] // DuckDB's generic advice, replaced by ours below
	}
	threads := "all cores"
	if e.Engine.Threads > 0 {
		threads = fmt.Sprintf("%d threads", e.Engine.Threads)
	}
	spill := "without --temp-dir"
	if e.Engine.TempDir != "" {
		spill = "spilling to " + e.Engine.TempDir
	}
	var advice string
	if limit, ok := parseMemory(e.Engine.MemoryLimit); ok {
		advice = fmt.Sprintf("DuckDB ran out of memory under --memory-limit %s (%s, %s); the same run fails the same way on every retry: raise --memory-limit (try %s or more)",
			e.Engine.MemoryLimit, threads, spill, formatMemory(max(4*limit, minSuggestedMemory)))
	} else {
		advice = fmt.Sprintf("DuckDB ran out of memory under its default limit (80%% of RAM; %s, %s); the same run fails the same way on every retry: raise --memory-limit if the machine has more memory for it", threads, spill)
	}
	if e.Engine.TempDir == "" {
		advice += ", set --temp-dir so DuckDB can spill to disk"
	}
	advice += ", or lower --threads"
	return advice + " (" + msg + ")"
}

func (e *MemoryLimitError) Unwrap() error { return e.Err }

var memoryUnits = map[string]float64{"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

// parseMemory reads a --memory-limit value (see memoryRE) in bytes.
func parseMemory(s string) (float64, bool) {
	m := memoryRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	num := strings.TrimSpace(strings.TrimSuffix(s, m[2]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, false
	}
	return v * memoryUnits[m[2]], true
}

// formatMemory writes a size in whole MB or GB, rounded up.
func formatMemory(b float64) string {
	if b >= 1e9 {
		return fmt.Sprintf("%dGB", int64(math.Ceil(b/1e9)))
	}
	return fmt.Sprintf("%dMB", int64(math.Ceil(b/1e6)))
}

func (s *Session) Close() error {
	err := s.Conn.Close()
	return errors.Join(err, s.db.Close())
}

// Setting is one DuckDB setting as reported by DuckDB itself.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Settings reads back the DuckDB version and the settings in effect, split
// into those that can change results and those that cannot.
func (s *Session) Settings(ctx context.Context) (result, execution []Setting, err error) {
	t, err := queries.Load(s.fsys, "settings", "v1")
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.Conn.QueryContext(ctx, t.Text, sql.Named("names", reportedSettings))
	if err != nil {
		return nil, nil, fmt.Errorf("template %s@%s: %w", t.Name, t.Version, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Setting
		if err := rows.Scan(&st.Name, &st.Value); err != nil {
			return nil, nil, err
		}
		if resultSettings[st.Name] {
			result = append(result, st)
		} else {
			execution = append(execution, st)
		}
	}
	return result, execution, rows.Err()
}

var paramRE = regexp.MustCompile(`\$([a-z_][a-z0-9_]*)`)

// BindParams returns the named arguments a rendered statement uses, taken
// from params. SQL comments are skipped; a parameter the statement uses but
// params lacks is an error, so no template can run half-bound.
func BindParams(sqlText string, params map[string]any) ([]any, error) {
	var b strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	seen := map[string]bool{}
	var names []string
	for _, m := range paramRE.FindAllStringSubmatch(b.String(), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	args := make([]any, 0, len(names))
	for _, n := range names {
		v, ok := params[n]
		if !ok {
			return nil, fmt.Errorf("parameter $%s is not bound", n)
		}
		args = append(args, sql.Named(n, v))
	}
	return args, nil
}

// Statements splits a template into its statements: each ends at a line
// whose code (the part before any "--" comment) ends with ";". A template
// without such a line is one statement.
func Statements(sqlText string) []string {
	var out []string
	var b strings.Builder
	for _, line := range strings.SplitAfter(sqlText, "\n") {
		b.WriteString(line)
		code := line
		if i := strings.Index(code, "--"); i >= 0 {
			code = code[:i]
		}
		if strings.HasSuffix(strings.TrimSpace(code), ";") {
			out = append(out, b.String())
			b.Reset()
		}
	}
	if strings.TrimSpace(b.String()) != "" {
		out = append(out, b.String())
	}
	return out
}

// exec runs a statement template, statement by statement; each binds only
// the parameters its own text uses.
func (s *Session) exec(ctx context.Context, r Rendered, params map[string]any) error {
	s.Runs[r.Name]++
	stmts := Statements(r.SQL)
	for i, stmt := range stmts {
		args, err := BindParams(stmt, params)
		if err != nil {
			return fmt.Errorf("template %s@%s: %w", r.Name, r.Version, err)
		}
		if err := s.progress.Run(statementKey(r, i, len(stmts)), func() error {
			_, err := s.Conn.ExecContext(ctx, stmt, args...)
			return err
		}); err != nil {
			where := ""
			if len(stmts) > 1 {
				where = fmt.Sprintf(" statement %d of %d", i+1, len(stmts))
			}
			return s.engineError(fmt.Errorf("template %s@%s%s: %w", r.Name, r.Version, where, oneLine(err)))
		}
	}
	return nil
}

// query runs a one-statement query template through database/sql.
func (s *Session) query(ctx context.Context, r Rendered, params map[string]any, scan func(*sql.Rows) error) error {
	return s.queryAt(ctx, r, params, 0, 1, scan)
}

// sufstatsRow is one row of the sufstats template: a cell's identity, its
// unit count, its exact sums (HUGEINT, which duckdb-go scans as *big.Int)
// and the largest absolute per-unit values behind the overflow proof.
type sufstatsRow struct {
	experiment, cohort, variant, metric string
	n                                   int64
	sums                                map[string]*big.Int // absent: the version does not compute it; nil: NULL
	maxAbs                              []*big.Int          // nil entries are NULLs
}

// sum returns a sum column's value, whether the template returned that
// column, and whether the value was non-NULL.
func (r sufstatsRow) sum(name string) (v *big.Int, present, ok bool) {
	v, present = r.sums[name]
	return v, present, v != nil
}

// scanSufstats reads one sufstats row by column name. Each column's type is
// checked, so a template returning something unexpected is an error naming
// the column, not a panic or a silent zero. Older sufstats versions return
// only some sums; the rest stay absent.
func scanSufstats(rows *sql.Rows) (sufstatsRow, error) {
	names, err := rows.Columns()
	if err != nil {
		return sufstatsRow{}, err
	}
	vals := make([]any, len(names))
	dest := make([]any, len(names))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return sufstatsRow{}, err
	}
	row := sufstatsRow{sums: map[string]*big.Int{}}
	seen := map[string]bool{}
	isSum := map[string]bool{}
	for _, n := range sumColumns {
		isSum[n] = true
	}
	for i, name := range names {
		v := vals[i]
		seen[name] = true
		switch {
		case name == "experiment_id" || name == "cohort" || name == "variant" || name == "metric":
			str, ok := v.(string)
			if !ok {
				return sufstatsRow{}, fmt.Errorf("column %q is %T, want a non-NULL string", name, v)
			}
			switch name {
			case "experiment_id":
				row.experiment = str
			case "cohort":
				row.cohort = str
			case "variant":
				row.variant = str
			default:
				row.metric = str
			}
		case name == "n":
			n, ok := v.(int64)
			if !ok {
				return sufstatsRow{}, fmt.Errorf("column %q is %T, want a non-NULL BIGINT", name, v)
			}
			row.n = n
		case isSum[name] || name == "max_abs_x" || name == "max_abs_y" || name == "max_abs_c":
			var b *big.Int
			switch x := v.(type) {
			case nil:
			case *big.Int:
				b = x
			default:
				return sufstatsRow{}, fmt.Errorf("column %q is %T, want HUGEINT", name, v)
			}
			if isSum[name] {
				row.sums[name] = b
			} else {
				row.maxAbs = append(row.maxAbs, b)
			}
		}
	}
	for _, name := range []string{"experiment_id", "cohort", "variant", "metric", "n"} {
		if !seen[name] {
			return sufstatsRow{}, fmt.Errorf("result has no column %q", name)
		}
	}
	if len(row.maxAbs) == 0 {
		return sufstatsRow{}, fmt.Errorf("result has no max_abs_x column: the overflow proof needs it")
	}
	return row, nil
}

// DuckDBVersion opens an in-memory DuckDB and reports its library version.
func DuckDBVersion(ctx context.Context) (string, error) {
	s, err := OpenSession(ctx, Engine{Threads: 1}, queries.FS())
	if err != nil {
		return "", err
	}
	defer s.Close()
	res, _, err := s.Settings(ctx)
	if err != nil {
		return "", err
	}
	for _, st := range res {
		if st.Name == "version" {
			return st.Value, nil
		}
	}
	return "", errors.New("duckdb did not report its version")
}

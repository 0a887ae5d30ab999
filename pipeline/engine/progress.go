package engine

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/duckdb/duckdb-go/v2/mapping"

	"github.com/verity-analytics/verity/queries"
)

// The shared SQL pass is the long part of a run. It reports its progress
// statement by statement: "step n of m" with the statement's template, an
// estimate of the time left in the pass from the previous night's
// per-statement timings scaled by tonight's input bytes, and, while a
// statement runs, DuckDB's own percentage of it. A pass that serves a
// private spec reports only the steps: the number of statements depends
// on the templates alone, while timings, percentages and row counts
// depend on the data; it announces them once, before the pass.

// ProgressEvery is how often a running statement's percentage is logged.
var ProgressEvery = 5 * time.Second

// SQLProgress reports one pass. A nil *sqlProgress reports nothing.
type SQLProgress struct {
	Log     *slog.Logger `json:"-" yaml:"-"`
	private bool
	Keys    []string           `json:"-" yaml:"-"` // every statement of the pass, in order
	prev    map[string]float64 // previous night's ms per statement, scaled to tonight's input bytes
	raw     mapping.Connection // DuckDB's connection, for its query progress
	HasRaw  bool               `json:"-" yaml:"-"`
	step    int
	Timings []Phase `json:"-" yaml:"-"`
	// planned is the pass's statements (Keys while the planned pass runs);
	// stage names a sequence of statements outside it (an incremental
	// pass, the state's save), whose steps are counted without a total.
	planned []string
	stage   string
}

// statementKey names one statement of a template in logs and in the
// manifest's volatile phases: "sql events@v5 1/2".
func statementKey(r Rendered, i, n int) string {
	return fmt.Sprintf("sql %s@%s %d/%d", r.Name, r.Version, i+1, n)
}

// NewSQLProgress prepares the report of one pass over the given templates
// (in the order runSQL runs them). prev is the previous night's scan and
// phases, from the manifest of an exact spec of the pass, if there is one.
func NewSQLProgress(log *slog.Logger, private bool, tmpls []Rendered, inputBytes int64, prev *Scan, prevPhases []Phase) *SQLProgress {
	byName := map[string]Rendered{}
	for _, t := range tmpls {
		byName[t.Name] = t
	}
	p := &SQLProgress{Log: log, private: private}
	for _, name := range sqlPassOrder {
		r, ok := byName[name]
		if !ok && (name == "histograms" || name == "eventbins" || name == "interactions" || name == "crossmoments" || name == "filter_counts" || name == "drilldown") {
			continue // pinned only by specs that need them
		}
		n := 1
		if name != "sufstats" && name != "quality" && name != "histograms" && name != "eventbins" && name != "interactions" && name != "crossmoments" {
			n = len(Statements(r.SQL))
		}
		for i := 0; i < n; i++ {
			p.Keys = append(p.Keys, statementKey(r, i, n))
		}
	}
	p.planned = p.Keys
	if !private && prev != nil && prev.InputBytes > 0 {
		scale := float64(inputBytes) / float64(prev.InputBytes)
		p.prev = map[string]float64{}
		for _, ph := range prevPhases {
			if strings.HasPrefix(ph.Name, "sql ") {
				p.prev[ph.Name] = ph.Millis * scale
			}
		}
	}
	return p
}

// sqlPassOrder is the order runSQL runs the templates in.
var sqlPassOrder = []string{"traces", "assignment", "events", "unit_metrics", "sufstats", "histograms", "eventbins", "interactions", "crossmoments", "filter_counts", "drilldown", "quality"}

// Attach lets the report read DuckDB's progress of the statements that
// Run on the session's connection, once the internal progress@v1 template
// has enabled it (DuckDB refreshes the progress only with its progress
// bar on). Without it (another driver layout, a template folder without
// progress@v1), steps are still shown.
func (p *SQLProgress) Attach(ctx context.Context, s *Session) {
	if p == nil || p.private {
		return
	}
	t, err := queries.Load(s.fsys, "progress", "v1")
	if err != nil {
		return
	}
	if p.raw, p.HasRaw = rawConnection(ctx, s.Conn); !p.HasRaw {
		return
	}
	if err := s.exec(ctx, Rendered{Name: t.Name, Version: t.Version, SQL: t.Text}, nil); err != nil {
		p.HasRaw = false
	}
}

// rawConnection returns DuckDB's C connection behind a database/sql
// connection. duckdb-go v2.5.6 exposes query progress only through its
// mapping package (duckdb_query_progress, safe to call while another
// thread runs the query) and keeps the connection in the unexported field
// Conn of *duckdb.Conn: it is read here by reflection, and any other
// layout gives ok = false.
func rawConnection(ctx context.Context, conn *sql.Conn) (raw mapping.Connection, ok bool) {
	_ = conn.Raw(func(dc any) error {
		v := reflect.ValueOf(dc)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return nil
		}
		f := v.Elem().FieldByName("conn")
		if !f.IsValid() || f.Type() != reflect.TypeOf(mapping.Connection{}) {
			return nil
		}
		raw = *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
		ok = raw.Ptr != nil
		return nil
	})
	return raw, ok
}

// Stage starts a sequence of statements that is not the planned pass (an
// incremental pass over the state, the state's save): its steps are
// counted from 1 and logged with the stage's name, without a total or an
// estimate, since its statements differ from the pass the total counts.
func (p *SQLProgress) Stage(name string) {
	if p == nil {
		return
	}
	p.Keys, p.step, p.stage = nil, 0, name
}

// Restart starts the planned pass (again) from its first step: after an
// incremental pass fell back, the full pass's steps are counted anew.
func (p *SQLProgress) Restart() {
	if p == nil {
		return
	}
	p.Keys, p.step, p.stage = p.planned, 0, ""
}

// counted is the step's log attributes: "step n of m" in the planned
// pass, "step n" with the stage's name outside it.
func (p *SQLProgress) counted() []any {
	if p.stage != "" {
		return []any{"phase", "sql", "stage", p.stage, "step", p.step}
	}
	return []any{"phase", "sql", "step", p.step, "of", len(p.Keys)}
}

// phaseName is the statement's name among the run's phases: a stage's
// statements carry the stage's name, so that the next night's estimate,
// which reads the planned pass's statements by name, never takes the time
// of the same template run over the touched units only.
func (p *SQLProgress) phaseName(key string) string {
	if p.stage == "" {
		return key
	}
	return "sql " + p.stage + ": " + strings.TrimPrefix(key, "sql ")
}

// Run runs one statement (fn) as the next step of the pass.
func (p *SQLProgress) Run(key string, fn func() error) error {
	if p == nil {
		return fn()
	}
	p.step++
	t0 := time.Now()
	if p.private {
		// The statements were announced before the pass; the time is
		// kept for the restricted record only.
		err := fn()
		p.Timings = append(p.Timings, Phase{Name: key, Millis: float64(time.Since(t0).Microseconds()) / 1000})
		return err
	}
	attrs := append(p.counted(), "statement", key)
	if left, ok := p.estimate(); ok {
		attrs = append(attrs, "estimate_s", left)
	}
	p.Log.Info("sql statement", attrs...)
	stop := p.watch(key, t0, p.counted())
	defer stop() // also if fn panics: the watcher must not outlive the connection
	err := fn()
	stop()
	ms := float64(time.Since(t0).Microseconds()) / 1000
	p.Timings = append(p.Timings, Phase{Name: p.phaseName(key), Millis: ms})
	p.Log.Info("sql statement done", append(p.counted(), "statement", key, "ms", ms)...)
	return err
}

// estimate is the time left in the pass, in seconds, from this step on:
// the previous night's timings of the remaining statements, scaled by
// tonight's input bytes. ok is false without a comparable previous night.
func (p *SQLProgress) estimate() (seconds float64, ok bool) {
	if p.private || p.stage != "" || p.prev == nil || p.step < 1 || p.step > len(p.Keys) {
		return 0, false
	}
	var ms float64
	for _, k := range p.Keys[p.step-1:] {
		v, found := p.prev[k]
		if !found {
			return 0, false
		}
		ms += v
	}
	return math.Round(ms/100) / 10, true
}

// watch logs DuckDB's percentage of the running statement every
// ProgressEvery until the returned stop is called; stop returns only once
// the watcher has stopped reading the connection.
func (p *SQLProgress) watch(key string, t0 time.Time, counted []any) (stop func()) {
	if p.private || !p.HasRaw {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(ProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				q := mapping.QueryProgress(p.raw)
				pct, rows, total := mapping.QueryProgressTypeMembers(&q)
				// DuckDB reports -1 when it cannot tell, and a figure
				// without rows between pipelines: only a percentage of
				// rows actually counted is shown.
				pct = math.Round(pct*10) / 10
				if !(pct > 0 && pct <= 100) || total == 0 || rows == 0 || rows > total {
					continue
				}
				attrs := append(slices.Clip(counted), "statement", key,
					"percent", pct, "rows_processed", rows, "rows_total", total)
				if pct >= 1 { // below 1% an extrapolation says nothing
					left := time.Since(t0).Seconds() * (100 - pct) / pct
					attrs = append(attrs, "statement_left_s", math.Round(left*10)/10)
				}
				p.Log.Info("sql progress", attrs...)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

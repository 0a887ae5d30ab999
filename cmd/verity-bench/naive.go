package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

//go:embed naive.sql
var naiveSQL string

// duckConfig holds the DuckDB settings shared by the reference query and the
// profiling commands; they mirror what `verity run` applies.
type duckConfig struct {
	Threads     int
	MemoryLimit string
	TempDir     string
}

func (e *duckConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&e.Threads, "threads", 2, "DuckDB worker threads")
	fs.StringVar(&e.MemoryLimit, "memory-limit", "4GB", "DuckDB memory limit (DuckDB units: 1GB = 10^9 bytes)")
	fs.StringVar(&e.TempDir, "temp-dir", "", "DuckDB spill folder (default: DuckDB's)")
}

// open returns an in-memory DuckDB with e's settings and Verity's fixed
// ones (no extension downloads, insertion order not preserved), so that the
// only difference from `verity run` is the SQL.
func (e duckConfig) open() (*sql.DB, error) {
	q := url.Values{}
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")
	q.Set("preserve_insertion_order", "false")
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
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return sql.OpenDB(c), nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// naiveCell is one row of the reference query's result.
type naiveCell struct {
	Cohort, Variant, Metric string
	N                       int64
	Sum, SumSq              float64
}

// naiveCmd runs the reference query and prints one tab-separated line per
// cell: cohort, variant, metric, n, sum_x, sum_x2.
//
//	verity-bench naive --threads N --memory-limit SIZE [--temp-dir DIR]
//	    --traces GLOB --events GLOB --experiment ID --start T --end T
//	    --leaves A,B,... --metric NAME:KIND:EVENT:AGG:LO:HI ...
func naiveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e duckConfig
	e.register(fs)
	var traces, events, metrics listFlag
	fs.Var(&traces, "traces", "trace Parquet glob (repeatable)")
	fs.Var(&events, "events", "event Parquet glob (repeatable)")
	exp := fs.String("experiment", "", "experiment id")
	start := fs.String("start", "", "window start, RFC 3339")
	end := fs.String("end", "", "window end (exclusive), RFC 3339")
	leaves := fs.String("leaves", "", "persona taxonomy leaves, comma-separated")
	fs.Var(&metrics, "metric", "metric NAME:KIND:EVENT:AGG:LO:HI (repeatable; KIND proportion or mean, AGG sum or count)")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if len(traces) == 0 || len(events) == 0 || *exp == "" || len(metrics) == 0 || fs.NArg() > 0 {
		return exitUsage, errors.New("naive needs --traces, --events, --experiment and at least one --metric, and no arguments")
	}
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		return exitUsage, fmt.Errorf("--start: %w", err)
	}
	t1, err := time.Parse(time.RFC3339, *end)
	if err != nil {
		return exitUsage, fmt.Errorf("--end: %w", err)
	}
	var name, kind, event, agg []string
	var lo, hi []float64
	for _, m := range metrics {
		p := strings.Split(m, ":")
		if len(p) != 6 {
			return exitUsage, fmt.Errorf("--metric %q: want NAME:KIND:EVENT:AGG:LO:HI", m)
		}
		l, err1 := strconv.ParseFloat(p[4], 64)
		h, err2 := strconv.ParseFloat(p[5], 64)
		if err := errors.Join(err1, err2); err != nil {
			return exitUsage, fmt.Errorf("--metric %q: %w", m, err)
		}
		name, kind, event, agg = append(name, p[0]), append(kind, p[1]), append(event, p[2]), append(agg, p[3])
		lo, hi = append(lo, l), append(hi, h)
	}
	db, err := e.open()
	if err != nil {
		return exitFailed, err
	}
	defer db.Close()
	cells, err := runNaive(ctx, db, naiveArgs{
		Traces: traces, Events: events, Experiment: *exp, Start: t0, End: t1,
		Leaves: strings.Split(*leaves, ","),
		Name:   name, Kind: kind, Event: event, Agg: agg, Lo: lo, Hi: hi,
	})
	if err != nil {
		return exitFailed, err
	}
	for _, c := range cells {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%d\t%s\t%s\n", c.Cohort, c.Variant, c.Metric, c.N,
			strconv.FormatFloat(c.Sum, 'g', -1, 64), strconv.FormatFloat(c.SumSq, 'g', -1, 64))
	}
	return exitOK, nil
}

// naiveArgs are the reference query's parameters.
type naiveArgs struct {
	Traces, Events    []string
	Experiment        string
	Start, End        time.Time
	Leaves            []string
	Name, Kind, Event []string
	Agg               []string
	Lo, Hi            []float64
}

func runNaive(ctx context.Context, db *sql.DB, a naiveArgs) ([]naiveCell, error) {
	rows, err := db.QueryContext(ctx, naiveSQL,
		sql.Named("traces", a.Traces), sql.Named("events", a.Events),
		sql.Named("experiment", a.Experiment), sql.Named("start", a.Start), sql.Named("end", a.End),
		sql.Named("leaves", a.Leaves),
		sql.Named("m_name", a.Name), sql.Named("m_kind", a.Kind), sql.Named("m_event", a.Event),
		sql.Named("m_agg", a.Agg), sql.Named("m_lo", a.Lo), sql.Named("m_hi", a.Hi))
	if err != nil {
		return nil, fmt.Errorf("naive.sql: %w", err)
	}
	defer rows.Close()
	var out []naiveCell
	for rows.Next() {
		var c naiveCell
		var cohort sql.NullString
		var variant sql.NullString
		if err := rows.Scan(&cohort, &variant, &c.Metric, &c.N, &c.Sum, &c.SumSq); err != nil {
			return nil, fmt.Errorf("naive.sql: %w", err)
		}
		c.Cohort, c.Variant = cohort.String, variant.String
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("naive.sql: %w", err)
	}
	return out, nil
}

package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

//go:embed scanfloor.sql
var scanFloorSQL string

// scanFloorCmd runs scanfloor.sql (every needed column read once) and prints
// one tab-separated line per input kind: kind, rows, a checksum of the
// values read.
//
//	verity-bench scanfloor --threads N --memory-limit SIZE [--temp-dir DIR]
//	    --traces GLOB --events GLOB
func scanFloorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("scanfloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e duckConfig
	e.register(fs)
	var traces, events listFlag
	fs.Var(&traces, "traces", "trace Parquet glob (repeatable)")
	fs.Var(&events, "events", "event Parquet glob (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if len(traces) == 0 || len(events) == 0 || fs.NArg() > 0 {
		return exitUsage, errors.New("scanfloor needs --traces and --events, and no arguments")
	}
	db, err := e.open()
	if err != nil {
		return exitFailed, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, scanFloorSQL, sql.Named("traces", []string(traces)), sql.Named("events", []string(events)))
	if err != nil {
		return exitFailed, fmt.Errorf("scanfloor.sql: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, check string
		var n int64
		if err := rows.Scan(&kind, &n, &check); err != nil {
			return exitFailed, fmt.Errorf("scanfloor.sql: %w", err)
		}
		fmt.Fprintf(stdout, "%s\t%d\t%s\n", kind, n, check)
	}
	if err := rows.Err(); err != nil {
		return exitFailed, fmt.Errorf("scanfloor.sql: %w", err)
	}
	return exitOK, nil
}

// scanFloorArgsFor are the scanfloor subcommand's arguments for a dataset:
// the reference query's, without its spec flags.
func scanFloorArgsFor(o benchOptions, ds dataset, s benchSpec) []string {
	args := naiveArgsFor(o, ds, s)
	args[0] = "scanfloor"
	for i, a := range args {
		if a == "--experiment" {
			return args[:i]
		}
	}
	return args
}

// benchFloor measures the scan floor on a dataset beside Verity and the
// reference query (the fastest of o.Runs) and checks that it read every
// row of both inputs: a floor that skipped rows would flatter nothing but
// would not be a floor.
func benchFloor(ctx context.Context, o benchOptions, ds dataset, s benchSpec, self string) (measurement, error) {
	m, err := best(o.Runs, func() (measurement, error) {
		return measure(ctx, self, scanFloorArgsFor(o, ds, s)...)
	})
	if err != nil {
		return m, errors.New(firstLine(lastErrorLine(m.Stderr, err)))
	}
	rows, err := parseFloor(m.Stdout)
	if err != nil {
		return m, err
	}
	if rows["traces"] != ds.Truth.TraceRows || rows["events"] != ds.Truth.EventRows {
		return m, fmt.Errorf("read %d trace and %d event rows, the dataset has %d and %d",
			rows["traces"], rows["events"], ds.Truth.TraceRows, ds.Truth.EventRows)
	}
	return m, nil
}

// parseFloor reads scanFloorCmd's lines into rows per input kind.
func parseFloor(out []byte) (map[string]int64, error) {
	rows := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("scan floor output line %q: want kind, rows, checksum", line)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("scan floor output line %q: %w", line, err)
		}
		if _, dup := rows[f[0]]; dup {
			return nil, fmt.Errorf("scan floor output: %s twice", f[0])
		}
		rows[f[0]] = n
	}
	if len(rows) != 2 {
		return nil, fmt.Errorf("scan floor output %q: want traces and events", out)
	}
	return rows, nil
}

// printFloor writes the scan-floor table: Verity's wall and CPU time as
// multiples of reading every needed column once, measured in the same run
// (issue 18's target: within 3×).
func printFloor(w io.Writer, rs []scaleResult) {
	fmt.Fprintln(w, "Scan floor (`scanfloor.sql`: every column Verity needs read once, every row; issue 18 target: Verity ≤ 3× it), measured beside the rows above:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scale | floor wall | floor CPU | verity / floor (wall) | verity / floor (CPU) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rs {
		switch {
		case r.FloorErr != nil:
			fmt.Fprintf(w, "| %s | FAILED: %s | | | |\n", scaleLabel(r.Units), strings.ReplaceAll(r.FloorErr.Error(), "|", "/"))
		case r.VerityErr != nil:
			fmt.Fprintf(w, "| %s | %s | %s | verity failed | |\n", scaleLabel(r.Units), secs(r.Floor.Wall), secs(r.Floor.User+r.Floor.Sys))
		default:
			fcpu := r.Floor.User + r.Floor.Sys
			fmt.Fprintf(w, "| %s | %s | %s | %.2f× | %.2f× |\n", scaleLabel(r.Units), secs(r.Floor.Wall), secs(fcpu),
				r.Verity.Wall.Seconds()/r.Floor.Wall.Seconds(), (r.Verity.User+r.Verity.Sys).Seconds()/fcpu.Seconds())
		}
	}
	fmt.Fprintln(w)
}

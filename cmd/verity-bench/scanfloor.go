package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
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

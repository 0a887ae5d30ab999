package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// sqlCmd runs ad-hoc SQL statements with the bench's DuckDB settings and
// prints every result row tab-separated, with the time each took: the tool
// for EXPLAIN ANALYZE on a rendered template, or for trying a rewrite.
//
//	verity-bench sql [--threads N] [--memory-limit SIZE] [--file F] [STATEMENT...]
func sqlCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e duckConfig
	e.register(fs)
	file := fs.String("file", "", "read one more statement from this file (after the arguments)")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	stmts := fs.Args()
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return exitUsage, err
		}
		stmts = append(stmts, string(b))
	}
	if len(stmts) == 0 {
		return exitUsage, errors.New("sql needs at least one statement")
	}
	db, err := e.open()
	if err != nil {
		return exitFailed, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return exitFailed, err
	}
	defer conn.Close()
	for i, s := range stmts {
		t0 := time.Now()
		rows, err := queryStrings(ctx, conn, fmt.Sprintf("statement %d", i+1), s, nil)
		if err != nil {
			return exitFailed, err
		}
		for _, r := range rows {
			fmt.Fprintln(stdout, strings.Join(r, "\t"))
		}
		fmt.Fprintf(stderr, "-- statement %d: %d rows in %s\n", i+1, len(rows), secs(time.Since(t0)))
	}
	return exitOK, nil
}

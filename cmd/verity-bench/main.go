// Command verity-bench measures `verity run` end to end on generated data and
// compares it with the reference query a user would otherwise write by hand
// (naive.sql, run on the same DuckDB build with the same threads and memory
// limit). It is the engine of `make bench`; see BENCHMARKS.md for the
// figures and how to read them.
//
//	verity-bench [--scales 1M,3M,10M] [--cache .bench] [--threads 2] [--memory-limit 4GB]
//	             [--verity bin/verity] [--experiments 20] [generator flags...]
//	verity-bench naive --threads N --memory-limit SIZE --traces GLOB --events GLOB ...
//	verity-bench profile --data DIR [--explain DIR] [--cpuprofile FILE] ...
//	verity-bench proto --data DIR ...
//	verity-bench sql [STATEMENT...]
//	verity-bench scanfloor --threads N --memory-limit SIZE --traces GLOB --events GLOB
//	verity-bench incremental [--scale 1M] [--days 30] [--from-night K]
//
// For each scale the bench generates a dataset once (cached under
// --cache by a hash of the generator configuration), writes a v1 spec for it,
// then runs `verity run` and the reference query as subprocesses, each
// measured by its wall time and peak RSS (getrusage of the child). The
// subcommands naive, profile and proto are what the bench runs in those
// subprocesses, and the tools used to find where the time goes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verity-bench:", err)
	}
	os.Exit(code)
}

// run dispatches to a subcommand and returns the exit code and the error to
// print: 0 ok, 1 a measurement failed, 2 usage, 70 the reference query and
// Verity disagree.
func run(ctx context.Context, args []string) (int, error) {
	if len(args) > 0 {
		switch args[0] {
		case "naive":
			return naiveCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case "profile":
			return profileCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case "proto":
			return protoCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case "sql":
			return sqlCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case "incremental":
			return incrementalCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case "scanfloor":
			return scanFloorCmd(ctx, args[1:], os.Stdout, os.Stderr)
		case prepareCmdName: // hidden: data generation out of the bench's process (prepare.go)
			return prepareCmd(ctx, args[1:], os.Stdin, os.Stderr)
		case measureCmdName: // hidden: the launcher of measured programs (measure.go)
			return measureChildCmd(ctx, args[1:], os.Stderr)
		}
	}
	return benchCmd(ctx, args, os.Stdout, os.Stderr)
}

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitMismatch = 70
)

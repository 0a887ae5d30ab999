// Command verity recomputes feature-flag experiment results from raw
// evaluation traces, reproducibly. See README.md for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/verity-analytics/verity/pipeline"
)

// stopGrace is how long a run may take to stop after SIGTERM or SIGINT
// cancels it. Every phase checks its context within milliseconds; a run
// still going after this is stuck in a call that cannot be interrupted (a
// blocked open or read), and the process exits without it. Its lock dies
// with it, and the next run removes whatever it left half-written.
const stopGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitIfStuck(ctx)
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verity:", err)
	}
	os.Exit(code)
}

// exitIfStuck waits for ctx to be cancelled by a signal and then, if the
// run has not returned within stopGrace (or a second signal arrives),
// exits with the transient code.
func exitIfStuck(ctx context.Context) {
	<-ctx.Done()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	select {
	case <-time.After(stopGrace):
		fmt.Fprintf(os.Stderr, "verity: interrupted: the run did not stop within %v of the signal (stuck in a call that cannot be interrupted); exiting without it\n", stopGrace)
	case <-again:
		fmt.Fprintln(os.Stderr, "verity: interrupted: second signal; exiting at once")
	}
	os.Exit(pipeline.ExitTransient)
}

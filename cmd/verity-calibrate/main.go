// Command verity-calibrate runs the calibration suite (package calibrate)
// and writes its results as Markdown: `make calibrate` runs the full suite
// and rewrites calibrate/CALIBRATION.md. Exit 0 when every check passes,
// 70 when one fails, 1 on an error.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/verity-analytics/verity/calibrate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verity-calibrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	datasets := fs.Int("datasets", 160, "number of datasets (seeds calibrate.FullSeeds(n))")
	units := fs.Int("units", 10000, "units per dataset")
	nights := fs.Int("nights", 12, "nights analysed per dataset (the last ones of the 12-day window)")
	workers := fs.Int("workers", 2, "datasets analysed in parallel")
	work := fs.String("work", "", "folder for the generated datasets (default: a temporary one)")
	write := fs.String("write", "", "write the Markdown results to this file (default: stdout only)")
	quantiles := fs.Int("quantile-datasets", 0, "also run the exact quantiles mode (quantile metrics and percentile-capped means) on this many planted datasets (seeds calibrate.QuantileSeeds(n), --quantile-units units per experiment)")
	quantileUnits := fs.Int("quantile-units", 4000, "units per experiment of the exact quantiles mode")
	onlyQuantiles := fs.Bool("only-quantiles", false, "run only the exact quantiles mode (with --quantile-datasets)")
	if err := fs.Parse(args); err != nil {
		return 78
	}
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "verity-calibrate-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	t0 := time.Now()
	cfg := calibrate.Config{
		Seeds: calibrate.FullSeeds(*datasets), Units: *units, Nights: *nights, Workers: *workers, WorkDir: dir,
		Progress: func(s string) { fmt.Fprintln(stderr, s) },
	}
	tally := calibrate.Tally{}
	var err error
	if !*onlyQuantiles {
		if tally, err = calibrate.Run(ctx, cfg); err != nil {
			fmt.Fprintln(stderr, "verity-calibrate:", err)
			return 1
		}
	}
	if *quantiles > 0 {
		qcfg := cfg
		qcfg.Seeds, qcfg.Units = calibrate.QuantileSeeds(*quantiles), *quantileUnits
		qt, err := calibrate.RunQuantiles(ctx, qcfg)
		if err != nil {
			fmt.Fprintln(stderr, "verity-calibrate:", err)
			return 1
		}
		tally.Merge(qt)
	}
	checks, failed := calibrate.Judge(tally)
	var b bytes.Buffer
	if *onlyQuantiles {
		fmt.Fprintf(&b, "# Calibration results: exact quantiles mode (quantile metrics and percentile-capped means)\n\nProduced by `%s` (%d planted datasets of %d units per experiment, seeds `calibrate.QuantileSeeds(%d)`) in %s.\n\n",
			"go run ./cmd/verity-calibrate "+strings.Join(args, " "), *quantiles, *quantileUnits, *quantiles, time.Since(t0).Round(time.Second))
	} else {
		fmt.Fprintf(&b, "# Calibration results\n\nProduced by `%s` (%d datasets of %d units, %d nights each, seeds `calibrate.FullSeeds(%d)`) in %s.\n\n",
			"go run ./cmd/verity-calibrate "+strings.Join(args, " "), *datasets, *units, *nights, *datasets, time.Since(t0).Round(time.Second))
	}
	if err := calibrate.WriteReport(&b, tally, checks, failed); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stdout.Write(b.Bytes())
	if *write != "" {
		if err := os.WriteFile(*write, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if failed {
		return 70
	}
	return 0
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// shardRun is verity run --shard I/K: it writes partial results under
// --partials and releases nothing.
func shardRun(ctx context.Context, f runFlags, specs []*expspec.Spec, opts pipeline.Options, stdout io.Writer, worst int, errs []error, n int) (int, error) {
	sh, err := pipeline.ParseShard(f.shard)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if f.partials == "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --shard needs --partials DIR, where the shard writes its partial results", expspec.ErrUsage)
	}
	if err := diskio.CheckOutputDir(f.partials, ""); err != nil {
		return pipeline.ExitCode(err), err
	}
	opts.OutDir = f.partials
	if err := opts.Validate(); err != nil {
		return pipeline.ExitConfig, err
	}
	for _, r := range pipeline.RunShard(ctx, specs, opts, sh) {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stdout, "skip   %s  %s\n", r.Label(), r.Skipped)
		case r.Err != nil:
			fmt.Fprintf(stdout, "FAIL   %s (%s)  shard %s  exit %d: %v\n", r.Label(), r.SpecFile, sh, pipeline.ExitCode(r.Err), r.Err)
			worst = worse(worst, pipeline.ExitCode(r.Err))
			errs = append(errs, r.Err)
		default:
			fmt.Fprintf(stdout, "ok     %s  shard %s  partial %s\n", r.Label(), sh, r.Outcome.Dir)
		}
	}
	return summarize(worst, errs, n)
}

// mergeCmd is verity merge: the shards' partials of each spec become its
// release.
func mergeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("merge")
	var f runFlags
	f.register(fs, true)
	shards := fs.Int("shards", 0, "number of shards `K` the partials were written for (verity run --shard I/K, I = 0..K-1)")
	if err := parseFlags(fs, args); err != nil {
		return pipeline.ExitConfig, err
	}
	switch {
	case fs.NArg() == 0:
		return pipeline.ExitConfig, fmt.Errorf("%w: merge needs at least one spec file or folder", expspec.ErrUsage)
	case f.partials == "" || *shards < 1:
		return pipeline.ExitConfig, fmt.Errorf("%w: merge needs --partials DIR and --shards K (K ≥ 1)", expspec.ErrUsage)
	case f.dryRun || f.shard != "":
		return pipeline.ExitConfig, fmt.Errorf("%w: merge takes neither --dry-run nor --shard", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "spec", fs.Args()); err != nil {
		return pipeline.ExitCode(err), err
	}
	if err := diskio.CheckOutputDir(f.out, ""); err != nil {
		return pipeline.ExitCode(err), err
	}
	opts, err := f.options(stderr)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if err := opts.Validate(); err != nil {
		return pipeline.ExitConfig, err
	}
	paths, err := expandSpecs(fs.Args())
	if err != nil {
		return pipeline.ExitConfig, err
	}
	specs, worst, errs := loadSpecs(paths, stdout)
	for _, r := range pipeline.Merge(ctx, specs, opts, f.partials, *shards) {
		var gate *analysis.GateError
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stdout, "skip   %s  %s\n", r.Label(), r.Skipped)
		case errors.As(r.Err, &gate):
			fmt.Fprintf(stdout, "BLOCK  %s  exit %d: %v\n", r.Label(), pipeline.ExitCode(r.Err), r.Err)
		case r.Err != nil:
			fmt.Fprintf(stdout, "FAIL   %s (%s)  exit %d: %v\n", r.Label(), r.SpecFile, pipeline.ExitCode(r.Err), r.Err)
		default:
			fmt.Fprintf(stdout, "ok     %s  %d rows  verdict %s  %s  (merged %s shards)\n", r.Label(), r.Outcome.Rows, r.Outcome.Verdict, r.Outcome.Dir, strconv.Itoa(*shards))
		}
		if r.Err != nil {
			worst = worse(worst, pipeline.ExitCode(r.Err))
			errs = append(errs, r.Err)
		}
	}
	return summarize(worst, errs, len(paths))
}

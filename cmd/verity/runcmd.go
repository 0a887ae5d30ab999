package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// runFlags are the flags shared by run and validate.
type runFlags struct {
	out, date, mem, tmp, qdir, logFormat string
	threads                              int
	dryRun, incremental                  bool
	shard, partials                      string
	host                                 hostFlags
}

// hostFlags are the host configuration of private runs: where the privacy
// ledgers and the restricted records live, and the test-key switch.
type hostFlags struct {
	state, restricted string
	allowTestKey      bool
}

func (h *hostFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.state, "state-dir", envOr("VERITY_STATE_DIR", ""), "host state folder `DIR` with the data sources' privacy ledgers, required for private specs (env VERITY_STATE_DIR; create a ledger with verity ledger init)")
	fs.StringVar(&h.restricted, "restricted-dir", envOr("VERITY_RESTRICTED_DIR", ""), "folder `DIR` where private runs keep their exact operational record, never inside --out (env VERITY_RESTRICTED_DIR; default STATE/restricted)")
	fs.BoolVar(&h.allowTestKey, "allow-test-key", false, "accept the committed TEST-ONLY noise key (tests and demos: its noise protects nothing)")
}

func (h hostFlags) host() ledgers.Host {
	return ledgers.Host{StateDir: h.state, RestrictedDir: h.restricted, AllowTestKey: h.allowTestKey}
}

func (f *runFlags) register(fs *flag.FlagSet, withRun bool) {
	fs.StringVar(&f.date, "date", "", "nominal date `YYYY-MM-DD`: analyse each window up to the end of that day, and read no partition dt= after it (default: each spec's whole window)")
	fs.IntVar(&f.threads, "threads", 0, "DuckDB worker threads `N` (0: all cores); results do not depend on it")
	fs.StringVar(&f.mem, "memory-limit", envOr("VERITY_MEMORY_LIMIT", ""), "DuckDB memory limit `SIZE` such as 4GB (env VERITY_MEMORY_LIMIT)")
	fs.StringVar(&f.tmp, "temp-dir", envOr("VERITY_TEMP_DIR", ""), "DuckDB spill folder `DIR` (env VERITY_TEMP_DIR)")
	fs.StringVar(&f.qdir, "queries-dir", "", "use the templates in folder `DIR` instead of the embedded ones (development)")
	fs.StringVar(&f.logFormat, "log", "auto", "`FORMAT` of the logs on stderr: json, text, none, or auto (progress lines on a terminal, json otherwise)")
	f.host.register(fs)
	if withRun {
		fs.StringVar(&f.out, "out", envOr("VERITY_OUT", "runs"), "output folder `DIR`; results go to DIR/<experiment>/<date>/ (env VERITY_OUT)")
		fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (experiments, inputs, templates, settings) and write nothing")
		fs.BoolVar(&f.incremental, "incremental", false, "keep a state in --state-dir and read only the partitions new since the stored night, when the state accounts for the rest exactly; otherwise run in full and log why (outputs are a full run's, byte for byte)")
		fs.StringVar(&f.shard, "shard", "", "run only shard `I/K` of the units (0 ≤ I < K) and write its partial result under --partials; verity merge releases")
		fs.StringVar(&f.partials, "partials", envOr("VERITY_PARTIALS", ""), "with --shard (run) or merge: folder `DIR` of the shards' partial results (exact values: keep it like the restricted area; env VERITY_PARTIALS)")
	}
}

func (f *runFlags) options(stderr io.Writer) (pipeline.Options, error) {
	opts := pipeline.Options{
		OutDir: f.out,
		Date:   f.date,
		Engine: engine.Engine{Threads: f.threads, MemoryLimit: f.mem, TempDir: f.tmp},
		Build:  publish.CurrentBuild(),
		Host:   f.host.host(),

		Incremental: f.incremental,
	}
	if f.incremental && opts.Host.StateDir == "" {
		// Asked for, it could never happen: say so now instead of running
		// every night in full behind an info line.
		return opts, fmt.Errorf("%w: --incremental keeps its state in the host's state folder; give --state-dir DIR (or VERITY_STATE_DIR)", expspec.ErrUsage)
	}
	if f.qdir != "" {
		opts.Queries = os.DirFS(f.qdir)
	}
	switch f.logFormat {
	case "json":
		opts.Logger = slog.New(slog.NewJSONHandler(stderr, nil))
	case "text":
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	case "none":
		opts.Logger = slog.New(slog.DiscardHandler)
	case "auto":
		if isTerminal(stderr) {
			opts.Logger = slog.New(&progressHandler{w: stderr})
		} else {
			opts.Logger = slog.New(slog.NewJSONHandler(stderr, nil))
		}
	default:
		return opts, fmt.Errorf("%w: --log wants json, text, none or auto, got %q", expspec.ErrUsage, f.logFormat)
	}
	return opts, nil
}

// isTerminal reports whether w is a character device (an interactive
// terminal), where a progress display helps a person; elsewhere logs are
// for machines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// expandSpecs turns the command line's specs and folders into spec paths:
// a folder contributes its *.yaml and *.yml files in name order.
func expandSpecs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(a, pat))
			found = append(found, m...)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: folder %s has no *.yaml spec", expspec.ErrUsage, a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// loadSpecs loads every spec; a spec that fails to load is reported and
// counted, and the others go on.
func loadSpecs(paths []string, stdout io.Writer) ([]*expspec.Spec, int, []error) {
	var specs []*expspec.Spec
	worst := 0
	var errs []error
	for _, p := range paths {
		s, err := expspec.LoadSpec(p)
		if err != nil {
			code := pipeline.ExitCode(err)
			fmt.Fprintf(stdout, "FAIL   %s  exit %d: %v\n", p, code, err)
			worst = worse(worst, code)
			errs = append(errs, err)
			continue
		}
		specs = append(specs, s)
	}
	return specs, worst, errs
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("run")
	var f runFlags
	f.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return pipeline.ExitConfig, err
	}
	if fs.NArg() == 0 {
		return pipeline.ExitConfig, fmt.Errorf("%w: run needs at least one spec file or folder", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "spec", fs.Args()); err != nil {
		return pipeline.ExitCode(err), err
	}
	if f.shard == "" && flagSet(fs, "partials") {
		return pipeline.ExitConfig, fmt.Errorf("%w: --partials is for a shard (--shard I/K); verity merge releases the partials", expspec.ErrUsage)
	}
	// VERITY_PARTIALS in the environment (a cluster's worker config) is a
	// default for shards and merges only; a plain run ignores it.
	if !f.dryRun && f.shard == "" {
		// An --out that can never hold the results fails once, up front,
		// with exit 73, rather than once per spec after the analysis.
		if err := diskio.CheckOutputDir(f.out, ""); err != nil {
			return pipeline.ExitCode(err), err
		}
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
	if f.dryRun {
		return planReport(ctx, specs, opts, stdout, worst, errs, true)
	}
	if f.shard != "" {
		return shardRun(ctx, f, specs, opts, stdout, worst, errs, len(paths))
	}
	for _, r := range pipeline.RunAll(ctx, specs, opts) {
		var gate *analysis.GateError
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stdout, "skip   %s  %s\n", r.Label(), r.Skipped)
		case errors.As(r.Err, &gate):
			fmt.Fprintf(stdout, "BLOCK  %s  exit %d: %v\n", r.Label(), pipeline.ExitCode(r.Err), r.Err)
		case r.Err != nil:
			fmt.Fprintf(stdout, "FAIL   %s (%s)  exit %d: %v\n", r.Label(), r.SpecFile, pipeline.ExitCode(r.Err), r.Err)
		default:
			fmt.Fprintf(stdout, "ok     %s  %d rows  verdict %s  %s\n", r.Label(), r.Outcome.Rows, r.Outcome.Verdict, r.Outcome.Dir)
		}
		if r.Err != nil {
			worst = worse(worst, pipeline.ExitCode(r.Err))
			errs = append(errs, r.Err)
		}
	}
	return summarize(worst, errs, len(paths))
}

func summarize(worst int, errs []error, n int) (int, error) {
	switch len(errs) {
	case 0:
		return worst, nil
	case 1:
		return worst, errs[0]
	default:
		return worst, fmt.Errorf("%d of %d specs failed (see the summary above)", len(errs), n)
	}
}

func validateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("validate")
	var f runFlags
	f.register(fs, false)
	data := fs.Bool("data", false, "also check the spec against the data: every metric's event must have rows in the window (what a run's metric_event_missing check requires); writes nothing")
	if err := parseFlags(fs, args); err != nil {
		return pipeline.ExitConfig, err
	}
	if fs.NArg() == 0 {
		return pipeline.ExitConfig, fmt.Errorf("%w: validate needs at least one spec file or folder", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "spec", fs.Args()); err != nil {
		return pipeline.ExitCode(err), err
	}
	f.out = "."
	opts, err := f.options(stderr)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	paths, err := expandSpecs(fs.Args())
	if err != nil {
		return pipeline.ExitConfig, err
	}
	specs, worst, errs := loadSpecs(paths, stdout)
	if *data {
		return dataReport(ctx, specs, opts, stdout, worst, errs)
	}
	return planReport(ctx, specs, opts, stdout, worst, errs, false)
}

// dataReport prints each spec's outcome of validate --data.
func dataReport(ctx context.Context, specs []*expspec.Spec, opts pipeline.Options, stdout io.Writer, worst int, errs []error) (int, error) {
	_, results := pipeline.CheckData(ctx, specs, opts)
	for _, r := range results {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stdout, "skip   %s  %s\n", r.Label(), r.Skipped)
		case r.Err != nil:
			code := pipeline.ExitCode(r.Err)
			fmt.Fprintf(stdout, "FAIL   %s (%s)  exit %d: %v\n", r.Label(), r.SpecFile, code, r.Err)
			worst = worse(worst, code)
			errs = append(errs, r.Err)
		case len(r.Warnings) > 0:
			fmt.Fprintf(stdout, "warn   %s  %s\n", r.Label(), strings.Join(r.Warnings, "; "))
		default:
			fmt.Fprintf(stdout, "ok     %s  valid: spec, key, inputs, schemas and every metric event present in the window\n", r.Label())
		}
	}
	return summarize(worst, errs, len(results))
}

// planReport prints each spec's validation outcome and, with details, the
// plan: which experiments share a pass, the inputs, templates and settings.
func planReport(ctx context.Context, specs []*expspec.Spec, opts pipeline.Options, stdout io.Writer, worst int, errs []error, details bool) (int, error) {
	plan, results := pipeline.Plan(ctx, specs, opts)
	for _, r := range results {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stdout, "skip   %s  %s\n", r.Label(), r.Skipped)
		case r.Err != nil:
			code := pipeline.ExitCode(r.Err)
			fmt.Fprintf(stdout, "FAIL   %s (%s)  exit %d: %v\n", r.Label(), r.SpecFile, code, r.Err)
			worst = worse(worst, code)
			errs = append(errs, r.Err)
		default:
			fmt.Fprintf(stdout, "ok     %s  valid: spec, key, inputs and schemas\n", r.Label())
		}
	}
	if details {
		fmt.Fprintf(stdout, "\nplan: %d shared pass(es); threads %d, memory limit %q, temp dir %q, out %s\n", len(plan), opts.Engine.Threads, opts.Engine.MemoryLimit, opts.Engine.TempDir, opts.OutDir)
		for i, g := range plan {
			var bytes, rows int64
			for _, in := range g.Inputs {
				bytes += in.Size
				rows += in.Rows
			}
			fmt.Fprintf(stdout, "pass %d: experiments %s\n", i+1, strings.Join(g.Experiments, ", "))
			if g.Private {
				// A private spec's sizes, rows and hashes are restricted.
				fmt.Fprintf(stdout, "  inputs: %d files (private: sizes, rows and hashes are not shown)\n", len(g.Inputs))
			} else {
				fmt.Fprintf(stdout, "  inputs: %d files, %d bytes, %d rows\n", len(g.Inputs), bytes, rows)
				for _, in := range g.Inputs {
					fmt.Fprintf(stdout, "    %-6s %s  %d rows  sha256 %.12s\n", in.Role, in.Path, in.Rows, in.SHA256)
				}
			}
			fmt.Fprintf(stdout, "  templates:")
			for _, t := range g.Templates {
				fmt.Fprintf(stdout, " %s@%s(%.12s)", t.Name, t.Version, t.SHA256)
			}
			fmt.Fprintf(stdout, "\n  duckdb %s;", g.DuckDB.Version)
			for _, s := range append(append([]engine.Setting{}, g.DuckDB.Settings...), g.Execution...) {
				fmt.Fprintf(stdout, " %s=%s", s.Name, s.Value)
			}
			fmt.Fprintln(stdout)
		}
	}
	return summarize(worst, errs, len(results))
}

// progressHandler shows a run's progress on an interactive terminal: one
// short line per finished phase, commit and failure, and for the shared
// SQL pass one per statement started and finished ("3/16 events@v5 1/2")
// and DuckDB's percentage of a long statement.
type progressHandler struct {
	w     io.Writer
	attrs []slog.Attr
}

func (h *progressHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *progressHandler) Handle(_ context.Context, r slog.Record) error {
	vals := map[string]string{}
	for _, a := range h.attrs {
		vals[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		vals[a.Key] = a.Value.String()
		return true
	})
	exp := vals["experiment"]
	if exp == "" { // a shared SQL pass: the experiments it serves
		exp = strings.Trim(vals["experiments"], "[]")
	}
	line := fmt.Sprintf("▸ %-24s %-16s", exp, vals["phase"])
	switch {
	case r.Message == "sql pass": // a private pass: its statements, announced once
		line += " " + vals["of"] + " statements"
	case vals["step"] != "":
		if vals["stage"] != "" { // an incremental night's own statements: no total
			line += fmt.Sprintf(" %s, step %s: %s", vals["stage"], vals["step"], strings.TrimPrefix(vals["statement"], "sql "))
		} else {
			line += fmt.Sprintf(" %s/%s %s", vals["step"], vals["of"], strings.TrimPrefix(vals["statement"], "sql "))
		}
		switch {
		case vals["percent"] != "" && vals["statement_left_s"] != "":
			line += fmt.Sprintf(" %s%% (about %s s left in it)", vals["percent"], vals["statement_left_s"])
		case vals["percent"] != "":
			line += fmt.Sprintf(" %s%%", vals["percent"])
		case vals["ms"] != "":
			line += " done in " + vals["ms"] + " ms"
		case vals["estimate_s"] != "":
			line += fmt.Sprintf(" (about %s s left in the pass, from the previous night)", vals["estimate_s"])
		}
	case vals["ms"] != "":
		line += " " + vals["ms"] + " ms"
	case vals["error"] != "":
		line += " FAILED: " + vals["error"]
	default:
		line += " " + r.Message
		if d := vals["dir"]; d != "" {
			line += " → " + d
		}
	}
	_, err := fmt.Fprintln(h.w, line)
	return err
}

func (h *progressHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &progressHandler{w: h.w, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *progressHandler) WithGroup(string) slog.Handler { return h }

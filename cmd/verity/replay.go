package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
)

// replayCmd is `verity replay`, in three modes:
//
//	verity replay [--pin NAME=vN]... [--inputs-dir DIR] [--out DIR] MANIFEST
//	verity replay --against SNAPSHOT.csv [--tol COLUMN=abs:X|rel:X|exact]... MANIFEST
//	verity replay --export-snapshot FILE [--columns C,C,...] MANIFEST
//
// MANIFEST is a run's manifest.json or its folder.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("replay", stderr)
	inputsDir := fs.String("inputs-dir", "", "folder the manifest's input paths are relative to (default: the folder of the run's spec file)")
	var pins pinFlag
	fs.Var(&pins, "pin", "override a template version, `NAME=vN` (repeatable), e.g. unit_metrics=v3")
	out := fs.String("out", "", "keep the rerun's outputs under this root (default: a temporary folder, removed)")
	threads := fs.Int("threads", 0, "DuckDB worker threads (0: all cores); results do not depend on it")
	mem := fs.String("memory-limit", envOr("VERITY_MEMORY_LIMIT", ""), "DuckDB memory limit such as 4GB (env VERITY_MEMORY_LIMIT)")
	tmp := fs.String("temp-dir", envOr("VERITY_TEMP_DIR", ""), "DuckDB spill folder (env VERITY_TEMP_DIR)")
	qdir := fs.String("queries-dir", "", "use the templates in this folder instead of the embedded ones (development)")
	maxDiffs := fs.Int("max-diffs", 200, "list at most this many differing numbers")
	logFormat := fs.String("log", "json", "log format of the rerun: json or none")
	against := fs.String("against", "", "compare the run's results.csv with this snapshot CSV instead of rerunning")
	tols := tolFlag{t: pipeline.Tolerances{Default: pipeline.DefaultTolerance, PerColumn: map[string]pipeline.Tolerance{}}}
	fs.Var(&tols, "tol", "with --against: tolerance `COLUMN=abs:X|rel:X|exact` (repeatable; COLUMN * sets the default, rel:1e-9)")
	export := fs.String("export-snapshot", "", "write the run's results.csv in the --against snapshot layout to this file (- for stdout) instead of rerunning")
	columns := fs.String("columns", "", "with --export-snapshot: comma-separated results.csv columns (default: every number)")
	var host hostFlags
	host.register(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if len(rest) != 1 {
		return pipeline.ExitConfig, fmt.Errorf("%w: replay needs exactly one manifest.json (or run folder), got %d arguments", pipeline.ErrUsage, len(rest))
	}
	manifest := rest[0]
	if st, err := os.Stat(manifest); err == nil && st.IsDir() {
		manifest = filepath.Join(manifest, "manifest.json")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *against != "" && *export != "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --against and --export-snapshot exclude each other", pipeline.ErrUsage)
	}
	if *against != "" || *export != "" {
		for _, name := range []string{"pin", "inputs-dir", "out", "threads", "memory-limit", "temp-dir", "queries-dir"} {
			if set[name] {
				return pipeline.ExitConfig, fmt.Errorf("%w: --%s applies to a rerun, not to --against or --export-snapshot", pipeline.ErrUsage, name)
			}
		}
	}
	if set["tol"] && *against == "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --tol applies to --against only", pipeline.ErrUsage)
	}
	if set["columns"] && *export == "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --columns applies to --export-snapshot only", pipeline.ErrUsage)
	}

	switch {
	case *against != "":
		rep, err := pipeline.CompareAgainst(manifest, *against, tols.t)
		if rep != nil {
			if werr := rep.WriteText(stdout); werr != nil && err == nil {
				err = werr
			}
		}
		return pipeline.ReplayExitCode(err), err
	case *export != "":
		var cols []string
		if *columns != "" {
			cols = strings.Split(*columns, ",")
		}
		var buf bytes.Buffer
		if err := pipeline.ExportSnapshot(manifest, cols, &buf); err != nil {
			return pipeline.ReplayExitCode(err), err
		}
		if *export == "-" {
			_, err := stdout.Write(buf.Bytes())
			return pipeline.ReplayExitCode(err), err
		}
		if err := writeFileAtomic(*export, buf.Bytes()); err != nil {
			return pipeline.ExitTransient, fmt.Errorf("export snapshot: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", *export)
		return pipeline.ExitOK, nil
	}

	var logger *slog.Logger
	switch *logFormat {
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	case "none":
		logger = slog.New(slog.DiscardHandler)
	default:
		return pipeline.ExitConfig, fmt.Errorf("%w: --log wants json or none, got %q", pipeline.ErrUsage, *logFormat)
	}
	if *maxDiffs < 1 {
		return pipeline.ExitConfig, fmt.Errorf("%w: --max-diffs wants a positive number, got %d", pipeline.ErrUsage, *maxDiffs)
	}
	opts := pipeline.ReplayOptions{
		InputsDir: *inputsDir,
		Pins:      pins.m,
		OutDir:    *out,
		Engine:    pipeline.Engine{Threads: *threads, MemoryLimit: *mem, TempDir: *tmp},
		Logger:    logger,
		Build:     pipeline.CurrentBuild(),
		MaxDiffs:  *maxDiffs,
		Host:      host.host(),
	}
	if *qdir != "" {
		opts.Queries = os.DirFS(*qdir)
	}
	rep, err := pipeline.Replay(ctx, manifest, opts)
	if rep != nil {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return pipeline.ReplayExitCode(err), err
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (verity replay runs/x/manifest.json --pin a=v2).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		args = fs.Args()
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// pinFlag collects --pin NAME=vN.
type pinFlag struct{ m map[string]string }

func (p *pinFlag) String() string {
	if p == nil || p.m == nil {
		return ""
	}
	var s []string
	for k, v := range p.m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (p *pinFlag) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	if !ok || name == "" || v == "" {
		return fmt.Errorf("want NAME=vN, such as unit_metrics=v3, got %q", s)
	}
	if p.m == nil {
		p.m = map[string]string{}
	}
	if prev, dup := p.m[name]; dup && prev != v {
		return fmt.Errorf("template %s pinned twice (%s and %s)", name, prev, v)
	}
	p.m[name] = v
	return nil
}

// tolFlag collects --tol COLUMN=KIND:X.
type tolFlag struct{ t pipeline.Tolerances }

func (f *tolFlag) String() string { return "" }

func (f *tolFlag) Set(s string) error {
	col, tol, err := pipeline.ParseTolerance(s)
	if err != nil {
		return err
	}
	if col == "*" {
		f.t.Default = tol
		return nil
	}
	f.t.PerColumn[col] = tol
	return nil
}

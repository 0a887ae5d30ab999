package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// replayCmd is `verity replay`, in three modes:
//
//	verity replay [--pin NAME=vN]... [--inputs-dir DIR] [--out DIR] MANIFEST
//	verity replay --against SNAPSHOT.csv [--tol COLUMN=abs:X|rel:X|exact]... MANIFEST
//	verity replay --export-snapshot FILE [--columns C,C,...] MANIFEST
//
// MANIFEST is a run's manifest.json or its folder.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("replay")
	inputsDir := fs.String("inputs-dir", "", "folder `DIR` the manifest's input paths are relative to (default: the folder of the run's spec file)")
	var pins pinFlag
	fs.Var(&pins, "pin", "override a template version or a library metric's version, `NAME=vN` (repeatable), e.g. unit_metrics=v3 or metric:revenue=v3")
	out := fs.String("out", "", "keep the rerun's outputs under root `DIR` (default: a temporary folder, removed)")
	threads := fs.Int("threads", 0, "DuckDB worker threads `N` (0: all cores); results do not depend on it")
	mem := fs.String("memory-limit", envOr("VERITY_MEMORY_LIMIT", ""), "DuckDB memory limit `SIZE` such as 4GB (env VERITY_MEMORY_LIMIT)")
	tmp := fs.String("temp-dir", envOr("VERITY_TEMP_DIR", ""), "DuckDB spill folder `DIR` (env VERITY_TEMP_DIR)")
	qdir := fs.String("queries-dir", "", "use the templates in folder `DIR` instead of the embedded ones (development)")
	maxDiffs := fs.Int("max-diffs", 200, "list at most `N` differing numbers")
	logFormat := fs.String("log", "json", "log `FORMAT` of the rerun: json or none")
	against := fs.String("against", "", "compare the run's results.csv with the snapshot CSV `FILE` instead of rerunning")
	tols := tolFlag{t: replay.Tolerances{Default: replay.DefaultTolerance, PerColumn: map[string]replay.Tolerance{}}}
	fs.Var(&tols, "tol", "with --against: tolerance `COLUMN=abs:X|rel:X|exact` (repeatable; COLUMN * sets the default, rel:1e-9)")
	export := fs.String("export-snapshot", "", "write the run's results.csv in the --against snapshot layout to `FILE` (- for stdout) instead of rerunning")
	columns := fs.String("columns", "", "with --export-snapshot: comma-separated results.csv columns (default: every number)")
	var host hostFlags
	host.register(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if len(rest) != 1 {
		return pipeline.ExitConfig, fmt.Errorf("%w: replay needs exactly one manifest.json (or run folder), got %d arguments", expspec.ErrUsage, len(rest))
	}
	if err := checkLocalPaths(fs, "manifest", rest); err != nil {
		return pipeline.ExitCode(err), err
	}
	manifest, err := manifestArg(rest[0])
	if err != nil {
		return pipeline.ExitCode(err), err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *against != "" && *export != "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --against and --export-snapshot exclude each other", expspec.ErrUsage)
	}
	if *against != "" || *export != "" {
		for _, name := range []string{"pin", "inputs-dir", "out", "threads", "memory-limit", "temp-dir", "queries-dir"} {
			if set[name] {
				return pipeline.ExitConfig, fmt.Errorf("%w: --%s applies to a rerun, not to --against or --export-snapshot", expspec.ErrUsage, name)
			}
		}
	}
	if set["tol"] && *against == "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --tol applies to --against only", expspec.ErrUsage)
	}
	if set["columns"] && *export == "" {
		return pipeline.ExitConfig, fmt.Errorf("%w: --columns applies to --export-snapshot only", expspec.ErrUsage)
	}

	switch {
	case *against != "":
		rep, err := replay.CompareAgainst(manifest, *against, tols.t)
		if rep != nil {
			if werr := rep.WriteText(stdout); werr != nil && err == nil {
				err = werr
			}
		}
		return replay.ReplayExitCode(err), err
	case *export != "":
		var cols []string
		if *columns != "" {
			cols = strings.Split(*columns, ",")
		}
		var buf bytes.Buffer
		if err := replay.ExportSnapshot(manifest, cols, &buf); err != nil {
			return replay.ReplayExitCode(err), err
		}
		if *export == "-" {
			_, err := stdout.Write(buf.Bytes())
			return replay.ReplayExitCode(err), err
		}
		if err := writeFileAtomic(*export, buf.Bytes()); err != nil {
			err = diskio.OutputFileError(*export, "--export-snapshot", err)
			return pipeline.ExitCode(err), err
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
		return pipeline.ExitConfig, fmt.Errorf("%w: --log wants json or none, got %q", expspec.ErrUsage, *logFormat)
	}
	if *out != "" {
		if err := diskio.CheckOutputDir(*out, ""); err != nil {
			return pipeline.ExitCode(err), err
		}
	}
	if *maxDiffs < 1 {
		return pipeline.ExitConfig, fmt.Errorf("%w: --max-diffs wants a positive number, got %d", expspec.ErrUsage, *maxDiffs)
	}
	opts := replay.ReplayOptions{
		InputsDir: *inputsDir,
		Pins:      pins.m,
		OutDir:    *out,
		Engine:    engine.Engine{Threads: *threads, MemoryLimit: *mem, TempDir: *tmp},
		Logger:    logger,
		Build:     publish.CurrentBuild(),
		MaxDiffs:  *maxDiffs,
		Host:      host.host(),
	}
	if *qdir != "" {
		opts.Queries = os.DirFS(*qdir)
	}
	rep, err := replay.Replay(ctx, manifest, opts)
	if rep != nil {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return replay.ReplayExitCode(err), err
}

// manifestArg resolves the manifest a command was pointed at: a
// manifest.json, or a run folder OUT/<experiment>/<date> holding one. An
// experiment folder (or an output root) holds runs but is not one: it is a
// usage error (exit 78) naming the folder and the runs found in it, so that
// the caller can pick a date.
func manifestArg(arg string) (string, error) {
	st, err := os.Stat(arg)
	if err != nil || !st.IsDir() {
		return arg, nil
	}
	manifest := filepath.Join(arg, "manifest.json")
	if _, err := os.Lstat(manifest); !errors.Is(err, fs.ErrNotExist) {
		return manifest, nil
	}
	runs := runsBelow(arg)
	if len(runs) == 0 {
		return manifest, nil // replay reports the missing manifest (exit 66)
	}
	what, list := "an output folder with the runs", runs
	if !strings.Contains(runs[0], "/") {
		what = "an experiment folder with runs for the dates"
	}
	const most = 12
	if len(list) > most {
		list = append(append([]string{}, list[:most/2]...), append([]string{fmt.Sprintf("… (%d more)", len(runs)-most)}, list[len(list)-most/2:]...)...)
	}
	return "", fmt.Errorf("%w: %s is not a run folder (it has no manifest.json) but %s %s; name one run, such as %s",
		expspec.ErrUsage, arg, what, strings.Join(list, ", "), filepath.Join(arg, filepath.FromSlash(runs[len(runs)-1])))
}

// runsBelow lists the completed runs in dir: the date folders
// (YYYY-MM-DD) holding a manifest.json directly below it, or, when there
// are none, those one level further down (<experiment>/<date>), sorted.
func runsBelow(dir string) []string {
	dates := func(d, prefix string) []string {
		entries, _ := os.ReadDir(d)
		var out []string
		for _, e := range entries {
			if _, err := time.Parse(time.DateOnly, e.Name()); err != nil || !e.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, e.Name(), "manifest.json")); err == nil {
				out = append(out, prefix+e.Name())
			}
		}
		return out
	}
	if runs := dates(dir, ""); len(runs) > 0 {
		return runs
	}
	var runs []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			runs = append(runs, dates(filepath.Join(dir, e.Name()), e.Name()+"/")...)
		}
	}
	sort.Strings(runs)
	return runs
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
type tolFlag struct{ t replay.Tolerances }

func (f *tolFlag) String() string { return "" }

func (f *tolFlag) Set(s string) error {
	col, tol, err := replay.ParseTolerance(s)
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

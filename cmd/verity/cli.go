package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/queries"
)

const usage = `usage: verity <command> [flags] [args]

commands:
  run          analyse specs and write results:   verity run [--out DIR] [--date YYYY-MM-DD] [--log FORMAT] [...] SPEC|DIR...
               one shard of a sharded run:        verity run --shard I/K --partials DIR [...] SPEC|DIR...
  merge        merge the shards and release:      verity merge --shards K --partials DIR [--out DIR] [...] SPEC|DIR...
  validate     check specs and inputs, run nothing: verity validate [--date YYYY-MM-DD] [--data] SPEC|DIR...
  replay       rerun a past run and compare:      verity replay [--pin NAME=vN|metric:NAME=vN]... [--inputs-dir DIR] [--out DIR] MANIFEST|RUN_DIR
               compare with a snapshot:           verity replay --against FILE [--tol COLUMN=abs:X|rel:X|exact]... MANIFEST|RUN_DIR
               export a snapshot:                 verity replay --export-snapshot FILE [--columns C,...] MANIFEST|RUN_DIR
  gen          synthetic traces with truth:       verity gen --out DIR [--config FILE] [--units N] [--seed N] [...]
  check-truth  check a run against truth:         verity check-truth --truth truth.json RUN...
  plan         sample size and duration:          verity plan --pre-start YYYY-MM-DD --pre-end YYYY-MM-DD [--json] SPEC
  queries      check or release SQL templates:    verity queries verify|lock|list [--dir DIR]
  metrics      release metric definitions:        verity metrics lock --dir LIBRARY
  ledger       the host's privacy ledgers:        verity ledger init --state-dir DIR --source NAME --root DATA_DIR --epsilon E --delta D [...]
                                                  verity ledger show --state-dir DIR
  version      print the build and DuckDB versions
  help         this list; verity help COMMAND (or verity COMMAND -h) shows a command's usage, flags and examples

examples:
  verity run --date 2026-11-20 --out runs/ specs/
  verity run -h
`

// run executes one command line and returns the process exit code and the
// error to print. Only main prints it and exits.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	code, err := dispatch(ctx, args, stdout, stderr)
	if h, ok := isHelp(err); ok {
		fmt.Fprint(stdout, h.text)
		return pipeline.ExitOK, nil
	}
	return code, err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return pipeline.ExitConfig, errors.New("no command given")
	}
	var err error
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "merge":
		return mergeCmd(ctx, args[1:], stdout, stderr)
	case "validate":
		return validateCmd(ctx, args[1:], stdout, stderr)
	case "replay":
		return replayCmd(ctx, args[1:], stdout, stderr)
	case "gen":
		return genCmd(ctx, args[1:], stdout, stderr)
	case "check-truth":
		return checkTruthCmd(ctx, args[1:], stdout, stderr)
	case "plan":
		return planCmd(ctx, args[1:], stdout, stderr)
	case "queries":
		err = queriesCmd(args[1:], stdout, stderr)
	case "ledger":
		err = ledgerCmd(args[1:], stdout, stderr)
	case "metrics":
		err = metricsCmd(args[1:], stdout)
	case "version":
		err = versionCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && !isHelpArg(args[1]) {
			// verity help COMMAND [SUBCOMMAND]: that command's help.
			return dispatch(ctx, append(append([]string{}, args[1:]...), "-h"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return pipeline.ExitOK, nil
	default:
		fmt.Fprint(stderr, usage)
		return pipeline.ExitConfig, fmt.Errorf("unknown command %q", args[0])
	}
	return pipeline.ExitCode(err), err
}

// newFlags returns a flag set that reports errors instead of exiting and
// prints nothing itself: parseFlags turns -h into the command's help (see
// help.go) and a bad flag into a usage error that main prints once.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequested{text: helpFor(fs.Name(), fs)}
		}
		return fmt.Errorf("%w: %v (verity %s -h lists the flags)", expspec.ErrUsage, err, fs.Name())
	}
	return nil
}

// flagSet reports whether the flag name was given on the command line (not
// taken from its environment default).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// worse returns the more severe of two exit codes: any failure beats
// success; among failures the configuration and data errors beat a
// transient one, which only asks for a retry.
func worse(a, b int) int {
	rank := func(c int) int {
		switch c {
		case 0:
			return 0
		case pipeline.ExitTransient:
			return 1
		case pipeline.ExitNoInput:
			return 2
		case pipeline.ExitData:
			return 3
		case pipeline.ExitMismatch:
			return 4
		default:
			return 5
		}
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func queriesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: queries needs verify, lock or list (verity queries -h)", expspec.ErrUsage)
	}
	sub := args[0]
	if isHelpArg(sub) {
		return &helpRequested{text: helpFor("queries", nil)}
	}
	switch sub {
	case "verify", "list", "lock":
	default:
		return fmt.Errorf("%w: queries needs verify, lock or list, got %q (verity queries -h)", expspec.ErrUsage, sub)
	}
	fs := newFlags("queries " + sub)
	dir := fs.String("dir", "", "template folder (default: the templates embedded in this binary; lock needs a folder)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := checkLocalPaths(fs, "", nil); err != nil {
		return err
	}
	fsys := queries.FS()
	if *dir != "" {
		fsys = os.DirFS(*dir)
	}
	switch sub {
	case "verify":
		st, err := queries.Verify(fsys)
		if err != nil {
			return err
		}
		lock, err := queries.ReadLock(fsys)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ok: %d released templates match queries.lock (digest %s)\n", len(st), lock.Digest)
		return nil
	case "list":
		st, err := queries.Verify(fsys)
		if err != nil {
			return err
		}
		for _, s := range st {
			fmt.Fprintf(stdout, "%-28s %s\n", s.Path, s.SHA256)
		}
		return nil
	case "lock":
		if *dir == "" {
			return fmt.Errorf("%w: queries lock writes a file and needs --dir (the repository's queries folder)", expspec.ErrUsage)
		}
		lock, added, err := queries.Relock(fsys)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(*dir, queries.LockFile), lock.Marshal()); err != nil {
			return err
		}
		if len(added) == 0 {
			fmt.Fprintln(stdout, "queries.lock is up to date")
		} else {
			fmt.Fprintf(stdout, "released %s\n", strings.Join(added, ", "))
		}
		return nil
	default:
		return fmt.Errorf("%w: queries needs verify, lock or list, got %q", expspec.ErrUsage, sub)
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func versionCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b := publish.CurrentBuild()
	v, err := engine.DuckDBVersion(ctx)
	if err != nil {
		return err
	}
	modified := ""
	if b.Modified {
		modified = " (modified)"
	}
	exe := b.ExecutableSHA256
	if exe == "" {
		exe = "unknown (the executable could not be read)"
	}
	fmt.Fprintf(stdout, "verity %s revision %s%s\nexecutable sha256 %s\n%s %s/%s\nduckdb %s\n", b.Version, b.Revision, modified, exe, b.GoVersion, b.GOOS, b.GOARCH, v)
	return nil
}

// pathFlags are the flags whose values are local paths.
var pathFlags = map[string]bool{
	"out": true, "temp-dir": true, "state-dir": true, "restricted-dir": true, "queries-dir": true,
	"inputs-dir": true, "against": true, "export-snapshot": true, "config": true, "truth": true,
	"root": true, "import": true, "key-file": true, "dir": true,
}

// checkLocalPaths refuses a URL (s3://, gs://, https://, ...) given as a
// path: in a path flag of fs (set, or defaulted from the environment) or
// among the positional arguments, which are named what. Verity reads and
// writes local files only; without this, a URL would be looked up as a
// local file and reported missing (exit 66, "data not landed yet").
func checkLocalPaths(fs *flag.FlagSet, what string, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || !pathFlags[f.Name] {
			return
		}
		values := []string{f.Value.String()}
		if m, ok := f.Value.(*multiFlag); ok {
			values = *m
		}
		for _, v := range values {
			if e := diskio.CheckLocalPath("--"+f.Name, v); e != nil {
				err = e
				return
			}
		}
	})
	if err != nil {
		return err
	}
	for _, a := range args {
		if e := diskio.CheckLocalPath(what, a); e != nil {
			return e
		}
	}
	return nil
}

// metricsCmd releases a metric library's new definition files.
func metricsCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || isHelpArg(args[0]) {
		if len(args) == 0 {
			return fmt.Errorf("%w: metrics needs lock (verity metrics -h)", expspec.ErrUsage)
		}
		return &helpRequested{text: helpFor("metrics", nil)}
	}
	if args[0] != "lock" {
		return fmt.Errorf("%w: metrics needs lock, got %q (verity metrics -h)", expspec.ErrUsage, args[0])
	}
	fs := newFlags("metrics lock")
	dir := fs.String("dir", "", "the metric library `DIR` (holding <name>/v<N>.yaml and metrics.lock)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: metrics lock needs --dir LIBRARY and no arguments", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "", nil); err != nil {
		return err
	}
	added, err := expspec.LockMetricLibrary(*dir)
	if err != nil {
		return err
	}
	if len(added) == 0 {
		fmt.Fprintln(stdout, expspec.MetricLockFile+" is up to date")
	} else {
		fmt.Fprintf(stdout, "released %s\n", strings.Join(added, ", "))
	}
	return nil
}

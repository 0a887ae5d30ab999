package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/verity-analytics/verity/fixtures"
)

// prepareCmdName is the hidden subcommand that generates a dataset and, for
// the sorted template set, writes the sorted copy of its events: the heavy
// preparation runs in its own process so that the bench, which starts
// every measured program, never grows to the size of the data it writes
// (a 10M sorted copy took the bench to 4.9 GiB). measure does not depend on
// it (its launcher isolates each measured program), but a bench that stays
// small also leaves the machine's memory to the programs it measures.
const prepareCmdName = "_prepare"

// prepareCmd is `verity-bench _prepare --cache DIR [--sorted] [--threads N
// --memory-limit SIZE --temp-dir DIR] < config.json`: ensureDataset, then
// ensureSortedEvents when --sorted, logging to stderr.
func prepareCmd(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet(prepareCmdName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cache := fs.String("cache", "", "the bench's cache folder")
	sorted := fs.Bool("sorted", false, "also write the sorted copy of the events (events-sorted/)")
	var e duckConfig
	e.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *cache == "" || fs.NArg() > 0 {
		return exitUsage, errors.New("_prepare: want --cache DIR and the generator config (JSON) on stdin")
	}
	var cfg fixtures.Config
	dec := json.NewDecoder(stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return exitUsage, fmt.Errorf("_prepare: generator config on stdin: %w", err)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	ds, err := ensureDataset(ctx, *cache, cfg, logf)
	if err != nil {
		return exitFailed, err
	}
	if *sorted {
		if err := ensureSortedEvents(ctx, ds.Dir, e, logf); err != nil {
			return exitFailed, err
		}
	}
	return exitOK, nil
}

// prepareInChild runs _prepare for cfg in a child process (this binary),
// passing its log lines to logf as they come, and then returns the dataset
// from the cache, as ensureDataset would have.
func prepareInChild(ctx context.Context, o benchOptions, cfg fixtures.Config, sorted bool, logf func(string, ...any)) (dataset, error) {
	self, err := os.Executable()
	if err != nil {
		return dataset{}, err
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return dataset{}, err
	}
	args := []string{prepareCmdName, "--cache", o.Cache, "--threads", fmt.Sprint(o.Engine.Threads),
		"--memory-limit", o.Engine.MemoryLimit, "--temp-dir", o.Engine.TempDir}
	if sorted {
		args = append(args, "--sorted")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stdin = bytes.NewReader(b)
	lw := &lineWriter{logf: logf}
	cmd.Stdout, cmd.Stderr = lw, lw
	err = cmd.Run()
	lw.flush()
	if err != nil {
		return dataset{}, fmt.Errorf("preparing the data (%s): %w", prepareCmdName, err)
	}
	// The child found the dataset by the hash of the config it decoded; if
	// that were not the bench's hash, the bench would not find it here.
	dir, err := datasetDir(o.Cache, cfg)
	if err != nil {
		return dataset{}, err
	}
	ds, ok, err := cachedDataset(dir)
	if err == nil && !ok {
		err = fmt.Errorf("%s: no dataset in %s after %s (the generator config did not survive JSON?)", prepareCmdName, dir, prepareCmdName)
	}
	return ds, err
}

// lineWriter passes complete lines to logf.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	logf func(string, ...any)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.logf("%s", strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.logf("%s", string(w.buf))
		w.buf = nil
	}
}

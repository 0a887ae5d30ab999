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
	"path/filepath"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
)

// genCmd is `verity gen`: synthetic traces and metric events with planted
// truth. Precedence: flag > --config file > fixtures.DefaultConfig.
//
//	verity gen --out DIR [--config FILE] [fixture flags...]
//
// The --config file is a JSON fixtures.Config (the "config" object of a
// truth.json is one), decoded strictly over the defaults; flags then change
// single fields.
func genCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	cfg, out, err := parseGenArgs(args, stderr)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if err := cfg.Validate(); err != nil {
		return pipeline.ExitConfig, fmt.Errorf("%w: gen: %v", pipeline.ErrUsage, err)
	}
	if err := checkEmptyDir(out); err != nil {
		return pipeline.ExitConfig, err
	}
	t0 := time.Now()
	truth, err := fixtures.Generate(ctx, cfg, out)
	if err != nil {
		if ctx.Err() != nil {
			return pipeline.ExitTransient, fmt.Errorf("gen interrupted: %w", err)
		}
		return pipeline.ExitTransient, fmt.Errorf("gen: %w", err)
	}
	secs := time.Since(t0).Seconds()
	rows := truth.TraceRows + truth.EventRows
	rate := 0.0
	if secs > 0 {
		rate = float64(rows) / secs
	}
	fmt.Fprintf(stdout, "wrote %d rows (%d traces, %d events) for %d units in %d files to %s in %.1fs (%.0f rows/s); truth: %s\n",
		rows, truth.TraceRows, truth.EventRows, cfg.Units, len(truth.Files), out, secs, rate,
		filepath.Join(out, fixtures.TruthFile))
	return pipeline.ExitOK, nil
}

// genFlags is gen's flag set over cfg: --out, --config and one flag per
// generator setting (fixtures.Config.RegisterFlags).
func genFlags(cfg *fixtures.Config, w io.Writer) (fs *flag.FlagSet, out, config *string) {
	fs = newFlags("gen", w)
	out = fs.String("out", "", "output folder (must be empty or not exist)")
	config = fs.String("config", "", "JSON file with a fixtures.Config (fields it omits keep their defaults; flags beat it)")
	cfg.RegisterFlags(fs)
	return fs, out, config
}

// parseGenArgs builds the generator configuration. The arguments are parsed
// twice: once to find --config, then over the configuration read from it,
// so that every flag given beats the file.
func parseGenArgs(args []string, stderr io.Writer) (fixtures.Config, string, error) {
	cfg := fixtures.DefaultConfig()
	fs, out, config := genFlags(&cfg, stderr)
	if err := parseFlags(fs, args); err != nil {
		return fixtures.Config{}, "", err
	}
	if fs.NArg() > 0 {
		return fixtures.Config{}, "", fmt.Errorf("%w: gen takes no arguments, got %q", pipeline.ErrUsage, fs.Args())
	}
	if *out == "" {
		return fixtures.Config{}, "", fmt.Errorf("%w: gen needs --out DIR", pipeline.ErrUsage)
	}
	if *config == "" {
		return cfg, *out, nil
	}
	cfg = fixtures.DefaultConfig()
	if err := readGenConfig(*config, &cfg); err != nil {
		return fixtures.Config{}, "", err
	}
	fs, _, _ = genFlags(&cfg, stderr)
	if err := parseFlags(fs, args); err != nil {
		return fixtures.Config{}, "", err
	}
	return cfg, *out, nil
}

// readGenConfig decodes a JSON configuration strictly over cfg.
func readGenConfig(path string, cfg *fixtures.Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: gen --config: %v", pipeline.ErrUsage, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("%w: gen --config %s: %v", pipeline.ErrUsage, path, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: gen --config %s: more than one JSON value", pipeline.ErrUsage, path)
	}
	return nil
}

// checkEmptyDir refuses an output folder that has files: gen never mixes a
// new dataset with an old one.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: gen --out %s: %v", pipeline.ErrUsage, dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: gen --out %s: folder is not empty", pipeline.ErrUsage, dir)
	}
	return nil
}

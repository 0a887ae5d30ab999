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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
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
	cfg, out, notes, err := parseGenArgs(args)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if err := cfg.Validate(); err != nil {
		return pipeline.ExitConfig, fmt.Errorf("%w: gen: %v", expspec.ErrUsage, err)
	}
	if err := diskio.CheckOutputDir(out, ""); err != nil {
		return pipeline.ExitCode(err), err
	}
	if err := checkEmptyDir(out); err != nil {
		return pipeline.ExitConfig, err
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
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
func genFlags(cfg *fixtures.Config) (fs *flag.FlagSet, out, config *string) {
	fs = newFlags("gen")
	out = fs.String("out", "", "output folder (must be empty or not exist)")
	config = fs.String("config", "", "JSON file with a fixtures.Config (fields it omits keep their defaults; flags beat it)")
	cfg.RegisterFlags(fs)
	return fs, out, config
}

// parseGenArgs builds the generator configuration. The arguments are parsed
// twice: once to find --config, then over the configuration read from it,
// so that every flag given beats the file.
func parseGenArgs(args []string) (fixtures.Config, string, []string, error) {
	cfg := fixtures.DefaultConfig()
	fs, out, config := genFlags(&cfg)
	if err := parseFlags(fs, args); err != nil {
		return fixtures.Config{}, "", nil, err
	}
	if fs.NArg() > 0 {
		return fixtures.Config{}, "", nil, fmt.Errorf("%w: gen takes no arguments, got %q", expspec.ErrUsage, fs.Args())
	}
	if *out == "" {
		return fixtures.Config{}, "", nil, fmt.Errorf("%w: gen needs --out DIR", expspec.ErrUsage)
	}
	if err := checkLocalPaths(fs, "", nil); err != nil {
		return fixtures.Config{}, "", nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *config != "" {
		cfg = fixtures.DefaultConfig()
		keys, err := readGenConfig(*config, &cfg)
		if err != nil {
			return fixtures.Config{}, "", nil, err
		}
		given["experiment"] = given["experiment"] || keys["experiments"]
		given["effect"] = given["effect"] || keys["effects"]
		fs, _, _ = genFlags(&cfg)
		if err := parseFlags(fs, args); err != nil {
			return fixtures.Config{}, "", nil, err
		}
	}
	var notes []string
	if given["experiment"] && !given["effect"] {
		notes = followExperiments(&cfg)
	}
	return cfg, *out, notes, nil
}

// followExperiments moves the default planted effects onto the experiments
// given (by flag or --config) when the effects were not given: the default
// experiments no longer configured are matched, in order, with the
// experiments given that are not default ones, and each effect of a
// default experiment is planted on its match, its j-th non-control variant
// on the match's j-th non-control variant. An effect with no counterpart
// (no matching experiment or variant, or an event or persona the
// configuration lacks) is left out. The notes returned say what was moved
// and what was left out; truth.json records the effects planted.
func followExperiments(cfg *fixtures.Config) []string {
	base := *cfg
	base.Effects = nil
	if base.Validate() != nil {
		return nil // the configuration's own error is reported by Validate
	}
	defaults := fixtures.DefaultConfig()
	configured := func(exps []fixtures.Experiment, id string) (fixtures.Experiment, bool) {
		for _, e := range exps {
			if e.ID == id {
				return e, true
			}
		}
		return fixtures.Experiment{}, false
	}
	var removed, added []fixtures.Experiment
	for _, e := range defaults.Experiments {
		if _, ok := configured(cfg.Experiments, e.ID); !ok {
			removed = append(removed, e)
		}
	}
	for _, e := range cfg.Experiments {
		if _, ok := configured(defaults.Experiments, e.ID); !ok {
			added = append(added, e)
		}
	}
	treatments := func(e fixtures.Experiment) []string {
		var out []string
		for _, v := range e.Variants {
			if v.Name != e.Control {
				out = append(out, v.Name)
			}
		}
		return out
	}
	var kept []fixtures.Effect
	var moved, dropped []string
	for _, f := range cfg.Effects {
		g := f
		if i := slices.IndexFunc(removed, func(e fixtures.Experiment) bool { return e.ID == f.Experiment }); i >= 0 {
			if i >= len(added) {
				dropped = append(dropped, fmt.Sprintf("%s (no experiment given in place of %s)", formatEffect(f), f.Experiment))
				continue
			}
			from, to := treatments(removed[i]), treatments(added[i])
			j := slices.Index(from, f.Variant)
			if j < 0 || j >= len(to) {
				dropped = append(dropped, fmt.Sprintf("%s (%s has no treatment variant in place of %s)", formatEffect(f), added[i].ID, f.Variant))
				continue
			}
			g.Experiment, g.Variant = added[i].ID, to[j]
		}
		trial := base
		trial.Effects = []fixtures.Effect{g}
		if err := trial.Validate(); err != nil {
			dropped = append(dropped, fmt.Sprintf("%s (%v)", formatEffect(g), err))
			continue
		}
		if g != f {
			moved = append(moved, formatEffect(f)+" -> "+formatEffect(g))
		}
		kept = append(kept, g)
	}
	cfg.Effects = kept
	var notes []string
	if len(moved) > 0 {
		notes = append(notes, "default effects planted on the experiments given: "+strings.Join(moved, ", "))
	}
	if len(dropped) > 0 {
		notes = append(notes, "default effects left out: "+strings.Join(dropped, ", "))
	}
	if len(kept) == 0 {
		notes = append(notes, "no planted effects (give them with --effect EXPERIMENT:VARIANT:EVENT:PARAM:rel|abs:SIZE)")
	}
	return notes
}

// formatEffect writes an effect the way --effect reads it.
func formatEffect(e fixtures.Effect) string {
	kind := "abs"
	if e.Relative {
		kind = "rel"
	}
	s := strings.Join([]string{e.Experiment, e.Variant, e.Event, e.Param, kind, strconv.FormatFloat(e.Size, 'g', -1, 64)}, ":")
	if e.Persona != "" {
		s += ":" + e.Persona
	}
	return s
}

// readGenConfig decodes a JSON configuration strictly over cfg and
// returns the top-level keys the file sets.
func readGenConfig(path string, cfg *fixtures.Config) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: gen --config: %v", expspec.ErrUsage, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%w: gen --config %s: %v", expspec.ErrUsage, path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: gen --config %s: more than one JSON value", expspec.ErrUsage, path)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("%w: gen --config %s: %v", expspec.ErrUsage, path, err)
	}
	keys := map[string]bool{}
	for k := range fields {
		keys[k] = true
	}
	return keys, nil
}

// checkEmptyDir refuses an output folder that has files: gen never mixes a
// new dataset with an old one.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: gen --out %s: %v", expspec.ErrUsage, dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: gen --out %s: folder is not empty", expspec.ErrUsage, dir)
	}
	return nil
}

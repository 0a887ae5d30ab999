package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/queries"
)

// protoFS holds SQL prototypes of new template versions. They are measuring
// instruments of this bench, not Verity templates: a change that proves
// itself here is released as a new version under queries/ by the owners of
// the pipeline.
//
//go:embed proto/*.sql
var protoFS embed.FS

// step is one statement of a pipeline variant: a released template
// ("v1") or a prototype file.
type step struct {
	Stage  string // traces, assignment, events, unit_metrics, sufstats, quality
	Source string // "v1" or a file under proto/
}

// variant is a whole pipeline: statements run in order in one session; the
// sufstats and quality steps are queries whose results are compared with
// v1's.
type variant struct {
	Name, Note string
	Steps      []step
}

func v1Steps() []step {
	var s []step
	for _, n := range stageOrder {
		s = append(s, step{n, "v1"})
	}
	return s
}

// with returns steps with some stages replaced; a Source of "" drops the
// stage.
func with(base []step, repl ...step) []step {
	out := slices.Clone(base)
	for _, r := range repl {
		for i := range out {
			if out[i].Stage == r.Stage {
				out[i].Source = r.Source
			}
		}
	}
	return slices.DeleteFunc(out, func(s step) bool { return s.Source == "" })
}

// variants are cumulative: each adds one change to the previous, so that
// the difference between consecutive rows is what that change buys.
func variants() []variant {
	a := v1Steps()
	b := with(a, step{"events", "events_cand.sql"})
	c := with(b, step{"traces", "traces_cand.sql"})
	d := with(c, step{"assignment", "assignment_agg.sql"})
	e := with(d, step{"events", "event_units.sql"}, step{"unit_metrics", ""}, step{"sufstats", "sufstats_fused.sql"}, step{"quality", "quality_fused.sql"})
	var f []step
	for _, st := range e {
		if st.Stage == "events" {
			f = append(f, step{"events", "event_dups.sql"}, step{"events", "event_cand.sql"}, step{"events", "event_units_3scan.sql"})
		} else {
			f = append(f, st)
		}
	}
	var g []step
	for _, st := range f {
		switch st.Source {
		case "assignment_agg.sql":
			g = append(g, step{"assignment", "assignment_keys.sql"})
		case "event_units_3scan.sql":
			g = append(g, step{"events", "event_units_keys.sql"}, step{"events", "event_units_view.sql"})
		default:
			g = append(g, st)
		}
	}
	var h []step
	for _, st := range g {
		switch st.Source {
		case "assignment_keys.sql":
			h = append(h, step{"assignment", "assignment_slots.sql"})
		case "event_units_keys.sql":
			h = append(h, step{"events", "event_units_1join.sql"})
		case "event_units_view.sql":
			h = append(h, step{"events", "event_units_from_g.sql"})
		default:
			h = append(h, st)
		}
	}
	return []variant{
		{"v1", "the released templates, as `verity run` executes them", a},
		{"events-cand", "events: the duplicate window only over rows whose event_id hash repeats", b},
		{"traces-cand", "+ traces: the same for the traces' duplicate window", c},
		{"assignment-agg", "+ assignment: min/max and a struct minimum instead of count(DISTINCT) and an ordered first()", d},
		{"fused", "+ events aggregated per unit in the same pass as the join with the assignment; quality and sufstats from that aggregate; no event_rows or unit_values table", e},
		{"fused-3scan", "+ events in three statements instead of one with a materialized CTE: duplicate hashes from a 2-column scan, the candidate rows classified by the window, then one scan joined and aggregated", f},
		{"compact-keys", "+ the join and the per-unit aggregation on integer keys (experiment number, unit row id) with no string payload; cohort and variant looked up afterwards", g},
		{"one-join", "+ for many experiments: events joined once on unit_id to every experiment's assignment (not once per experiment using the event name); per-event-name and per-unit counts from one grouping-sets aggregation", h},
	}
}

// protoCmd runs pipeline variants on a bench dataset, each in a fresh DuckDB
// session, times every statement, and checks that each variant's sufficient
// statistics and quality counts equal v1's exactly.
//
//	verity-bench proto --data DIR [--variants v1,events-cand,...] [--experiments K]
//	    [--explain DIR] [--threads N] [--memory-limit SIZE] [--temp-dir DIR]
func protoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("proto", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e duckConfig
	e.register(fs)
	data := fs.String("data", "", "a dataset folder (with truth.json) from the bench's cache, or a committed fixture")
	nexp := fs.Int("experiments", 1, "analyse the first K experiments of the dataset in one session (0: all)")
	which := fs.String("variants", "", "comma-separated variants to run (default: all; v1 always runs first, as the reference)")
	explain := fs.String("explain", "", "write DuckDB's JSON profile of each statement into this folder")
	top := fs.Int("top", 3, "operators listed per statement with --explain")
	runs := fs.Int("runs", 1, "rounds over the variants (interleaved); each stage's fastest time is kept")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *data == "" || fs.NArg() > 0 || *runs < 1 {
		return exitUsage, errors.New("proto needs --data DIR, --runs >= 1 and no arguments")
	}
	ds, specs, err := loadBench(*data, *nexp, "v1")
	if err != nil {
		return exitUsage, err
	}
	traces, err := inputFiles(ds, "traces")
	if err != nil {
		return exitFailed, err
	}
	events, err := inputFiles(ds, "events")
	if err != nil {
		return exitFailed, err
	}
	if len(traces) == 0 { // flat layout
		traces, events = []string{filepath.Join(ds.Dir, "traces.parquet")}, []string{filepath.Join(ds.Dir, "events.parquet")}
	}
	all := variants()
	run := all
	if *which != "" {
		run = []variant{all[0]}
		for _, n := range strings.Split(*which, ",") {
			i := slices.IndexFunc(all, func(v variant) bool { return v.Name == n })
			if i < 0 {
				return exitUsage, fmt.Errorf("--variants: no variant %q", n)
			}
			if i > 0 {
				run = append(run, all[i])
			}
		}
	}
	if *explain != "" {
		if err := os.MkdirAll(*explain, 0o755); err != nil {
			return exitFailed, err
		}
	}
	p, err := templateParams(specs, traces, events)
	if err != nil {
		return exitFailed, err
	}
	fmt.Fprintf(stdout, "dataset %s: %d trace rows, %d event rows; experiments %d; threads %d, memory limit %s\n\n",
		ds.Dir, ds.Truth.TraceRows, ds.Truth.EventRows, len(specs), e.Threads, e.MemoryLimit)
	type outcome struct {
		res        [2][][]string
		wall, cpu  map[string]time.Duration
		total, tcp time.Duration
		ops        []string
		err        error // the variant failed (for instance out of memory)
	}
	outs := make([]outcome, len(run))
	for r := 0; r < *runs; r++ {
		for vi, v := range run {
			prev := &outs[vi]
			if prev.err != nil {
				continue
			}
			o, err := runVariant(ctx, e, v, p, *explain, *top)
			if ctx.Err() != nil {
				return exitFailed, ctx.Err()
			}
			if err != nil {
				prev.err = err
				continue
			}
			if r == 0 {
				*prev = outcome{res: o.res, wall: o.wall, cpu: o.cpu, total: o.total, tcp: o.tcpu, ops: o.ops}
				continue
			}
			if !equalRows(prev.res[0], o.res[0]) || !equalRows(prev.res[1], o.res[1]) {
				return exitMismatch, fmt.Errorf("variant %s: results differ between rounds", v.Name)
			}
			for k, d := range o.wall {
				prev.wall[k] = min(prev.wall[k], d)
			}
			for k, d := range o.cpu {
				prev.cpu[k] = min(prev.cpu[k], d)
			}
			prev.total, prev.tcp = min(prev.total, o.total), min(prev.tcp, o.tcpu)
		}
	}
	// The reference is v1, or the first variant that completed when v1 did
	// not (v1 runs out of memory where the prototypes do not).
	ref := slices.IndexFunc(outs, func(o outcome) bool { return o.err == nil })
	if ref < 0 {
		return exitFailed, fmt.Errorf("every variant failed; v1: %w", outs[0].err)
	}
	mismatch := false
	var notes []string
	for _, kind := range []string{"wall", "CPU (user + sys, all threads)"} {
		fmt.Fprintf(stdout, "%s, fastest of %d round(s):\n\n", kind, *runs)
		fmt.Fprintf(stdout, "| variant | %s | total | vs %s | same sufstats and quality as %s |\n|---|%s---|---|---|\n",
			strings.Join(stageOrder, " | "), run[ref].Name, run[ref].Name, strings.Repeat("---|", len(stageOrder)))
		for vi, v := range run {
			o := outs[vi]
			if o.err != nil {
				fmt.Fprintf(stdout, "| %s | FAILED: %s |%s | | |\n", v.Name, strings.ReplaceAll(firstLine(o.err.Error()), "|", "/"), strings.Repeat(" |", len(stageOrder)))
				continue
			}
			times, total, base := o.wall, o.total, outs[ref].total
			if kind != "wall" {
				times, total, base = o.cpu, o.tcp, outs[ref].tcp
			}
			same := "reference"
			if vi != ref {
				if equalRows(outs[ref].res[0], o.res[0]) && equalRows(outs[ref].res[1], o.res[1]) {
					same = fmt.Sprintf("yes (%d cells, %d quality rows)", len(o.res[0]), len(o.res[1]))
				} else {
					same = "NO"
					if !mismatch {
						notes = append(notes, fmt.Sprintf("%s differs from %s:\n  %s:  %v\n       %v\n  got: %v\n       %v", v.Name, run[ref].Name, run[ref].Name, outs[ref].res[0], outs[ref].res[1], o.res[0], o.res[1]))
					}
					mismatch = true
				}
			}
			var cols []string
			for _, st := range stageOrder {
				if d, ok := times[st]; ok {
					cols = append(cols, secs(d))
				} else {
					cols = append(cols, "—")
				}
			}
			fmt.Fprintf(stdout, "| %s | %s | %s | %.2f× | %s |\n", v.Name, strings.Join(cols, " | "), secs(total), total.Seconds()/base.Seconds(), same)
		}
		fmt.Fprintln(stdout)
	}
	for vi, v := range run {
		for _, o := range outs[vi].ops {
			notes = append(notes, v.Name+" "+o)
		}
	}
	for _, v := range run {
		fmt.Fprintf(stdout, "- %s: %s\n", v.Name, v.Note)
	}
	if len(notes) > 0 {
		fmt.Fprintln(stdout)
		for _, n := range notes {
			fmt.Fprintln(stdout, n)
		}
	}
	if mismatch {
		return exitMismatch, errors.New("a prototype's results differ from v1's")
	}
	return exitOK, nil
}

// variantRun is one run of a variant: the sufstats and quality rows, and
// the wall and CPU time per stage and in total.
type variantRun struct {
	res         [2][][]string
	wall, cpu   map[string]time.Duration
	total, tcpu time.Duration
	ops         []string
}

// runVariant runs one pipeline in a fresh session. CPU time is this
// process's (getrusage), which is DuckDB's worker threads: less disturbed by
// other work on the machine than the wall time.
func runVariant(ctx context.Context, e duckConfig, v variant, p map[string]any, explain string, top int) (variantRun, error) {
	out := variantRun{wall: map[string]time.Duration{}, cpu: map[string]time.Duration{}}
	db, err := e.open()
	if err != nil {
		return out, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return out, err
	}
	defer conn.Close()
	for _, st := range v.Steps {
		text, err := stepSQL(st)
		if err != nil {
			return out, err
		}
		label := st.Stage + " (" + st.Source + ")"
		sp := stageParams(st.Stage, p)
		prof := ""
		if explain != "" {
			prof = filepath.Join(explain, v.Name+"-"+st.Stage+".json")
			if err := startProfiling(ctx, conn, prof); err != nil {
				return out, err
			}
		}
		c0 := cpuTime()
		t0 := time.Now()
		switch st.Stage {
		case "sufstats":
			out.res[0], err = queryStrings(ctx, conn, label, text, sp)
		case "quality":
			out.res[1], err = queryStrings(ctx, conn, label, text, sp)
		default:
			err = execSQL(ctx, conn, label, text, sp)
		}
		if err != nil {
			return out, err
		}
		d, c := time.Since(t0), cpuTime()-c0
		out.wall[st.Stage] += d
		out.cpu[st.Stage] += c
		out.total += d
		out.tcpu += c
		if prof != "" {
			if err := stopProfiling(ctx, conn); err != nil {
				return out, err
			}
			s, err := summarizeProfile(prof, top)
			if err != nil {
				return out, err
			}
			out.ops = append(out.ops, fmt.Sprintf("%s: %s: %s", st.Stage, secs(d), s))
		}
	}
	return out, nil
}

// cpuTime is the user + system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stepSQL renders a step: a released template from the embedded queries, or
// a prototype rendered with the same identifier-only functions.
func stepSQL(st step) (string, error) {
	if st.Source == "v1" {
		return renderStage(st.Stage, "v1")
	}
	b, err := protoFS.ReadFile("proto/" + st.Source)
	if err != nil {
		return "", err
	}
	t := queries.Template{Name: strings.TrimSuffix(st.Source, ".sql"), Version: "proto", Path: st.Source, Text: string(b)}
	return engine.RenderWithAllColumns(t)
}

func equalRows(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

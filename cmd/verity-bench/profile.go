package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// profileCmd runs the pipeline's SQL stages one by one on a bench dataset and
// reports where the time goes: input hashing (sequential, and with one worker
// per core as the pipeline does it), Parquet decoding of the columns each
// side reads, then each statement of the chosen template set (--templates,
// v1 by default) with its wall time, DuckDB's busiest operators (EXPLAIN
// ANALYZE's JSON profile), the size of the table or view it creates and
// DuckDB's memory and spill use. The sorted set (events@v8) reads the
// dataset's sorted copy of the events, checked and with its duplicate keys
// bound as `verity run` does it; without the copy profile refuses.
//
//	verity-bench profile --data DIR [--templates SET] [--experiments K] [--explain DIR] [--cpuprofile FILE]
//	    [--threads N] [--memory-limit SIZE] [--temp-dir DIR]
func profileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e duckConfig
	e.register(fs)
	data := fs.String("data", "", "a dataset folder from the bench's cache (.bench/data/...)")
	nexp := fs.Int("experiments", 1, "analyse the first K experiments of the dataset in one session (0: all)")
	explain := fs.String("explain", "", "write DuckDB's JSON profile of each stage into this folder")
	cpuprofile := fs.String("cpuprofile", "", "write a Go CPU profile of this process (cgo time shows as runtime.cgocall)")
	top := fs.Int("top", 5, "operators listed per stage")
	set := fs.String("templates", "v1", "template set to profile: unit-keyed, unit-keyed-sorted, unit-keyed-v10, unit-keyed-v3, unit-keyed-v2, unit-keyed-v1, single-join, single-join-v11, single-join-v13, per-event or v1")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *data == "" || fs.NArg() > 0 {
		return exitUsage, errors.New("profile needs --data DIR and no arguments")
	}
	ds, specs, err := loadBench(*data, *nexp, *set)
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
	// events@v8 (the sorted set) reads the sorted copy and the duplicate
	// keys its order check finds, as `verity run` binds them.
	var sortCheck intake.SortedCheck
	var sortTook time.Duration
	if *set == sortedSet {
		t0 := time.Now()
		if events, sortCheck, err = sortedEvents(ctx, ds); err != nil {
			return exitFailed, err
		}
		sortTook = time.Since(t0)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return exitFailed, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return exitFailed, err
		}
		defer pprof.StopCPUProfile()
	}
	if *explain != "" {
		if err := os.MkdirAll(*explain, 0o755); err != nil {
			return exitFailed, err
		}
	}
	w := stdout
	fmt.Fprintf(w, "dataset %s: %d trace rows, %d event rows, %d files; experiments %d; threads %d, memory limit %s\n\n",
		ds.Dir, ds.Truth.TraceRows, ds.Truth.EventRows, len(traces)+len(events), len(specs), e.Threads, e.MemoryLimit)

	// Hashing, as the pipeline does it (one file after another) and with one
	// worker per core.
	files := append(append([]string{}, traces...), events...)
	size := int64(0)
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	seq, err := hashFiles(ctx, files, 1)
	if err != nil {
		return exitFailed, err
	}
	par, err := hashFiles(ctx, files, runtime.NumCPU())
	if err != nil {
		return exitFailed, err
	}
	fmt.Fprintf(w, "| step | wall | note |\n|---|---|---|\n")
	fmt.Fprintf(w, "| SHA-256 of the inputs, sequential | %s | %s, %.0f MB/s |\n", secs(seq), mib(size), float64(size)/1e6/seq.Seconds())
	fmt.Fprintf(w, "| SHA-256 of the inputs, %d workers | %s | %.0f MB/s |\n", runtime.NumCPU(), secs(par), float64(size)/1e6/par.Seconds())

	db, err := e.open()
	if err != nil {
		return exitFailed, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return exitFailed, err
	}
	defer conn.Close()

	p, err := templateParams(specs, traces, events)
	if err != nil {
		return exitFailed, err
	}
	p = dupKeyParams(p, sortCheck)
	if *set == sortedSet {
		fmt.Fprintf(w, "| order check of events-sorted/ (inputs.sorted_by), %d workers | %s | %s rows, %d duplicate keys |\n",
			min(runtime.NumCPU(), len(events)), secs(sortTook), grouped(sortCheck.Rows), len(sortCheck.Dups.Units))
	}
	// Parquet decoding alone: hash every column a side reads, so that the
	// reader must decode them, and little else happens.
	scans := []struct{ label, sql string }{
		{"scan traces: the 7 columns traces@v1 reads", `SELECT count(*), sum(hash(ts, unit_id, experiment_id, variant, persona, persona_algo_version, event_id)) FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)`},
		{"scan traces: the 5 columns the reference reads", `SELECT count(*), sum(hash(ts, unit_id, experiment_id, variant, persona)) FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)`},
		{"scan traces: the same without event_id, unit_id", `SELECT count(*), sum(hash(ts, experiment_id, variant, persona, persona_algo_version)) FROM read_parquet($trace_files, union_by_name = true, hive_partitioning = false)`},
		{"scan events used: the 5 columns events@v1 reads", `SELECT count(*), sum(hash(ts, unit_id, metric, value, event_id)) FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false) WHERE list_contains($used_event, metric)`},
		{"scan events used: 4 columns, without event_id", `SELECT count(*), sum(hash(ts, unit_id, metric, value)) FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false) WHERE list_contains($used_event, metric)`},
		{"count distinct event_id of events used", `SELECT count(*), count(DISTINCT event_id) FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false) WHERE list_contains($used_event, metric)`},
		{"count distinct hash(event_id) of events used", `SELECT count(*), count(DISTINCT hash(event_id)) FROM read_parquet($event_files, union_by_name = true, hive_partitioning = false) WHERE list_contains($used_event, metric)`},
	}
	for _, s := range scans {
		t0 := time.Now()
		res, err := queryStrings(ctx, conn, s.label, s.sql, p)
		if err != nil {
			return exitFailed, err
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", s.label, secs(time.Since(t0)), strings.Join(res[0], " / "))
	}
	fmt.Fprintln(w)

	// The stages, in the pipeline's order.
	fmt.Fprintf(w, "| stage | wall | rows out | DuckDB memory / spilled after | busiest operators (operator time, rows) |\n|---|---|---|---|---|\n")
	var total time.Duration
	versions := setVersions(*set)
	for _, name := range stageOrder {
		version := versions[name]
		text, err := renderStage(name, version)
		if err != nil {
			return exitFailed, err
		}
		sp := stageParams(name, p)
		stmts := engine.Statements(text)
		for i, stmt := range stmts {
			label := name + "@" + version
			if len(stmts) > 1 {
				label += fmt.Sprintf(" (%d/%d)", i+1, len(stmts))
			}
			prof := ""
			if *explain != "" {
				prof = filepath.Join(*explain, fmt.Sprintf("%s-%d.json", name, i+1))
				if err := startProfiling(ctx, conn, prof); err != nil {
					return exitFailed, err
				}
			}
			t0 := time.Now()
			rowsOut := ""
			switch name {
			case "sufstats":
				n, err := queryRows(ctx, conn, stmt, sp)
				if err != nil {
					return exitFailed, fmt.Errorf("%s: %w", label, err)
				}
				rowsOut = fmt.Sprintf("%d (Arrow)", n)
			case "quality":
				res, err := queryStrings(ctx, conn, label, stmt, sp)
				if err != nil {
					return exitFailed, err
				}
				rowsOut = fmt.Sprint(len(res))
			default:
				if err := execSQL(ctx, conn, label, stmt, sp); err != nil {
					return exitFailed, err
				}
			}
			took := time.Since(t0)
			total += took
			ops := ""
			if prof != "" {
				if err := stopProfiling(ctx, conn); err != nil {
					return exitFailed, err
				}
				if _, err := os.Stat(prof); err == nil { // a CREATE VIEW writes no profile
					ops, err = summarizeProfile(prof, *top)
					if err != nil {
						return exitFailed, err
					}
				}
			}
			if m := createdRE.FindStringSubmatch(stmt); m != nil {
				res, err := queryStrings(ctx, conn, "size", `SELECT count(*) FROM `+m[1], nil)
				if err == nil && len(res) == 1 {
					rowsOut = res[0][0]
				}
			}
			mem, _ := queryStrings(ctx, conn, "memory", `SELECT sum(memory_usage_bytes), sum(temporary_storage_bytes) FROM duckdb_memory()`, nil)
			memS := ""
			if len(mem) == 1 {
				memS = fmt.Sprintf("%s / %s", mibString(mem[0][0]), mibString(mem[0][1]))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", label, secs(took), rowsOut, memS, ops)
		}
	}
	fmt.Fprintf(w, "| all stages | %s | | | |\n", secs(total))
	return exitOK, nil
}

// createdRE finds the table or view a statement creates.
var createdRE = regexp.MustCompile(`CREATE TEMP (?:TABLE|VIEW) (\w+)`)

func mibString(s string) string {
	var n float64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return s
	}
	return fmt.Sprintf("%.0f MiB", n/(1<<20))
}

// hashFiles computes the SHA-256 of every file with the given number of
// workers and returns the wall time.
func hashFiles(ctx context.Context, files []string, workers int) (time.Duration, error) {
	t0 := time.Now()
	jobs := make(chan string)
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				fh, err := os.Open(f)
				if err != nil {
					errs <- err
					continue
				}
				h := sha256.New()
				_, err = io.Copy(h, fh)
				fh.Close()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return time.Since(t0), ctx.Err()
}

// queryRows runs a query through database/sql, as the pipeline fetches
// sufstats, and counts the rows.
func queryRows(ctx context.Context, conn *sql.Conn, text string, p map[string]any) (int64, error) {
	args, err := bind(text, p)
	if err != nil {
		return 0, err
	}
	rows, err := conn.QueryContext(ctx, text, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

func startProfiling(ctx context.Context, conn *sql.Conn, path string) error {
	for _, s := range []string{
		"SET enable_profiling = 'json'",
		"SET profiling_output = '" + strings.ReplaceAll(path, "'", "''") + "'",
		"SET profiling_mode = 'standard'",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func stopProfiling(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "PRAGMA disable_profiling")
	return err
}

// opStat is one operator of a DuckDB JSON profile.
type opStat struct {
	Name   string
	Secs   float64
	Rows   int64
	Detail string
}

// summarizeProfile lists the operators of a JSON profile with the most
// operator time (summed over threads), with their output rows.
func summarizeProfile(path string, top int) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var ops []opStat
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if name, ok := n["operator_name"].(string); ok && name != "" {
			st := opStat{Name: strings.TrimSpace(name)}
			st.Secs, _ = n["operator_timing"].(float64)
			if c, ok := n["operator_cardinality"].(float64); ok {
				st.Rows = int64(c)
			}
			if x, ok := n["extra_info"].(map[string]any); ok {
				if f, ok := x["Function"].(string); ok {
					st.Detail = f
				} else if f, ok := x["Aggregates"].(string); ok {
					st.Detail = strings.ReplaceAll(f, "\n", " ")
				}
			}
			ops = append(ops, st)
		}
		if ch, ok := n["children"].([]any); ok {
			for _, c := range ch {
				if m, ok := c.(map[string]any); ok {
					walk(m)
				}
			}
		}
	}
	walk(root)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Secs > ops[j].Secs })
	var parts []string
	for i, o := range ops {
		if i == top {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2fs %s", o.Name, o.Secs, grouped(o.Rows)))
	}
	return strings.Join(parts, "; "), nil
}

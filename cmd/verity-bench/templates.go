package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/queries"
)

// This file reproduces, for profiling only, what `verity run` sends to
// DuckDB for the bench's specs: the v1 templates embedded in this binary
// (the same queries package verity embeds), rendered with every contract
// column present, and bound with the parameters the pipeline derives from a
// spec. The pipeline's own code is unexported and changing under other
// hands; if it drifts from this, the stage timings here stop describing it,
// but `verity run`'s end-to-end figures in the bench table stay true.

// stageOrder is the order in which the pipeline executes the templates.
var stageOrder = []string{"traces", "assignment", "events", "unit_metrics", "sufstats", "quality"}

// traceColumns and eventColumns are the input contract's columns.
var (
	traceColumns = []string{"ts", "unit_id", "experiment_id", "variant", "flag_key", "flag_version", "rule_id", "persona", "persona_algo_version", "sdk_version", "event_id"}
	eventColumns = []string{"ts", "unit_id", "metric", "value", "event_id"}
)

// renderData mirrors the pipeline's: the identifiers a template may use.
type renderData struct {
	Traces queries.Columns
	Events queries.Columns
}

func allPresent(cols []string) queries.Columns {
	c := queries.Columns{Source: map[string]string{}, Types: map[string]string{}}
	for _, n := range cols {
		c.Source[n] = n
	}
	return c
}

// renderStage loads and renders one template from the embedded queries.
func renderStage(name, version string) (string, error) {
	t, err := queries.Load(queries.FS(), name, version)
	if err != nil {
		return "", err
	}
	return t.Render(renderData{Traces: allPresent(traceColumns), Events: allPresent(eventColumns)})
}

// loadBench reads a dataset folder written by the bench: its truth.json
// (the generator config) and the specs the bench derives from it, limited to
// the first n experiments (all when n <= 0).
func loadBench(dir string, n int) (dataset, []benchSpec, error) {
	b, err := os.ReadFile(filepath.Join(dir, fixtures.TruthFile))
	if err != nil {
		return dataset{}, nil, fmt.Errorf("--data: %w (a dataset folder from the bench's cache)", err)
	}
	var t fixtures.Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return dataset{}, nil, fmt.Errorf("%s: %w", dir, err)
	}
	specs, err := specsFor(t.Config)
	if err != nil {
		return dataset{}, nil, err
	}
	if n > 0 && n < len(specs) {
		specs = specs[:n]
	}
	return dataset{Dir: dir, Truth: t}, specs, nil
}

// templateParams builds the bound parameters of the v1 templates for a group
// of specs analysed in one session, as the pipeline's params() does.
func templateParams(specs []benchSpec, traces, events []string) map[string]any {
	scale := int64(math.Pow10(specs[0].Decimals))
	var expIDs, expPV, varExp, varName, leafExp, leaf []string
	var expStart, expEnd, expLookback []int64
	var mExp, mName, mEvent, mKind, mAgg, usedExp, used []string
	var mClamp []bool
	var mLo, mHi []int64
	for _, s := range specs {
		expIDs = append(expIDs, s.Experiment)
		expStart, expEnd = append(expStart, s.Start.UnixMicro()), append(expEnd, s.End.UnixMicro())
		expLookback = append(expLookback, 0)
		expPV = append(expPV, s.PersonaVersion)
		for _, v := range s.Variants {
			varExp, varName = append(varExp, s.Experiment), append(varName, v.Name)
		}
		for _, l := range s.Leaves {
			leafExp, leaf = append(leafExp, s.Experiment), append(leaf, l)
		}
		seen := map[string]bool{}
		for _, m := range s.Metrics {
			mExp, mName, mEvent = append(mExp, s.Experiment), append(mName, m.Name), append(mEvent, m.Event)
			agg := m.Aggregate
			mKind, mAgg = append(mKind, m.Kind), append(mAgg, agg)
			mClamp = append(mClamp, m.Clamped)
			lo, hi := int64(0), int64(0)
			if m.Clamped {
				lo, hi = int64(math.Round(m.Lower*float64(scale))), int64(math.Round(m.Upper*float64(scale)))
			}
			mLo, mHi = append(mLo, lo), append(mHi, hi)
			if !seen[m.Event] {
				seen[m.Event] = true
				usedExp, used = append(usedExp, s.Experiment), append(used, m.Event)
			}
		}
	}
	return map[string]any{
		"trace_files": traces, "event_files": events,
		"exp_ids": expIDs, "exp_start_us": expStart, "exp_end_us": expEnd, "exp_lookback_us": expLookback,
		"exp_persona_version": expPV,
		"scale":               float64(scale), "scale_int": scale,
		"var_exp": varExp, "var_name": varName, "leaf_exp": leafExp, "leaf": leaf,
		"m_exp": mExp, "m_name": mName, "m_event": mEvent, "m_kind": mKind, "m_agg": mAgg,
		"m_clamp": mClamp, "m_lo": mLo, "m_hi": mHi,
		"used_exp": usedExp, "used_event": used,
	}
}

// stageParams returns the parameters of one template: events and quality
// read $m_exp/$m_event as the (experiment, event) pairs in use.
func stageParams(name string, p map[string]any) map[string]any {
	if name != "events" && name != "quality" {
		return p
	}
	q := make(map[string]any, len(p))
	for k, v := range p {
		q[k] = v
	}
	q["m_exp"], q["m_event"] = p["used_exp"], p["used_event"]
	return q
}

var paramRE = regexp.MustCompile(`\$([a-z_][a-z0-9_]*)`)

// bind returns the named arguments a statement uses (comments skipped); a
// parameter the statement uses but p lacks is an error.
func bind(sqlText string, p map[string]any) ([]any, error) {
	var b strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	seen := map[string]bool{}
	var names []string
	for _, m := range paramRE.FindAllStringSubmatch(b.String(), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	var args []any
	for _, n := range names {
		v, ok := p[n]
		if !ok {
			return nil, fmt.Errorf("parameter $%s is not bound", n)
		}
		args = append(args, sql.Named(n, v))
	}
	return args, nil
}

// execSQL runs one statement with its parameters bound from p.
func execSQL(ctx context.Context, conn *sql.Conn, label, text string, p map[string]any) error {
	args, err := bind(text, p)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if _, err := conn.ExecContext(ctx, text, args...); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// queryStrings runs a query and returns every row with each value
// formatted as text, so that results of different pipelines can be compared
// exactly.
func queryStrings(ctx context.Context, conn *sql.Conn, label, text string, p map[string]any) ([][]string, error) {
	args, err := bind(text, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	rows, err := conn.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		rec := make([]string, len(cols))
		for i, v := range vals {
			rec[i] = fmt.Sprint(v)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

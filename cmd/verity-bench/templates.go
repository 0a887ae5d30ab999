package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/queries"
)

// Stage timings here run what `verity run` sends to DuckDB for the bench's
// specs: the templates embedded in this binary (the same queries package
// verity embeds), rendered with every contract column present, bound with
// the pipeline's own parameters (pipeline.TemplateParams and friends).

// stageOrder is the order in which the pipeline executes the templates.
var stageOrder = expspec.TemplateNames

// renderStage loads and renders one template from the embedded queries.
func renderStage(name, version string) (string, error) {
	t, err := queries.Load(queries.FS(), name, version)
	if err != nil {
		return "", err
	}
	return engine.RenderWithAllColumns(t)
}

// loadBench reads a dataset folder written by the bench: its truth.json
// (the generator config) and the specs the bench derives from it, limited to
// the first n experiments (all when n <= 0).
func loadBench(dir string, n int, set string) (dataset, []benchSpec, error) {
	b, err := os.ReadFile(filepath.Join(dir, fixtures.TruthFile))
	if err != nil {
		return dataset{}, nil, fmt.Errorf("--data: %w (a dataset folder from the bench's cache)", err)
	}
	var t fixtures.Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return dataset{}, nil, fmt.Errorf("%s: %w", dir, err)
	}
	specs, err := specsFor(t.Config, set)
	if err != nil {
		return dataset{}, nil, err
	}
	if n > 0 && n < len(specs) {
		specs = specs[:n]
	}
	return dataset{Dir: dir, Truth: t}, specs, nil
}

// templateParams builds the bound parameters of one shared pass for the
// bench's specs, with the pipeline's own code.
func templateParams(specs []benchSpec, traces, events []string) (map[string]any, error) {
	parsed := make([]*expspec.Spec, len(specs))
	for i, s := range specs {
		sp, err := expspec.ParseSpec("spec-"+s.Experiment+".yaml", s.yaml())
		if err != nil {
			return nil, err
		}
		parsed[i] = sp
	}
	return engine.TemplateParams(parsed, traces, events), nil
}

// stageParams returns the parameters of one template.
func stageParams(name string, p map[string]any) map[string]any { return engine.StageParams(name, p) }

// bind returns the named arguments a statement uses.
func bind(sqlText string, p map[string]any) ([]any, error) { return engine.BindParams(sqlText, p) }

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

package engine

import (
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/queries"
)

// This file gives tools that time the templates one by one
// (cmd/verity-bench) exactly what a run sends to DuckDB, so that they never
// carry a copy of the pipeline's parameter code that could drift from it.

// TemplateParams returns the parameters of one shared pass for specs over
// the given input files (absolute paths), as RunAll builds them. Apply
// StageParams before binding a particular template.
func TemplateParams(specs []*expspec.Spec, traceFiles, eventFiles []string) map[string]any {
	asInputs := func(paths []string) []intake.InputFile {
		out := make([]intake.InputFile, len(paths))
		for i, p := range paths {
			out[i] = intake.InputFile{Abs: p}
		}
		return out
	}
	return MergedParams(specs, asInputs(traceFiles), asInputs(eventFiles))
}

// RenderWithAllColumns renders t for inputs that have every contract
// column, under its own name.
func RenderWithAllColumns(t queries.Template) (string, error) {
	all := func(contract []intake.ContractColumn) queries.Columns {
		c := queries.Columns{Source: map[string]string{}, Types: map[string]string{}}
		for _, col := range contract {
			c.Source[col.Name] = col.Name
		}
		return c
	}
	return t.Render(RenderData{Traces: all(intake.TraceContract), Events: all(intake.EventContract)})
}

package engine

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/queries"
)

// EventNamesIn runs the internal template event_names@v1: the event names
// present in the files inside the spec's (effective) window, with counts.
func (s *Session) EventNamesIn(ctx context.Context, spec *expspec.Spec, events []intake.InputFile) (map[string]int64, error) {
	t, err := queries.Load(s.fsys, "event_names", "v1")
	if err != nil {
		return nil, err
	}
	text, err := t.Render(RenderData{Events: intake.ColumnsFor(events, intake.EventContract, spec.Inputs.Columns.Events)})
	if err != nil {
		return nil, err
	}
	start, end := spec.Window.Bounds()
	names := map[string]int64{}
	err = s.query(ctx, Rendered{Name: t.Name, Version: t.Version, SQL: text},
		map[string]any{"event_files": absPaths(events), "start_us": start.UnixMicro(), "end_us": end.UnixMicro()},
		func(r *sql.Rows) error {
			var name string
			var n int64
			if err := r.Scan(&name, &n); err != nil {
				return err
			}
			names[name] = n
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("template event_names@v1: %w", err)
	}
	return names, nil
}

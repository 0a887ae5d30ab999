package pipeline

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/verity-analytics/verity/queries"
)

// eventNamesIn runs the internal template event_names@v1: the event names
// present in the files inside the spec's (effective) window, with counts.
func (s *session) eventNamesIn(ctx context.Context, spec *Spec, events []InputFile) (map[string]int64, error) {
	t, err := queries.Load(s.fsys, "event_names", "v1")
	if err != nil {
		return nil, err
	}
	text, err := t.Render(renderData{Events: columnsFor(events, eventContract, spec.Inputs.Columns.Events)})
	if err != nil {
		return nil, err
	}
	start, end := spec.Window.Bounds()
	names := map[string]int64{}
	err = s.query(ctx, rendered{Name: t.Name, Version: t.Version, SQL: text},
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

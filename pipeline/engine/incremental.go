package engine

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"slices"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/queries"
)

// IncrementalTemplates are the internal templates of the incremental
// nightly pass (issue 18 item 2), pinned by the code, in the order they run.
var IncrementalTemplates = []string{"incr_load", "incr_traces", "incr_events", "incr_swap", "incr_carry", "incr_save", "incr_compact", "incr_facts"}

// incrementalVersions are the versions the code pins (v1 unless named):
// incr_carry@v2 selects the same rows as v1 with one join instead of
// three; incr_load@v2, incr_traces@v3, incr_events@v2 and incr_save@v2 work
// on the touched units and the generations of state format v3 (cells by
// delta).
var incrementalVersions = map[string]string{"incr_load": "v3", "incr_traces": "v3", "incr_events": "v2", "incr_carry": "v2", "incr_save": "v2"}

// LoadIncremental renders the internal incremental templates with the
// group's columns, by name.
func LoadIncremental(fsys fs.FS, data RenderData) (map[string]Rendered, error) {
	out := map[string]Rendered{}
	for _, name := range IncrementalTemplates {
		version := "v1"
		if v, ok := incrementalVersions[name]; ok {
			version = v
		}
		t, err := queries.Load(fsys, name, version)
		if err != nil {
			return nil, err
		}
		text, err := t.Render(data)
		if err != nil {
			return nil, err
		}
		out[name] = Rendered{Name: t.Name, Version: t.Version, SQL: text}
	}
	return out, nil
}

// Exec runs one template statement by statement with the parameters it
// uses (the incremental pass runs the pinned templates one at a time, with
// its own steps between them).
func (s *Session) Exec(ctx context.Context, r Rendered, p map[string]any, progress *SQLProgress) error {
	s.progress = progress
	defer func() { s.progress = nil }()
	return s.exec(ctx, r, p)
}

// Facts runs incr_facts: the incremental pass's checks and facts by name.
func (s *Session) Facts(ctx context.Context, r Rendered) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.query(ctx, r, nil, func(rows *sql.Rows) error {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		out[name] = n
		return nil
	})
	return out, err
}

// FinishSQL runs the pinned templates from unit_metrics on (sufstats,
// quality) over tables an incremental pass has built, and fetches what
// RunSQL fetches. The pass covers the touched units only, so only sums over
// units can be completed by delta: a pass with an optional template
// (histograms, drill-downs, …) is refused here, whatever the caller checked.
func (s *Session) FinishSQL(ctx context.Context, specs []*expspec.Spec, tmpls []Rendered, p map[string]any, progress *SQLProgress) (cells map[string][]Cell, quality map[string]Quality, perExp map[string]error, err error) {
	s.progress = progress
	defer func() { s.progress = nil }()
	byName, want := passTemplates(specs, tmpls)
	for name := range byName {
		if !slices.Contains(expspec.TemplateNames, name) {
			return nil, nil, nil, fmt.Errorf("incremental pass with template %s: only sufstats and quality are completed by delta", name)
		}
	}
	if err := s.exec(ctx, byName["unit_metrics"], StageParams("unit_metrics", p)); err != nil {
		return nil, nil, nil, err
	}
	if len(want) == 0 {
		return nil, nil, nil, fmt.Errorf("incremental pass without experiments")
	}
	return s.readResults(ctx, specs, byName, p, want)
}

// Results runs sufstats and quality again over the tables now named
// assignment and event_units, and fetches their rows: the incremental pass
// reads last night's values of the touched units this way (incr_swap).
func (s *Session) Results(ctx context.Context, specs []*expspec.Spec, tmpls []Rendered, p map[string]any, progress *SQLProgress) (cells map[string][]Cell, quality map[string]Quality, perExp map[string]error, err error) {
	s.progress = progress
	defer func() { s.progress = nil }()
	byName, want := passTemplates(specs, tmpls)
	only := map[string]Rendered{"sufstats": byName["sufstats"], "quality": byName["quality"]}
	return s.readResults(ctx, specs, only, p, want)
}

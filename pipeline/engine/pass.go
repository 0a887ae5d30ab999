package engine

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"math/big"
	"time"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/queries"
	"github.com/verity-analytics/verity/stats"
)

// Rendered is a template after identifier substitution: the exact SQL sent
// to DuckDB, whose SHA-256 the manifest records.
type Rendered struct {
	Name, Version string
	SQL           string
}

// TemplateRecord is a template's entry in the manifest.
type TemplateRecord struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	SHA256         string `json:"sha256"`
	RenderedSHA256 string `json:"rendered_sha256,omitempty"` // depends on the files' columns: restricted in private runs
}

// Cell holds the exact sufficient statistics of one cohort × variant ×
// metric: the number of units and the sums of their fixed-point values (in
// units of 10^-decimals): x (the metric, or a ratio's numerator), y (a
// ratio's denominator) and c (the CUPED covariate), with their squares and
// cross products. Sums a template version does not compute are zero.
type Cell struct {
	Cohort, Variant, Metric string
	N                       int64
	Sum, SumSq              *big.Int // Σx, Σx²
	SumY, SumY2, SumXY      *big.Int // Σy, Σy², Σxy
	SumC, SumC2, SumXC      *big.Int // Σc, Σc², Σxc
	SumYC                   *big.Int // Σyc
	// MaxAbs is the largest |x|, |y| or |c| of a unit in the cell, as the
	// overflow proof uses it (kept so that merged shards can redo it).
	MaxAbs *big.Int
	// Hist is the exact histogram of the units' x (fixed-point values at
	// the spec's decimals) for a quantile metric's cell (histograms@v1);
	// nil for every other metric. See histograms.go.
	Hist *stats.Histogram
	// EventBins are an event-level quantile metric's one-pass bins of its
	// event values (eventbins@v1); nil for every other metric. See
	// eventbins.go.
	EventBins *stats.EventBins
}

// Sums returns pointers to every sum of the cell, in a fixed order.
func (c *Cell) Sums() []**big.Int {
	return []**big.Int{&c.Sum, &c.SumSq, &c.SumY, &c.SumY2, &c.SumXY, &c.SumC, &c.SumC2, &c.SumXC, &c.SumYC}
}

// sumColumns are the sufstats result columns matching Cell.sums; templates
// before sufstats@v2 return only the first two.
var sumColumns = []string{"sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy", "sum_c", "sum_c2", "sum_xc", "sum_yc"}

// NewCell returns a cell with every sum set to zero.
func NewCell(cohort, variant, metric string) Cell {
	c := Cell{Cohort: cohort, Variant: variant, Metric: metric}
	for _, p := range c.Sums() {
		*p = new(big.Int)
	}
	return c
}

// Quality holds every data-quality count of one experiment's run. The field
// order is the order of quality.json.
type Quality struct {
	TraceFiles           int   `json:"trace_files"`
	EventFiles           int   `json:"event_files"`
	TraceRowsRead        int64 `json:"trace_rows_read"`
	EventRowsRead        int64 `json:"event_rows_read"`
	TraceNullExperiment  int64 `json:"trace_null_experiment"`
	TraceRows            int64 `json:"trace_rows"`
	TraceNullKeys        int64 `json:"trace_null_keys"`
	TraceDuplicates      int64 `json:"trace_duplicates"`
	TraceOutOfWindow     int64 `json:"trace_out_of_window"`
	TraceVersionMismatch int64 `json:"trace_version_mismatch"`
	TraceUnknownVariant  int64 `json:"trace_unknown_variant"`
	UnitsExposed         int64 `json:"units_exposed"`
	UnitsMultiVariant    int64 `json:"units_multi_variant"`
	UnitsAssigned        int64 `json:"units_assigned"`
	UnitsUnclassified    int64 `json:"units_unclassified"`
	EventRows            int64 `json:"event_rows"`
	EventNullKeys        int64 `json:"event_null_keys"`
	EventDuplicates      int64 `json:"event_duplicates"`
	EventInvalidValue    int64 `json:"event_invalid_value"`
	EventUnassigned      int64 `json:"event_unassigned"`
	EventBeforeExposure  int64 `json:"event_before_exposure"`
	EventAfterWindow     int64 `json:"event_after_window"`
	// EventAfterAttribution counts events after a unit_metrics@v3
	// conversion window but inside the analysis window (quality@v2).
	EventAfterAttribution int64 `json:"event_after_attribution"`
	EventAttributed       int64 `json:"event_attributed"`
	// The unit-keyed templates (quality@v4) also count rows that belong
	// to no unit (NULL, empty or blank unit_id; included in the NULL-key
	// counts above), events whose metric is NULL or blank, and, per gate,
	// the units with at least one such row. Absent for older versions.
	TraceNoUnit               *int64 `json:"trace_no_unit,omitempty"`
	EventNoUnit               *int64 `json:"event_no_unit,omitempty"`
	EventNullMetric           *int64 `json:"event_null_metric,omitempty"`
	UnitsTraceNullKeys        *int64 `json:"units_trace_null_keys,omitempty"`
	UnitsTraceDuplicate       *int64 `json:"units_trace_duplicate,omitempty"`
	UnitsTraceVersionMismatch *int64 `json:"units_trace_version_mismatch,omitempty"`
	UnitsTraceUnknownVariant  *int64 `json:"units_trace_unknown_variant,omitempty"`
	UnitsEventNullKeys        *int64 `json:"units_event_null_keys,omitempty"`
	UnitsEventDuplicate       *int64 `json:"units_event_duplicate,omitempty"`
	UnitsEventInvalidValue    *int64 `json:"units_event_invalid_value,omitempty"`
	UnitsEventNullMetric      *int64 `json:"units_event_null_metric,omitempty"`
}

// optional maps the quality columns that only some template versions
// return to q's optional count fields.
func (q *Quality) optional() map[string]**int64 {
	return map[string]**int64{
		"trace_no_unit": &q.TraceNoUnit, "event_no_unit": &q.EventNoUnit, "event_null_metric": &q.EventNullMetric,
		"units_trace_null_keys": &q.UnitsTraceNullKeys, "units_trace_duplicate": &q.UnitsTraceDuplicate,
		"units_trace_version_mismatch": &q.UnitsTraceVersionMismatch, "units_trace_unknown_variant": &q.UnitsTraceUnknownVariant,
		"units_event_null_keys": &q.UnitsEventNullKeys, "units_event_duplicate": &q.UnitsEventDuplicate,
		"units_event_invalid_value": &q.UnitsEventInvalidValue, "units_event_null_metric": &q.UnitsEventNullMetric,
	}
}

// fields maps the quality template's column names to q's count fields
// (the JSON names are the column names).
func (q *Quality) fields() map[string]*int64 {
	return map[string]*int64{
		"trace_null_experiment": &q.TraceNullExperiment, "trace_rows": &q.TraceRows, "trace_null_keys": &q.TraceNullKeys,
		"trace_duplicates": &q.TraceDuplicates, "trace_out_of_window": &q.TraceOutOfWindow,
		"trace_version_mismatch": &q.TraceVersionMismatch, "trace_unknown_variant": &q.TraceUnknownVariant,
		"units_exposed": &q.UnitsExposed, "units_multi_variant": &q.UnitsMultiVariant, "units_assigned": &q.UnitsAssigned,
		"units_unclassified": &q.UnitsUnclassified, "event_rows": &q.EventRows, "event_null_keys": &q.EventNullKeys,
		"event_duplicates": &q.EventDuplicates, "event_invalid_value": &q.EventInvalidValue,
		"event_unassigned": &q.EventUnassigned, "event_before_exposure": &q.EventBeforeExposure,
		"event_after_window": &q.EventAfterWindow, "event_after_attribution": &q.EventAfterAttribution,
		"event_attributed": &q.EventAttributed,
	}
}

// RenderData is what templates may substitute: validated identifiers only.
type RenderData struct {
	Traces queries.Columns
	Events queries.Columns
	// Props are the spec's declared event property columns
	// (inputs.event_properties), checked in every events file and valid
	// identifiers; events@v9 and filter_counts@v1 render them with ident.
	Props []string
	// Drill are the drill-down dimensions' trace columns (drilldown@v1),
	// validated identifiers, each in every trace file; the specs of a pass
	// share them (the group key includes them).
	Drill []string
}

// LoadTemplates loads and renders the spec's pinned templates in execution
// order.
func LoadTemplates(fsys fs.FS, spec *expspec.Spec, data RenderData) ([]Rendered, []TemplateRecord, error) {
	var out []Rendered
	var recs []TemplateRecord
	for _, name := range spec.PinnedTemplateNames() {
		t, err := queries.Load(fsys, name, spec.Templates[name])
		if err != nil {
			return nil, nil, err
		}
		sqlText, err := t.Render(data)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, Rendered{Name: t.Name, Version: t.Version, SQL: sqlText})
		recs = append(recs, TemplateRecord{Name: t.Name, Version: t.Version, SHA256: t.SHA256, RenderedSHA256: queries.Sum([]byte(sqlText))})
	}
	return out, recs, nil
}

// params builds the bound parameters of the templates for one spec. Each
// template binds only the parameters its text uses (boundParams); StageParams
// adjusts the few whose meaning differs between templates.
func params(spec *expspec.Spec, traces, events []intake.InputFile) map[string]any {
	start, end := spec.Window.Bounds()
	lookback := int64(0)
	if c := spec.Statistics.CUPED; c != nil {
		lookback = int64(c.LookbackDays) * 24 * 3600 * 1_000_000
	}
	p := map[string]any{
		"trace_files":         absPaths(traces),
		"event_files":         absPaths(events),
		"exp_ids":             []string{spec.Experiment},
		"exp_start_us":        []int64{start.UnixMicro()},
		"exp_end_us":          []int64{end.UnixMicro()},
		"exp_lookback_us":     []int64{lookback},
		"exp_persona_version": []string{spec.PersonaAlgoVersion},
		"scale":               float64(spec.Scale()),
		"scale_int":           spec.Scale(),
	}
	var varExp, varName, leafExp, leaf []string
	for _, v := range spec.Variants {
		varExp = append(varExp, spec.Experiment)
		varName = append(varName, v.Name)
	}
	for _, l := range spec.Cohorts.Taxonomy {
		leafExp = append(leafExp, spec.Experiment)
		leaf = append(leaf, l)
	}
	var mExp, mName, mEvent, mKind, mAgg, dEvent, dAgg []string
	var mAttr []int64
	var mClamp, dClamp, mHist, mEvq []bool
	var mLo, mHi, dLo, dHi, evqLo, evqHi []int64
	// The (experiment, event) pairs in use, one per metric part, with the
	// part's attribution window: events@v1/v2 and quality@v1 read the
	// distinct pairs; quality@v2 takes the widest window per pair.
	var usedExp, used []string
	var usedAttr []int64
	start, end = spec.Window.Bounds()
	use := func(event string, m expspec.Metric) {
		usedExp = append(usedExp, spec.Experiment)
		used = append(used, event)
		usedAttr = append(usedAttr, attributionWindow(spec, m, end.Sub(start)).Microseconds())
	}
	bounds := func(c *expspec.Clamp) (bool, int64, int64) {
		if c == nil {
			return false, 0, 0
		}
		return true, expspec.ScaleBound(c.Lower, spec.Scale()), expspec.ScaleBound(c.Upper, spec.Scale())
	}
	for _, m := range spec.Metrics {
		mExp = append(mExp, spec.Experiment)
		mName = append(mName, m.Name)
		mEvent = append(mEvent, m.Event)
		kind, agg := m.Kind, m.Aggregate
		mAttr = append(mAttr, int64(m.AttributionHours)*3600*1_000_000)
		ok, lo, hi := bounds(m.Clamp)
		mEvq, evqLo, evqHi = append(mEvq, m.EventLevel()), append(evqLo, lo), append(evqHi, hi)
		if m.EventLevel() {
			// Its per-unit cell is the unclamped event count, which
			// eventbins' bins are checked against; the clamp applies to
			// each event's value in eventbins.
			kind, agg, ok, lo, hi = eventLevelKind, "count", false, 0, 0
		}
		mKind, mAgg = append(mKind, kind), append(mAgg, agg)
		mClamp, mLo, mHi = append(mClamp, ok), append(mLo, lo), append(mHi, hi)
		mHist = append(mHist, m.NeedsHistogram())
		use(m.Event, m)
		den := expspec.Part{}
		if m.Denominator != nil {
			den = *m.Denominator
			use(den.Event, m)
		}
		dEvent, dAgg = append(dEvent, den.Event), append(dAgg, den.Aggregate)
		ok, lo, hi = bounds(den.Clamp)
		dClamp, dLo, dHi = append(dClamp, ok), append(dLo, lo), append(dHi, hi)
	}
	p["var_exp"], p["var_name"] = varExp, varName
	p["leaf_exp"], p["leaf"] = NonNil(leafExp), NonNil(leaf)
	p["m_exp"], p["m_name"], p["m_event"], p["m_kind"], p["m_agg"] = mExp, mName, mEvent, mKind, mAgg
	p["m_clamp"], p["m_lo"], p["m_hi"] = mClamp, mLo, mHi
	p["m_den_event"], p["m_den_agg"] = dEvent, dAgg
	p["m_den_clamp"], p["m_den_lo"], p["m_den_hi"] = dClamp, dLo, dHi
	p["m_attr_us"] = mAttr
	p["m_hist"] = mHist                                           // histograms@v2
	p["m_evq"], p["m_evq_lo"], p["m_evq_hi"] = mEvq, evqLo, evqHi // eventbins@v1
	p["used_exp"], p["used_event"], p["used_attr_us"] = usedExp, used, usedAttr
	var cmExp, cmA, cmB []string
	for _, pr := range spec.CrossMomentPairs() {
		cmExp, cmA, cmB = append(cmExp, spec.Experiment), append(cmA, pr[0]), append(cmB, pr[1])
	}
	p["cm_exp"], p["cm_a"], p["cm_b"] = NonNil(cmExp), NonNil(cmA), NonNil(cmB) // crossmoments@v1
	p["drill_exp"], p["drill_max"] = []string{}, []int64{}                      // drilldown@v1
	if spec.Drilldowns != nil {
		p["drill_exp"], p["drill_max"] = []string{spec.Experiment}, []int64{int64(spec.DrillMaxValues())}
	}
	return p
}

// UnitMetricsV3DefaultAttributionHours is unit_metrics@v3's conversion
// window when a metric declares none (the template says the same).
const UnitMetricsV3DefaultAttributionHours = 72

// attributionWindow is how long after exposure a metric counts events:
// its conversion window under unit_metrics@v3 and later, else the whole analysis
// window (an event at or after exposure and before the end always counts).
func attributionWindow(spec *expspec.Spec, m expspec.Metric, window time.Duration) time.Duration {
	if v := spec.Templates["unit_metrics"]; v != "v3" && v != "v4" && v != "v5" {
		return window
	}
	h := m.AttributionHours
	if h == 0 {
		h = UnitMetricsV3DefaultAttributionHours
	}
	return time.Duration(h) * time.Hour
}

// StageParams returns the parameters for one template. events@v1 and
// quality@v1 read $m_exp/$m_event as the list of (experiment, event name)
// pairs whose events are used, which is every numerator and denominator
// event; the metric templates read them per metric.
func StageParams(name string, p map[string]any) map[string]any {
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

func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func absPaths(files []intake.InputFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Abs
	}
	return out
}

// MergedParams concatenates the per-experiment lists of several specs that
// share inputs, templates and scale, so one pass of each template serves
// them all. Shared scalars (files, scale) come from the first spec.
func MergedParams(specs []*expspec.Spec, traces, events []intake.InputFile) map[string]any {
	out := params(specs[0], traces, events)
	for _, s := range specs[1:] {
		for k, v := range params(s, traces, events) {
			switch x := v.(type) {
			case []string:
				if k != "trace_files" && k != "event_files" {
					out[k] = append(out[k].([]string), x...)
				}
			case []int64:
				out[k] = append(out[k].([]int64), x...)
			case []bool:
				out[k] = append(out[k].([]bool), x...)
			}
		}
	}
	addWindows(out, specs)
	return out
}

// addWindows adds the parameters of the single-join set's event stage
// (events@v3+, unit_metrics@v4+, quality@v3) to merged parameters; other
// templates do not use them, and a template binds only what it uses. A window is an
// (experiment, event, attribution length) that some metric part uses,
// numbered from 1 in the order met; win_exp_no is the experiment's position
// in exp_ids (1-based); win_qual marks the pair's widest window, whose
// counts quality@v3 reports (quality@v2's attribution rule).
// m_win_x and m_win_y give each metric's numerator and denominator window
// (0: no denominator).
func addWindows(p map[string]any, specs []*expspec.Spec) {
	type pair struct {
		exp   int64
		event string
	}
	type win struct {
		pair
		attr   int64
		filter string // filterKey of a filtered metric's filter (events@v9)
	}
	var wins []win
	index := map[win]int64{}
	widest := map[pair]int64{}
	filters := map[int64]filterWin{}
	var mWinX, mWinY []int64
	windowOf := func(w win) int64 {
		if n, ok := index[w]; ok {
			return n
		}
		wins = append(wins, w)
		index[w] = int64(len(wins))
		if a, ok := widest[w.pair]; !ok || w.attr > a {
			widest[w.pair] = w.attr
		}
		return index[w]
	}
	for i, s := range specs {
		start, end := s.Window.Bounds()
		exp := int64(i + 1)
		for _, m := range s.Metrics {
			attr := attributionWindow(s, m, end.Sub(start)).Microseconds()
			x := windowOf(win{pair{exp, m.Event}, attr, filterKey(m.Filter)})
			if m.Filter != nil {
				filters[x] = filterWin{spec: s, event: m.Event, filter: m.Filter}
			}
			mWinX = append(mWinX, x)
			y := int64(0)
			if m.Denominator != nil {
				y = windowOf(win{pair{exp, m.Denominator.Event}, attr, ""})
			}
			mWinY = append(mWinY, y)
		}
	}
	var wExp, wAttr []int64
	var wEvent []string
	var wQual []bool
	// One window per (experiment, event) carries quality's counts: the
	// first of the widest. Windows differing only in their filter count
	// the same events in kind 1 (events@v9), so only one may be reported.
	qual := map[pair]bool{}
	for _, w := range wins {
		wExp, wEvent, wAttr = append(wExp, w.exp), append(wEvent, w.event), append(wAttr, w.attr)
		q := w.attr == widest[w.pair] && !qual[w.pair]
		qual[w.pair] = qual[w.pair] || q
		wQual = append(wQual, q)
	}
	p["win_exp_no"], p["win_event"], p["win_attr_us"] = wExp, NonNil(wEvent), wAttr
	p["win_qual"] = wQual
	p["m_win_x"], p["m_win_y"] = mWinX, mWinY
	filterParams(p, filters)
}

// RunSQL executes the pinned templates once for every spec of a group and
// fetches the sufficient statistics and the quality counts,
// split by experiment. An error that concerns one experiment only (an
// overflow) is returned in perExp; err fails the whole group.
func (s *Session) RunSQL(ctx context.Context, specs []*expspec.Spec, tmpls []Rendered, p map[string]any, progress *SQLProgress) (cells map[string][]Cell, quality map[string]Quality, perExp map[string]error, err error) {
	s.progress = progress
	defer func() { s.progress = nil }()
	byName, want := passTemplates(specs, tmpls)
	for _, name := range sqlPassOrder[:4] {
		if err := s.exec(ctx, byName[name], StageParams(name, p)); err != nil {
			return nil, nil, nil, err
		}
	}
	return s.readResults(ctx, specs, byName, p, want)
}

// passTemplates indexes a pass's templates by name and its experiments.
func passTemplates(specs []*expspec.Spec, tmpls []Rendered) (byName map[string]Rendered, want map[string]bool) {
	byName, want = map[string]Rendered{}, map[string]bool{}
	for _, t := range tmpls {
		byName[t.Name] = t
	}
	for _, sp := range specs {
		want[sp.Experiment] = true
	}
	return byName, want
}

// readResults runs the templates after unit_metrics (sufstats, the optional
// ones, quality) on the tables the earlier stages left and fetches their
// rows: RunSQL's second half, shared with the incremental pass.
func (s *Session) readResults(ctx context.Context, specs []*expspec.Spec, byName map[string]Rendered, p map[string]any, want map[string]bool) (cells map[string][]Cell, quality map[string]Quality, perExp map[string]error, err error) {
	cells, perExp, err = s.readSufstats(ctx, byName["sufstats"], p, want)
	if err != nil {
		return nil, nil, nil, err
	}
	if h, ok := byName["histograms"]; ok {
		if err := s.readHistograms(ctx, h, p, specs, cells, perExp); err != nil {
			return nil, nil, nil, err
		}
	}
	if r, ok := byName["eventbins"]; ok {
		if err := s.readEventBins(ctx, r, p, specs, cells, perExp); err != nil {
			return nil, nil, nil, err
		}
	}
	if r, ok := byName["interactions"]; ok {
		if s.Interactions, err = s.readInteractions(ctx, r, p, want); err != nil {
			return nil, nil, nil, err
		}
	}
	if r, ok := byName["crossmoments"]; ok {
		if s.CrossMoments, err = s.readCrossMoments(ctx, r, p, want); err != nil {
			return nil, nil, nil, err
		}
	}
	if r, ok := byName["filter_counts"]; ok {
		if s.FilterCounts, err = s.readFilterCounts(ctx, r, p, specs[0]); err != nil {
			return nil, nil, nil, err
		}
	}
	if r, ok := byName["drilldown"]; ok {
		withheld := map[string]bool{} // private: an error names no value
		for _, sp := range specs {
			withheld[sp.Experiment] = withheld[sp.Experiment] || sp.Privacy.Enabled
		}
		if s.Drilldowns, err = s.readDrilldown(ctx, r, p, want, withheld, specs[0].DrillDimensions()); err != nil {
			return nil, nil, nil, err
		}
	}
	quality, err = s.readQuality(ctx, byName["quality"], StageParams("quality", p), want)
	if err != nil {
		return nil, nil, nil, err
	}
	for e := range want {
		if _, ok := quality[e]; !ok {
			return nil, nil, nil, fmt.Errorf("template quality: no row for experiment %s", e)
		}
	}
	return cells, quality, perExp, nil
}

// readSufstats reads the sufficient statistics, one cell per row; an
// experiment with a cell whose 128-bit sums could have wrapped gets an
// OverflowError in perExp instead of cells.
func (s *Session) readSufstats(ctx context.Context, r Rendered, p map[string]any, want map[string]bool) (cells map[string][]Cell, perExp map[string]error, err error) {
	cells, perExp = map[string][]Cell{}, map[string]error{}
	err = s.query(ctx, r, p, func(rows *sql.Rows) error {
		row, err := scanSufstats(rows)
		if err != nil {
			return err
		}
		e := row.experiment
		if !want[e] {
			return fmt.Errorf("sufficient statistics for an experiment not analysed: %q", e)
		}
		c, err := cellOf(row)
		if err != nil {
			return err
		}
		wrapped, err := mayHaveWrapped(row, c)
		if err != nil {
			return err
		}
		if wrapped {
			if perExp[e] == nil {
				perExp[e] = &OverflowError{Experiment: e, Cohort: c.Cohort, Variant: c.Variant, Metric: c.Metric}
			}
			return nil
		}
		c.MaxAbs = maxAbsOf(row)
		cells[e] = append(cells[e], c)
		return nil
	})
	return cells, perExp, err
}

// cellOf turns a sufstats row into a cell (the SQL's root remainder label
// relabelled as the unclassified leaf); a NULL sum is an error.
func cellOf(row sufstatsRow) (Cell, error) {
	cohort := row.cohort
	if cohort == sqlUnclassified {
		cohort = expspec.UnclassifiedLeaf
	}
	c := NewCell(cohort, row.variant, row.metric)
	c.N = row.n
	for i, p := range c.Sums() {
		v, present, ok := row.sum(sumColumns[i])
		if !present {
			continue
		}
		if !ok {
			return Cell{}, fmt.Errorf("experiment %s cohort %s variant %s metric %s: NULL %s", row.experiment, cohort, row.variant, row.metric, sumColumns[i])
		}
		*p = v
	}
	return c, nil
}

// mayHaveWrapped is the overflow proof: each unit adds at most max|x|²,
// max|x||y|, ... to a sum, so n·max² < 2^126 proves that no 128-bit sum
// wrapped; false means proven.
func mayHaveWrapped(row sufstatsRow, c Cell) (bool, error) {
	maxAbs := new(big.Int)
	for _, v := range row.maxAbs {
		if v == nil {
			return false, fmt.Errorf("experiment %s cohort %s variant %s metric %s: NULL maximum", row.experiment, c.Cohort, c.Variant, c.Metric)
		}
		if v.CmpAbs(maxAbs) > 0 {
			maxAbs = v
		}
	}
	bound := new(big.Int).Mul(maxAbs, maxAbs)
	bound.Mul(bound, big.NewInt(c.N))
	return bound.BitLen() > 126, nil
}

// maxAbsOf is the largest |value| among a row's maxima (proven non-NULL
// by mayHaveWrapped).
func maxAbsOf(row sufstatsRow) *big.Int {
	m := new(big.Int)
	for _, v := range row.maxAbs {
		if v != nil && v.CmpAbs(m) > 0 {
			m = new(big.Int).Abs(v)
		}
	}
	return m
}

// readQuality reads the quality template's one row per experiment into
// Quality by column name; a column Quality has no field for is an error.
func (s *Session) readQuality(ctx context.Context, r Rendered, p map[string]any, want map[string]bool) (map[string]Quality, error) {
	quality := map[string]Quality{}
	err := s.query(ctx, r, p, func(rows *sql.Rows) error {
		exp, q, err := scanQuality(rows)
		if err != nil {
			return err
		}
		if !want[exp] {
			return fmt.Errorf("quality row for an experiment not analysed: %q", exp)
		}
		quality[exp] = q
		return nil
	})
	return quality, err
}

// scanQuality scans one quality row: experiment_id, the counts every
// version has, and the optional counts of later versions.
func scanQuality(r *sql.Rows) (string, Quality, error) {
	names, err := r.Columns()
	if err != nil {
		return "", Quality{}, err
	}
	var exp string
	var q Quality
	fields, optional := q.fields(), q.optional()
	dest := make([]any, len(names))
	for i, n := range names {
		f, ok := fields[n]
		o, isOpt := optional[n]
		switch {
		case n == "experiment_id":
			dest[i] = &exp
		case ok:
			dest[i] = f
		case isOpt:
			*o = new(int64)
			dest[i] = *o
		default:
			return "", Quality{}, fmt.Errorf("quality column %q has no field in Quality", n)
		}
	}
	if err := r.Scan(dest...); err != nil {
		return "", Quality{}, err
	}
	return exp, q, nil
}

// sqlUnclassified is how assignment@v1 labels units whose persona is not a
// declared leaf; Go relabels them UnclassifiedLeaf.
const sqlUnclassified = "*"

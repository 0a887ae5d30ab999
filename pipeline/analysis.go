package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/verity-analytics/verity/queries"
)

// rendered is a template after identifier substitution: the exact SQL sent
// to DuckDB, whose SHA-256 the manifest records.
type rendered struct {
	Name, Version string
	SQL           string
}

// TemplateRecord is a template's entry in the manifest.
type TemplateRecord struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	SHA256         string `json:"sha256"`
	RenderedSHA256 string `json:"rendered_sha256"`
}

// Cell holds the exact sufficient statistics of one cohort × variant × metric:
// the number of units and the sums of their fixed-point values x (in units of
// 10^-decimals) and of x².
type Cell struct {
	Cohort, Variant, Metric string
	N                       int64
	Sum, SumSq              *big.Int
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
	EventAttributed      int64 `json:"event_attributed"`
}

// analysis is what the SQL stage hands to Go.
type analysis struct {
	Cells     []Cell
	Quality   Quality
	Templates []TemplateRecord
}

// renderData is what templates may substitute: validated identifiers only.
type renderData struct {
	Traces queries.Columns
	Events queries.Columns
}

// loadTemplates loads and renders the spec's pinned templates in execution
// order.
func loadTemplates(fsys fs.FS, spec *Spec, data renderData) ([]rendered, []TemplateRecord, error) {
	var out []rendered
	var recs []TemplateRecord
	for _, name := range TemplateNames {
		t, err := queries.Load(fsys, name, spec.Templates[name])
		if err != nil {
			return nil, nil, err
		}
		sqlText, err := t.Render(data)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rendered{Name: t.Name, Version: t.Version, SQL: sqlText})
		recs = append(recs, TemplateRecord{Name: t.Name, Version: t.Version, SHA256: t.SHA256, RenderedSHA256: queries.Sum([]byte(sqlText))})
	}
	return out, recs, nil
}

// params builds the bound parameters of the templates for one spec.
func params(spec *Spec, traces, events []InputFile) map[string]any {
	start, end := spec.Window.Bounds()
	p := map[string]any{
		"trace_files":         absPaths(traces),
		"event_files":         absPaths(events),
		"exp_ids":             []string{spec.Experiment},
		"exp_start_us":        []int64{start.UnixMicro()},
		"exp_end_us":          []int64{end.UnixMicro()},
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
	var mExp, mName, mEvent, mKind, mAgg []string
	var mClamp []bool
	var mLo, mHi []int64
	for _, m := range spec.Metrics {
		mExp = append(mExp, spec.Experiment)
		mName = append(mName, m.Name)
		mEvent = append(mEvent, m.Event)
		mKind = append(mKind, m.Kind)
		mAgg = append(mAgg, m.Aggregate)
		lo, hi := int64(0), int64(0)
		if m.Clamp != nil {
			lo, hi = scaleBound(m.Clamp.Lower, spec.Scale()), scaleBound(m.Clamp.Upper, spec.Scale())
		}
		mClamp = append(mClamp, m.Clamp != nil)
		mLo = append(mLo, lo)
		mHi = append(mHi, hi)
	}
	p["var_exp"], p["var_name"] = varExp, varName
	p["leaf_exp"], p["leaf"] = nonNil(leafExp), nonNil(leaf)
	p["m_exp"], p["m_name"], p["m_event"], p["m_kind"], p["m_agg"] = mExp, mName, mEvent, mKind, mAgg
	p["m_clamp"], p["m_lo"], p["m_hi"] = mClamp, mLo, mHi
	return p
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func absPaths(files []InputFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.abs
	}
	return out
}

// runSQL executes the pinned templates and fetches the sufficient
// statistics (through Arrow) and the quality counts.
func (s *session) runSQL(ctx context.Context, spec *Spec, tmpls []rendered, p map[string]any) ([]Cell, Quality, error) {
	byName := map[string]rendered{}
	for _, t := range tmpls {
		byName[t.Name] = t
	}
	for _, name := range []string{"traces", "assignment", "events", "unit_metrics"} {
		if err := s.exec(ctx, byName[name], p); err != nil {
			return nil, Quality{}, err
		}
	}
	var cells []Cell
	err := s.arrowQuery(ctx, byName["sufstats"], p, func(rec arrow.RecordBatch) error {
		exp, err := stringCol(rec, "experiment_id")
		if err != nil {
			return err
		}
		coh, err := stringCol(rec, "cohort")
		if err != nil {
			return err
		}
		vr, err := stringCol(rec, "variant")
		if err != nil {
			return err
		}
		met, err := stringCol(rec, "metric")
		if err != nil {
			return err
		}
		n, err := int64Col(rec, "n")
		if err != nil {
			return err
		}
		sx, err := bigCol(rec, "sum_x")
		if err != nil {
			return err
		}
		sx2, err := bigCol(rec, "sum_x2")
		if err != nil {
			return err
		}
		mx, err := bigCol(rec, "max_abs_x")
		if err != nil {
			return err
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			e, _ := exp(r)
			if e != spec.Experiment {
				continue
			}
			c := Cell{}
			c.Cohort, _ = coh(r)
			c.Variant, _ = vr(r)
			c.Metric, _ = met(r)
			c.N, _ = n(r)
			var ok1, ok2, ok3 bool
			var maxAbs *big.Int
			c.Sum, ok1 = sx(r)
			c.SumSq, ok2 = sx2(r)
			maxAbs, ok3 = mx(r)
			if !ok1 || !ok2 || !ok3 {
				return fmt.Errorf("cohort %s variant %s metric %s: NULL sufficient statistic", c.Cohort, c.Variant, c.Metric)
			}
			// Each unit contributes at most maxAbs² to sum_x2, so a bound below
			// 2^126 proves that no 128-bit sum wrapped.
			bound := new(big.Int).Mul(maxAbs, maxAbs)
			bound.Mul(bound, big.NewInt(c.N))
			if bound.BitLen() > 126 {
				return &OverflowError{Experiment: spec.Experiment, Cohort: c.Cohort, Variant: c.Variant, Metric: c.Metric}
			}
			cells = append(cells, c)
		}
		return nil
	})
	if err != nil {
		return nil, Quality{}, err
	}
	var q Quality
	found := false
	err = s.query(ctx, byName["quality"], p, func(r *sql.Rows) error {
		var exp string
		if err := r.Scan(&exp, &q.TraceNullExperiment, &q.TraceRows, &q.TraceNullKeys, &q.TraceDuplicates,
			&q.TraceOutOfWindow, &q.TraceVersionMismatch, &q.TraceUnknownVariant, &q.UnitsExposed,
			&q.UnitsMultiVariant, &q.UnitsAssigned, &q.UnitsUnclassified, &q.EventRows, &q.EventNullKeys,
			&q.EventDuplicates, &q.EventInvalidValue, &q.EventUnassigned, &q.EventBeforeExposure,
			&q.EventAfterWindow, &q.EventAttributed); err != nil {
			return err
		}
		if exp != spec.Experiment {
			return fmt.Errorf("quality row for experiment %q, want %q", exp, spec.Experiment)
		}
		found = true
		return nil
	})
	if err != nil {
		return nil, Quality{}, err
	}
	if !found {
		return nil, Quality{}, fmt.Errorf("template quality: no row for experiment %s", spec.Experiment)
	}
	return cells, q, nil
}

// scaleBound converts a clamp bound to fixed point exactly as the SQL
// converts event values: round half away from zero of bound * scale.
func scaleBound(b float64, scale int64) int64 {
	return int64(math.Round(b * float64(scale)))
}

// AllCohort is the label of the cohort that holds every assigned unit.
const AllCohort = "(all)"

// UnclassifiedCohort holds units whose persona is not a declared leaf.
const UnclassifiedCohort = "*"

// cohortOrder returns the cohorts of a spec in output order: (all), the
// declared leaves in byte order, then *.
func cohortOrder(spec *Spec) []string {
	leaves := append([]string(nil), spec.Cohorts.Taxonomy...)
	sort.Strings(leaves)
	return append(append([]string{AllCohort}, leaves...), UnclassifiedCohort)
}

// completeCells returns a cell for every cohort × variant × metric of the
// spec, in output order, with (all) summed exactly from the others and
// absent cells as zero.
func completeCells(spec *Spec, cells []Cell) ([]Cell, error) {
	type key struct{ c, v, m string }
	idx := map[key]Cell{}
	for _, c := range cells {
		if c.Cohort == AllCohort {
			return nil, fmt.Errorf("a cohort is named %q, which is reserved", AllCohort)
		}
		idx[key{c.Cohort, c.Variant, c.Metric}] = c
	}
	var out []Cell
	for _, coh := range cohortOrder(spec) {
		for _, v := range spec.Variants {
			for _, m := range spec.Metrics {
				c := Cell{Cohort: coh, Variant: v.Name, Metric: m.Name, Sum: new(big.Int), SumSq: new(big.Int)}
				if coh == AllCohort {
					for _, other := range cohortOrder(spec)[1:] {
						if o, ok := idx[key{other, v.Name, m.Name}]; ok {
							c.N += o.N
							c.Sum.Add(c.Sum, o.Sum)
							c.SumSq.Add(c.SumSq, o.SumSq)
						}
					}
				} else if o, ok := idx[key{coh, v.Name, m.Name}]; ok {
					c.N, c.Sum, c.SumSq = o.N, o.Sum, o.SumSq
				}
				out = append(out, c)
			}
		}
	}
	for k := range idx {
		if !contains(cohortOrder(spec), k.c) {
			return nil, fmt.Errorf("sufficient statistics for unexpected cohort %q", k.c)
		}
	}
	return out, nil
}

// Moments are a cell's mean and sample variance in metric units, computed
// exactly from the integer sums and rounded once to float64:
//
//	mean = Σx / (n·S)
//	var  = (n·Σx² − (Σx)²) / (n·(n−1)·S²)
//
// where S = 10^decimals. Var is 0 when n < 2.
func moments(c Cell, scale int64) (mean, variance float64) {
	if c.N == 0 {
		return 0, 0
	}
	n := big.NewInt(c.N)
	s := big.NewInt(scale)
	m := new(big.Rat).SetFrac(c.Sum, new(big.Int).Mul(n, s))
	mean, _ = m.Float64()
	if c.N < 2 {
		return mean, 0
	}
	num := new(big.Int).Mul(n, c.SumSq)
	num.Sub(num, new(big.Int).Mul(c.Sum, c.Sum))
	den := new(big.Int).Mul(n, big.NewInt(c.N-1))
	den.Mul(den, new(big.Int).Mul(s, s))
	variance, _ = new(big.Rat).SetFrac(num, den).Float64()
	return mean, variance
}

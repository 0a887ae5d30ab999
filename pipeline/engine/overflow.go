package engine

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// OverflowError reports a sufficient statistic that could exceed the exact
// 128-bit range: the per-unit values are too large for the number of units.
// Clamp the metric or lower statistics.fixed_point_decimals. Exit code 65.
//
// It comes from one of two places. Go's proof (n·max|x|² < 2^126 for every
// returned cell) knows the cell and sets Cohort and Variant. When DuckDB
// refuses a HUGEINT addition itself, no cell comes back: explainOverflow
// finds the metric whose clamp allows the overflow from the spec and the
// number of units (at most the trace rows read), leaves Cohort and Variant
// empty, and fills in the rest.
type OverflowError struct {
	Experiment, Cohort, Variant, Metric string

	Template string  // the template DuckDB failed in, e.g. sufstats@v3
	Clamp    string  // the metric's clamp(s) as written, e.g. [0, 500]
	Decimals int     // statistics.fixed_point_decimals
	MaxAbs   float64 // largest |per-unit value| the clamps allow, in metric units
	Units    int64   // upper bound on a cell's units
	Advice   string  // the clamp or scale that would keep n·max² < 2^126
	Others   []string
	Err      error // DuckDB's error
}

func (e *OverflowError) Error() string {
	if e.Cohort != "" || e.Err == nil {
		return fmt.Sprintf("experiment %s, cohort %s, variant %s, metric %s: n * max|x|^2 may exceed 2^126, so the exact sums could overflow; clamp the metric or lower statistics.fixed_point_decimals", e.Experiment, e.Cohort, e.Variant, e.Metric)
	}
	units := fmt.Sprintf("with up to %d units in a cell (the trace rows read)", e.Units)
	if e.Units < 0 {
		units = "with the units of a cell (not shown: a private run publishes no exact count)"
	}
	msg := fmt.Sprintf("experiment %s, metric %s: its exact sums overflow 128 bits (DuckDB refused the addition in %s; the cohort is not known): per-unit values reach %s (clamp %s, fixed_point_decimals %d), and %s n * max|x|^2 reaches 2^126, beyond what the exact sums can hold; %s",
		e.Experiment, e.Metric, e.Template, strconv.FormatFloat(e.MaxAbs, 'g', -1, 64), e.Clamp, e.Decimals, units, e.Advice)
	for _, o := range e.Others {
		msg += "; " + o
	}
	return msg
}

func (e *OverflowError) Unwrap() error { return e.Err }

// overflowSuspect is one metric whose clamps allow n·max² ≥ 2^126.
type overflowSuspect struct {
	spec   *expspec.Spec
	metric expspec.Metric
	maxAbs float64 // in metric units
	scaled float64 // maxAbs·10^d, the fixed-point bound
}

// ExplainOverflow replaces DuckDB's refusal of a 128-bit addition (a
// *DataError whose text says Overflow) by an *OverflowError naming the
// metric whose clamp allows it, its clamp and scale, and a clamp (and a
// scale) that would prevent it. units bounds the units of a cell: every
// unit has at least one trace row. Other errors are returned unchanged.
func ExplainOverflow(err error, specs []*expspec.Spec, traces []intake.InputFile) error {
	var de *DataError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "Overflow") {
		return err
	}
	var units int64
	for _, f := range traces {
		units += f.Rows
	}
	limit := math.Ldexp(1, 126)
	var suspects []overflowSuspect
	for _, s := range specs {
		scale := math.Pow10(*s.Statistics.FixedPointDecimals)
		for _, m := range s.Metrics {
			maxAbs := 1.0 // a proportion's x is 0 or 1
			for _, c := range []*expspec.Clamp{m.Clamp, denominatorClamp(m)} {
				if c != nil {
					maxAbs = math.Max(maxAbs, math.Max(math.Abs(c.Lower), math.Abs(c.Upper)))
				}
			}
			sc := maxAbs * scale
			if float64(max(units, 1))*sc*sc >= limit {
				suspects = append(suspects, overflowSuspect{spec: s, metric: m, maxAbs: maxAbs, scaled: sc})
			}
		}
	}
	if len(suspects) == 0 {
		return err
	}
	sort.SliceStable(suspects, func(i, j int) bool { return suspects[i].scaled > suspects[j].scaled })
	template := "a template"
	if m := templateRE.FindStringSubmatch(err.Error()); m != nil {
		template = m[1]
	}
	describe := func(x overflowSuspect) (clamp, advice string) {
		m := x.metric
		if m.Clamp != nil {
			clamp = fmt.Sprintf("[%s, %s]", fmtG(m.Clamp.Lower), fmtG(m.Clamp.Upper))
		} else {
			clamp = "none (a proportion)"
		}
		if c := denominatorClamp(m); c != nil {
			clamp += fmt.Sprintf(", denominator clamp [%s, %s]", fmtG(c.Lower), fmtG(c.Upper))
		}
		d := *x.spec.Statistics.FixedPointDecimals
		room := math.Sqrt(limit / float64(max(units, 1))) // the largest fixed-point |x| the proof admits
		bound := floor2(room / math.Pow10(d))
		advice = fmt.Sprintf("clamp %s within ±%s", m.Name, fmtG(bound))
		if nd := int(math.Floor(math.Log10(room / x.maxAbs))); nd >= 0 && nd < d {
			advice += fmt.Sprintf(" or lower statistics.fixed_point_decimals to %d", nd)
		}
		return clamp, advice
	}
	first := suspects[0]
	clamp, advice := describe(first)
	if first.spec.Privacy != nil && first.spec.Privacy.Enabled {
		// The suggested bound follows from the exact row count.
		units, advice = -1, "clamp "+first.metric.Name+" more tightly or lower statistics.fixed_point_decimals"
	}
	oe := &OverflowError{
		Experiment: first.spec.Experiment, Metric: first.metric.Name, Template: template,
		Clamp: clamp, Decimals: *first.spec.Statistics.FixedPointDecimals, MaxAbs: first.maxAbs,
		Units: units, Advice: advice, Err: err,
	}
	for _, x := range suspects[1:] {
		c, a := describe(x)
		oe.Others = append(oe.Others, fmt.Sprintf("experiment %s, metric %s (clamp %s) may overflow too: %s", x.spec.Experiment, x.metric.Name, c, a))
	}
	return oe
}

var templateRE = regexp.MustCompile(`^template (\S+@v[0-9]+)`)

func denominatorClamp(m expspec.Metric) *expspec.Clamp {
	if m.Denominator == nil {
		return nil
	}
	return m.Denominator.Clamp
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// floor2 rounds v > 0 down to two significant digits, so that a suggested
// bound never exceeds the one computed.
func floor2(v float64) float64 {
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	p := math.Pow10(int(math.Floor(math.Log10(v))) - 1)
	return math.Floor(v/p) * p
}

package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// Exit codes, from PRODUCT.md. Only cmd/verity exits; pipeline returns
// errors and ExitCode maps them.
const (
	ExitOK         = 0
	ExitTransient  = 1  // transient failure: retry
	ExitData       = 65 // a blocking data-quality gate failed, or input data is malformed
	ExitNoInput    = 66 // an input is missing
	ExitMismatch   = 70 // a replay or golden mismatch
	ExitCantCreate = 73 // an output folder or file cannot be created or written (EX_CANTCREAT)
	ExitConfig     = 78 // configuration, usage or integrity error
)

// InputError is a problem with one input file: unreadable, corrupt, or not
// matching the input contract. File is the path as the spec named it
// (relative to the spec's folder); Column and Row are set where they apply.
// Run returns it before any output is written; it maps to exit code 65.
type InputError struct {
	File   string
	Column string
	Row    int64 // 0 when not row-specific
	Err    error
}

func (e *InputError) Error() string {
	msg := "input " + e.File
	if e.Column != "" {
		msg += ": column " + e.Column
	}
	if e.Row > 0 {
		msg += fmt.Sprintf(": row %d", e.Row)
	}
	return msg + ": " + e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

// MissingInputError reports a glob that matched no file or a file that does
// not exist. It maps to exit code 66.
type MissingInputError struct {
	Spec     string // the spec file
	Resolved string // the spec file with its symlinks resolved, when that differs
	Glob     string // the glob as written in the spec
	Err      error
}

func (e *MissingInputError) Error() string {
	spec := e.Spec
	if e.Resolved != "" {
		spec += " (resolved: " + e.Resolved + ")"
	}
	return fmt.Sprintf("spec %s: input %q: %v", spec, e.Glob, e.Err)
}

func (e *MissingInputError) Unwrap() error { return e.Err }

// TransientError wraps a failure that may succeed on retry (resource
// exhaustion, an interrupted run). It maps to exit code 1.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// ErrNoOverwrite is returned by Run when an output folder exists and is not
// a completed Verity run (it has no manifest.json): Verity never deletes a
// folder it did not write.
var ErrNoOverwrite = errors.New("output folder exists and is not a Verity run; refusing to replace it")

// ExitCode maps an error returned by this package to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		specErr     *SpecError
		mismatch    *queries.MismatchError
		inputErr    *InputError
		missingErr  *MissingInputError
		transient   *TransientError
		overflowErr *OverflowError
		gateErr     *GateError
		manifestErr *ManifestError
		dataErr     *DataError
		integrity   *IntegrityError
		hostErr     *HostError
	)
	switch {
	case errors.As(err, &missingErr):
		return ExitNoInput
	case errors.Is(err, ErrReplayMismatch):
		return ExitMismatch
	case errors.As(err, &manifestErr) && errors.Is(err, fs.ErrNotExist):
		return ExitNoInput // the manifest, or an output beside it, is missing
	case errors.As(err, &manifestErr):
		return ExitConfig
	case errors.As(err, &inputErr), errors.As(err, &overflowErr), errors.As(err, &gateErr), errors.As(err, &dataErr):
		return ExitData
	case errors.As(err, &specErr), errors.As(err, &mismatch), errors.As(err, &integrity), errors.As(err, &hostErr), errors.Is(err, queries.ErrNotLocked),
		errors.Is(err, queries.ErrUnknownTemplate), errors.Is(err, ErrNoOverwrite), errors.Is(err, ErrUsage):
		return ExitConfig
	case errors.Is(err, privacy.ErrNoKey), errors.Is(err, privacy.ErrBadKey), errors.Is(err, privacy.ErrKeyTooShort),
		errors.Is(err, privacy.ErrBudgetExhausted):
		return ExitConfig
	case errors.As(err, new(*OutputDirError)):
		return ExitCantCreate
	case errors.As(err, new(*MemoryLimitError)), errors.As(err, new(*URLPathError)):
		return ExitConfig
	case errors.Is(err, ErrLocked):
		return ExitTransient
	case errors.As(err, &transient):
		return ExitTransient
	default:
		return ExitTransient
	}
}

// ErrUsage marks a command-line usage error (exit code 78).
var ErrUsage = errors.New("usage")

// URLPathError is a path — a command-line argument, a flag's value or a
// spec's input glob — written as a URL (s3://, gs://, http(s)://, abfs://,
// any scheme://). Verity reads and writes local files only, so it is a
// configuration error (exit 78) naming the argument, never "matched no
// file" (exit 66, which a scheduler reads as "data not landed yet").
type URLPathError struct {
	What   string // the argument: "--out", "spec", "inputs.traces", ...
	Path   string
	Scheme string
}

func (e *URLPathError) Error() string {
	return fmt.Sprintf("%s %q is a URL (%s://): Verity reads and writes local files only and does not read object stores or URLs; copy or mount the data locally and give its path", e.What, e.Path, e.Scheme)
}

// urlSchemeRE matches a URL's scheme (RFC 3986: a letter, then letters,
// digits, +, - or .) followed by ://.
var urlSchemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// CheckLocalPath returns a *URLPathError when path is a URL, naming what
// (the flag or argument that gave it); nil otherwise.
func CheckLocalPath(what, path string) error {
	if m := urlSchemeRE.FindStringSubmatch(path); m != nil {
		return &URLPathError{What: what, Path: path, Scheme: m[1]}
	}
	return nil
}

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
	spec   *Spec
	metric Metric
	maxAbs float64 // in metric units
	scaled float64 // maxAbs·10^d, the fixed-point bound
}

// explainOverflow replaces DuckDB's refusal of a 128-bit addition (a
// *DataError whose text says Overflow) by an *OverflowError naming the
// metric whose clamp allows it, its clamp and scale, and a clamp (and a
// scale) that would prevent it. units bounds the units of a cell: every
// unit has at least one trace row. Other errors are returned unchanged.
func explainOverflow(err error, specs []*Spec, traces []InputFile) error {
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
			for _, c := range []*Clamp{m.Clamp, denominatorClamp(m)} {
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

func denominatorClamp(m Metric) *Clamp {
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

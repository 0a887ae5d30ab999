package expspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verity-analytics/verity/pipeline/diskio"
)

// SpecVersion is the only spec format version this binary reads.
const SpecVersion = 1

// TemplateNames lists, in execution order, the SQL templates a spec pins.
var TemplateNames = []string{"traces", "assignment", "events", "unit_metrics", "sufstats", "quality"}

// Spec is one experiment's analysis specification, decoded strictly from
// YAML: an unknown key is an error. It pins everything the numbers depend on.
// Validate must succeed before any I/O.
type Spec struct {
	// Version selects the spec format; it must be 1.
	Version int `yaml:"version" json:"version"`
	// Experiment is the experiment key (trace column experiment_id) and,
	// unless Name is set, the name of the output folder.
	Experiment string `yaml:"experiment" json:"experiment"`
	// Name names this analysis: its output folder and the report's title.
	// Optional (default: the experiment). Two specs analysing the same
	// experiment (a private and an exact one, two metric sets) each need
	// their own name to run together.
	Name        string `yaml:"name,omitempty" json:"name,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Inputs are the Parquet files, as globs relative to the spec's folder.
	Inputs Inputs `yaml:"inputs" json:"inputs"`
	// Window is the analysis window [Start, End), in UTC.
	Window Window `yaml:"window" json:"window"`
	// Variants with their expected allocation; exactly one is the control.
	Variants []Variant `yaml:"variants" json:"variants"`
	// PersonaAlgoVersion pins the persona-assignment algorithm; traces with
	// another version are excluded and counted. Empty means not pinned.
	PersonaAlgoVersion string `yaml:"persona_algo_version,omitempty" json:"persona_algo_version,omitempty"`
	// Templates pins the version of every SQL template (see TemplateNames).
	Templates map[string]string `yaml:"templates" json:"templates"`
	// Cohorts declares the cohort dimension and its taxonomy.
	Cohorts Cohorts `yaml:"cohorts" json:"cohorts"`
	// MetricLibrary lists folders of metric definitions (metriclib.go),
	// relative to the spec, that metrics may reference (ref: name@vN).
	MetricLibrary []string `yaml:"metric_library,omitempty" json:"metric_library,omitempty"`
	// Metrics are analysed in the order given.
	Metrics []Metric `yaml:"metrics" json:"metrics"`
	// Statistics holds the statistical settings.
	Statistics Statistics `yaml:"statistics" json:"statistics"`
	// Quality overrides the thresholds of data-quality checks, by name
	// (see GateDefaults); unlisted checks keep their defaults.
	Quality map[string]Gate `yaml:"quality,omitempty" json:"quality,omitempty"`
	// Privacy says whether the release is differentially private, with
	// what budget and key. Required.
	Privacy *Privacy `yaml:"privacy" json:"privacy"`
	// Sharding fixes how units are split between the shards of a sharded
	// run (verity run --shard i/K): optional, see ShardScheme.
	Sharding *Sharding `yaml:"sharding,omitempty" json:"sharding,omitempty"`
	// Interactions names the specs of other experiments analysed in the
	// same run whose arms this experiment's effects are tested against
	// (interactions.go): optional.
	Interactions *Interactions `yaml:"interactions,omitempty" json:"interactions,omitempty"`
	// Drilldowns names trace columns whose values slice the analysis
	// (drilldown.go): optional.
	Drilldowns *Drilldowns `yaml:"drilldowns,omitempty" json:"drilldowns,omitempty"`

	// path is the file the spec was read from (for error messages and for
	// resolving relative globs); it is not part of the pinned content.
	path string
	// MetricDefs are the library definitions its metric refs resolved to.
	MetricDefs []MetricDefinitionRecord `json:"-" yaml:"-"`
}

// Inputs names the trace and event files.
type Inputs struct {
	Traces []string `yaml:"traces" json:"traces"`
	Events []string `yaml:"events" json:"events"`
	// Columns maps contract column names to the files' own column names.
	Columns ColumnMapping `yaml:"columns,omitempty" json:"columns,omitempty"`
	// SortedBy declares, per role, a producer's guarantee that the files
	// are sorted by a key (sorted.go): today only events: [unit_id,
	// event_id]. Verity checks it exactly before any SQL and fails the run
	// when it is false; events@v8 uses it to find duplicates without a
	// hash aggregate over every event.
	SortedBy map[string][]string `yaml:"sorted_by,omitempty" json:"sorted_by,omitempty"`
	// EventProperties declares extra VARCHAR columns of the events files
	// that metric filters may select on (filter.go); each is checked in
	// every events file before any SQL. Needs events@v9.
	EventProperties []string `yaml:"event_properties,omitempty" json:"event_properties,omitempty"`
}

// ColumnMapping maps contract column names (keys) onto source column names.
type ColumnMapping struct {
	Traces map[string]string `yaml:"traces,omitempty" json:"traces,omitempty"`
	Events map[string]string `yaml:"events,omitempty" json:"events,omitempty"`
}

// Window is a half-open UTC time range, written in the spec as RFC 3339
// timestamps with a Z offset or as dates (midnight UTC).
type Window struct {
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
	// PlannedEnd is the design's end when a nightly run (--date) cut the
	// window before it: the resolved spec then records both the window
	// analysed (End) and the horizon a fixed-horizon design waits for.
	// Empty when End is the planned end. It is not written in a spec file.
	PlannedEnd string `yaml:"-" json:"planned_end,omitempty"`

	start, end, plannedEnd time.Time
}

// Variant is one arm of the experiment.
type Variant struct {
	Name       string  `yaml:"name" json:"name"`
	Allocation float64 `yaml:"allocation" json:"allocation"`
	Control    bool    `yaml:"control,omitempty" json:"control,omitempty"`
}

// Cohorts declares how units are grouped. The only dimension is persona; its
// taxonomy lists the leaf paths (such as power/mobile). A unit whose persona
// is not a declared leaf falls in the cohort "*".
type Cohorts struct {
	Dimension string   `yaml:"dimension" json:"dimension"`
	Taxonomy  []string `yaml:"taxonomy" json:"taxonomy"`
	// MinUnits is the minimum cell size used by small-cohort collapsing.
	MinUnits int64 `yaml:"min_units,omitempty" json:"min_units,omitempty"`
}

// Metric is one analysed metric.
type Metric struct {
	Name string `yaml:"name" json:"name"`
	// Ref names a definition in the spec's metric library (name@vN); the
	// definition fills the fields below it in the resolved spec, the spec
	// itself adds only role and guardrail.
	Ref string `yaml:"ref,omitempty" json:"ref,omitempty"`
	// Kind is proportion (unit converted or not), mean (per-unit sum or
	// count of events), ratio (Σ numerator / Σ denominator over units) or
	// quantile (the Level-quantile of the per-unit values, defined as a
	// mean metric's; see quantile.go).
	Kind string `yaml:"kind" json:"kind"`
	// Level is a quantile metric's level in (0, 1), such as 0.5 (the
	// median) or 0.9; required for quantile metrics, not allowed otherwise.
	Level float64 `yaml:"level,omitempty" json:"level,omitempty"`
	// Over is what a quantile metric ranks: units (the default; each
	// unit's aggregated value) or events (each attributed event's own
	// value, with the clustered variance; see quantile.go). Empty for
	// other kinds.
	Over string `yaml:"over,omitempty" json:"over,omitempty"`
	// Event is the metric-event name (events column metric); for a ratio,
	// the numerator's event.
	Event string `yaml:"event" json:"event"`
	// Aggregate is how a mean metric (or a ratio's numerator) aggregates a
	// unit's events: sum of values or count of events. Empty for
	// proportions.
	Aggregate string `yaml:"aggregate,omitempty" json:"aggregate,omitempty"`
	// Clamp bounds each unit's value (winsorization). Required for mean
	// metrics and ratio numerators, not allowed for proportions.
	Clamp *Clamp `yaml:"clamp,omitempty" json:"clamp,omitempty"`
	// Cap winsorises a mean metric's per-unit values at a quantile of the
	// data, pooled over the arms (see quantile.go); after the clamp.
	Cap *PercentileCap `yaml:"cap,omitempty" json:"cap,omitempty"`
	// Denominator is a ratio metric's per-unit denominator, clamped over
	// the same units as the numerator. Required for ratios only.
	Denominator *Part `yaml:"denominator,omitempty" json:"denominator,omitempty"`
	// Role is goal (in the multiple-testing family, can ship), guardrail
	// (can roll back) or secondary (reported only, the default).
	Role string `yaml:"role,omitempty" json:"role"`
	// Direction is the direction in which a goal improves: increase (the
	// default) or decrease.
	Direction string `yaml:"direction,omitempty" json:"direction,omitempty"`
	// Guardrail declares a guardrail's harmful direction and margin.
	Guardrail *Guardrail `yaml:"guardrail,omitempty" json:"guardrail,omitempty"`
	// AttributionHours is the conversion window: events count only within
	// this many hours after the unit's exposure (and before the window
	// end). Needs unit_metrics@v3, whose default is 72; v1 and v2 count
	// every event until the window end.
	AttributionHours int `yaml:"attribution_hours,omitempty" json:"attribution_hours,omitempty"`
	// Prior is this metric's prior under the Bayesian engine (default:
	// statistics.bayesian.prior). See inference.go.
	Prior *Prior `yaml:"prior,omitempty" json:"prior,omitempty"`
	// Hypothesis states the metric's frequentist test when it is not the
	// default two-sided test of no effect: a one-sided alternative, a
	// superiority or non-inferiority margin, its own α and power. See
	// inference.go.
	Hypothesis *Hypothesis `yaml:"hypothesis,omitempty" json:"hypothesis,omitempty"`
	// VarianceReduction lists the variance-reduced estimates reported
	// beside the metric's comparison (see varreduce.go); default
	// statistics.variance_reduction.
	VarianceReduction []VarianceReduction `yaml:"variance_reduction,omitempty" json:"variance_reduction,omitempty"`
	// Filter selects the metric's events by property values: an event
	// counts only when, for every listed property column, its value is one
	// of the listed strings (exact, byte for byte; NULL never matches).
	// See filter.go.
	Filter map[string][]string `yaml:"filter,omitempty" json:"filter,omitempty"`
}

// Part is one aggregated per-unit quantity: a ratio's denominator.
type Part struct {
	Event     string `yaml:"event" json:"event"`
	Aggregate string `yaml:"aggregate" json:"aggregate"`
	Clamp     *Clamp `yaml:"clamp" json:"clamp"`
}

// Guardrail is the non-inferiority rule of a guardrail metric.
type Guardrail struct {
	// Harmful is the direction in which the metric gets worse: increase
	// (errors, latency) or decrease (revenue).
	Harmful string `yaml:"harmful" json:"harmful"`
	// Margin >= 0 is the largest tolerated harm, in the metric's units, or
	// as a relative change when Relative (0.02 tolerates 2%).
	Margin   float64 `yaml:"margin" json:"margin"`
	Relative bool    `yaml:"relative,omitempty" json:"relative"`
}

// Clamp bounds a per-unit value to [Lower, Upper].
type Clamp struct {
	Lower float64 `yaml:"lower" json:"lower"`
	Upper float64 `yaml:"upper" json:"upper"`
}

// Statistics are the statistical settings.
type Statistics struct {
	// Alpha is the two-sided significance level; default 0.05.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha"`
	// FixedPointDecimals is the number of decimals kept when values are
	// converted to exact integers; default 6.
	FixedPointDecimals *int `yaml:"fixed_point_decimals,omitempty" json:"fixed_point_decimals"`
	// Correction is the multiple-testing correction across the goal
	// metrics × treatments: holm (family-wise, the default), bh
	// (Benjamini–Hochberg false discovery rate) or none.
	Correction string `yaml:"correction,omitempty" json:"correction"`
	// CorrectionScope widens the family to every cohort when "cohorts";
	// the default, "overall", corrects over the (all) cohort's goals.
	CorrectionScope string `yaml:"correction_scope,omitempty" json:"correction_scope"`
	// Sequential, when set, replaces fixed-horizon intervals and p-values
	// with always-valid confidence sequences, safe to read every night.
	Sequential *Sequential `yaml:"sequential,omitempty" json:"sequential,omitempty"`
	// CUPED, when set, adjusts every metric with its own pre-exposure value.
	CUPED *CUPEDSettings `yaml:"cuped,omitempty" json:"cuped,omitempty"`
	// SRMThreshold is the p-value below which a sample-ratio mismatch
	// invalidates the verdict; default 0.001.
	SRMThreshold float64 `yaml:"srm_threshold,omitempty" json:"srm_threshold"`
	// Power is the power of the reported minimum detectable effect;
	// default 0.8.
	Power float64 `yaml:"power,omitempty" json:"power"`
	// MaxRelativeMDE flags a comparison as underpowered when its relative
	// MDE exceeds it; default 0.05.
	MaxRelativeMDE float64 `yaml:"max_relative_mde,omitempty" json:"max_relative_mde"`
	// Engine is the inference engine that decides: frequentist (empty,
	// the default) or bayesian. Empty is never filled in, so that specs
	// written before the Bayesian engine keep their hash.
	Engine string `yaml:"engine,omitempty" json:"engine,omitempty"`
	// Bayesian configures the Bayesian engine (engine: bayesian only):
	// the default prior and the decision thresholds. See inference.go.
	Bayesian *BayesianSettings `yaml:"bayesian,omitempty" json:"bayesian,omitempty"`
	// VarianceReduction is every metric's variance_reduction unless the
	// metric lists its own (see varreduce.go).
	VarianceReduction []VarianceReduction `yaml:"variance_reduction,omitempty" json:"variance_reduction,omitempty"`
}

// Sequential configures always-valid confidence sequences.
type Sequential struct {
	// NStar is the expected number of units in the two compared arms at
	// the end of the experiment; the sequence is tightest there.
	NStar float64 `yaml:"n_star" json:"n_star"`
}

// CUPEDSettings configures the pre-exposure covariate.
type CUPEDSettings struct {
	// LookbackDays is how far before each unit's first exposure its
	// covariate is measured; default 14.
	LookbackDays int `yaml:"lookback_days,omitempty" json:"lookback_days"`
}

// SpecError is a problem in a spec file: the file, the key (a dotted path)
// and what was expected. pipeline.ExitCode maps it to exit code 78.
type SpecError struct {
	File string
	Key  string
	Err  error
}

func (e *SpecError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("spec %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("spec %s: %s: %v", e.File, e.Key, e.Err)
}

func (e *SpecError) Unwrap() error { return e.Err }

// MaxSpecBytes bounds the size of a spec file.
const MaxSpecBytes = 1 << 20

// LoadSpec reads, decodes and validates the spec at path.
func LoadSpec(path string) (*Spec, error) {
	f, _, err := diskio.OpenRegular(path)
	if err != nil {
		return nil, &SpecError{File: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, &SpecError{File: path, Err: err}
	}
	if len(data) > MaxSpecBytes {
		return nil, &SpecError{File: path, Err: fmt.Errorf("larger than %d bytes", MaxSpecBytes)}
	}
	s, err := ParseSpec(path, data)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// ParseSpec decodes a spec strictly and validates it. name is used in
// errors and as the base for relative input globs.
func ParseSpec(name string, data []byte) (*Spec, error) {
	var probe struct {
		Version int `yaml:"version"`
	}
	// First read only the version, so that the format can be switched on.
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return nil, &SpecError{File: name, Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	switch probe.Version {
	case SpecVersion:
	case 0:
		return nil, &SpecError{File: name, Key: "version", Err: fmt.Errorf("missing; want %d", SpecVersion)}
	default:
		return nil, &SpecError{File: name, Key: "version", Err: fmt.Errorf("unsupported version %d; this binary reads version %d", probe.Version, SpecVersion)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		msg := err.Error()
		if m := yamlLineRE.FindAllStringSubmatch(msg, -1); m != nil {
			var parts []string
			for _, sm := range m {
				parts = append(parts, fmt.Sprintf("line %s: unknown key %q", sm[1], sm[2]))
			}
			return nil, &SpecError{File: name, Err: errors.New(strings.Join(parts, "; "))}
		}
		return nil, &SpecError{File: name, Err: fmt.Errorf("decode: %s", strings.TrimPrefix(msg, "yaml: "))}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &SpecError{File: name, Err: errors.New("more than one YAML document")}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil {
		if key, msg := strictScalars(&doc, reflect.TypeOf(s), "", false); key != "" {
			return nil, &SpecError{File: name, Key: key, Err: errors.New(msg)}
		}
	}
	s.path = name
	if err := s.resolveMetricRefs(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Path returns the file the spec was loaded from.
func (s *Spec) Path() string { return s.path }

// OutputName is the analysis's name: its output folder under --out and the
// report's title. It is Name when set, else the experiment.
func (s *Spec) OutputName() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Experiment
}

// errf returns a *SpecError for the spec's file at key (a dotted path).
func (s *Spec) errf(key, format string, args ...any) error {
	return &SpecError{File: s.path, Key: key, Err: fmt.Errorf(format, args...)}
}

// Bounds returns the analysis window [start, end).
func (w Window) Bounds() (start, end time.Time) { return w.start, w.end }

// Planned returns the design's planned end: the window's end unless a
// nominal date cut the window before it.
func (w Window) Planned() time.Time { return w.plannedEnd }

// Control returns the control variant's name.
func (s *Spec) Control() string {
	for _, v := range s.Variants {
		if v.Control {
			return v.Name
		}
	}
	return ""
}

// Scale returns 10^FixedPointDecimals.
func (s *Spec) Scale() int64 {
	n := int64(1)
	for i := 0; i < *s.Statistics.FixedPointDecimals; i++ {
		n *= 10
	}
	return n
}

// Canonical returns the resolved spec (defaults filled in) as canonical JSON
// and its SHA-256. Map keys are sorted by encoding/json, so the bytes do not
// depend on the YAML's layout or key order.
func (s *Spec) Canonical() ([]byte, string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("spec %s: canonical form: %w", s.path, err)
	}
	h := sha256.Sum256(b)
	return b, hex.EncodeToString(h[:]), nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

var (
	SHA256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	VersionRE = regexp.MustCompile(`^v[1-9][0-9]*$`)
)

// DecodePinnedSpec rebuilds a spec from its canonical JSON (as a manifest
// pins it): decoded strictly, with the metric-library definitions its refs
// resolved to, and validated. path names the spec for error messages and is
// the base of its relative input globs (the file is not read).
func DecodePinnedSpec(canonical []byte, path string, defs []MetricDefinitionRecord) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(canonical))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, &SpecError{File: path, Err: fmt.Errorf("pinned spec in the manifest: %v", err)}
	}
	s.path = path
	s.MetricDefs = append([]MetricDefinitionRecord(nil), defs...)
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// CutAt returns the window analysed by a nightly run that ends at end: when
// end is before the design's end, the planned end is recorded (see
// pipeline/analysis/horizon.go).
func (w Window) CutAt(end time.Time) Window {
	if end.Before(w.end) && w.PlannedEnd == "" {
		w.PlannedEnd = w.plannedEnd.Format(time.RFC3339Nano)
	}
	w.end = end
	w.End = end.Format(time.RFC3339Nano)
	return w
}

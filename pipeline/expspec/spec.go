package expspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/queries"
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
	// count of events) or ratio (Σ numerator / Σ denominator over units).
	Kind string `yaml:"kind" json:"kind"`
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

var (
	keyRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	leafRE    = regexp.MustCompile(`^[A-Za-z0-9-][A-Za-z0-9_-]*(/[A-Za-z0-9-][A-Za-z0-9_-]*)*$`)
	contractT = []string{"ts", "unit_id", "experiment_id", "variant", "flag_key", "flag_version", "rule_id", "persona", "persona_algo_version", "sdk_version", "event_id"}
	contractE = []string{"ts", "unit_id", "metric", "value", "event_id"}
)

func (s *Spec) errf(key, format string, args ...any) error {
	return &SpecError{File: s.path, Key: key, Err: fmt.Errorf(format, args...)}
}

// Validate checks the spec and fills in defaults. It does no I/O.
func (s *Spec) Validate() error {
	if s.Version != SpecVersion {
		return s.errf("version", "want %d, got %d", SpecVersion, s.Version)
	}
	if !keyRE.MatchString(s.Experiment) || s.Experiment == "." || s.Experiment == ".." {
		return s.errf("experiment", "want 1-128 letters, digits, '.', '_' or '-' (it names the output folder), got %q", s.Experiment)
	}
	if s.Name != "" && (!keyRE.MatchString(s.Name) || s.Name == "." || s.Name == "..") {
		return s.errf("name", "want 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit (it names the output folder), got %q", s.Name)
	}
	if len(s.Inputs.Traces) == 0 {
		return s.errf("inputs.traces", "want at least one glob")
	}
	if len(s.Inputs.Events) == 0 {
		return s.errf("inputs.events", "want at least one glob")
	}
	for i, g := range append(append([]string{}, s.Inputs.Traces...), s.Inputs.Events...) {
		if strings.TrimSpace(g) == "" || strings.ContainsRune(g, 0) {
			return s.errf(fmt.Sprintf("inputs[%d]", i), "empty glob")
		}
	}
	if err := s.validateMapping("inputs.columns.traces", s.Inputs.Columns.Traces, contractT); err != nil {
		return err
	}
	if err := s.validateMapping("inputs.columns.events", s.Inputs.Columns.Events, contractE); err != nil {
		return err
	}
	var err error
	if s.Window.start, err = parseUTC(s.Window.Start); err != nil {
		return s.errf("window.start", "%v", err)
	}
	if s.Window.end, err = parseUTC(s.Window.End); err != nil {
		return s.errf("window.end", "%v", err)
	}
	if !s.Window.end.After(s.Window.start) {
		return s.errf("window", "end %s must be after start %s", s.Window.End, s.Window.Start)
	}
	// Canonical form: the same instant always hashes the same.
	s.Window.Start = s.Window.start.Format(time.RFC3339Nano)
	s.Window.End = s.Window.end.Format(time.RFC3339Nano)
	s.Window.plannedEnd = s.Window.end
	if s.Window.PlannedEnd != "" {
		if s.Window.plannedEnd, err = parseUTC(s.Window.PlannedEnd); err != nil {
			return s.errf("window.planned_end", "%v", err)
		}
		if s.Window.plannedEnd.Before(s.Window.end) {
			return s.errf("window.planned_end", "%s is before the end %s", s.Window.PlannedEnd, s.Window.End)
		}
		s.Window.PlannedEnd = s.Window.plannedEnd.Format(time.RFC3339Nano)
	}
	if len(s.Variants) < 2 {
		return s.errf("variants", "want at least two variants (a control and a treatment), got %d", len(s.Variants))
	}
	seen := map[string]bool{}
	controls := 0
	var total float64
	for i, v := range s.Variants {
		key := fmt.Sprintf("variants[%d]", i)
		if !keyRE.MatchString(v.Name) {
			return s.errf(key+".name", "want 1-128 letters, digits, '.', '_' or '-', got %q", v.Name)
		}
		if seen[v.Name] {
			return s.errf(key+".name", "duplicate variant %q", v.Name)
		}
		seen[v.Name] = true
		if !(v.Allocation > 0 && v.Allocation <= 1) {
			return s.errf(key+".allocation", "want a share in (0, 1], got %v", v.Allocation)
		}
		total += v.Allocation
		if v.Control {
			controls++
		}
	}
	if math.Abs(total-1) > 1e-9 {
		return s.errf("variants", "allocations must sum to 1, got %v", total)
	}
	if controls != 1 {
		return s.errf("variants", "exactly one variant must have control: true, got %d", controls)
	}
	if s.PersonaAlgoVersion != "" && !keyRE.MatchString(s.PersonaAlgoVersion) {
		return s.errf("persona_algo_version", "want 1-128 letters, digits, '.', '_' or '-', got %q", s.PersonaAlgoVersion)
	}
	for _, name := range TemplateNames {
		v, ok := s.Templates[name]
		if !ok {
			return s.errf("templates."+name, "missing: every template version must be pinned (want %s)", strings.Join(TemplateNames, ", "))
		}
		if !VersionRE.MatchString(v) {
			return s.errf("templates."+name, "want a version like v1, got %q", v)
		}
	}
	for name := range s.Templates {
		if !slices.Contains(TemplateNames, name) {
			return s.errf("templates."+name, "unknown template; want one of %s", strings.Join(TemplateNames, ", "))
		}
	}
	if s.Cohorts.Dimension != "persona" {
		return s.errf("cohorts.dimension", "want persona, got %q", s.Cohorts.Dimension)
	}
	leaves := map[string]bool{}
	for i, l := range s.Cohorts.Taxonomy {
		key := fmt.Sprintf("cohorts.taxonomy[%d]", i)
		if !leafRE.MatchString(l) || len(l) > 256 {
			return s.errf(key, "want a path of names joined by '/', such as power/mobile (a name may not start with '_'), got %q", l)
		}
		if leaves[l] {
			return s.errf(key, "duplicate leaf %q", l)
		}
		leaves[l] = true
	}
	for l := range leaves {
		for p := l; strings.Contains(p, "/"); {
			p = p[:strings.LastIndex(p, "/")]
			if leaves[p] {
				return s.errf("cohorts.taxonomy", "%q is listed as a leaf but is the parent of %q: list leaves only", p, l)
			}
		}
	}
	if s.Cohorts.MinUnits < 0 {
		return s.errf("cohorts.min_units", "want >= 0, got %d", s.Cohorts.MinUnits)
	}
	if len(s.Metrics) == 0 {
		return s.errf("metrics", "want at least one metric")
	}
	names := map[string]bool{}
	for i := range s.Metrics {
		m := s.Metrics[i]
		key := fmt.Sprintf("metrics[%d]", i)
		if !keyRE.MatchString(m.Name) {
			return s.errf(key+".name", "want 1-128 letters, digits, '.', '_' or '-', got %q", m.Name)
		}
		if names[m.Name] {
			return s.errf(key+".name", "duplicate metric %q", m.Name)
		}
		names[m.Name] = true
		if m.Event == "" || len(m.Event) > 256 {
			return s.errf(key+".event", "want the metric-event name (1-256 bytes)")
		}
		switch m.Kind {
		case "proportion":
			if m.Aggregate != "" {
				return s.errf(key+".aggregate", "not allowed for a proportion (a unit converts or not)")
			}
			if m.Clamp != nil {
				return s.errf(key+".clamp", "not allowed for a proportion (values are 0 or 1)")
			}
		case "mean", "ratio":
			if err := s.validatePart(key, Part{Event: m.Event, Aggregate: m.Aggregate, Clamp: m.Clamp}); err != nil {
				return err
			}
		default:
			return s.errf(key+".kind", "want proportion, mean or ratio, got %q", m.Kind)
		}
		if m.Kind == "ratio" {
			if m.Denominator == nil {
				return s.errf(key+".denominator", "required for a ratio metric")
			}
			if err := s.validatePart(key+".denominator", *m.Denominator); err != nil {
				return err
			}
		} else if m.Denominator != nil {
			return s.errf(key+".denominator", "only ratio metrics have a denominator")
		}
		if m.Role == "" {
			s.Metrics[i].Role = "secondary"
		}
		switch s.Metrics[i].Role {
		case "goal", "secondary":
			if m.Guardrail != nil {
				return s.errf(key+".guardrail", "only metrics with role guardrail have a guardrail rule")
			}
		case "guardrail":
			if m.Guardrail == nil {
				return s.errf(key+".guardrail", "required for role guardrail: {harmful: increase|decrease, margin: M, relative: bool}")
			}
			if m.Guardrail.Harmful != "increase" && m.Guardrail.Harmful != "decrease" {
				return s.errf(key+".guardrail.harmful", "want increase or decrease, got %q", m.Guardrail.Harmful)
			}
			if !finite(m.Guardrail.Margin) || m.Guardrail.Margin < 0 {
				return s.errf(key+".guardrail.margin", "want a finite margin >= 0, got %v", m.Guardrail.Margin)
			}
		default:
			return s.errf(key+".role", "want goal, guardrail or secondary, got %q", m.Role)
		}
		if m.AttributionHours < 0 || m.AttributionHours > 24*366 {
			return s.errf(key+".attribution_hours", "want 1 to 8784 hours, got %d", m.AttributionHours)
		}
		switch m.Direction {
		case "":
			if s.Metrics[i].Role == "goal" {
				s.Metrics[i].Direction = "increase"
			}
		case "increase", "decrease":
			if s.Metrics[i].Role != "goal" {
				return s.errf(key+".direction", "only goals have a desired direction (guardrails declare guardrail.harmful)")
			}
		default:
			return s.errf(key+".direction", "want increase or decrease, got %q", m.Direction)
		}
	}
	st := &s.Statistics
	if st.Alpha == 0 {
		st.Alpha = 0.05
	}
	if !(st.Alpha > 0 && st.Alpha < 0.5) {
		return s.errf("statistics.alpha", "want a level in (0, 0.5), got %v", st.Alpha)
	}
	if st.FixedPointDecimals == nil {
		d := 6
		st.FixedPointDecimals = &d
	}
	if d := *st.FixedPointDecimals; d < 0 || d > 9 {
		return s.errf("statistics.fixed_point_decimals", "want 0 to 9, got %d", d)
	}
	if st.Correction == "" {
		st.Correction = "holm"
	}
	if st.Correction != "holm" && st.Correction != "bh" && st.Correction != "none" {
		return s.errf("statistics.correction", "want holm, bh or none, got %q", st.Correction)
	}
	if st.CorrectionScope == "" {
		st.CorrectionScope = "overall"
	}
	if st.CorrectionScope != "overall" && st.CorrectionScope != "cohorts" {
		return s.errf("statistics.correction_scope", "want overall or cohorts, got %q", st.CorrectionScope)
	}
	if st.Sequential != nil && !(st.Sequential.NStar >= 2 && finite(st.Sequential.NStar)) {
		return s.errf("statistics.sequential.n_star", "want the expected number of units in two arms (>= 2), got %v", st.Sequential.NStar)
	}
	if st.CUPED != nil {
		if st.CUPED.LookbackDays == 0 {
			st.CUPED.LookbackDays = 14
		}
		if st.CUPED.LookbackDays < 1 || st.CUPED.LookbackDays > 366 {
			return s.errf("statistics.cuped.lookback_days", "want 1 to 366, got %d", st.CUPED.LookbackDays)
		}
	}
	if st.SRMThreshold == 0 {
		st.SRMThreshold = 0.001
	}
	if !(st.SRMThreshold > 0 && st.SRMThreshold < 0.5) {
		return s.errf("statistics.srm_threshold", "want a p-value threshold in (0, 0.5), got %v", st.SRMThreshold)
	}
	if st.Power == 0 {
		st.Power = 0.8
	}
	if !(st.Power > st.Alpha && st.Power < 1) {
		return s.errf("statistics.power", "want a power in (alpha, 1), got %v", st.Power)
	}
	if st.MaxRelativeMDE == 0 {
		st.MaxRelativeMDE = 0.05
	}
	if !(st.MaxRelativeMDE > 0) || !finite(st.MaxRelativeMDE) {
		return s.errf("statistics.max_relative_mde", "want a positive relative effect, got %v", st.MaxRelativeMDE)
	}
	scale := math.Pow10(*st.FixedPointDecimals)
	for i, m := range s.Metrics {
		for _, c := range []*Clamp{m.Clamp, denClamp(m)} {
			if c == nil {
				continue
			}
			for _, b := range []float64{c.Lower, c.Upper} {
				if math.Abs(b*scale) >= 9.2e18 {
					return s.errf(fmt.Sprintf("metrics[%d]", i), "clamp bound %v overflows int64 after scaling by 10^%d", b, *st.FixedPointDecimals)
				}
			}
		}
	}
	if err := s.validateGates(); err != nil {
		return err
	}
	if s.Privacy == nil {
		return s.errf("privacy", "required: {enabled: false} for exact numbers, or {enabled: true, epsilon: E, delta: D, run_share: S} for a differentially private release")
	}
	if err := s.Privacy.validate(s); err != nil {
		return err
	}
	return s.validateTemplateFeatures()
}

func denClamp(m Metric) *Clamp {
	if m.Denominator == nil {
		return nil
	}
	return m.Denominator.Clamp
}

// validatePart checks an aggregated quantity: a mean metric, a ratio's
// numerator or its denominator.
func (s *Spec) validatePart(key string, p Part) error {
	if p.Event == "" || len(p.Event) > 256 {
		return s.errf(key+".event", "want the metric-event name (1-256 bytes)")
	}
	if p.Aggregate != "sum" && p.Aggregate != "count" {
		return s.errf(key+".aggregate", "want sum or count, got %q", p.Aggregate)
	}
	if p.Clamp == nil {
		return s.errf(key+".clamp", "required: per-unit values are clamped to declared bounds")
	}
	if !finite(p.Clamp.Lower) || !finite(p.Clamp.Upper) || p.Clamp.Lower > p.Clamp.Upper {
		return s.errf(key+".clamp", "want finite lower <= upper, got [%v, %v]", p.Clamp.Lower, p.Clamp.Upper)
	}
	return nil
}

// templateFeatures lists what each released template version can compute.
// Released versions never change, so neither do their entries.
var templateFeatures = map[string]map[string][]string{
	"unit_metrics": {"v1": {}, "v2": {"ratio", "cuped"}, "v3": {"ratio", "cuped", "attribution"}, "v4": {"ratio", "cuped", "attribution"}, "v5": {"ratio", "cuped", "attribution"}},
	"sufstats":     {"v1": {}, "v2": {"ratio", "cuped"}, "v3": {"ratio", "cuped"}},
}

// UnitKeyedSet is the single-join set whose de-duplication keys include
// unit_id, whose empty or blank keys are counted exclusions, and whose
// quality counts include the per-unit gate statistics: the only set a
// private spec may pin (no unit's rows can remove or change another's).
var UnitKeyedSet = map[string]string{
	"traces": "v6", "assignment": "v5", "events": "v5", "unit_metrics": "v5", "sufstats": "v3", "quality": "v4",
}

// unitKeyedPins is UnitKeyedSet as a spec would write it.
func unitKeyedPins() string {
	var parts []string
	for _, name := range TemplateNames {
		parts = append(parts, name+": "+UnitKeyedSet[name])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// unitKeyed reports whether the spec pins the whole UnitKeyedSet.
func (s *Spec) unitKeyed() bool {
	for _, name := range TemplateNames {
		if s.Templates[name] != UnitKeyedSet[name] {
			return false
		}
	}
	return true
}

// validateTemplateFeatures checks that the pinned template versions can
// compute what the spec asks for, and that they fit together.
func (s *Spec) validateTemplateFeatures() error {
	need := map[string]string{}
	for i, m := range s.Metrics {
		if m.Kind == "ratio" {
			need["ratio"] = fmt.Sprintf("metrics[%d] is a ratio", i)
		}
	}
	if s.Statistics.CUPED != nil {
		need["cuped"] = "statistics.cuped is set"
	}
	for i, m := range s.Metrics {
		if m.AttributionHours > 0 {
			need["attribution"] = fmt.Sprintf("metrics[%d].attribution_hours is set", i)
		}
	}
	for _, name := range []string{"unit_metrics", "sufstats"} {
		v := s.Templates[name]
		if name == "sufstats" {
			delete(need, "attribution") // computed upstream of sufstats
		}
		feats, ok := templateFeatures[name][v]
		if !ok {
			// An unknown version is reported when the template is loaded.
			continue
		}
		for _, f := range slices.Sorted(maps.Keys(need)) {
			if !slices.Contains(feats, f) {
				return s.errf("templates."+name, "%s@%s cannot compute %s metrics (%s); pin a version that can, such as v2", name, v, f, need[f])
			}
		}
	}
	// sufstats@v2 reads the y and c columns that unit_metrics@v2 and later
	// write; sufstats@v1 reads x only, which every version writes, but is
	// kept with unit_metrics@v1 so that v1 specs stay what they were.
	// A conversion window needs the quality counts that know about it.
	if s.Templates["unit_metrics"] == "v3" && s.Templates["quality"] == "v1" {
		return s.errf("templates.quality", "quality@v1 would count events after unit_metrics@v3's conversion window as attributed; pin quality: v2")
	}
	// The single-join layout is one design across all six templates: each
	// reads the tables and keys the others write. traces@v4 (or v5) with
	// assignment@v4 is a faster pair that replaces traces@v3/assignment@v3;
	// events@v4 writes what events@v3 writes, unit_metrics@v5 what v4 does.
	singleJoin := [][]string{
		{"traces", "v3", "v4", "v5", "v6"}, {"assignment", "v3", "v4", "v5"}, {"events", "v3", "v4", "v5"},
		{"unit_metrics", "v4", "v5"}, {"sufstats", "v3"}, {"quality", "v3", "v4"},
	}
	inSet, outSet := []string{}, []string{}
	for _, m := range singleJoin {
		if slices.Contains(m[1:], s.Templates[m[0]]) {
			inSet = append(inSet, m[0]+"@"+s.Templates[m[0]])
		} else {
			outSet = append(outSet, m[0]+"@"+strings.Join(m[1:], "/"))
		}
	}
	if len(inSet) > 0 && len(outSet) > 0 {
		return s.errf("templates", "%s belong together with %s (the single-join layout); pin all six or none", strings.Join(inSet, ", "), strings.Join(outSet, ", "))
	}
	if len(outSet) == 0 {
		// The unit-keyed versions read and write each other's columns
		// (per-unit gate flags and counts): all four or none.
		var keyed, unkeyed []string
		for _, name := range []string{"traces", "assignment", "events", "quality"} {
			if s.Templates[name] == UnitKeyedSet[name] {
				keyed = append(keyed, name+"@"+s.Templates[name])
			} else {
				unkeyed = append(unkeyed, name+"@"+s.Templates[name])
			}
		}
		if len(keyed) > 0 && len(unkeyed) > 0 {
			return s.errf("templates", "%s are unit-keyed and do not fit %s; pin the unit-keyed set %s", strings.Join(keyed, ", "), strings.Join(unkeyed, ", "), unitKeyedPins())
		}
		if (s.Templates["traces"] == "v3") != (s.Templates["assignment"] == "v3") {
			return s.errf("templates", "traces@%s and assignment@%s do not fit together: traces@v4 and v5 go with assignment@v4, traces@v3 with assignment@v3", s.Templates["traces"], s.Templates["assignment"])
		}
		return nil
	}

	um, ss := s.Templates["unit_metrics"], s.Templates["sufstats"]
	if (ss == "v2") != (um == "v2" || um == "v3") {
		return s.errf("templates", "sufstats@%s and unit_metrics@%s do not fit together: sufstats@v2 goes with unit_metrics@v2 or later, sufstats@v1 with unit_metrics@v1", ss, um)
	}
	return nil
}

func (s *Spec) validateMapping(key string, m map[string]string, contract []string) error {
	targets := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if !slices.Contains(contract, k) {
			return s.errf(key+"."+k, "not a contract column; want one of %s", strings.Join(contract, ", "))
		}
		if !queries.ValidIdent(v) {
			return s.errf(key+"."+k, "want a column name of letters, digits and underscores, got %q", v)
		}
		if prev, ok := targets[v]; ok {
			return s.errf(key+"."+k, "column %q is already mapped to %s", v, prev)
		}
		targets[v] = k
	}
	return nil
}

func parseUTC(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing; want an RFC 3339 UTC timestamp such as 2026-11-16T00:00:00Z or a date such as 2026-11-16")
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 UTC timestamp such as 2026-11-16T00:00:00Z or a date such as 2026-11-16, got %q", s)
	}
	if _, off := t.Zone(); off != 0 {
		return time.Time{}, fmt.Errorf("want UTC (a Z offset), got %q", s)
	}
	return t.UTC(), nil
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

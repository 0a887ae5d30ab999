package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

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
	// Experiment is the experiment key (trace column experiment_id) and the
	// name of the experiment's output folder.
	Experiment  string `yaml:"experiment" json:"experiment"`
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
	// Metrics are analysed in the order given.
	Metrics []Metric `yaml:"metrics" json:"metrics"`
	// Statistics holds the statistical settings.
	Statistics Statistics `yaml:"statistics" json:"statistics"`

	// path is the file the spec was read from (for error messages and for
	// resolving relative globs); it is not part of the pinned content.
	path string
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

	start, end time.Time
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
	// Kind is proportion (unit converted or not) or mean (per-unit sum or
	// count of events).
	Kind string `yaml:"kind" json:"kind"`
	// Event is the metric-event name (events column metric).
	Event string `yaml:"event" json:"event"`
	// Aggregate is how a mean metric aggregates a unit's events: sum of
	// values or count of events. Empty for proportions.
	Aggregate string `yaml:"aggregate,omitempty" json:"aggregate,omitempty"`
	// Clamp bounds each unit's value (winsorization). Required for mean
	// metrics, not allowed for proportions.
	Clamp *Clamp `yaml:"clamp,omitempty" json:"clamp,omitempty"`
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
}

// SpecError is a problem in a spec file: the file, the key (a dotted path)
// and what was expected. Run maps it to exit code 78.
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
	f, err := os.Open(path)
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
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Path returns the file the spec was loaded from.
func (s *Spec) Path() string { return s.path }

var (
	keyRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	leafRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
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
		if !regexp.MustCompile(`^v[1-9][0-9]*$`).MatchString(v) {
			return s.errf("templates."+name, "want a version like v1, got %q", v)
		}
	}
	for name := range s.Templates {
		if !contains(TemplateNames, name) {
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
			return s.errf(key, "want a path of names joined by '/', such as power/mobile, got %q", l)
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
	for i, m := range s.Metrics {
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
		case "mean":
			if m.Aggregate != "sum" && m.Aggregate != "count" {
				return s.errf(key+".aggregate", "want sum or count, got %q", m.Aggregate)
			}
			if m.Clamp == nil {
				return s.errf(key+".clamp", "required for a mean metric: per-unit values are clamped to declared bounds")
			}
			if !finite(m.Clamp.Lower) || !finite(m.Clamp.Upper) || m.Clamp.Lower > m.Clamp.Upper {
				return s.errf(key+".clamp", "want finite lower <= upper, got [%v, %v]", m.Clamp.Lower, m.Clamp.Upper)
			}
		default:
			return s.errf(key+".kind", "want proportion or mean, got %q", m.Kind)
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
	scale := math.Pow10(*st.FixedPointDecimals)
	for i, m := range s.Metrics {
		if m.Clamp == nil {
			continue
		}
		for _, b := range []float64{m.Clamp.Lower, m.Clamp.Upper} {
			if math.Abs(b*scale) >= 9.2e18 {
				return s.errf(fmt.Sprintf("metrics[%d].clamp", i), "bound %v overflows int64 after scaling by 10^%d", b, *st.FixedPointDecimals)
			}
		}
	}
	return nil
}

func (s *Spec) validateMapping(key string, m map[string]string, contract []string) error {
	targets := map[string]string{}
	for _, k := range sortedKeys(m) {
		v := m[k]
		if !contains(contract, k) {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

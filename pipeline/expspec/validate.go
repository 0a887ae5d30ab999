package expspec

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/verity-analytics/verity/queries"
)

// keyRE is what names (experiment, variant, metric, output folder) may be;
// leafRE a taxonomy leaf path; contractT and contractE the trace and event
// contract columns a mapping may name.
var (
	keyRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	leafRE    = regexp.MustCompile(`^[A-Za-z0-9-][A-Za-z0-9_-]*(/[A-Za-z0-9-][A-Za-z0-9_-]*)*$`)
	contractT = []string{"ts", "unit_id", "experiment_id", "variant", "flag_key", "flag_version", "rule_id", "persona", "persona_algo_version", "sdk_version", "event_id"}
	contractE = []string{"ts", "unit_id", "metric", "value", "event_id"}
)

// Validate checks the spec and fills in defaults. It does no I/O.
//
// The steps run in the order listed and the first failing check is the
// error users and tests see, so the order is part of the behaviour. Each
// step fills in its own defaults (and parses its own times) just before
// checking them.
func (s *Spec) Validate() error {
	steps := []func() error{
		s.validateIdentity,
		s.validateInputs,
		s.validateWindow,
		s.validateVariants,
		s.validatePersonaAlgoVersion,
		s.validateTemplatePins,
		s.validateCohorts,
		s.validateMetrics,
		s.validateStatistics,
		s.validateInference,
		s.validateVarianceReduction,
		s.validateClampScaling,
		s.validateGates,
		s.validatePrivacy,
		s.validateTemplateFeatures,
		s.validateSharding,
		s.validateQuantiles,
		s.validateInteractions,
		s.validateCrossMoments,
		s.validateFilters,
		s.validateDrilldowns,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// validateIdentity checks the format version, the experiment key and the
// analysis name, which name the output folder.
func (s *Spec) validateIdentity() error {
	if s.Version != SpecVersion {
		return s.errf("version", "want %d, got %d", SpecVersion, s.Version)
	}
	if !keyRE.MatchString(s.Experiment) || s.Experiment == "." || s.Experiment == ".." {
		return s.errf("experiment", "want 1-128 letters, digits, '.', '_' or '-' (it names the output folder), got %q", s.Experiment)
	}
	if s.Name != "" && (!keyRE.MatchString(s.Name) || s.Name == "." || s.Name == "..") {
		return s.errf("name", "want 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit (it names the output folder), got %q", s.Name)
	}
	return nil
}

// validateInputs checks that traces and events each have non-empty globs
// and that the column mappings map contract columns to safe names.
func (s *Spec) validateInputs() error {
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
	return s.validateSortedBy()
}

// validateWindow parses the window's start, end and planned end, checks
// that they are in order, and rewrites them in canonical RFC 3339 form.
func (s *Spec) validateWindow() error {
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
	return nil
}

// validateVariants checks that there are at least two variants with
// distinct names, allocations in (0, 1] summing to 1, and one control.
func (s *Spec) validateVariants() error {
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
	return nil
}

// validatePersonaAlgoVersion checks the pinned persona-algorithm version,
// if one is pinned.
func (s *Spec) validatePersonaAlgoVersion() error {
	if s.PersonaAlgoVersion != "" && !keyRE.MatchString(s.PersonaAlgoVersion) {
		return s.errf("persona_algo_version", "want 1-128 letters, digits, '.', '_' or '-', got %q", s.PersonaAlgoVersion)
	}
	return nil
}

// validateTemplatePins checks that every template in TemplateNames is
// pinned to a version like v1 and that no other template is named.
func (s *Spec) validateTemplatePins() error {
	for _, name := range s.PinnedTemplateNames() {
		v, ok := s.Templates[name]
		if !ok {
			return s.errf("templates."+name, "missing: every template version must be pinned (want %s)", strings.Join(TemplateNames, ", "))
		}
		if !VersionRE.MatchString(v) {
			return s.errf("templates."+name, "want a version like v1, got %q", v)
		}
	}
	// Sorted, so that the same spec always names the same template.
	for _, name := range slices.Sorted(maps.Keys(s.Templates)) {
		if !slices.Contains(TemplateNames, name) && !slices.Contains(OptionalTemplateNames, name) {
			return s.errf("templates."+name, "unknown template; want one of %s (and, only when the spec needs them, %s)", strings.Join(TemplateNames, ", "), strings.Join(OptionalTemplateNames, ", "))
		}
	}
	return nil
}

// validateCohorts checks the cohort dimension, its taxonomy and the
// minimum cell size.
func (s *Spec) validateCohorts() error {
	if s.Cohorts.Dimension != "persona" {
		return s.errf("cohorts.dimension", "want persona, got %q", s.Cohorts.Dimension)
	}
	if err := s.validateTaxonomy(); err != nil {
		return err
	}
	if s.Cohorts.MinUnits < 0 {
		return s.errf("cohorts.min_units", "want >= 0, got %d", s.Cohorts.MinUnits)
	}
	return nil
}

// validateTaxonomy checks that the taxonomy lists distinct, well-formed
// leaf paths and that no listed path is the parent of another.
func (s *Spec) validateTaxonomy() error {
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
	// In the spec's order, so that the same spec always names the same pair.
	for _, l := range s.Cohorts.Taxonomy {
		for p := l; strings.Contains(p, "/"); {
			p = p[:strings.LastIndex(p, "/")]
			if leaves[p] {
				return s.errf("cohorts.taxonomy", "%q is listed as a leaf but is the parent of %q: list leaves only", p, l)
			}
		}
	}
	return nil
}

// validateMetrics checks that there is at least one metric, then each
// metric in order, filling in its role and direction defaults.
func (s *Spec) validateMetrics() error {
	if len(s.Metrics) == 0 {
		return s.errf("metrics", "want at least one metric")
	}
	names := map[string]bool{}
	for i := range s.Metrics {
		if err := s.validateMetric(i, names); err != nil {
			return err
		}
	}
	return nil
}

// validateMetric checks metric i (its name not already in names, to which
// it is added), filling in its role and direction defaults.
func (s *Spec) validateMetric(i int, names map[string]bool) error {
	m := &s.Metrics[i]
	key := fmt.Sprintf("metrics[%d]", i)
	if !keyRE.MatchString(m.Name) {
		return s.errf(key+".name", "want 1-128 letters, digits, '.', '_' or '-', got %q", m.Name)
	}
	if names[m.Name] {
		return s.errf(key+".name", "duplicate metric %q", m.Name)
	}
	names[m.Name] = true
	if err := s.validateMetricKind(key, *m); err != nil {
		return err
	}
	if err := s.validateMetricRole(key, m); err != nil {
		return err
	}
	if m.AttributionHours < 0 || m.AttributionHours > 24*366 {
		return s.errf(key+".attribution_hours", "want 1 to 8784 hours, got %d", m.AttributionHours)
	}
	return s.validateMetricDirection(key, m)
}

// validateMetricKind checks a metric's event and kind, and that it has the
// aggregate, clamp and denominator its kind needs, and only those.
func (s *Spec) validateMetricKind(key string, m Metric) error {
	if m.Event == "" || len(m.Event) > 256 {
		return s.errf(key+".event", "want the metric-event name (1-256 bytes)")
	}
	switch m.Kind {
	case "proportion":
		if err := s.validateQuantileOver(key, m); err != nil {
			return err
		}
		if m.Aggregate != "" {
			return s.errf(key+".aggregate", "not allowed for a proportion (a unit converts or not)")
		}
		if m.Clamp != nil {
			return s.errf(key+".clamp", "not allowed for a proportion (values are 0 or 1)")
		}
	case "mean", "ratio", "quantile":
		if err := s.validateQuantileOver(key, m); err != nil {
			return err
		}
		agg := m.Aggregate
		if m.EventLevel() {
			agg = "sum" // each event's own value: validateQuantileOver refused an aggregate
		}
		if err := s.validatePart(key, Part{Event: m.Event, Aggregate: agg, Clamp: m.Clamp}); err != nil {
			return err
		}
	default:
		return s.errf(key+".kind", "want proportion, mean, ratio or quantile, got %q", m.Kind)
	}
	if err := s.validateQuantileLevel(key, m); err != nil {
		return err
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
	return nil
}

// validateMetricRole defaults a metric's role to secondary and checks that
// exactly the guardrails have a well-formed guardrail rule.
func (s *Spec) validateMetricRole(key string, m *Metric) error {
	if m.Role == "" {
		m.Role = "secondary"
	}
	switch m.Role {
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
	return nil
}

// validateMetricDirection defaults a goal's direction to increase and
// checks that only goals declare one.
func (s *Spec) validateMetricDirection(key string, m *Metric) error {
	switch m.Direction {
	case "":
		if m.Role == "goal" {
			m.Direction = "increase"
		}
	case "increase", "decrease":
		if m.Role != "goal" {
			return s.errf(key+".direction", "only goals have a desired direction (guardrails declare guardrail.harmful)")
		}
	default:
		return s.errf(key+".direction", "want increase or decrease, got %q", m.Direction)
	}
	return nil
}

// validateStatistics fills in each statistical setting's default and
// checks its range, setting by setting.
func (s *Spec) validateStatistics() error {
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
	return nil
}

// validateClampScaling checks that every clamp bound, scaled by
// 10^fixed_point_decimals, fits in an int64.
func (s *Spec) validateClampScaling() error {
	decimals := *s.Statistics.FixedPointDecimals
	scale := math.Pow10(decimals)
	for i, m := range s.Metrics {
		for _, c := range []*Clamp{m.Clamp, denClamp(m)} {
			if c == nil {
				continue
			}
			for _, b := range []float64{c.Lower, c.Upper} {
				if math.Abs(b*scale) >= 9.2e18 {
					return s.errf(fmt.Sprintf("metrics[%d]", i), "clamp bound %v overflows int64 after scaling by 10^%d", b, decimals)
				}
			}
		}
	}
	return nil
}

// validatePrivacy checks that the privacy section is present and that it
// fits the rest of the spec.
func (s *Spec) validatePrivacy() error {
	if s.Privacy == nil {
		return s.errf("privacy", "required: {enabled: false} for exact numbers, or {enabled: true, epsilon: E, delta: D, run_share: S} for a differentially private release")
	}
	return s.Privacy.validate(s)
}

// denClamp returns a ratio metric's denominator clamp, nil for the others.
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

// validateMapping checks a column mapping, in key order: contract columns
// only, each mapped to a distinct safe identifier.
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

// parseUTC parses a window bound: a date (midnight UTC) or an RFC 3339
// timestamp with a zero offset.
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

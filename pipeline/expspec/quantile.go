package expspec

import (
	"fmt"
	"slices"
	"strings"
)

// Quantile metrics (issue 20).
//
// A quantile metric is the Level-quantile of a per-unit value defined as a
// mean metric's (event, aggregate sum or count, clamp, attribution window):
// its cells are exact histograms of the units' fixed-point values, from the
// pinned template histograms (templates.histograms, required exactly when
// the spec has a quantile metric). This release reports quantile metrics
// and does not decide on them: they are secondary, without a hypothesis,
// CUPED, sequential intervals or the Bayesian engine, and a private spec
// with one is refused (no differentially private quantile is implemented).

// PercentileCap is a mean metric's percentile cap (issue 20 item 2): each
// unit's value v becomes min(v, c), c the UpperQuantile-quantile
// (definition 1) of the per-unit values of every arm of cohort (all)
// together, one cap for every cohort of the night. The cap is data: it is
// reported beside the results (decisions.json, report).
type PercentileCap struct {
	UpperQuantile float64 `yaml:"upper_quantile" json:"upper_quantile"`
}

// NeedsHistogram reports whether the metric's cells carry a histogram of
// per-unit values: a unit-level quantile metric, or a mean metric with a
// percentile cap.
func (m Metric) NeedsHistogram() bool {
	return (m.Kind == KindQuantile && !m.EventLevel()) || m.Cap != nil
}

// Event-level quantile metrics (issue 20 item 1): over: events ranks each
// attributed event's own value, v = round(value·10^d) (NULL value = 1, as
// for every metric), clamped event by event to the metric's clamp; the
// quantile is the definition-1 quantile of the arm's pooled events, its
// variance the clustered one of Yao, Li & Lu (2024) that counts a unit's
// events as correlated (stats/quantileevent.go). aggregate is refused:
// no per-unit aggregate is ranked. The cells come from the pinned
// template eventbins (templates.eventbins, required exactly when such a
// metric is declared), which re-reads the events with the pinned events
// template's rules; the per-unit cell (sufstats) of such a metric is its
// count of attributed events, unclamped, against which the bins are
// checked.
const (
	OverUnits  = "units"
	OverEvents = "events"
)

// EventLevel reports whether m is an event-level quantile metric.
func (m Metric) EventLevel() bool { return m.Kind == KindQuantile && m.Over == OverEvents }

// NeedsEventBins reports whether the metric's cells carry event bins.
func (m Metric) NeedsEventBins() bool { return m.EventLevel() }

// HasEventQuantiles reports whether the spec has an event-level quantile
// metric.
func (s *Spec) HasEventQuantiles() bool {
	for _, m := range s.Metrics {
		if m.EventLevel() {
			return true
		}
	}
	return false
}

// EventBinsEventsVersions are the events templates whose rules
// eventbins@v1 repeats: the unit-keyed duplicate hash hash(unit_id,
// event_id) in event_pre and the candidates' classes in event_cand
// (events@v4 keys duplicates by event_id alone, events@v8 by the checked
// sort order; eventbins@v1 does neither).
var EventBinsEventsVersions = []string{"v5", "v6", "v7", "v9", "v10", "v12"}

// validateQuantileOver checks a metric's over: quantile metrics only,
// units or events, and no aggregate for events.
func (s *Spec) validateQuantileOver(key string, m Metric) error {
	if m.Over == "" {
		return nil
	}
	if m.Kind != KindQuantile {
		return s.errf(key+".over", "only quantile metrics have over (this metric's kind is %s)", m.Kind)
	}
	switch m.Over {
	case OverUnits:
	case OverEvents:
		if m.Aggregate != "" {
			return s.errf(key+".aggregate", "not allowed with over: events (each event's own value is ranked, clamped event by event; a quantile of per-unit sums or counts is over: units)")
		}
	default:
		return s.errf(key+".over", "want units (the quantile of the per-unit values, the default) or events (the quantile of the events' own values, with the clustered variance), got %q", m.Over)
	}
	return nil
}

// HasCaps reports whether the spec has a percentile-capped metric.
func (s *Spec) HasCaps() bool {
	for _, m := range s.Metrics {
		if m.Cap != nil {
			return true
		}
	}
	return false
}

// OptionalTemplateNames are templates a spec pins only when it needs them:
// histograms (quantile metrics), interactions (interactions.go),
// crossmoments (varreduce.go), filter_counts (filter.go), drilldown
// (drilldown.go), eventbins (event-level quantile metrics). They run after
// sufstats, in this order.
var OptionalTemplateNames = []string{"histograms", "interactions", "crossmoments", "filter_counts", "drilldown", "eventbins"}

// KindQuantile is the metric kind of a quantile metric.
const KindQuantile = "quantile"

// PinnedTemplateNames lists, in execution order, the templates the spec
// pins: TemplateNames, then each optional template it pins.
func (s *Spec) PinnedTemplateNames() []string {
	names := slices.Clone(TemplateNames)
	for _, n := range OptionalTemplateNames {
		if _, ok := s.Templates[n]; ok {
			names = append(names, n)
		}
	}
	return names
}

// HasQuantiles reports whether the spec has a quantile metric.
func (s *Spec) HasQuantiles() bool {
	for _, m := range s.Metrics {
		if m.Kind == KindQuantile {
			return true
		}
	}
	return false
}

// validateQuantileLevel checks that a quantile metric has a level in
// (0, 1) and that no other metric has one.
func (s *Spec) validateQuantileLevel(key string, m Metric) error {
	if m.Kind != KindQuantile {
		if m.Level != 0 {
			return s.errf(key+".level", "only quantile metrics have a level (this metric's kind is %s)", m.Kind)
		}
		return nil
	}
	if m.Level == 0 {
		return s.errf(key+".level", "required for a quantile metric: the quantile's level in (0, 1), such as 0.5 (the median), 0.9 or 0.99")
	}
	if !(m.Level > 0 && m.Level < 1) {
		return s.errf(key+".level", "want a level strictly between 0 and 1 (0.9 is the 90th percentile), got %v", m.Level)
	}
	return nil
}

// validateQuantiles checks what a spec with quantile metrics needs: the
// histograms template over the single-join unit values, exact numbers,
// and quantile metrics reported only.
func (s *Spec) validateQuantiles() error {
	if err := s.validateCaps(); err != nil {
		return err
	}
	if err := s.validateEventBinsPin(); err != nil {
		return err
	}
	v, pinned := s.Templates["histograms"]
	unitLevel := -1
	for i, m := range s.Metrics {
		if m.Kind == KindQuantile && !m.EventLevel() && unitLevel < 0 {
			unitLevel = i
		}
	}
	if unitLevel < 0 && pinned && !s.HasCaps() {
		return s.errf("templates.histograms", "pinned, but the spec has no quantile metric or percentile cap whose per-unit values need histograms (event-level quantiles read eventbins); remove it")
	}
	if !s.HasQuantiles() {
		return nil
	}
	first := -1
	for i, m := range s.Metrics {
		if m.Kind == KindQuantile && first < 0 {
			first = i
		}
	}
	key := fmt.Sprintf("metrics[%d]", first)
	if s.Privacy.Enabled {
		return s.errf(key+".kind", "a private spec cannot have a quantile metric: this release has no differentially private quantile (a quantile is one unit's value); analyse it in an exact spec (privacy: {enabled: false})")
	}
	if unitLevel >= 0 {
		if !pinned {
			return s.errf("templates.histograms", "required for quantile metrics (%s is one): pin histograms: v1", s.Metrics[unitLevel].Name)
		}
		if v != "v1" && v != "v2" {
			return s.errf("templates.histograms", "want v1 or v2, got %q", v)
		}
	}
	if um := s.Templates["unit_metrics"]; um != "v4" && um != "v5" {
		return s.errf("templates.unit_metrics", "quantile metrics read the per-unit values of unit_metrics@v4 or v5 (the single-join layout); they cannot use unit_metrics@%s", um)
	}
	st := s.Statistics
	switch {
	case st.CUPED != nil:
		return s.errf("statistics.cuped", "not available with quantile metrics (%s): CUPED adjusts means, not quantiles", s.Metrics[first].Name)
	case st.Sequential != nil:
		return s.errf("statistics.sequential", "not available with quantile metrics (%s): their intervals are fixed-horizon", s.Metrics[first].Name)
	case s.IsBayesian():
		return s.errf("statistics.engine", "the Bayesian engine has no quantile model; quantile metrics (%s) need the frequentist engine", s.Metrics[first].Name)
	}
	for i, m := range s.Metrics {
		if m.Kind != KindQuantile {
			continue
		}
		k := fmt.Sprintf("metrics[%d]", i)
		if m.Role != "secondary" {
			return s.errf(k+".role", "quantile metrics are reported, not decided on, in this release: want role secondary, got %q", m.Role)
		}
		if m.Hypothesis != nil {
			return s.errf(k+".hypothesis", "not available for a quantile metric (its test is two-sided, of no difference)")
		}
		if m.Prior != nil {
			return s.errf(k+".prior", "not available for a quantile metric (no Bayesian quantile model)")
		}
	}
	return nil
}

// validateEventBinsPin checks the eventbins pin: required exactly when an
// event-level quantile metric is declared, v1, over an events template
// whose rules it repeats.
func (s *Spec) validateEventBinsPin() error {
	v, pinned := s.Templates["eventbins"]
	first := -1
	for i, m := range s.Metrics {
		if m.EventLevel() && first < 0 {
			first = i
		}
	}
	switch {
	case first < 0 && pinned:
		return s.errf("templates.eventbins", "pinned, but the spec has no event-level quantile metric (over: events); remove it")
	case first < 0:
		return nil
	case !pinned:
		return s.errf("templates.eventbins", "required for event-level quantile metrics (%s is one): pin eventbins: v1", s.Metrics[first].Name)
	case v != "v1":
		return s.errf("templates.eventbins", "want v1, got %q", v)
	}
	if ev := s.Templates["events"]; !slices.Contains(EventBinsEventsVersions, ev) {
		return s.errf("templates.events", "eventbins@v1 repeats the duplicate and validity rules of events@%s (the unit-keyed hash); event-level quantile metrics (%s) cannot use events@%s", strings.Join(EventBinsEventsVersions, ", @"), s.Metrics[first].Name, ev)
	}
	return nil
}

// validateCaps checks percentile caps: mean metrics only, a level in
// (0, 1), histograms@v2 (which computes histograms of capped metrics),
// exact specs without CUPED.
func (s *Spec) validateCaps() error {
	for i, m := range s.Metrics {
		if m.Cap == nil {
			continue
		}
		k := fmt.Sprintf("metrics[%d].cap", i)
		if m.Kind != "mean" {
			return s.errf(k, "only mean metrics can be capped at a percentile (this metric's kind is %s)", m.Kind)
		}
		if q := m.Cap.UpperQuantile; !(q > 0 && q < 1) {
			return s.errf(k+".upper_quantile", "want a level strictly between 0 and 1 (0.99 caps at the pooled 99th percentile), got %v", q)
		}
		if s.Privacy.Enabled {
			return s.errf(k, "a private spec cannot cap at a percentile: a cap computed from other units' values breaks the per-unit bound the noise is calibrated to; use the fixed clamp")
		}
		if um := s.Templates["unit_metrics"]; um != "v4" && um != "v5" {
			return s.errf("templates.unit_metrics", "histograms@v2 reads the per-unit values of unit_metrics@v4 or v5 (the single-join layout); percentile caps cannot use unit_metrics@%s", um)
		}
		if v := s.Templates["histograms"]; v != "v2" {
			return s.errf("templates.histograms", "percentile caps (%s) need histograms@v2 (v1 computes quantile metrics' histograms only): pin histograms: v2", m.Name)
		}
		if s.Statistics.CUPED != nil {
			return s.errf("statistics.cuped", "not available with percentile caps (%s): the covariate would not be capped alike", m.Name)
		}
	}
	return nil
}

// QuantileLabel names a quantile level as a percentile, such as p50, p90
// or p99.9.
func QuantileLabel(level float64) string {
	s := fmt.Sprintf("%.10f", level*100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return "p" + s
}

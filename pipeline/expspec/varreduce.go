package expspec

import (
	"fmt"
	"slices"
	"strings"
)

// Variance reduction beyond CUPED (issue 21, item 3). A metric (or, as the
// default of every metric, statistics.variance_reduction) lists the
// variance-reduced estimates of its (all)-cohort effect that are reported
// beside its comparison:
//
//	variance_reduction:
//	  - {method: cuped}                                  # needs statistics.cuped
//	  - {method: poststratify, strata: persona}          # Miratrix, Sekhon & Yu 2013
//	  - {method: regression, covariates: [pre_period, persona]}  # Lin 2013
//
// cuped is the comparison statistics.cuped already adjusts, reported with
// the variance reduction it achieved; poststratify stratifies on the
// unit's persona leaf (its cohort, from its first-exposure row); regression
// is Lin's interacted regression on the listed pre-exposure covariates:
// pre_period (the metric's own value over statistics.cuped's lookback, the
// CUPED covariate) and persona (indicators of the persona leaves). All are
// computed from the sufficient statistics every cohort already has, so no
// template is needed beyond the one CUPED needs for pre_period.
//
// The adjusted estimates are reported (adjusted.csv, the report); the
// verdict, the multiple-testing family and results.csv stay on the
// metric's comparison. Exact specs only: a private spec listing any
// method is refused (exit 78), as a hypothesis is.

// Variance-reduction methods.
const (
	VRCUPED        = "cuped"
	VRPostStratify = "poststratify"
	VRRegression   = "regression"
)

// Regression covariates and post-stratification strata. A regression may
// also adjust for another metric's pre-period value, pre_period:<metric>
// (its value over statistics.cuped's lookback, as that metric's CUPED
// covariate), whose cross-moments with this metric the crossmoments
// template computes.
const (
	CovariatePrePeriod = "pre_period"
	CovariatePersona   = "persona"

	covariatePrePeriodOf = "pre_period:"
)

// OtherPrePeriod returns the metric whose pre-period value a covariate
// pre_period:<metric> names, and whether c is one.
func OtherPrePeriod(c string) (string, bool) {
	return strings.CutPrefix(c, covariatePrePeriodOf)
}

// validateOtherPrePeriod checks a covariate pre_period:<name> of the
// variance_reduction list at key: listed under a metric, naming another
// mean or proportion metric of the spec, with statistics.cuped (which
// defines every metric's pre-period), over the single-join unit values the
// crossmoments template reads.
func (s *Spec) validateOtherPrePeriod(key, ck, name string) error {
	own := s.metricAt(key)
	if own == "" {
		return s.errf(ck, "another metric's pre-period value is a covariate of one metric: list it in that metric's variance_reduction, not in statistics.variance_reduction")
	}
	if name == own {
		return s.errf(ck, "%q is this metric: its own pre-period value is the covariate pre_period", name)
	}
	i := slices.IndexFunc(s.Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		var names []string
		for _, m := range s.Metrics {
			if m.Name != own {
				names = append(names, m.Name)
			}
		}
		return s.errf(ck, "no metric named %q in this spec (other metrics: %s)", name, strings.Join(names, ", "))
	}
	if m := s.Metrics[i]; (m.Kind != "mean" && m.Kind != "proportion") || m.Cap != nil {
		return s.errf(ck, "%s is a %s metric%s: a covariate is a mean or proportion metric's pre-period value, one number per unit", name, m.Kind, map[bool]string{true: " with a percentile cap", false: ""}[m.Cap != nil])
	}
	if s.Statistics.CUPED == nil {
		return s.errf(ck, "a pre-period value is a metric over statistics.cuped's lookback; set statistics.cuped")
	}
	return nil
}

// CrossMomentPairs lists the (metric, covariate metric) pairs whose
// cross-moments the crossmoments template computes: for every regression
// with covariates pre_period:<k…>, the metric with each k (its x, y and c
// times k's pre-period value: an ordered pair), and each two of its k with
// each other (only their pre-period values meet: either order serves), in
// the order listed, each once.
func (s *Spec) CrossMomentPairs() [][2]string {
	var out [][2]string
	for _, m := range s.Metrics {
		for _, v := range m.VarianceReduction {
			var others []string
			for _, c := range v.Covariates {
				if k, ok := OtherPrePeriod(c); ok {
					others = append(others, k)
				}
			}
			for i, k := range others {
				if !slices.Contains(out, [2]string{m.Name, k}) {
					out = append(out, [2]string{m.Name, k})
				}
				for _, k2 := range others[:i] {
					if !slices.Contains(out, [2]string{k2, k}) && !slices.Contains(out, [2]string{k, k2}) {
						out = append(out, [2]string{k2, k})
					}
				}
			}
		}
	}
	return out
}

// validateCrossMoments checks templates.crossmoments: pinned exactly when
// a regression adjusts for another metric's pre-period value, as v1, over
// the single-join layout (unit_metrics@v4/v5's unit values, sufstats@v3's
// rule for units without events, assignment@v4/v5's unit ids).
func (s *Spec) validateCrossMoments() error {
	v, pinned := s.Templates["crossmoments"]
	pairs := s.CrossMomentPairs()
	switch {
	case len(pairs) == 0 && pinned:
		return s.errf("templates.crossmoments", "pinned, but no regression lists another metric's pre-period value (pre_period:<metric>); remove it")
	case len(pairs) == 0:
		return nil
	case !pinned:
		return s.errf("templates.crossmoments", "required by covariate %s%s: pin crossmoments: v1", covariatePrePeriodOf, pairs[0][1])
	case v != "v1":
		return s.errf("templates.crossmoments", "want v1, got %q", v)
	}
	if um := s.Templates["unit_metrics"]; um != "v4" && um != "v5" {
		return s.errf("templates.unit_metrics", "crossmoments@v1 reads the per-unit values of unit_metrics@v4 or v5 (the single-join layout), not unit_metrics@%s", um)
	}
	if ss := s.Templates["sufstats"]; ss != "v3" {
		return s.errf("templates.sufstats", "crossmoments@v1 pairs with sufstats@v3's cells (its rule for units without events), not sufstats@%s", ss)
	}
	if a := s.Templates["assignment"]; a != "v4" && a != "v5" && a != "v6" {
		return s.errf("templates.assignment", "crossmoments@v1 reads assignment@v4, v5 or v6's table (one row per unit, uid), not assignment@%s", a)
	}
	return nil
}

// VarianceReduction is one variance-reduced estimate of a metric.
type VarianceReduction struct {
	// Method is cuped, poststratify or regression.
	Method string `yaml:"method" json:"method"`
	// Strata is poststratify's pre-exposure stratification: persona (the
	// default and, so far, the only one).
	Strata string `yaml:"strata,omitempty" json:"strata,omitempty"`
	// Covariates are regression's pre-exposure covariates: pre_period,
	// persona, or both.
	Covariates []string `yaml:"covariates,omitempty" json:"covariates,omitempty"`
}

// Label names the estimate in outputs: the method and its covariates
// (poststratify[persona], regression[pre_period+persona]).
func (v VarianceReduction) Label() string {
	switch v.Method {
	case VRPostStratify:
		return v.Method + "[" + v.Strata + "]"
	case VRRegression:
		return v.Method + "[" + strings.Join(v.Covariates, "+") + "]"
	}
	return v.Method
}

// VarianceReductionOf returns the variance-reduced estimates of metric m:
// its own list, else statistics.variance_reduction. The default does not
// reach quantile metrics or percentile-capped means (vrReaches): the
// estimators work on the cells' uncapped moments, which are not those
// metrics' comparison, and listing a method on such a metric is refused.
func (s *Spec) VarianceReductionOf(m Metric) []VarianceReduction {
	if m.VarianceReduction != nil {
		return m.VarianceReduction
	}
	if !vrReaches(m) {
		return nil
	}
	return s.Statistics.VarianceReduction
}

// vrReaches reports whether variance-reduced estimates can describe m's
// comparison: not for a quantile (no moments) or a percentile-capped mean
// (compared on capped moments the estimators do not see).
func vrReaches(m Metric) bool { return m.Kind != KindQuantile && m.Cap == nil }

// HasVarianceReduction reports whether any metric reports a
// variance-reduced estimate.
func (s *Spec) HasVarianceReduction() bool {
	for _, m := range s.Metrics {
		if len(s.VarianceReductionOf(m)) > 0 {
			return true
		}
	}
	return false
}

// validateVarianceReduction checks statistics.variance_reduction and every
// metric's, filling in poststratify's default strata.
func (s *Spec) validateVarianceReduction() error {
	if err := s.validateVRList("statistics.variance_reduction", s.Statistics.VarianceReduction); err != nil {
		return err
	}
	for i := range s.Metrics {
		if m := s.Metrics[i]; len(m.VarianceReduction) > 0 && !vrReaches(m) {
			why := "a quantile metric has no moments for the estimators to adjust"
			if m.Kind != KindQuantile {
				why = "a percentile-capped metric is compared on capped moments, and the estimators see the uncapped ones"
			}
			return s.errf(fmt.Sprintf("metrics[%d].variance_reduction", i), "not available here: %s; remove it (a statistics.variance_reduction default skips such metrics)", why)
		}
		if err := s.validateVRList(fmt.Sprintf("metrics[%d].variance_reduction", i), s.Metrics[i].VarianceReduction); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) validateVRList(key string, list []VarianceReduction) error {
	seen := map[string]bool{}
	for j := range list {
		v := &list[j]
		k := fmt.Sprintf("%s[%d]", key, j)
		if err := s.validateVR(k, v); err != nil {
			return err
		}
		// regression[persona+pre_period] is regression[pre_period+persona]:
		// the same estimate, listed twice.
		same := v.Method + "[" + v.Strata + "]"
		if cs := slices.Sorted(slices.Values(v.Covariates)); len(cs) > 0 {
			same += "[" + strings.Join(cs, "+") + "]"
		}
		if seen[same] {
			return s.errf(k, "%s is listed twice (covariates in any order are the same estimate)", v.Label())
		}
		seen[same] = true
	}
	return nil
}

func (s *Spec) validateVR(key string, v *VarianceReduction) error {
	private := s.Privacy != nil && s.Privacy.Enabled
	if private && (v.Method == VRCUPED || v.Method == VRPostStratify || v.Method == VRRegression) {
		// Same rule as hypotheses: a new kind of analysis gets a DP
		// method or a refusal. Post-stratification and regression have
		// no model of the privacy noise in the per-leaf moments; the
		// report of CUPED's reduction is written by exact runs only.
		return s.errf(key+".method", "%s is not available in a private spec: variance-reduced estimates have no model of the privacy noise in the per-stratum moments, so they would not be a charged, calibrated release; remove variance_reduction (statistics.cuped still adjusts the private comparison, with the noise in its interval)", v.Method)
	}
	switch v.Method {
	case VRCUPED:
		if s.Statistics.CUPED == nil {
			return s.errf(key+".method", "cuped reports the adjustment statistics.cuped makes; set statistics.cuped (its lookback_days defines the pre-period)")
		}
		if v.Strata != "" || len(v.Covariates) > 0 {
			return s.errf(key, "cuped takes no strata or covariates (its covariate is the metric's own pre-period value)")
		}
		return nil
	case VRPostStratify, VRRegression:
	default:
		return s.errf(key+".method", "want %s, %s or %s, got %q", VRCUPED, VRPostStratify, VRRegression, v.Method)
	}
	if v.Method == VRPostStratify {
		if len(v.Covariates) > 0 {
			return s.errf(key+".covariates", "poststratify takes strata, not covariates")
		}
		if v.Strata == "" {
			v.Strata = CovariatePersona
		}
		if v.Strata != CovariatePersona {
			return s.errf(key+".strata", "want persona (the unit's persona leaf on its first-exposure row), got %q; strata on another trace dimension are not supported yet", v.Strata)
		}
		return nil
	}
	if v.Strata != "" {
		return s.errf(key+".strata", "regression takes covariates, not strata (use covariates: [persona])")
	}
	if len(v.Covariates) == 0 {
		return s.errf(key+".covariates", "list at least one of %s, %s", CovariatePrePeriod, CovariatePersona)
	}
	seen := map[string]bool{}
	for i, c := range v.Covariates {
		ck := fmt.Sprintf("%s.covariates[%d]", key, i)
		switch {
		case c == CovariatePrePeriod:
			if s.Statistics.CUPED == nil {
				return s.errf(ck, "pre_period is the metric's value over statistics.cuped's lookback; set statistics.cuped")
			}
		case c == CovariatePersona:
		case strings.HasPrefix(c, covariatePrePeriodOf):
			if err := s.validateOtherPrePeriod(key, ck, strings.TrimPrefix(c, covariatePrePeriodOf)); err != nil {
				return err
			}
		case c != "" && s.metricAt(key) == c:
			return s.errf(ck, "%q is this metric: its own pre-period value is the covariate pre_period", c)
		case slices.ContainsFunc(s.Metrics, func(m Metric) bool { return m.Name == c }):
			return s.errf(ck, "%q is a metric, not a covariate: its pre-period value is the covariate %s%s", c, covariatePrePeriodOf, c)
		default:
			return s.errf(ck, "unknown covariate %q: want %s, %s<metric> (another metric's pre-period value) or %s", c, CovariatePrePeriod, covariatePrePeriodOf, CovariatePersona)
		}
		if seen[c] {
			return s.errf(ck, "%s is listed twice", c)
		}
		seen[c] = true
	}
	return nil
}

// metricAt returns the name of the metric a key such as
// "metrics[2].variance_reduction[0]" belongs to, or "".
func (s *Spec) metricAt(key string) string {
	var i int
	if _, err := fmt.Sscanf(key, "metrics[%d]", &i); err != nil || i < 0 || i >= len(s.Metrics) {
		return ""
	}
	return s.Metrics[i].Name
}

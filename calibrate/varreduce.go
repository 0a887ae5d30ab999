package calibrate

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// Variance reduction beyond CUPED (issue 21 item 3). At the final night
// every experiment is also analysed with the variance-reduced estimates an
// exact run writes to adjusted.csv (vrMethods), from the same cells. The
// generator draws each unit's pre-exposure events from the same engagement
// as its post-exposure ones (PreFactor), so the pre-period value truly
// predicts the outcome; personas share the model's parameters, so persona
// strata predict nothing and post-stratification should gain about
// nothing (MSY: it may lose a little). Checked: the (all) cohort's
// absolute interval of each method × metric kind covers the truth 1 − α of
// the time with α/2 misses on each side (judgeVR). Reported: the mean
// variance reduction 1 − SE²/SE²_unadjusted, tallied as
// "vr-reduction/…" with Hits the sum of the reductions in millionths
// (a Count keeps integers; merging datasets adds the sums) and N the
// number of comparisons.

// vrMethods is the statistics.variance_reduction of the suite's spec.
const vrMethods = "[{method: cuped}, {method: poststratify}, {method: regression, covariates: [pre_period]}, {method: regression, covariates: [pre_period, persona]}]"

// vrOther is, per metric, the other metric whose pre-period value its
// fifth estimate adjusts for besides its own (pre_period:<metric>,
// crossmoments@v1): page views for every metric but page views, which
// takes revenue. A metric's own list replaces the default, so it repeats
// vrMethods first.
var vrOther = map[string]string{"converted": "page_views", "revenue": "page_views", "page_views": "revenue", "revenue_per_session": "page_views"}

// vrLabels are the methods' labels in adjusted.csv, for the judge.
var vrLabels = []string{"cuped", "poststratify[persona]", "regression[pre_period]", "regression[pre_period+persona]",
	"regression[pre_period+pre_period:page_views]", "regression[pre_period+pre_period:revenue]"}

// withVR adds the variance-reduced estimates to a suite spec: the default
// list, each metric's own list with its vrOther regression, and the
// crossmoments template those need. The calibration pass's spec carries
// them too, so that its pass computes the cross-moments.
func withVR(y string, e experiment) (string, error) {
	const cuped = "  cuped: {lookback_days: 2}\n"
	const pins = "quality: v4"
	if !strings.Contains(y, cuped) || !strings.Contains(y, pins) {
		return "", fmt.Errorf("vr spec %s: no cuped or template line to extend", e.id)
	}
	y = strings.Replace(y, cuped, cuped+"  variance_reduction: "+vrMethods+"\n", 1)
	y = strings.Replace(y, pins, pins+", crossmoments: v1", 1)
	list := func(m string) string {
		return strings.TrimSuffix(vrMethods, "]") + ", {method: regression, covariates: [pre_period, pre_period:" + vrOther[m] + "]}]"
	}
	lines := strings.Split(y, "\n")
	found := 0
	for i, l := range lines {
		for m := range vrOther {
			switch {
			case strings.HasPrefix(l, "  - {name: "+m+",") && strings.HasSuffix(l, "}"):
				lines[i] = strings.TrimSuffix(l, "}") + ", variance_reduction: " + list(m) + "}"
				found++
			case l == "  - name: "+m:
				lines[i] = l + "\n    variance_reduction: " + list(m)
				found++
			}
		}
	}
	if found != len(vrOther) {
		return "", fmt.Errorf("vr spec %s: found %d of the %d metrics to extend", e.id, found, len(vrOther))
	}
	return strings.Join(lines, "\n"), nil
}

// vrSpec is the exact CUPED spec of e with the variance-reduced estimates.
func vrSpec(dir string, e experiment, units int) (*expspec.Spec, error) {
	y, err := withVR(specYAML(e, units, true, false, false), e)
	if err != nil {
		return nil, err
	}
	return expspec.ParseSpec(filepath.Join(dir, e.id+"-vr.yaml"), []byte(y))
}

// tallyVR judges one experiment's adjusted estimates at the final night
// against the truths (control, treatment) of each metric.
func tallyVR(tl Tally, spec *expspec.Spec, in pipeline.CalibrationInput, truths map[string][2]float64) error {
	rows, err := pipeline.CalibrationAdjusted(spec, in)
	if err != nil {
		return err
	}
	for _, r := range rows {
		kind := metricKind[r.Metric]
		base := r.Method + "/" + kind
		ok := r.CILow != nil && r.CIHigh != nil
		tl.add("vr-interval/"+base, ok)
		if !ok {
			continue
		}
		tr := truths[r.Metric]
		abs := tr[1] - tr[0]
		below, above := *r.CIHigh < abs, *r.CILow > abs
		tl.add("vr-coverage/"+base, !below && !above)
		tl.add("vr-below/"+base, below)
		tl.add("vr-above/"+base, above)
		if r.VarianceReduction != nil {
			c := tl["vr-reduction/"+base]
			if c == nil {
				c = &Count{}
				tl["vr-reduction/"+base] = c
			}
			c.Hits += int(math.Round(*r.VarianceReduction * 1e6))
			c.N++
		}
	}
	return nil
}

// judgeVR adds the variance-reduction checks (see above).
func judgeVR(add func(key, side, what string, nominal float64)) {
	for _, m := range vrLabels {
		for _, kind := range []string{"proportion", "mean", "ratio"} {
			base := m + "/" + kind
			add("vr-interval/"+base, "at least", "adjusted estimates with an interval", 1)
			add("vr-coverage/"+base, "two-sided", "adjusted interval coverage, cohort (all)", 1-alpha)
			add("vr-below/"+base, "two-sided", "adjusted interval below the truth", alpha/2)
			add("vr-above/"+base, "two-sided", "adjusted interval above the truth", alpha/2)
		}
	}
}

// writeVR reports the mean variance reduction of each method × kind.
func writeVR(b *strings.Builder, t Tally) {
	b.WriteString("\nVariance reduction achieved (mean of 1 − SE²/SE²unadjusted over the final night's (all) comparisons; reported, not judged):\n\n| method / kind | comparisons | mean reduction |\n|---|---|---|\n")
	for _, k := range t.sortedKeys() {
		if !strings.HasPrefix(k, "vr-reduction/") {
			continue
		}
		c := t[k]
		fmt.Fprintf(b, "| %s | %d | %.4f |\n", strings.TrimPrefix(k, "vr-reduction/"), c.N, float64(c.Hits)/1e6/math.Max(1, float64(c.N)))
	}
}

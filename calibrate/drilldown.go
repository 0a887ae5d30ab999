package calibrate

import (
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
)

// Drill-downs on trace dimensions (issue 21 item 2). Each pass spec also
// drills down on sdk_version (drilldown@v1): the generator draws a unit's
// SDK uniformly from three versions, independently of its persona,
// engagement and arrival, so every slice's population effect is the
// experiment's, and each slice (about a third of the units) is judged at
// the final night as a cohort is: the coverage of its absolute interval
// (CUPED-adjusted, as the pass spec compares) and its one-sided misses
// against the (all) truth; for A/A experiments the slices' rate of
// p < α; and the rate of dimension-nights with a slice SRM (Bonferroni
// over the slices, at the spec's SRM threshold).

// Private drill-downs: the private spec (run_share 1, cohorts collapsed
// at minUnits) also declares two of the three SDKs (the third goes to
// other) and gives the drill-downs drillShare of the budget; every slice
// is judged as an exact one is (private-drill-* keys), from the noisy
// release of the same pass's cells.

// drillShare is the private drill-downs' share of the run budget.
const drillShare = 0.2

// privateDrillSpec is the private mode's spec with declared slices.
func privateDrillSpec(y string, e experiment) (string, error) {
	const pins = "quality: v4"
	if !strings.Contains(y, pins) {
		return "", fmt.Errorf("private drill spec %s: no template line to extend", e.id)
	}
	y = strings.Replace(y, pins, pins+", drilldown: v1", 1)
	return y + fmt.Sprintf("drilldowns: {dimensions: [%s], values: {%s: [android-4.1.3, ios-4.2.0]}, budget_share: %g}\n", drillDimension, drillDimension, drillShare), nil
}

// tallyPrivateDrill judges a private drill-down's rows at the final night:
// interval coverage and one-sided misses of every analysed slice, A/A
// slices' p < α, a false SRM in some slice (Bonferroni over the analysed
// slices, noise-aware), and the slices analysed (a declared SDK has about a
// third of the units, far above minUnits).
func tallyPrivateDrill(tl Tally, e experiment, rows []analysis.DrillRow, truths map[string][2]float64) error {
	srm := false
	slices := 0
	for _, r := range rows {
		if r.Result == nil {
			tl.add("private-drill-analysed", false)
			continue
		}
		res := r.Result
		srm = srm || res.SRM
		if r.Metric == "converted" {
			slices++
			tl.add("private-drill-analysed", true)
		}
		kind := metricKind[r.Metric]
		ok := res.AbsCILow != nil && res.AbsCIHigh != nil
		tl.add("private-drill-interval/"+kind, ok)
		if !ok {
			continue
		}
		tr := truths[r.Metric]
		abs := tr[1] - tr[0]
		below, above := *res.AbsCIHigh < abs, *res.AbsCILow > abs
		tl.add("private-drill-coverage/"+kind, !below && !above)
		tl.add("private-drill-below/"+kind, below)
		tl.add("private-drill-above/"+kind, above)
		if e.aa {
			tl.add("private-drill-aa/"+kind, res.PValue != nil && *res.PValue < alpha)
		}
	}
	if slices == 0 {
		return fmt.Errorf("%s: no private %s slice analysed", e.id, drillDimension)
	}
	tl.add("private-drill-srm", srm)
	return nil
}

// drillDimension is the suite's drill-down dimension.
const drillDimension = "sdk_version"

// withDrill adds the drilldowns section and its template pin to a spec's
// YAML.
func withDrill(y string, e experiment) (string, error) {
	const pins = "quality: v4"
	if !strings.Contains(y, pins) {
		return "", fmt.Errorf("drill spec %s: no template line to extend", e.id)
	}
	y = strings.Replace(y, pins, pins+", drilldown: v1", 1)
	return y + "drilldowns: {dimensions: [" + drillDimension + "]}\n", nil
}

// tallyDrill judges one experiment's drill-down rows at the final night.
func tallyDrill(tl Tally, e experiment, in pipeline.CalibrationInput, truths map[string][2]float64) error {
	slices := 0
	srm := false
	for _, r := range in.Drill {
		if r.Status != analysis.DrillOK || r.Result == nil {
			return fmt.Errorf("%s %s slice %q %s: status %s (%s)", e.id, r.Dimension, r.Slice, r.Metric, r.Status, r.Detail)
		}
		res := r.Result
		srm = srm || res.SRM
		if r.Metric == in.Spec.Metrics[0].Name {
			slices++
		}
		kind := metricKind[r.Metric]
		ok := res.AbsCILow != nil && res.AbsCIHigh != nil
		tl.add("drill-interval/"+kind, ok)
		if !ok {
			continue
		}
		tr := truths[r.Metric]
		abs := tr[1] - tr[0]
		below, above := *res.AbsCIHigh < abs, *res.AbsCILow > abs
		tl.add("drill-coverage/"+kind, !below && !above)
		tl.add("drill-below/"+kind, below)
		tl.add("drill-above/"+kind, above)
		if e.aa {
			tl.add("drill-aa/"+kind, res.PValue != nil && *res.PValue < alpha)
		}
	}
	if slices != 3 {
		return fmt.Errorf("%s: %d %s slices, want 3", e.id, slices, drillDimension)
	}
	tl.add("drill-srm", srm)
	return nil
}

// judgeDrill adds the drill-down checks (see above).
func judgeDrill(add func(key, side, what string, nominal float64)) {
	for _, kind := range []string{"proportion", "mean", "ratio"} {
		add("drill-interval/"+kind, "at least", "drill-down slices with an interval", 1)
		add("drill-coverage/"+kind, "two-sided", "drill-down slice coverage ("+drillDimension+")", 1-alpha)
		add("drill-below/"+kind, "two-sided", "drill-down slice interval below the truth", alpha/2)
		add("drill-above/"+kind, "two-sided", "drill-down slice interval above the truth", alpha/2)
		add("drill-aa/"+kind, "two-sided", "A/A drill-down slice significant at the final night", alpha)
	}
	add("drill-srm", "at most", "false SRM in some drill-down slice (Bonferroni over slices)", 2*srmThreshold)
	for _, kind := range []string{"proportion", "mean", "ratio"} {
		add("private-drill-interval/"+kind, "at least", "private drill-down slices with an interval", 1)
		add("private-drill-coverage/"+kind, "two-sided", "private drill-down slice coverage ("+drillDimension+", declared slices and other)", 1-alpha)
		add("private-drill-below/"+kind, "two-sided", "private drill-down slice interval below the truth", alpha/2)
		add("private-drill-above/"+kind, "two-sided", "private drill-down slice interval above the truth", alpha/2)
		add("private-drill-aa/"+kind, "two-sided", "A/A private drill-down slice significant at the final night", alpha)
	}
	add("private-drill-srm", "at most", "false SRM in some private drill-down slice (noise-aware, Bonferroni over slices)", 2*srmThreshold)
	add("private-drill-analysed", "at least", "private drill-down slices analysed (declared SDKs and other, each about a third of the units)", 1)
}

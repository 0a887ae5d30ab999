package expspec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// vrSpec is baseSpec with CUPED's templates and a statistics section the
// cases below fill in (STATS) and a revenue metric they may edit.
var vrSpec = strings.Replace(strings.Replace(baseSpec,
	"templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
	"templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}", 1),
	"privacy: {enabled: false}\n", "STATS\nprivacy: {enabled: false}\n", 1)

const revenueLine = "clamp: {lower: 0, upper: 1000}}"

func vr(stats, metricVR string) string {
	s := strings.Replace(vrSpec, "STATS", stats, 1)
	if metricVR != "" {
		s = strings.Replace(s, revenueLine, "clamp: {lower: 0, upper: 1000}, variance_reduction: "+metricVR+"}", 1)
	}
	return s
}

func TestVarianceReductionValid(t *testing.T) {
	s, err := expspec.ParseSpec("specs/x.yaml", []byte(vr("statistics: {cuped: {lookback_days: 2}, variance_reduction: [{method: poststratify}]}",
		"[{method: cuped}, {method: regression, covariates: [pre_period, persona]}]")))
	if err != nil {
		t.Fatal(err)
	}
	conv, rev := s.VarianceReductionOf(s.Metrics[0]), s.VarianceReductionOf(s.Metrics[1])
	if len(conv) != 1 || conv[0].Label() != "poststratify[persona]" {
		t.Errorf("converted inherits the default with strata filled: %+v", conv)
	}
	if len(rev) != 2 || rev[0].Label() != "cuped" || rev[1].Label() != "regression[pre_period+persona]" {
		t.Errorf("revenue's own list: %+v", rev)
	}
	// Specs without the key keep their canonical bytes.
	old, err := expspec.ParseSpec("specs/x.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := old.Canonical(); strings.Contains(string(b), "variance_reduction") || old.HasVarianceReduction() {
		t.Errorf("old spec gained variance_reduction: %s", b)
	}
}

func TestVarianceReductionErrors(t *testing.T) {
	cuped := "statistics: {cuped: {lookback_days: 2}}"
	for _, tc := range []struct {
		name, stats, metric, key, msg string
	}{
		{"unknown method", cuped, "[{method: cupd}]", "metrics[1].variance_reduction[0].method", `want cuped, poststratify or regression, got "cupd"`},
		{"cuped without statistics.cuped", "statistics: {}", "[{method: cuped}]", "metrics[1].variance_reduction[0].method", "set statistics.cuped"},
		{"typo in covariate", cuped, "[{method: regression, covariates: [pre_perod]}]", "metrics[1].variance_reduction[0].covariates[0]", `unknown covariate "pre_perod": want pre_period, pre_period:<metric>`},
		{"other metric by bare name", cuped, "[{method: regression, covariates: [converted]}]", "metrics[1].variance_reduction[0].covariates[0]", "is a metric, not a covariate: its pre-period value is the covariate pre_period:converted"},
		{"typo in other metric", cuped, "[{method: regression, covariates: [pre_period:convertd]}]", "metrics[1].variance_reduction[0].covariates[0]", `no metric named "convertd" in this spec (other metrics: converted)`},
		{"own pre-period by name", cuped, "[{method: regression, covariates: [pre_period:revenue]}]", "metrics[1].variance_reduction[0].covariates[0]", "is this metric"},
		{"other pre-period without cuped", "statistics: {}", "[{method: regression, covariates: [pre_period:converted]}]", "metrics[1].variance_reduction[0].covariates[0]", "set statistics.cuped"},
		{"other pre-period in the default", "statistics: {cuped: {lookback_days: 2}, variance_reduction: [{method: regression, covariates: [pre_period:converted]}]}", "", "statistics.variance_reduction[0].covariates[0]", "list it in that metric's variance_reduction"},
		{"other pre-period without the template", cuped, "[{method: regression, covariates: [pre_period:converted]}]", "templates.crossmoments", "pin crossmoments: v1"},
		{"no covariates", cuped, "[{method: regression}]", "metrics[1].variance_reduction[0].covariates", "at least one"},
		{"pre_period without cuped", "statistics: {}", "[{method: regression, covariates: [pre_period]}]", "metrics[1].variance_reduction[0].covariates[0]", "set statistics.cuped"},
		{"duplicate covariate", cuped, "[{method: regression, covariates: [persona, persona]}]", "metrics[1].variance_reduction[0].covariates[1]", "listed twice"},
		{"covariates in another order", cuped, "[{method: regression, covariates: [pre_period, persona]}, {method: regression, covariates: [persona, pre_period]}]", "metrics[1].variance_reduction[1]", "listed twice"},
		{"own name as covariate", cuped, "[{method: regression, covariates: [revenue]}]", "metrics[1].variance_reduction[0].covariates[0]", "its own pre-period value is the covariate pre_period"},
		{"duplicate method", cuped, "[{method: poststratify}, {method: poststratify, strata: persona}]", "metrics[1].variance_reduction[1]", "listed twice"},
		{"other strata", cuped, "[{method: poststratify, strata: country}]", "metrics[1].variance_reduction[0].strata", `want persona`},
		{"strata on regression", cuped, "[{method: regression, strata: persona}]", "metrics[1].variance_reduction[0].strata", "covariates, not strata"},
		{"default list checked", "statistics: {variance_reduction: [{method: regresion}]}", "", "statistics.variance_reduction[0].method", `got "regresion"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/x.yaml", []byte(vr(tc.stats, tc.metric)))
			var se *expspec.SpecError
			if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want key %q containing %q", err, tc.key, tc.msg)
			}
			if code := pipeline.ExitCode(err); code != 78 {
				t.Errorf("exit code %d, want 78", code)
			}
		})
	}
}

// TestPrivateVarianceReductionRefused: a private spec may not list any
// variance-reduced estimate (exit 78); statistics.cuped stays allowed.
func TestPrivateVarianceReductionRefused(t *testing.T) {
	priv := strings.Replace(vrSpec, "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 0.5}", 1)
	priv = strings.Replace(priv, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}",
		"templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}", 1)
	if _, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(priv, "STATS", "statistics: {cuped: {lookback_days: 2}}", 1))); err != nil {
		t.Fatalf("private CUPED refused: %v", err)
	}
	stats := "statistics: {cuped: {lookback_days: 2}, variance_reduction: [VR]}"
	for _, m := range []string{"{method: cuped}", "{method: poststratify}", "{method: regression, covariates: [pre_period]}"} {
		_, err := expspec.ParseSpec("specs/x.yaml", []byte(strings.Replace(priv, "STATS", strings.Replace(stats, "VR", m, 1), 1)))
		var se *expspec.SpecError
		if !errors.As(err, &se) || se.Key != "statistics.variance_reduction[0].method" || !strings.Contains(err.Error(), "not available in a private spec") {
			t.Fatalf("%s: got %v", m, err)
		}
		if code := pipeline.ExitCode(err); code != 78 {
			t.Errorf("%s: exit code %d, want 78", m, code)
		}
	}
}

// TestVarianceReductionSkipsQuantilesAndCaps: the estimators adjust the
// cells' uncapped moments, so a capped mean's adjusted row would describe
// the uncapped metric under the capped one's name (it did: revenue_capped's
// row equalled revenue's), and a quantile metric has no moments at all (the
// run failed with an internal error). Listing a method on either is a spec
// error naming the key; the statistics default skips them.
func TestVarianceReductionSkipsQuantilesAndCaps(t *testing.T) {
	for _, tc := range []struct{ file, metric, line, why string }{
		{"checkout-button-capped.yaml", "revenue_capped", "cap: {upper_quantile: 0.99}", "capped moments"},
		{"checkout-button-quantiles.yaml", "revenue_p90", "level: 0.9", "no moments"},
	} {
		b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "specs", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		def := strings.Replace(string(b), "  correction: holm\n", "  correction: holm\n  variance_reduction: [{method: poststratify}]\n", 1)
		s, err := expspec.ParseSpec("specs/x.yaml", []byte(def))
		if err != nil {
			t.Fatalf("%s with a default: %v", tc.file, err)
		}
		reached := 0
		for _, m := range s.Metrics {
			got := s.VarianceReductionOf(m)
			if m.Kind == expspec.KindQuantile || m.Cap != nil {
				if got != nil {
					t.Errorf("%s: the default reaches %s: %+v", tc.file, m.Name, got)
				}
			} else if len(got) == 1 {
				reached++
			}
		}
		if reached == 0 {
			t.Errorf("%s: the default reached no metric", tc.file)
		}
		own := strings.Replace(string(b), tc.line, tc.line+", variance_reduction: [{method: poststratify}]", 1)
		if own == string(b) {
			t.Fatalf("%s: line %q not found", tc.file, tc.line)
		}
		_, err = expspec.ParseSpec("specs/x.yaml", []byte(own))
		var se *expspec.SpecError
		if !errors.As(err, &se) || !strings.HasSuffix(se.Key, "].variance_reduction") || !strings.Contains(err.Error(), tc.why) {
			t.Fatalf("%s: %s listing a method: got %v; want a spec error naming the key and %q", tc.file, tc.metric, err, tc.why)
		}
		if code := pipeline.ExitCode(err); code != 78 {
			t.Errorf("%s: exit code %d, want 78", tc.file, code)
		}
	}
}

// TestOtherPrePeriodCovariate: a regression on another metric's pre-period
// value needs crossmoments@v1 over the single-join layout, lists the
// (metric, covariate) pairs the template computes, and refuses sharding.
func TestOtherPrePeriodCovariate(t *testing.T) {
	keyed := strings.Replace(vrSpec, "templates: {traces: v1, assignment: v1, events: v1, unit_metrics: v2, sufstats: v2, quality: v1}",
		"templates: {traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4, crossmoments: v1}", 1)
	keyed = strings.Replace(keyed, "STATS", "statistics: {cuped: {lookback_days: 2}}", 1)
	withVR := func(s, conv, rev string) string {
		s = strings.Replace(s, "{name: converted, kind: proportion, event: purchase}", "{name: converted, kind: proportion, event: purchase"+conv+"}", 1)
		return strings.Replace(s, revenueLine, "clamp: {lower: 0, upper: 1000}"+rev+"}", 1)
	}
	s, err := expspec.ParseSpec("specs/x.yaml", []byte(withVR(keyed, "",
		", variance_reduction: [{method: regression, covariates: [pre_period, pre_period:converted, persona]}]")))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CrossMomentPairs(); len(got) != 1 || got[0] != [2]string{"revenue", "converted"} {
		t.Errorf("pairs %v, want [revenue converted]", got)
	}
	if got := s.VarianceReductionOf(s.Metrics[1])[0].Label(); got != "regression[pre_period+pre_period:converted+persona]" {
		t.Errorf("label %q", got)
	}
	// The shards' partials carry the cross-moments (golden/shard_test.go
	// holds the merge to the single-node bytes).
	if err := s.ShardableError(); err != nil {
		t.Errorf("sharding: %v", err)
	}
	// Each metric adjusting for the other: both ordered pairs (x·c needs
	// the metric's own x with the other's c).
	s, err = expspec.ParseSpec("specs/x.yaml", []byte(withVR(keyed,
		", variance_reduction: [{method: regression, covariates: [pre_period:revenue]}]",
		", variance_reduction: [{method: regression, covariates: [pre_period:converted]}]")))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CrossMomentPairs(); len(got) != 2 || got[0] != [2]string{"converted", "revenue"} || got[1] != [2]string{"revenue", "converted"} {
		t.Errorf("pairs %v, want both orders", got)
	}
	for _, tc := range []struct{ name, spec, key, msg string }{
		{"pinned without need", keyed, "templates.crossmoments", "pinned, but no regression lists another metric's pre-period value"},
		{"wrong version", withVR(strings.Replace(keyed, "crossmoments: v1", "crossmoments: v2", 1), "", ", variance_reduction: [{method: regression, covariates: [pre_period:converted]}]"), "templates.crossmoments", `want v1, got "v2"`},
		{"old layout", withVR(strings.Replace(strings.Replace(vrSpec, "STATS", "statistics: {cuped: {lookback_days: 2}}", 1), "quality: v1}", "quality: v1, crossmoments: v1}", 1), "", ", variance_reduction: [{method: regression, covariates: [pre_period:converted]}]"), "templates.unit_metrics", "not unit_metrics@v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := expspec.ParseSpec("specs/x.yaml", []byte(tc.spec))
			var se *expspec.SpecError
			if !errors.As(err, &se) || se.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want key %q containing %q", err, tc.key, tc.msg)
			}
		})
	}
}

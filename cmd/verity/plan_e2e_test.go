package main

import (
	"encoding/json"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// TestPlanMatchesReference runs `verity plan --json` on the committed
// fixtures over a two-day pre-period and checks every goal's plan against
// stats.PlanSampleSize fed with baselines computed independently: the
// plain-Go reference implementation of the semantics (fixtures/reference)
// over the same window, its (all) cells pooled over the variants. The
// plan's settings are written out here from the spec (not read from it).
func TestPlanMatchesReference(t *testing.T) {
	root := repoRoot(t)
	res := verity(t, root, "plan", "--log", "none", "--pre-start", "2026-11-16", "--pre-end", "2026-11-18", "--json", "fixtures/specs/checkout-button-tests.yaml")
	if res.code != 0 {
		t.Fatalf("exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	var got planJSON
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, res.stdout)
	}

	// Independent baselines: the reference semantics over [11-16, 11-18).
	glob := func(p string) []string {
		m, err := filepath.Glob(filepath.Join(root, p))
		if err != nil || len(m) == 0 {
			t.Fatalf("glob %s: %v %v", p, m, err)
		}
		return m
	}
	a := reference.Analysis{
		ExperimentID: "checkout-button", Start: time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC),
		Variants: []string{"control", "treatment"}, PersonaAlgoVersion: "pa-2",
		Leaves: []string{"power/mobile", "power/desktop", "casual/mobile", "casual/desktop"}, Decimals: 6,
		Metrics: []reference.Metric{
			{Name: "converted", Kind: "proportion", Event: "purchase"},
			{Name: "revenue", Kind: "mean", Event: "purchase", Aggregate: "sum", HasClamp: true, Lower: 0, Upper: 500},
		},
	}
	cells, _, err := reference.Compute(glob("fixtures/data/basic/traces/dt=*/*.parquet"), glob("fixtures/data/basic/events/dt=*/*.parquet"), a)
	if err != nil {
		t.Fatal(err)
	}
	type pooled struct {
		n          int64
		sum, sumSq *big.Int
	}
	pool := map[string]*pooled{}
	for _, c := range cells {
		if c.Cohort != reference.CohortAll {
			continue
		}
		p := pool[c.Metric]
		if p == nil {
			p = &pooled{sum: new(big.Int), sumSq: new(big.Int)}
			pool[c.Metric] = p
		}
		p.n += c.N
		p.sum.Add(p.sum, c.Sum)
		p.sumSq.Add(p.sumSq, c.SumSq)
	}
	moments := func(metric string) (n int64, mean, variance float64) {
		p := pool[metric]
		s := 1e6
		nf := float64(p.n)
		sum, _ := new(big.Float).SetInt(p.sum).Float64()
		// (n·Σx² − (Σx)²) exactly, then scaled.
		num := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(p.n), p.sumSq), new(big.Int).Mul(p.sum, p.sum))
		nv, _ := new(big.Rat).SetFrac(num, big.NewInt(p.n*(p.n-1))).Float64()
		return p.n, sum / nf / s, nv / (s * s)
	}
	want := map[string]stats.PlanInput{}
	n, mean, v := moments("converted")
	// Superiority by 5% relative, alternative greater, α 0.025, power 0.9:
	// the test must clear the margin plus max_relative_mde (0.05).
	want["converted"] = stats.PlanInput{BaselineMean: mean, BaselineVar: v, MDE: 0.1, Relative: true, Alpha: 0.025, Power: 0.9,
		Alternative: stats.Greater, TreatmentShare: 0.5, DailyUnits: float64(n) / 2}
	n2, mean, v := moments("revenue")
	// Non-inferiority with an absolute margin of 0.5, α 0.05, power 0.8.
	want["revenue"] = stats.PlanInput{BaselineMean: mean, BaselineVar: v, MDE: 0.5, Alpha: 0.05, Power: 0.8,
		Alternative: stats.Greater, TreatmentShare: 0.5, DailyUnits: float64(n2) / 2}
	if n != n2 || n < 100 {
		t.Fatalf("reference pre-period units: %d, %d", n, n2)
	}
	if len(got.Goals) != 2 {
		t.Fatalf("want 2 goal plans, got %+v", got.Goals)
	}
	rel := func(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-300) }
	for _, b := range got.Baselines {
		if b.Metric == "page_views" {
			continue
		}
		_, m, v := moments(b.Metric)
		if b.Units != n || rel(b.Mean, m) > 1e-12 || rel(b.Variance, v) > 1e-12 {
			t.Errorf("baseline %s: units %d mean %v var %v; reference %d %v %v", b.Metric, b.Units, b.Mean, b.Variance, n, m, v)
		}
	}
	for _, g := range got.Goals {
		in := want[g.Metric]
		p, err := stats.PlanSampleSize(in)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != "ok" || g.TotalUnits == nil || g.Days == nil || g.TotalN == nil {
			t.Fatalf("%s: no plan: %+v", g.Metric, g)
		}
		if *g.TotalUnits != p.TotalUnits || *g.Days != p.Days || rel(*g.TotalN, p.TotalN) > 1e-12 || g.Alternative != "greater" {
			t.Errorf("%s: units %v days %v n %v; reference %v %v %v", g.Metric, *g.TotalUnits, *g.Days, *g.TotalN, p.TotalUnits, p.Days, p.TotalN)
		}
	}
	// The one-sided fixed design's closed form, as a sanity bound of the
	// above: t = K·(z_{1−α} + z_power)²/δ².
	c := want["converted"]
	k := 4 * c.BaselineVar
	z := distuv.UnitNormal.Quantile(1-0.025) + distuv.UnitNormal.Quantile(0.9)
	if closed := k * z * z / math.Pow(0.1*c.BaselineMean, 2); rel(*got.Goals[0].TotalN, closed) > 1e-12 {
		t.Errorf("converted: total n %v, closed form %v", *got.Goals[0].TotalN, closed)
	}
}

// TestPlanFailures: usage errors and a private spec exit 78 with a clear
// message; -h exits 0.
func TestPlanFailures(t *testing.T) {
	root := repoRoot(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"help", []string{"plan", "-h"}, 0, "usage: verity plan"},
		{"no pre-period", []string{"plan", "fixtures/specs/checkout-button.yaml"}, 78, "--pre-start and --pre-end"},
		{"reversed pre-period", []string{"plan", "--pre-start", "2026-11-18", "--pre-end", "2026-11-16", "fixtures/specs/checkout-button.yaml"}, 78, "--pre-start/--pre-end"},
		{"bad date", []string{"plan", "--pre-start", "yesterday", "--pre-end", "2026-11-16", "fixtures/specs/checkout-button.yaml"}, 78, "--pre-start/--pre-end"},
		{"two specs", []string{"plan", "--pre-start", "2026-11-16", "--pre-end", "2026-11-18", "fixtures/specs/checkout-button.yaml", "fixtures/specs/onboarding-flow.yaml"}, 78, "exactly one spec"},
		{"private", []string{"plan", "--pre-start", "2026-11-16", "--pre-end", "2026-11-18", "fixtures/specs/checkout-button-private.yaml"}, 78, "uncharged"},
		{"missing spec", []string{"plan", "--pre-start", "2026-11-16", "--pre-end", "2026-11-18", "fixtures/specs/nope.yaml"}, 78, "nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := verity(t, root, append([]string{tc.args[0], "--log", "none"}, tc.args[1:]...)...)
			out := res.stdout + res.stderr
			if res.code != tc.code || !strings.Contains(out, tc.msg) {
				t.Fatalf("exit %d, want %d; output %q lacks %q", res.code, tc.code, out, tc.msg)
			}
		})
	}
}

// TestPlanCappedAndQuantileBaselines: a percentile-capped goal is planned
// from its capped values (the plan used the uncapped variance: 611 where
// the capped metric's is 469, so it asked for 16% more units than the
// metric needs), and a quantile metric's baseline is its pooled quantile,
// labelled as not planned (it printed the per-unit mean as the metric's).
// The references are NumPy's, over the same window and units: the pooled
// capped mean and variance and the cap (golden/testdata/capped_reference.py,
// np.quantile "inverted_cdf"); revenue_p99 is the same pooled p99 as
// revenue_capped's cap.
func TestPlanCappedAndQuantileBaselines(t *testing.T) {
	root := repoRoot(t)
	var ref struct {
		Caps []struct {
			Metric string
			Cap    float64
		}
		Pooled []struct {
			Metric         string
			Mean, Variance float64
		}
	}
	readRef, err := os.ReadFile(filepath.Join(root, "golden", "testdata", "capped_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readRef, &ref); err != nil || len(ref.Pooled) != 2 || len(ref.Caps) != 2 {
		t.Fatalf("capped_reference.json: %v (%d pooled)", err, len(ref.Pooled))
	}
	type baseline struct {
		Metric         string
		Mean, Variance float64
		Cap, Quantile  *float64
		Level          float64
	}
	plan := func(spec string) (map[string]baseline, string) {
		res := verity(t, root, "plan", "--log", "none", "--pre-start", "2026-11-16", "--pre-end", "2026-11-20", "--json", spec)
		if res.code != 0 {
			t.Fatalf("%s: exit %d: %s %s", spec, res.code, res.stdout, res.stderr)
		}
		var got struct{ Baselines []baseline }
		if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
			t.Fatal(err)
		}
		out := map[string]baseline{}
		for _, b := range got.Baselines {
			out[b.Metric] = b
		}
		text := verity(t, root, "plan", "--log", "none", "--pre-start", "2026-11-16", "--pre-end", "2026-11-20", spec)
		return out, text.stdout
	}
	capped, text := plan("fixtures/specs/checkout-button-capped.yaml")
	for i, w := range ref.Pooled {
		b := capped[w.Metric]
		if math.Abs(b.Mean-w.Mean) > 1e-9*w.Mean || math.Abs(b.Variance-w.Variance) > 1e-9*w.Variance {
			t.Errorf("%s: baseline mean %v variance %v, NumPy %v %v", w.Metric, b.Mean, b.Variance, w.Mean, w.Variance)
		}
		if b.Cap == nil || *b.Cap != ref.Caps[i].Cap {
			t.Errorf("%s: cap %v, NumPy %v", w.Metric, b.Cap, ref.Caps[i].Cap)
		}
	}
	if u := capped["revenue"]; u.Cap != nil || u.Variance <= capped["revenue_capped"].Variance {
		t.Errorf("the uncapped revenue baseline: %+v", u)
	}
	if !strings.Contains(text, "capped at 126.08") {
		t.Errorf("the text plan does not show the cap:\n%s", text)
	}
	quant, text := plan("fixtures/specs/checkout-button-quantiles.yaml")
	if b := quant["revenue_p99"]; b.Quantile == nil || *b.Quantile != ref.Caps[0].Cap || b.Level != 0.99 {
		t.Errorf("revenue_p99: quantile %v level %v, NumPy's pooled p99 %v", b.Quantile, b.Level, ref.Caps[0].Cap)
	}
	if !strings.Contains(text, "revenue_p99              quantile   units 2980  p99 126.08 (per-unit values: mean") || !strings.Contains(text, "reported, not planned") {
		t.Errorf("the text plan of a quantile metric:\n%s", text)
	}
}

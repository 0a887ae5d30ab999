package main

import (
	"encoding/json"
	"math"
	"math/big"
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

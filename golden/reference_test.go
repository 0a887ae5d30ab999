package golden

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// relTol is the agreement required between the DuckDB pipeline and the
// independent reference: 1e-9 relative (the acceptance criterion).
const relTol = 1e-9

// close reports whether got is within tol of want, relative to the larger of
// |want| and scale (scale keeps differences of nearly equal means from
// demanding relative precision below the means' own rounding).
func close(got, want, scale, tol float64) bool {
	ref := math.Max(math.Abs(want), math.Abs(scale))
	return math.Abs(got-want) <= tol*ref
}

type refMoments struct {
	n         int64
	mean, v   float64
	haveMoms  bool
	sum, sum2 *big.Int
}

func refMomentsOf(c reference.Cell, scale int64) refMoments {
	m := refMoments{n: c.N, sum: c.Sum, sum2: c.SumSq}
	if c.N == 0 {
		return m
	}
	// Plain float64 arithmetic on the exact sums: an independent route to
	// the same numbers (the pipeline uses big.Rat).
	s := float64(scale)
	sum, _ := new(big.Float).SetInt(c.Sum).Float64()
	m.mean = sum / s / float64(c.N)
	if c.N > 1 {
		// Σ(x−x̄)² = Σx² − (Σx)²/n, done in big.Float with 200 bits so that
		// cancellation cannot hide a difference.
		prec := uint(200)
		s2 := new(big.Float).SetPrec(prec).SetInt(c.SumSq)
		sq := new(big.Float).SetPrec(prec).SetInt(c.Sum)
		sq.Mul(sq, sq)
		sq.Quo(sq, new(big.Float).SetPrec(prec).SetInt64(c.N))
		s2.Sub(s2, sq)
		s2.Quo(s2, new(big.Float).SetPrec(prec).SetInt64(c.N-1))
		s2.Quo(s2, new(big.Float).SetPrec(prec).SetFloat64(s*s))
		m.v, _ = s2.Float64()
	}
	m.haveMoms = true
	return m
}

func TestResultsMatchReference(t *testing.T) {
	for _, p := range specPaths(t) {
		t.Run(caseName(p), func(t *testing.T) {
			spec, err := expspec.LoadSpec(p)
			if err != nil {
				t.Fatal(err)
			}
			host := fixtureHost(t)
			res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}, Host: host})
			var gate *analysis.GateError
			if err != nil && !(errors.As(err, &gate) && res != nil) { // a blocked run still commits
				t.Fatal(err)
			}
			var m publish.Manifest
			readJSON(t, filepath.Join(res.Dir, "manifest.json"), &m)
			// A private run's exact record (inputs, quality counts, the exact
			// value behind every noisy number) is in the restricted area.
			exactDir := res.Dir
			if spec.Privacy.Enabled {
				if len(m.Inputs) != 0 || m.InputDigest != "" {
					t.Errorf("the published manifest of a private run lists inputs or their digest")
				}
				exactDir = ledgers.RestrictedDir(host.RestrictedRoot(), spec.Experiment, m.NominalDate, m.Privacy.ReleaseDigest)
				readJSON(t, filepath.Join(exactDir, "manifest.json"), &m)
			}
			var traces, events []string
			for _, in := range m.Inputs {
				f := filepath.Join(filepath.Dir(p), filepath.FromSlash(in.Path))
				if in.Role == "traces" {
					traces = append(traces, f)
				} else {
					events = append(events, f)
				}
			}
			start, end := spec.Window.Bounds()
			a := reference.Analysis{
				ExperimentID: spec.Experiment, Start: start, End: end,
				PersonaAlgoVersion: spec.PersonaAlgoVersion, Leaves: spec.Cohorts.Taxonomy,
				Decimals: *spec.Statistics.FixedPointDecimals,
			}
			for _, v := range spec.Variants {
				a.Variants = append(a.Variants, v.Name)
			}
			for _, mt := range spec.Metrics {
				// A ratio's numerator x is aggregated exactly like a mean.
				kind := mt.Kind
				if kind == "ratio" || kind == expspec.KindQuantile {
					kind = "mean"
				}
				rm := reference.Metric{Name: mt.Name, Kind: kind, Event: mt.Event, Aggregate: mt.Aggregate, Filter: mt.Filter}
				if mt.EventLevel() {
					// Its cell is each unit's event count, unclamped (the
					// clamp applies per event, in eventbins).
					rm.Aggregate = "count"
				} else if mt.Clamp != nil {
					rm.HasClamp, rm.Lower, rm.Upper = true, mt.Clamp.Lower, mt.Clamp.Upper
				}
				a.Metrics = append(a.Metrics, rm)
			}
			cells, q, err := reference.Compute(traces, events, a)
			if err != nil {
				t.Fatal(err)
			}
			checkQuality(t, filepath.Join(exactDir, "quality.json"), q)
			if spec.Privacy.Enabled {
				// Released numbers are noisy by design; the privacy package's
				// tests and pipeline's coverage simulation check them. The
				// exact value behind each leaf cell's count and Σx must be
				// the reference's.
				checkRestrictedExact(t, exactDir, cells, spec)
				return
			}

			type key struct{ c, v, m string }
			ref := map[key]refMoments{}
			for _, c := range cells {
				cohort := c.Cohort
				if cohort == reference.CohortUnclassified {
					cohort = expspec.UnclassifiedLeaf
				}
				ref[key{cohort, c.Variant, c.Metric}] = refMomentsOf(c, spec.Scale())
			}
			rows := readCSV(t, filepath.Join(res.Dir, "results.csv"))
			if len(rows) == 0 {
				t.Fatal("no result rows")
			}
			checked := 0
			for _, r := range rows {
				c, ok1 := ref[key{r["cohort"], r["control"], r["metric"]}]
				tr, ok2 := ref[key{r["cohort"], r["variant"], r["metric"]}]
				if !ok1 || !ok2 {
					if r["n_control"] != "0" && r["n_variant"] != "0" {
						t.Errorf("row %v has units but the reference has no cell", r)
					}
					continue
				}
				where := r["cohort"] + "/" + r["metric"] + "/" + r["variant"]
				if got := atoi(t, r["n_control"]); got != c.n {
					t.Errorf("%s: n_control %d, reference %d", where, got, c.n)
				}
				if got := atoi(t, r["n_variant"]); got != tr.n {
					t.Errorf("%s: n_variant %d, reference %d", where, got, tr.n)
				}
				capped := false
				for _, mt := range spec.Metrics {
					capped = capped || (mt.Name == r["metric"] && mt.Cap != nil)
				}
				if c.n == 0 || tr.n == 0 || r["kind"] == "ratio" || r["kind"] == expspec.KindQuantile || r["kind"] == analysis.EventQuantileKind || capped {
					// The reference computes the numerator sums only; ratio
					// means need the denominator (checked by n above).
					// Quantile rows and capped means are checked against
					// SciPy's values in quantile_reference_test.go and
					// capped_reference_test.go.
					continue
				}
				scale := math.Max(math.Abs(c.mean), math.Abs(tr.mean))
				expect(t, where, "mean_control", r, c.mean, scale)
				expect(t, where, "mean_variant", r, tr.mean, scale)
				checked++
				if r["status"] != "ok" || r["cuped_theta"] != "" || r["interval"] != "fixed_horizon" {
					// CUPED-adjusted and always-valid intervals are checked
					// against SciPy/statsmodels values in package stats.
					continue
				}
				expect(t, where, "abs_effect", r, tr.mean-c.mean, scale)
				if c.n > 1 && tr.n > 1 {
					expect(t, where, "sd_control", r, math.Sqrt(c.v), 0)
					expect(t, where, "sd_variant", r, math.Sqrt(tr.v), 0)
				}
				expect(t, where, "rel_effect", r, tr.mean/c.mean-1, 0)
				// Welch–Satterthwaite, with gonum's Student's t.
				a, b := c.v/float64(c.n), tr.v/float64(tr.n)
				se := math.Sqrt(a + b)
				df := (a + b) * (a + b) / (a*a/float64(c.n-1) + b*b/float64(tr.n-1))
				dist := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}
				diff := tr.mean - c.mean
				// At the row's level: the metric's own alpha when its
				// hypothesis sets one.
				alpha := spec.Statistics.Alpha
				for _, mt := range spec.Metrics {
					if mt.Name == r["metric"] {
						alpha = spec.MetricAlpha(mt)
					}
				}
				q := dist.Quantile(1 - alpha/2)
				expect(t, where, "df", r, df, 0)
				expect(t, where, "abs_ci_low", r, diff-q*se, se)
				expect(t, where, "abs_ci_high", r, diff+q*se, se)
				expect(t, where, "p_value", r, 2*dist.Survival(math.Abs(diff)/se), 0)
			}
			if checked == 0 {
				t.Fatal("no row was checked against the reference")
			}
		})
	}
}

func expect(t *testing.T, where, col string, row map[string]string, want, scale float64) {
	t.Helper()
	s, ok := row[col]
	if !ok || s == "" {
		t.Errorf("%s: %s is empty, reference %v", where, col, want)
		return
	}
	got, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("%s: %s = %q: %v", where, col, s, err)
		return
	}
	if !close(got, want, scale, relTol) {
		t.Errorf("%s: %s = %v, reference %v (rel. diff %.3g)", where, col, got, want, math.Abs(got-want)/math.Max(math.Abs(want), math.Abs(scale)))
	}
}

func checkQuality(t *testing.T, path string, want reference.Quality) {
	t.Helper()
	var got struct {
		Counts map[string]int64 `json:"counts"`
	}
	readJSON(t, path, &got)
	b, _ := json.Marshal(want)
	var wantMap map[string]int64
	json.Unmarshal(b, &wantMap)
	if len(wantMap) == 0 {
		t.Fatal("reference quality is empty")
	}
	for k, w := range wantMap {
		g, ok := got.Counts[k]
		if !ok {
			t.Errorf("quality.json lacks count %s (reference %d)", k, w)
		} else if g != w {
			t.Errorf("quality count %s = %d, reference %d", k, g, w)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// checkRestrictedExact compares the exact values a private run recorded
// behind its noisy leaf-cell counts and sums with the reference's cells.
func checkRestrictedExact(t *testing.T, dir string, cells []reference.Cell, spec *expspec.Spec) {
	t.Helper()
	var rec publish.RestrictedRecord
	readJSON(t, filepath.Join(dir, "release.json"), &rec)
	type key struct{ c, v, m string }
	n, sum := map[key]int64{}, map[key]string{}
	for _, c := range cells {
		cohort := c.Cohort
		if cohort == reference.CohortUnclassified {
			cohort = expspec.UnclassifiedLeaf
		}
		n[key{cohort, c.Variant, ""}] = c.N
		sum[key{cohort, c.Variant, c.Metric}] = c.Sum.String()
	}
	checked := 0
	for _, x := range rec.Numbers {
		k := key{x.Cohort, x.Variant, x.Metric}
		switch {
		case x.Metric == "(cell)" && x.Statistic == "n":
			if want, ok := n[key{x.Cohort, x.Variant, ""}]; ok {
				checked++
				if x.Exact != strconv.FormatInt(want, 10) {
					t.Errorf("%s/%s: exact n %s, reference %d", x.Cohort, x.Variant, x.Exact, want)
				}
			}
		case x.Statistic == "sum_x":
			if want, ok := sum[k]; ok {
				checked++
				if x.Exact != want {
					t.Errorf("%s/%s/%s: exact sum_x %s, reference %s", x.Cohort, x.Variant, x.Metric, x.Exact, want)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no released leaf number could be checked against the reference")
	}
}

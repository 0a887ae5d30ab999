package golden

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// The variance-reduced estimates of the onboarding-flow-vr fixture
// (adjusted.csv) against an independent reference: per-unit values from
// the plain-Go reference implementation (fixtures/reference, with the
// CUPED pre-period), written to testdata/vr_units.csv, and the estimates
// computed from them by statsmodels (testdata/vr_reference.py →
// testdata/vr_reference.json). The unit values are checked here against a
// fresh reference computation; the estimates against a fresh run.

const (
	vrSpec      = "../fixtures/specs/onboarding-flow-vr.yaml"
	vrUnitsFile = "testdata/vr_units.csv"
	vrRefFile   = "testdata/vr_reference.json"
)

// vrUnitsCSV is one row per assigned unit (in unit-id order; the id is
// left out): variant, cohort, then x and c of every metric (scaled
// integers). A ratio's x is its numerator; its denominator is the
// sessions metric's x (the fixture's ratio divides by the same count).
func vrUnitsCSV(t *testing.T) []byte {
	t.Helper()
	spec, err := expspec.LoadSpec(vrSpec)
	if err != nil {
		t.Fatal(err)
	}
	if d := spec.Metrics[3].Denominator; spec.Metrics[3].Kind != "ratio" || d.Event != spec.Metrics[0].Event || d.Aggregate != spec.Metrics[0].Aggregate ||
		*d.Clamp != *spec.Metrics[0].Clamp {
		t.Fatal("the fixture's ratio no longer divides by the sessions metric; vr_units.csv needs its own denominator column")
	}
	start, end := spec.Window.Bounds()
	a := reference.Analysis{
		ExperimentID: spec.Experiment, Start: start, End: end, PersonaAlgoVersion: spec.PersonaAlgoVersion,
		Leaves: spec.Cohorts.Taxonomy, Decimals: *spec.Statistics.FixedPointDecimals,
		Lookback: time.Duration(spec.Statistics.CUPED.LookbackDays) * 24 * time.Hour,
	}
	for _, v := range spec.Variants {
		a.Variants = append(a.Variants, v.Name)
	}
	head := []string{"variant", "cohort"}
	for _, m := range spec.Metrics {
		kind := m.Kind
		if kind == "ratio" {
			kind = "mean" // the numerator, aggregated like a mean
		}
		rm := reference.Metric{Name: m.Name, Kind: kind, Event: m.Event, Aggregate: m.Aggregate}
		if m.Clamp != nil {
			rm.HasClamp, rm.Lower, rm.Upper = true, m.Clamp.Lower, m.Clamp.Upper
		}
		a.Metrics = append(a.Metrics, rm)
		head = append(head, m.Name+"_x", m.Name+"_c")
	}
	var rows [][]string
	var row []string
	a.Units = func(u reference.UnitValue) {
		if u.Metric == spec.Metrics[0].Name {
			if row != nil {
				rows = append(rows, row)
			}
			row = []string{u.Variant, u.Cohort}
		}
		row = append(row, u.X.String(), u.C.String())
	}
	traces, _ := filepath.Glob(filepath.Join(filepath.Dir(vrSpec), spec.Inputs.Traces[0]))
	events, _ := filepath.Glob(filepath.Join(filepath.Dir(vrSpec), spec.Inputs.Events[0]))
	if len(traces) == 0 || len(events) == 0 {
		t.Fatalf("fixture inputs not found: %v %v", traces, events)
	}
	if _, _, err := reference.Compute(traces, events, a); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, row)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(head)
	_ = w.WriteAll(rows)
	return b.Bytes()
}

// TestVRUnitsMatchReference: the committed per-unit values the Python
// reference reads are the reference implementation's.
func TestVRUnitsMatchReference(t *testing.T) {
	got := vrUnitsCSV(t)
	if *update {
		if err := os.WriteFile(vrUnitsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("rewrote " + vrUnitsFile + "; rerun /usr/bin/python3 golden/testdata/vr_reference.py")
		return
	}
	want, err := os.ReadFile(vrUnitsFile)
	if err != nil {
		t.Fatalf("%v: create it with `go test ./golden -run VRUnits -update`", err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is stale (-want +got):\n%s", vrUnitsFile, cmp.Diff(string(want), string(got)))
	}
}

type vrRefRow struct {
	Metric, Variant, Method                    string
	Unadjusted, UnadjustedSE, Estimate, SE     float64
	CILow, CIHigh, DF, PValue, VarianceReduced float64
}

// TestAdjustedMatchesReference compares every adjusted.csv number of a
// fresh run with statsmodels' (vr_reference.json): 1e-9 relative (to the
// larger of the value and the unadjusted SE for effects and bounds),
// 1e-9 absolute for p-values and variance reductions, 1e-6 relative for
// the degrees of freedom (a t quantile's input).
func TestAdjustedMatchesReference(t *testing.T) {
	for _, tc := range []struct{ spec, ref string }{
		{vrSpec, vrRefFile},
		// Regressions on several pre-period covariates (crossmoments@v1),
		// over the same units and values.
		{"../fixtures/specs/onboarding-flow-vr2.yaml", "testdata/vr2_reference.json"},
	} {
		t.Run(filepath.Base(tc.spec), func(t *testing.T) { adjustedMatchesReference(t, tc.spec, tc.ref) })
	}
}

func adjustedMatchesReference(t *testing.T, spec, refFile string) {
	var ref struct {
		Rows []vrRefRow `json:"rows"`
	}
	readJSON(t, refFile, &ref)
	got := runCase(t, spec, 2)[publish.AdjustedFile]
	recs, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("adjusted.csv: %v (%d records)", err, len(recs))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	byKey := map[string][]string{}
	for _, r := range recs[1:] {
		byKey[r[col["metric"]]+"|"+r[col["variant"]]+"|"+r[col["method"]]] = r
	}
	if len(ref.Rows) != len(recs)-1 {
		t.Errorf("reference has %d rows, adjusted.csv %d", len(ref.Rows), len(recs)-1)
	}
	for _, w := range ref.Rows {
		key := w.Metric + "|" + w.Variant + "|" + w.Method
		r, ok := byKey[key]
		if !ok {
			t.Errorf("%s: no adjusted.csv row", key)
			continue
		}
		if r[col["status"]] != "ok" {
			t.Errorf("%s: status %q", key, r[col["status"]])
			continue
		}
		num := func(name string) float64 {
			v, err := strconv.ParseFloat(r[col[name]], 64)
			if err != nil {
				t.Fatalf("%s: %s = %q", key, name, r[col[name]])
			}
			return v
		}
		scale := w.UnadjustedSE
		for _, c := range []struct {
			name      string
			want, tol float64
			scale     float64
			abs       bool
		}{
			{"unadjusted_effect", w.Unadjusted, 1e-9, scale, false},
			{"unadjusted_se", w.UnadjustedSE, 1e-9, 0, false},
			{"adjusted_effect", w.Estimate, 1e-9, scale, false},
			{"adjusted_se", w.SE, 1e-9, 0, false},
			{"ci_low", w.CILow, 1e-9, scale, false},
			{"ci_high", w.CIHigh, 1e-9, scale, false},
			{"df", w.DF, 1e-6, 0, false},
			{"p_value", w.PValue, 1e-9, 0, true},
			{"variance_reduction", w.VarianceReduced, 1e-9, 0, true},
		} {
			g := num(c.name)
			ok := close(g, c.want, c.scale, c.tol)
			if c.abs {
				ok = math.Abs(g-c.want) <= c.tol
			}
			if !ok {
				t.Errorf("%s %s: Verity %v, statsmodels %v", key, c.name, g, c.want)
			}
		}
	}
}

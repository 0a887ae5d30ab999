package golden

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// The interaction tests of the checkout-button-ix fixture (interactions.csv)
// against an independent reference: per-unit values of both experiments
// from the plain-Go reference implementation (fixtures/reference), joined
// on the unit id and written to testdata/ix_units.csv, and the tests
// computed from them by statsmodels (testdata/ix_reference.py →
// testdata/ix_reference.json). The unit values are checked here against a
// fresh reference computation; the tests against a fresh run.

const (
	ixSpec      = "../fixtures/specs/checkout-button-ix.yaml"
	ixUnitsFile = "testdata/ix_units.csv"
	ixRefFile   = "testdata/ix_reference.json"
)

// referenceAnalysis is a spec's analysis as fixtures/reference takes it.
func referenceAnalysis(spec *expspec.Spec) reference.Analysis {
	start, end := spec.Window.Bounds()
	a := reference.Analysis{
		ExperimentID: spec.Experiment, Start: start, End: end, PersonaAlgoVersion: spec.PersonaAlgoVersion,
		Leaves: spec.Cohorts.Taxonomy, Decimals: *spec.Statistics.FixedPointDecimals,
	}
	for _, v := range spec.Variants {
		a.Variants = append(a.Variants, v.Name)
	}
	for _, m := range spec.Metrics {
		rm := reference.Metric{Name: m.Name, Kind: m.Kind, Event: m.Event, Aggregate: m.Aggregate}
		if m.Clamp != nil {
			rm.HasClamp, rm.Lower, rm.Upper = true, m.Clamp.Lower, m.Clamp.Upper
		}
		a.Metrics = append(a.Metrics, rm)
	}
	return a
}

// ixUnitsCSV is one row per unit assigned in both experiments (in unit-id
// order; the id is left out): its checkout-button variant, its
// onboarding-flow variant, then x of every checkout-button metric (scaled
// integers).
func ixUnitsCSV(t *testing.T) []byte {
	t.Helper()
	spec, err := expspec.LoadSpec(ixSpec)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := expspec.LoadSpec("../fixtures/specs/onboarding-flow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, end := spec.Window.Bounds()
	start, _ := spec.Window.Bounds()
	for _, m := range spec.Metrics {
		if m.AttributionHours*3600 < int(end.Sub(start).Seconds()) {
			t.Fatalf("metric %s: the reference counts events until the window end; the fixture must set attribution_hours to cover the window", m.Name)
		}
	}
	traces, _ := filepath.Glob(filepath.Join(filepath.Dir(ixSpec), spec.Inputs.Traces[0], "*", "*.parquet"))
	events, _ := filepath.Glob(filepath.Join(filepath.Dir(ixSpec), spec.Inputs.Events[0], "*", "*.parquet"))
	if len(traces) == 0 || len(events) == 0 {
		t.Fatalf("fixture inputs not found: %v %v", traces, events)
	}
	// The partner's arms: its assigned units (one metric is enough).
	pa := referenceAnalysis(partner)
	pa.Metrics = pa.Metrics[:1]
	partnerArm := map[string]string{}
	pa.Units = func(u reference.UnitValue) { partnerArm[u.Unit] = u.Variant }
	if _, _, err := reference.Compute(traces, events, pa); err != nil {
		t.Fatal(err)
	}
	a := referenceAnalysis(spec)
	head := []string{"variant", "partner_variant"}
	for _, m := range spec.Metrics {
		head = append(head, m.Name)
	}
	var rows [][]string
	var row []string
	a.Units = func(u reference.UnitValue) {
		b, ok := partnerArm[u.Unit]
		if !ok {
			return
		}
		if u.Metric == spec.Metrics[0].Name {
			if row != nil {
				rows = append(rows, row)
			}
			row = []string{u.Variant, b}
		}
		row = append(row, u.X.String())
	}
	if _, _, err := reference.Compute(traces, events, a); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, row)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(head)
	_ = w.WriteAll(rows)
	return buf.Bytes()
}

// TestIXUnitsMatchReference: the committed per-unit values the Python
// reference reads are the reference implementation's.
func TestIXUnitsMatchReference(t *testing.T) {
	got := ixUnitsCSV(t)
	if *update {
		if err := os.WriteFile(ixUnitsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("rewrote " + ixUnitsFile + "; rerun /usr/bin/python3 golden/testdata/ix_reference.py")
		return
	}
	want, err := os.ReadFile(ixUnitsFile)
	if err != nil {
		t.Fatalf("%v: create it with `go test ./golden -run IXUnits -update`", err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is stale (-want +got):\n%s", ixUnitsFile, cmp.Diff(string(want), string(got)))
	}
}

type ixRefRow struct {
	Metric        string  `json:"metric"`
	Units         int64   `json:"units"`
	Statistic     float64 `json:"statistic"`
	DFDenominator float64 `json:"df_denominator"`
	PValue        float64 `json:"p_value"`
	PHolm         float64 `json:"p_holm"`
}

// TestInteractionsMatchReference compares every interactions.csv number of
// a fresh run with statsmodels' (ix_reference.json): the Wald statistic
// 1e-9 relative, ν_min 1e-6 relative (an F quantile's input), p-values
// 1e-9 absolute, the units in both exactly.
func TestInteractionsMatchReference(t *testing.T) {
	var ref struct {
		Rows []ixRefRow `json:"rows"`
	}
	readJSON(t, ixRefFile, &ref)
	got := runCase(t, ixSpec, 2)[publish.InteractionsFile]
	recs, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("interactions.csv: %v (%d records)", err, len(recs))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	byMetric := map[string][]string{}
	for _, r := range recs[1:] {
		byMetric[r[col["metric"]]] = r
	}
	if len(ref.Rows) != len(recs)-1 || len(ref.Rows) == 0 {
		t.Fatalf("reference has %d rows, interactions.csv %d", len(ref.Rows), len(recs)-1)
	}
	for _, w := range ref.Rows {
		r, ok := byMetric[w.Metric]
		if !ok {
			t.Errorf("%s: no interactions.csv row", w.Metric)
			continue
		}
		if r[col["status"]] != "tested" || r[col["method"]] != "wald_f" {
			t.Errorf("%s: status %q method %q", w.Metric, r[col["status"]], r[col["method"]])
			continue
		}
		num := func(name string) float64 {
			v, err := strconv.ParseFloat(r[col[name]], 64)
			if err != nil {
				t.Fatalf("%s: %s = %q", w.Metric, name, r[col[name]])
			}
			return v
		}
		if u := int64(num("units_in_both")); u != w.Units {
			t.Errorf("%s units_in_both: Verity %d, reference %d", w.Metric, u, w.Units)
		}
		for _, c := range []struct {
			name      string
			want, tol float64
			abs       bool
		}{
			{"statistic", w.Statistic, 1e-9, false},
			{"df_denominator", w.DFDenominator, 1e-6, false},
			{"p_value", w.PValue, 1e-9, true},
			{"p_value_holm", w.PHolm, 1e-9, true},
		} {
			g := num(c.name)
			ok := close(g, c.want, 0, c.tol)
			if c.abs {
				ok = math.Abs(g-c.want) <= c.tol
			}
			if !ok {
				t.Errorf("%s %s: Verity %v, statsmodels %v", w.Metric, c.name, g, c.want)
			}
		}
		if f := r[col["flagged"]]; f != strconv.FormatBool(w.PHolm <= 0.01) {
			t.Errorf("%s flagged %s, but the reference's Holm p is %v (alpha 0.01)", w.Metric, f, w.PHolm)
		}
	}
}

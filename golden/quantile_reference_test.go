package golden

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// The quantile fixture's numbers against an independent reference (issue
// 20): the plain-Go reference of the semantics (fixtures/reference) gives
// every unit's fixed-point value, the test writes them as per-leaf-cell
// histograms (testdata/quantile_units.json, pinned: a change is a failure
// unless -update), and testdata/quantile_reference.py computes from them,
// with NumPy and SciPy only, what quantiles.csv must hold
// (testdata/quantile_reference.json). Rerun the script after an -update of
// the units:
//
//	/usr/bin/python3 golden/testdata/quantile_reference.py

const quantileSpec = "../fixtures/specs/checkout-button-quantiles.yaml"

// quantileUnits is quantile_units.json: the inputs of the Python reference.
type quantileUnits struct {
	Decimals int                `json:"decimals"`
	Alpha    float64            `json:"alpha"`
	Control  string             `json:"control"`
	Variants []string           `json:"variants"`
	Leaves   []string           `json:"leaves"`
	Metrics  []quantileUnitsDef `json:"metrics"`
	Cells    []quantileUnitCell `json:"cells"`
}

type quantileUnitsDef struct {
	Name  string  `json:"name"`
	Level float64 `json:"level"`         // a quantile metric's level (0 for a capped mean)
	Cap   float64 `json:"cap,omitempty"` // a capped mean's cap.upper_quantile
}

type quantileUnitCell struct {
	Cohort  string     `json:"cohort"`
	Variant string     `json:"variant"`
	Metric  string     `json:"metric"`
	Hist    [][2]int64 `json:"hist"` // [value, units], increasing value
}

// quantileRef is one row of quantile_reference.json.
type quantileRef struct {
	Cohort, Metric, Variant string
	Status                  string              // ok, unbounded, zero_control, too_few:<arm>, tie:<arm>, missing_arm
	Values                  map[string]*float64 // quantiles.csv column → value (null: empty)
}

// quantileUnitsOf runs the plain-Go reference over the spec's inputs and
// returns its per-leaf-cell histograms of the quantile metrics.
func quantileUnitsOf(t *testing.T, spec *expspec.Spec, traces, events []string) quantileUnits {
	t.Helper()
	start, end := spec.Window.Bounds()
	u := quantileUnits{Decimals: *spec.Statistics.FixedPointDecimals, Alpha: spec.Statistics.Alpha, Control: spec.Control(),
		Leaves: append(slices.Clone(spec.Cohorts.Taxonomy), expspec.UnclassifiedLeaf)}
	slices.Sort(u.Leaves)
	a := reference.Analysis{ExperimentID: spec.Experiment, Start: start, End: end, PersonaAlgoVersion: spec.PersonaAlgoVersion,
		Leaves: spec.Cohorts.Taxonomy, Decimals: u.Decimals}
	for _, v := range spec.Variants {
		a.Variants = append(a.Variants, v.Name)
		u.Variants = append(u.Variants, v.Name)
	}
	for _, m := range spec.Metrics {
		if !m.NeedsHistogram() {
			continue
		}
		d := quantileUnitsDef{Name: m.Name, Level: m.Level}
		if m.Cap != nil {
			d.Cap = m.Cap.UpperQuantile
		}
		u.Metrics = append(u.Metrics, d)
		a.Metrics = append(a.Metrics, reference.Metric{Name: m.Name, Kind: reference.KindMean, Event: m.Event, Aggregate: m.Aggregate,
			HasClamp: true, Lower: m.Clamp.Lower, Upper: m.Clamp.Upper})
	}
	type key struct{ c, v, m string }
	hists := map[key]map[int64]int64{}
	a.Units = func(uv reference.UnitValue) {
		cohort, variant, metric, x := uv.Cohort, uv.Variant, uv.Metric, uv.X
		if cohort == reference.CohortUnclassified {
			cohort = expspec.UnclassifiedLeaf
		}
		if !x.IsInt64() {
			t.Fatalf("unit value %s beyond int64", x)
		}
		k := key{cohort, variant, metric}
		if hists[k] == nil {
			hists[k] = map[int64]int64{}
		}
		hists[k][x.Int64()]++
	}
	if _, _, err := reference.Compute(traces, events, a); err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Leaves {
		for _, v := range u.Variants {
			for _, m := range u.Metrics {
				h := hists[key{c, v, m.Name}]
				if h == nil {
					continue
				}
				cell := quantileUnitCell{Cohort: c, Variant: v, Metric: m.Name}
				for _, val := range sortedKeys(h) {
					cell.Hist = append(cell.Hist, [2]int64{val, h[val]})
				}
				u.Cells = append(u.Cells, cell)
			}
		}
	}
	return u
}

func sortedKeys(m map[int64]int64) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestQuantilesMatchSciPy(t *testing.T) {
	spec, err := expspec.LoadSpec(quantileSpec)
	if err != nil {
		t.Fatal(err)
	}
	got := runCase(t, quantileSpec, 2)
	referenceUnits(t, spec, "quantile_units.json")
	var refs []quantileRef
	readJSON(t, filepath.Join("testdata", "quantile_reference.json"), &refs)
	rows := csvRows(t, got["quantiles.csv"])
	if len(rows) != len(refs) || len(rows) == 0 {
		t.Fatalf("quantiles.csv has %d rows, the reference %d", len(rows), len(refs))
	}
	statuses := map[string]int{}
	for i, r := range rows {
		ref := refs[i]
		where := r["cohort"] + "/" + r["metric"] + "/" + r["variant"]
		if r["cohort"] != ref.Cohort || r["metric"] != ref.Metric || r["variant"] != ref.Variant {
			t.Fatalf("row %d is %s, the reference's %s/%s/%s", i, where, ref.Cohort, ref.Metric, ref.Variant)
		}
		if st := statusCategory(r["status"]); st != ref.Status {
			t.Errorf("%s: status %q (%s), reference %s", where, r["status"], st, ref.Status)
		}
		statuses[ref.Status]++
		for col, w := range ref.Values {
			s, ok := r[col]
			if !ok {
				t.Errorf("quantiles.csv has no column %s", col)
				continue
			}
			if w == nil {
				if s != "" {
					t.Errorf("%s: %s = %s, reference empty", where, col, s)
				}
				continue
			}
			g, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Errorf("%s: %s = %q, reference %v", where, col, s, *w)
				continue
			}
			scale := 0.0
			if strings.HasPrefix(col, "abs_") {
				// An interval's bound near 0 is judged on its width.
				scale = math.Abs(*ref.Values["abs_ci_high"] - *ref.Values["abs_ci_low"])
			}
			if !close(g, *w, scale, relTol) {
				t.Errorf("%s: %s = %v, reference %v", where, col, g, *w)
			}
		}
	}
	// The fixture must exercise the statuses it claims to.
	for _, st := range []string{"ok", "unbounded", "too_few:control", "tie:control"} {
		if statuses[st] == 0 {
			t.Errorf("no row with reference status %s (have %v)", st, statuses)
		}
	}
}

// statusCategory is the reference's name of a quantiles.csv status.
func statusCategory(s string) string {
	arm := ""
	if i := strings.LastIndex(s, " ("); i >= 0 && strings.HasSuffix(s, ")") {
		arm = ":" + s[i+2:len(s)-1]
	}
	switch {
	case s == "ok":
		return "ok"
	case s == "relative interval unbounded":
		return "unbounded"
	case s == "control quantile is zero":
		return "zero_control"
	case s == "missing arm":
		return "missing_arm"
	case strings.HasPrefix(s, "too few units"):
		return "too_few" + arm
	case strings.HasPrefix(s, "quantile in a tie"):
		return "tie" + arm
	}
	return "unknown: " + s
}

// csvRows parses CSV bytes into maps by header.
func csvRows(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.csv")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return readCSV(t, path)
}

// referenceUnits computes the plain-Go reference's per-unit histograms of
// the spec's quantile and capped metrics and checks them against the
// pinned file testdata/name (written by -update); the Python references
// read that file.
func referenceUnits(t *testing.T, spec *expspec.Spec, name string) quantileUnits {
	t.Helper()
	var traces, events []string
	for _, role := range []struct {
		globs []string
		out   *[]string
	}{{spec.Inputs.Traces, &traces}, {spec.Inputs.Events, &events}} {
		for _, g := range role.globs {
			files, err := filepath.Glob(filepath.Join(filepath.Dir(spec.Path()), g, "*", "*.parquet"))
			if err != nil || len(files) == 0 {
				t.Fatalf("inputs %s: %v (%d files)", g, err, len(files))
			}
			*role.out = append(*role.out, files...)
		}
	}
	units := quantileUnitsOf(t, spec, traces, events)
	b, err := json.Marshal(units)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	unitsPath := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(unitsPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(unitsPath)
	if err != nil {
		t.Fatalf("%v: create it with go test ./golden -update, then run its reference script in golden/testdata", err)
	}
	if !bytes.Equal(want, b) {
		t.Fatalf("the reference's per-unit values differ from %s (-want +got):\n%s", unitsPath, cmp.Diff(string(want), string(b)))
	}
	return units
}

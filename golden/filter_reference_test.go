package golden

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// The filtered-metric fixture against pandas and SciPy (issue 20 item 3).
// The plain-Go reference's assigned units and attributed events — each
// event with its raw country and plan, NULL, "de" and " DE" included —
// are pinned in testdata/filter_units.csv and testdata/filter_events.csv
// (with the metrics in testdata/filter_spec.json); testdata/filter_reference.py
// applies each metric's filter (exact match, NULL never matches), builds
// the per-unit values and compares the arms with SciPy's Welch test
// (testdata/filter_reference.json). Rerun it after an -update:
//
//	/usr/bin/python3 golden/testdata/filter_reference.py

const filteredSpec = "../fixtures/specs/checkout-button-filtered.yaml"

// filterSpecFile is what the Python script needs of the spec.
type filterSpecFile struct {
	Decimals int                `json:"decimals"`
	Alpha    float64            `json:"alpha"`
	Control  string             `json:"control"`
	Leaves   []string           `json:"leaves"`
	Metrics  []filterSpecMetric `json:"metrics"`
	Props    []string           `json:"props"`
}

type filterSpecMetric struct {
	Name      string              `json:"name"`
	Kind      string              `json:"kind"`
	Event     string              `json:"event"`
	Aggregate string              `json:"aggregate,omitempty"`
	Clamp     *expspec.Clamp      `json:"clamp,omitempty"`
	Filter    map[string][]string `json:"filter,omitempty"`
}

func TestFilteredMatchesPandas(t *testing.T) {
	spec, err := expspec.LoadSpec(filteredSpec)
	if err != nil {
		t.Fatal(err)
	}
	got := runCase(t, filteredSpec, 2)
	pinFilterInputs(t, spec)
	var ref struct {
		Rows []struct {
			Cohort, Metric, Variant string
			Values                  map[string]float64
		}
	}
	readJSON(t, filepath.Join("testdata", "filter_reference.json"), &ref)
	byKey := map[string]map[string]string{}
	for _, r := range csvRows(t, got["results.csv"]) {
		byKey[r["cohort"]+"/"+r["metric"]+"/"+r["variant"]] = r
	}
	checked := 0
	for _, w := range ref.Rows {
		where := w.Cohort + "/" + w.Metric + "/" + w.Variant
		r, ok := byKey[where]
		if !ok {
			t.Errorf("%s: no results.csv row", where)
			continue
		}
		for col, want := range w.Values {
			g, err := strconv.ParseFloat(r[col], 64)
			if err != nil {
				t.Errorf("%s: %s = %q", where, col, r[col])
				continue
			}
			scale := 0.0
			switch col {
			case "abs_effect", "abs_ci_low", "abs_ci_high":
				scale = math.Abs(w.Values["abs_ci_high"] - w.Values["abs_ci_low"])
			case "rel_effect":
				scale = math.Abs(w.Values["abs_ci_high"]-w.Values["abs_ci_low"]) / math.Abs(w.Values["mean_control"])
			}
			if !close(g, want, scale, relTol) {
				t.Errorf("%s: %s = %v, reference %v", where, col, g, want)
			}
			checked++
		}
	}
	if checked < 200 {
		t.Errorf("only %d numbers checked", checked)
	}
	checkFilterCounts(t, spec, got["quality.json"])
}

// checkFilterCounts recounts quality.json's filter_counts from the events
// file with parquet-go: every row of the metric's event, per declared value
// (exact equality) and NULL.
func checkFilterCounts(t *testing.T, spec *expspec.Spec, quality []byte) {
	t.Helper()
	rows, err := parquet.ReadFile[fixtures.PropEventRow](filepath.Join("..", "fixtures", "data", fixtures.PropsFixture, "events.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var q struct {
		FilterCounts []struct {
			Metric, Event, Column string
			Value                 *string
			Rows                  int64
		} `json:"filter_counts"`
	}
	readJSONBytes(t, quality, &q)
	if len(q.FilterCounts) == 0 {
		t.Fatal("quality.json has no filter_counts")
	}
	for _, fc := range q.FilterCounts {
		var n int64
		for _, r := range rows {
			if r.Metric == nil || *r.Metric != fc.Event {
				continue
			}
			p := r.Country
			if fc.Column == "plan" {
				p = r.Plan
			}
			if (fc.Value == nil && p == nil) || (fc.Value != nil && p != nil && *p == *fc.Value) {
				n++
			}
		}
		if n != fc.Rows {
			t.Errorf("filter_counts %s %s=%v: %d rows, parquet-go counts %d", fc.Metric, fc.Column, fc.Value, fc.Rows, n)
		}
	}
}

// pinFilterInputs writes the Python script's inputs from the plain-Go
// reference (under -update) and requires the committed ones.
func pinFilterInputs(t *testing.T, spec *expspec.Spec) {
	t.Helper()
	traces, err := filepath.Glob(filepath.Join("..", "fixtures", "data", "basic", "traces", "*", "*.parquet"))
	if err != nil || len(traces) == 0 {
		t.Fatalf("traces: %v", err)
	}
	events := []string{filepath.Join("..", "fixtures", "data", fixtures.PropsFixture, "events.parquet")}
	start, end := spec.Window.Bounds()
	a := reference.Analysis{
		ExperimentID: spec.Experiment, Start: start, End: end,
		PersonaAlgoVersion: spec.PersonaAlgoVersion, Leaves: spec.Cohorts.Taxonomy,
		Decimals: *spec.Statistics.FixedPointDecimals,
	}
	fs := filterSpecFile{Decimals: *spec.Statistics.FixedPointDecimals, Alpha: spec.Statistics.Alpha, Leaves: spec.Cohorts.Taxonomy, Props: spec.Inputs.EventProperties}
	for _, v := range spec.Variants {
		a.Variants = append(a.Variants, v.Name)
		if v.Control {
			fs.Control = v.Name
		}
	}
	for _, m := range spec.Metrics {
		// Every metric unfiltered: the reference hands over every
		// attributed event with its properties, the script filters.
		rm := reference.Metric{Name: m.Name, Kind: m.Kind, Event: m.Event, Aggregate: m.Aggregate}
		a.Metrics = append(a.Metrics, rm)
		fs.Metrics = append(fs.Metrics, filterSpecMetric{Name: m.Name, Kind: m.Kind, Event: m.Event, Aggregate: m.Aggregate, Clamp: m.Clamp, Filter: m.Filter})
	}
	var units, evs bytes.Buffer
	uw, ew := csv.NewWriter(&units), csv.NewWriter(&evs)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(uw.Write([]string{"unit_id", "cohort", "variant"}))
	must(ew.Write(append([]string{"unit", "event", "value"}, spec.Inputs.EventProperties...)))
	const null = `\N`
	index := map[string]int{}
	a.Units = func(u reference.UnitValue) {
		if u.Metric != spec.Metrics[0].Name {
			return
		}
		cohort := u.Cohort
		if cohort == reference.CohortUnclassified {
			cohort = expspec.UnclassifiedLeaf
		}
		index[u.Unit] = len(index)
		must(uw.Write([]string{u.Unit, cohort, u.Variant}))
	}
	var attributed []reference.AttributedEvent
	a.Attributed = func(e reference.AttributedEvent) { attributed = append(attributed, e) }
	a.Properties = spec.Inputs.EventProperties
	if _, _, err := reference.Compute(traces, events, a); err != nil {
		t.Fatal(err)
	}
	// Events name their unit by its row in filter_units.csv (from 0).
	for _, e := range attributed {
		i, ok := index[e.Unit]
		if !ok {
			t.Fatalf("attributed event of unit %s, which is not assigned", e.Unit)
		}
		rec := []string{strconv.Itoa(i), e.Event, null}
		if e.Value != nil {
			rec[2] = strconv.FormatFloat(*e.Value, 'g', -1, 64)
		}
		for _, p := range spec.Inputs.EventProperties {
			v := null
			if e.Props[p] != nil {
				v = *e.Props[p]
			}
			rec = append(rec, v)
		}
		must(ew.Write(rec))
	}
	uw.Flush()
	ew.Flush()
	must(uw.Error())
	must(ew.Error())
	sb, err := json.MarshalIndent(fs, "", "  ")
	must(err)
	for _, f := range []struct {
		name string
		data []byte
	}{{"filter_spec.json", append(sb, '\n')}, {"filter_units.csv", units.Bytes()}, {"filter_events.csv", evs.Bytes()}} {
		path := filepath.Join("testdata", f.name)
		if *update {
			must(os.WriteFile(path, f.data, 0o644))
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v: create it with go test ./golden -update, then run golden/testdata/filter_reference.py", err)
		}
		if !bytes.Equal(want, f.data) {
			t.Fatalf("%s differs from the reference's (-want +got):\n%s", path, cmp.Diff(string(want), string(f.data)))
		}
	}
}

// TestEventsV9WithoutFiltersIsV7: events@v9 reads the declared property
// columns but, without a filter, must give events@v7's bytes: the filtered
// fixture's metrics without their filters, alone and beside the filtered
// spec in one pass (where the unfiltered metrics' windows meet filtered
// windows of the same events).
func TestEventsV9WithoutFiltersIsV7(t *testing.T) {
	spec, err := expspec.LoadSpec(filteredSpec)
	if err != nil {
		t.Fatal(err)
	}
	plain := *spec
	plain.Name = "unfiltered"
	plain.Metrics = slices.Clone(spec.Metrics)
	for i := range plain.Metrics {
		plain.Metrics[i].Filter = nil
	}
	v7 := plain
	v7.Inputs.EventProperties = nil
	v7pins := maps.Clone(unitKeyedPins)
	v9pins := maps.Clone(unitKeyedPins)
	v9pins["events"] = "v9"
	want := runGroupWithPins(t, []*expspec.Spec{&v7}, v7pins)[spec.Experiment]
	got := runGroupWithPins(t, []*expspec.Spec{&plain}, v9pins)[spec.Experiment]
	for f := range want {
		if w, g := withoutSpecHash(t, f, want[f]), withoutSpecHash(t, f, got[f]); !bytes.Equal(w, g) {
			t.Errorf("%s differs between events@v7 and events@v9 without filters:\n%s", f, firstDiff(w, g))
		}
	}
}

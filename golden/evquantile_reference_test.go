package golden

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// The event-level quantile fixture (over: events; issue 20 item 1)
// against pandas, NumPy and SciPy. The plain-Go reference of the semantics
// (fixtures/reference, no engine code) hands over every assigned unit with
// its cohort and variant and every attributed event with its raw value;
// they are pinned in testdata/evquantile_units.csv and
// testdata/evquantile_events.csv (with the metrics in
// testdata/evquantile_spec.json; a change is a failure unless -update).
// testdata/evquantile_reference.py pools each arm's events, clamps them
// event by event, takes the definition-1 quantile, each unit's m_i, the
// cluster-robust variance and the normal interval itself, and writes
// testdata/evquantile_reference.json, which quantiles.csv's event-level
// rows must match to 1e-9. Rerun it after an -update:
//
//	/usr/bin/python3 golden/testdata/evquantile_reference.py

const evQuantileSpec = "../fixtures/specs/checkout-button-evquantiles.yaml"

// evqSpecFile is what the Python script needs of the spec.
type evqSpecFile struct {
	Decimals int         `json:"decimals"`
	Alpha    float64     `json:"alpha"`
	Control  string      `json:"control"`
	Variants []string    `json:"variants"`
	Leaves   []string    `json:"leaves"`
	Metrics  []evqMetric `json:"metrics"`
}

type evqMetric struct {
	Name  string  `json:"name"`
	Event string  `json:"event"`
	Level float64 `json:"level"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

func TestEventQuantilesMatchPandas(t *testing.T) {
	spec, err := expspec.LoadSpec(evQuantileSpec)
	if err != nil {
		t.Fatal(err)
	}
	got := runCase(t, evQuantileSpec, 2)
	pinEventQuantileInputs(t, spec)
	var refs []quantileRef
	readJSON(t, filepath.Join("testdata", "evquantile_reference.json"), &refs)
	rows := csvRows(t, got["quantiles.csv"])
	bad, checked, statuses := compareEventQuantiles(rows, refs)
	for _, b := range bad {
		t.Error(b)
	}
	if checked < 100 {
		t.Errorf("only %d numbers checked", checked)
	}
	// The fixture must exercise the statuses it claims to.
	for _, st := range []string{"ok", "too_few:control", "tie:control"} {
		if statuses[st] == 0 {
			t.Errorf("no row with reference status %s (have %v)", st, statuses)
		}
	}
	// The comparison can fail: a reference value moved by 1e-7 of itself,
	// or one row's status changed, is reported.
	for _, perturb := range []func([]quantileRef){
		func(r []quantileRef) {
			for i := range r {
				if v := r[i].Values["se_control"]; v != nil {
					w := *v * (1 + 1e-7)
					r[i].Values["se_control"] = &w
					return
				}
			}
		},
		func(r []quantileRef) { r[len(r)-1].Status = "ok" },
	} {
		var moved []quantileRef
		readJSON(t, filepath.Join("testdata", "evquantile_reference.json"), &moved)
		perturb(moved)
		if bad, _, _ := compareEventQuantiles(rows, moved); len(bad) == 0 {
			t.Error("a perturbed reference still agrees: the comparison cannot fail")
		}
	}
}

// compareEventQuantiles compares quantiles.csv's event-level rows (in
// order) with the reference's and returns the disagreements, the numbers
// checked and the reference statuses met.
func compareEventQuantiles(rows []map[string]string, refs []quantileRef) (bad []string, checked int, statuses map[string]int) {
	statuses = map[string]int{}
	var ev []map[string]string
	for _, r := range rows {
		if r["over"] == "events" {
			if r["method"] != "clustered_order_statistic" {
				bad = append(bad, fmt.Sprintf("%s/%s: method %q", r["cohort"], r["metric"], r["method"]))
			}
			ev = append(ev, r)
		}
	}
	if len(ev) != len(refs) || len(ev) == 0 {
		return append(bad, fmt.Sprintf("quantiles.csv has %d event-level rows, the reference %d", len(ev), len(refs))), 0, statuses
	}
	for i, r := range ev {
		ref := refs[i]
		where := r["cohort"] + "/" + r["metric"] + "/" + r["variant"]
		if r["cohort"] != ref.Cohort || r["metric"] != ref.Metric || r["variant"] != ref.Variant {
			return append(bad, fmt.Sprintf("row %d is %s, the reference's %s/%s/%s", i, where, ref.Cohort, ref.Metric, ref.Variant)), checked, statuses
		}
		if st := evStatusCategory(r["status"]); st != ref.Status {
			bad = append(bad, fmt.Sprintf("%s: status %q (%s), reference %s", where, r["status"], st, ref.Status))
		}
		statuses[ref.Status]++
		for col, w := range ref.Values {
			s, ok := r[col]
			switch {
			case !ok:
				bad = append(bad, "quantiles.csv has no column "+col)
				continue
			case w == nil:
				if s != "" {
					bad = append(bad, fmt.Sprintf("%s: %s = %s, reference empty", where, col, s))
				}
				continue
			}
			g, err := strconv.ParseFloat(s, 64)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %s = %q, reference %v", where, col, s, *w))
				continue
			}
			scale := 0.0
			if strings.HasPrefix(col, "abs_") {
				// An interval's bound near 0 is judged on its width.
				scale = math.Abs(*ref.Values["abs_ci_high"] - *ref.Values["abs_ci_low"])
			}
			if !close(g, *w, scale, relTol) {
				bad = append(bad, fmt.Sprintf("%s: %s = %v, reference %v", where, col, g, *w))
			}
			checked++
		}
	}
	return bad, checked, statuses
}

// evStatusCategory is the reference's name of an event-level status.
func evStatusCategory(s string) string {
	arm := ""
	if i := strings.LastIndex(s, " ("); i >= 0 && strings.HasSuffix(s, ")") {
		arm = ":" + s[i+2:len(s)-1]
	}
	switch {
	case strings.HasPrefix(s, "too few events"):
		return "too_few" + arm
	case strings.HasPrefix(s, "fewer than two units"):
		return "units" + arm
	case strings.HasPrefix(s, "cluster variance is zero"):
		return "zero_var" + arm
	case strings.HasPrefix(s, "no events in an arm"):
		return "no_events" + arm
	}
	return statusCategory(s)
}

// pinEventQuantileInputs writes the Python script's inputs from the
// plain-Go reference (under -update) and requires the committed ones.
func pinEventQuantileInputs(t *testing.T, spec *expspec.Spec) {
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
	start, end := spec.Window.Bounds()
	a := reference.Analysis{
		ExperimentID: spec.Experiment, Start: start, End: end,
		PersonaAlgoVersion: spec.PersonaAlgoVersion, Leaves: spec.Cohorts.Taxonomy,
		Decimals: *spec.Statistics.FixedPointDecimals,
	}
	fs := evqSpecFile{Decimals: *spec.Statistics.FixedPointDecimals, Alpha: spec.Statistics.Alpha, Control: spec.Control(), Leaves: spec.Cohorts.Taxonomy}
	for _, v := range spec.Variants {
		a.Variants = append(a.Variants, v.Name)
		fs.Variants = append(fs.Variants, v.Name)
	}
	// A proportion per event name of an event-level metric: the reference
	// reads (and attributes) the events of its metrics' names only; the
	// first one lists the assigned units.
	seen := map[string]bool{}
	for _, m := range spec.Metrics {
		if !m.EventLevel() {
			continue
		}
		fs.Metrics = append(fs.Metrics, evqMetric{Name: m.Name, Event: m.Event, Level: m.Level, Lower: m.Clamp.Lower, Upper: m.Clamp.Upper})
		if !seen[m.Event] {
			seen[m.Event] = true
			a.Metrics = append(a.Metrics, reference.Metric{Name: "events-" + m.Event, Kind: reference.KindProportion, Event: m.Event})
		}
	}
	var units, evs bytes.Buffer
	uw, ew := csv.NewWriter(&units), csv.NewWriter(&evs)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(uw.Write([]string{"unit_id", "cohort", "variant"}))
	must(ew.Write([]string{"unit_id", "event", "value"}))
	a.Units = func(u reference.UnitValue) {
		if u.Metric != a.Metrics[0].Name {
			return
		}
		cohort := u.Cohort
		if cohort == reference.CohortUnclassified {
			cohort = expspec.UnclassifiedLeaf
		}
		must(uw.Write([]string{u.Unit, cohort, u.Variant}))
	}
	a.Attributed = func(e reference.AttributedEvent) {
		v := `\N`
		if e.Value != nil {
			v = strconv.FormatFloat(*e.Value, 'g', -1, 64)
		}
		must(ew.Write([]string{e.Unit, e.Event, v}))
	}
	if _, _, err := reference.Compute(traces, events, a); err != nil {
		t.Fatal(err)
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
	}{{"evquantile_spec.json", append(sb, '\n')}, {"evquantile_units.csv", units.Bytes()}, {"evquantile_events.csv", evs.Bytes()}} {
		path := filepath.Join("testdata", f.name)
		if *update {
			must(os.WriteFile(path, f.data, 0o644))
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v: create it with go test ./golden -update, then run golden/testdata/evquantile_reference.py", err)
		}
		if !bytes.Equal(want, f.data) {
			t.Fatalf("the reference's units or events differ from %s (-want +got):\n%s", path, cmp.Diff(string(want), string(f.data)))
		}
	}
}

// TestEventQuantileReplay: an event-level quantile run replays byte for
// byte from its manifest, and an edited quantiles.csv stops the replay
// (exit 70, naming the file).
func TestEventQuantileReplay(t *testing.T) {
	spec, err := expspec.LoadSpec(evQuantileSpec)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ixRun(t, out, pipeline.Options{}, spec)
	dir := filepath.Join(out, spec.OutputName(), "2026-11-19")
	manifest := filepath.Join(dir, "manifest.json")
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 3}, Build: publish.CurrentBuild()})
	if err != nil || !rep.Identical() {
		t.Fatalf("replay: %v (identical %v)", err, rep != nil && rep.Identical())
	}
	path := filepath.Join(dir, "quantiles.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte("clustered_order_statistic"), []byte("order_statistic"), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("quantiles.csv has no event-level row")
	}
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if err == nil || pipeline.ExitCode(err) != 70 || !strings.Contains(err.Error(), "quantiles.csv") {
		t.Errorf("replay over an edited quantiles.csv: %v (exit %d), want exit 70 naming the file", err, pipeline.ExitCode(err))
	}
}

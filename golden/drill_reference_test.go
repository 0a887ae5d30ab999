package golden

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/fixtures/reference"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// The drill-downs of the checkout-drill fixture (drilldown.csv) against an
// independent reference: each assigned unit's variant, its slice of every
// dimension (the value on its first-exposure row, computed by the plain-Go
// reference implementation from the Parquet rows, fixtures/reference
// Slice) and x of every metric, written to testdata/drill_units.csv; the
// slices' collapsing, SRM, Welch comparisons and Holm family computed from
// them by SciPy/statsmodels (testdata/drill_reference.py →
// testdata/drill_reference.json). The unit values are checked here against
// a fresh reference computation; drilldown.csv against a fresh run.

const (
	drillSpec      = "../fixtures/specs/checkout-drill.yaml"
	drillUnitsFile = "testdata/drill_units.csv"
	drillRefFile   = "testdata/drill_reference.json"
)

// drillUnitsCSV is one row per assigned unit (in unit-id order; the id is
// left out): its variant, for each dimension d the columns d (the value),
// d_null and d_tied (0 or 1), then x of every metric (scaled integers).
func drillUnitsCSV(t *testing.T) []byte {
	t.Helper()
	spec, err := expspec.LoadSpec(drillSpec)
	if err != nil {
		t.Fatal(err)
	}
	start, end := spec.Window.Bounds()
	for _, m := range spec.Metrics {
		if m.AttributionHours*3600 < int(end.Sub(start).Seconds()) {
			t.Fatalf("metric %s: the reference counts events until the window end; the fixture must set attribution_hours to cover the window", m.Name)
		}
	}
	traces, _ := filepath.Glob(filepath.Join(filepath.Dir(drillSpec), spec.Inputs.Traces[0], "*", "*.parquet"))
	events, _ := filepath.Glob(filepath.Join(filepath.Dir(drillSpec), spec.Inputs.Events[0], "*", "*.parquet"))
	if len(traces) == 0 || len(events) == 0 {
		t.Fatalf("fixture inputs not found: %v %v", traces, events)
	}
	a := referenceAnalysis(spec)
	a.Dimensions = spec.DrillDimensions()
	head := []string{"variant"}
	for _, d := range a.Dimensions {
		head = append(head, d, d+"_null", d+"_tied")
	}
	for _, m := range spec.Metrics {
		head = append(head, m.Name)
	}
	b01 := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	var rows [][]string
	var row []string
	a.Units = func(u reference.UnitValue) {
		if u.Metric == spec.Metrics[0].Name {
			if row != nil {
				rows = append(rows, row)
			}
			row = []string{u.Variant}
			if len(u.Slices) != len(a.Dimensions) {
				t.Fatalf("unit %s: %d slices, want %d", u.Unit, len(u.Slices), len(a.Dimensions))
			}
			for _, s := range u.Slices {
				row = append(row, s.Value, b01(s.Null), b01(s.Tied))
			}
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
	w.Flush()
	return buf.Bytes()
}

// TestDrillUnitsMatchReference: the committed per-unit values and slices
// the Python reference reads are the reference implementation's.
func TestDrillUnitsMatchReference(t *testing.T) {
	got := drillUnitsCSV(t)
	if *update {
		if err := os.WriteFile(drillUnitsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("rewrote " + drillUnitsFile + "; rerun /usr/bin/python3 golden/testdata/drill_reference.py")
		return
	}
	want, err := os.ReadFile(drillUnitsFile)
	if err != nil {
		t.Fatalf("%v: create it with `go test ./golden -run DrillUnits -update`", err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is stale (-want +got):\n%s", drillUnitsFile, cmp.Diff(string(want), string(got)))
	}
}

// drillRefRow is one row of drill_reference.json: a released slice's
// comparison of one metric (two arms), or a slice's units only.
type drillRefRow struct {
	Dimension     string   `json:"dimension"`
	SliceKind     string   `json:"slice_kind"`
	Slice         string   `json:"slice"`
	CollapsedFrom string   `json:"collapsed_from"`
	Units         int64    `json:"units"`
	Tied          int64    `json:"units_tied"`
	Metric        string   `json:"metric"`
	NControl      int64    `json:"n_control"`
	NVariant      int64    `json:"n_variant"`
	MeanControl   float64  `json:"mean_control"`
	MeanVariant   float64  `json:"mean_variant"`
	AbsEffect     float64  `json:"abs_effect"`
	CILow         float64  `json:"abs_ci_low"`
	CIHigh        float64  `json:"abs_ci_high"`
	DF            float64  `json:"df"`
	PValue        float64  `json:"p_value"`
	PAdjusted     *float64 `json:"p_value_adjusted"`
	SRMP          float64  `json:"srm_p_value"`
}

// TestDrilldownMatchesReference compares every drilldown.csv row of a
// fresh run with SciPy/statsmodels' (drill_reference.json): the same rows
// in the same order, slices and counts exactly, estimates, intervals and
// p-values to 1e-9 (relative for estimates, absolute for p-values), df to
// 1e-6 relative.
func TestDrilldownMatchesReference(t *testing.T) {
	var ref struct {
		Rows []drillRefRow `json:"rows"`
	}
	readJSON(t, drillRefFile, &ref)
	got := runCase(t, drillSpec, 2)[publish.DrilldownFile]
	recs, err := csv.NewReader(bytes.NewReader(got)).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("drilldown.csv: %v (%d records)", err, len(recs))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if len(ref.Rows) != len(recs)-1 {
		t.Fatalf("reference has %d rows, drilldown.csv %d", len(ref.Rows), len(recs)-1)
	}
	for i, w := range ref.Rows {
		r := recs[i+1]
		id := w.Dimension + "/" + w.SliceKind + ":" + w.Slice + "/" + w.Metric
		for _, c := range []struct{ name, want string }{
			{"dimension", w.Dimension}, {"slice_kind", w.SliceKind}, {"slice", w.Slice}, {"collapsed_from", w.CollapsedFrom},
			{"units", strconv.FormatInt(w.Units, 10)}, {"units_tied", strconv.FormatInt(w.Tied, 10)}, {"metric", w.Metric},
			{"n_control", strconv.FormatInt(w.NControl, 10)}, {"n_variant", strconv.FormatInt(w.NVariant, 10)}, {"status", "ok"},
		} {
			if g := r[col[c.name]]; g != c.want {
				t.Errorf("row %d (%s) %s: Verity %q, reference %q", i+1, id, c.name, g, c.want)
			}
		}
		num := func(name string) float64 {
			v, err := strconv.ParseFloat(r[col[name]], 64)
			if err != nil {
				t.Fatalf("row %d (%s): %s = %q", i+1, id, name, r[col[name]])
			}
			return v
		}
		for _, c := range []struct {
			name      string
			want, tol float64
			abs       bool
		}{
			{"mean_control", w.MeanControl, 1e-9, false},
			{"mean_variant", w.MeanVariant, 1e-9, false},
			{"abs_effect", w.AbsEffect, 1e-9, false},
			{"abs_ci_low", w.CILow, 1e-9, false},
			{"abs_ci_high", w.CIHigh, 1e-9, false},
			{"df", w.DF, 1e-6, false},
			{"p_value", w.PValue, 1e-9, true},
			{"srm_p_value", w.SRMP, 1e-9, true},
		} {
			g := num(c.name)
			ok := close(g, c.want, 0, c.tol)
			if c.abs {
				ok = math.Abs(g-c.want) <= c.tol
			}
			if !ok {
				t.Errorf("row %d (%s) %s: Verity %v, reference %v", i+1, id, c.name, g, c.want)
			}
		}
		wantCorr := "holm"
		if w.PAdjusted == nil {
			wantCorr = "nominal"
		}
		if g := r[col["correction"]]; g != wantCorr {
			t.Errorf("row %d (%s) correction: Verity %q, want %q", i+1, id, g, wantCorr)
		}
		if w.PAdjusted == nil {
			if g := r[col["p_value_adjusted"]]; g != "" {
				t.Errorf("row %d (%s) p_value_adjusted: Verity %q, reference none (outside the family)", i+1, id, g)
			}
		} else if g := num("p_value_adjusted"); math.Abs(g-*w.PAdjusted) > 1e-9 {
			t.Errorf("row %d (%s) p_value_adjusted: Verity %v, reference %v", i+1, id, g, *w.PAdjusted)
		}
	}
}

// TestDrilldownReplayAndSharedPass: a drill-down run replays byte for byte
// from its manifest (drilldown.csv is one of its outputs), an edited
// drilldown.csv stops the replay (exit 70), and running the fixture in one
// RunAll beside another spec of the same inputs (checkout-button-ix's
// partner, onboarding-flow, and a second drill-down spec on another
// dimension, which must not share its pass) leaves its drilldown.csv as
// the golden's.
func TestDrilldownReplayAndSharedPass(t *testing.T) {
	spec, err := expspec.LoadSpec(drillSpec)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ixRun(t, out, pipeline.Options{}, spec)
	manifest := filepath.Join(out, "checkout-drill", "2026-11-19", "manifest.json")
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 3}, Build: publish.CurrentBuild()})
	if err != nil || !rep.Identical() {
		t.Fatalf("replay: %v (identical %v)", err, rep != nil && rep.Identical())
	}
	csvPath := filepath.Join(out, "checkout-drill", "2026-11-19", publish.DrilldownFile)
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csvPath, bytes.Replace(b, []byte("android-4.1.3"), []byte("android-4.1.4"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay.Replay(context.Background(), manifest, replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if err == nil || pipeline.ExitCode(err) != 70 || !strings.Contains(err.Error(), publish.DrilldownFile) {
		t.Errorf("replay over an edited drilldown.csv: %v (exit %d), want exit 70 naming the file", err, pipeline.ExitCode(err))
	}

	other, err := expspec.ParseSpec(drillSpec, bytes.Replace(bytes.Replace(mustRead(t, drillSpec),
		[]byte("name: checkout-drill"), []byte("name: checkout-drill-sdk"), 1),
		[]byte("dimensions: [sdk_version, rule_id, persona]"), []byte("dimensions: [sdk_version]"), 1))
	if err != nil {
		t.Fatal(err)
	}
	partner, err := expspec.LoadSpec("../fixtures/specs/onboarding-flow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := ixRun(t, t.TempDir(), pipeline.Options{}, partner, other, spec)
	golden, err := os.ReadFile(filepath.Join("checkout-drill", publish.DrilldownFile))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(golden), string(got["checkout-drill"][publish.DrilldownFile])); diff != "" {
		t.Errorf("drilldown.csv run beside other specs differs from the golden (-want +got):\n%s", diff)
	}
	if rows := bytes.Count(got["checkout-drill-sdk"][publish.DrilldownFile], []byte("\n")); rows != 10 {
		t.Errorf("the one-dimension spec wrote %d lines, want a header and 9 rows", rows)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDrilldownUnitKeyedPins: the fixture drilled down over the unit-keyed
// exact templates (traces@v8, assignment@v5, events@v7, quality@v4) gives
// the golden's drilldown.csv but for the spec hash it is stamped with.
func TestDrilldownUnitKeyedPins(t *testing.T) {
	b := bytes.Replace(mustRead(t, drillSpec),
		[]byte("templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3, drilldown: v1}"),
		[]byte("templates: {traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4, drilldown: v1}"), 1)
	spec, err := expspec.ParseSpec(drillSpec, b)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Templates["traces"] != "v8" {
		t.Fatal("the fixture's template line changed: update this test")
	}
	got := ixRun(t, t.TempDir(), pipeline.Options{}, spec)["checkout-drill"][publish.DrilldownFile]
	stamp := func(b []byte) []byte {
		var out [][]byte
		for _, l := range bytes.Split(b, []byte("\n")) {
			if i := bytes.LastIndexByte(l, ','); i >= 0 {
				l = l[:i]
			}
			out = append(out, l)
		}
		return bytes.Join(out, []byte("\n"))
	}
	want := mustRead(t, filepath.Join("checkout-drill", publish.DrilldownFile))
	if diff := cmp.Diff(string(stamp(want)), string(stamp(got))); diff != "" {
		t.Errorf("unit-keyed pins: drilldown.csv differs from the golden (-want +got):\n%s", diff)
	}
}

// TestPrivateDrilldownMatchesReference: the exact values behind a private
// drill-down's noisy numbers (the restricted record) are the independent
// reference's. From drill_units.csv (each unit's slice by the plain-Go
// reference implementation, held to a fresh computation by
// TestDrillUnitsMatchReference) the test maps every unit to its declared
// slice of checkout-drill-private (a declared value's position, or other
// for an undeclared value and NULL) and checks each stage-one count (every
// declared value and other, all arms) and, for each published slice (its
// members: itself, or for other the declared values collapsed into it and
// the undeclared units), each arm's unit count and Σx of every metric.
// The published slices are then checked to be decided on the noisy
// stage-one counts alone.
func TestPrivateDrilldownMatchesReference(t *testing.T) {
	const privSpec = "../fixtures/specs/checkout-drill-private.yaml"
	spec, err := expspec.LoadSpec(privSpec)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(mustRead(t, drillUnitsFile))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	// ref[dim][slice id][variant]: units and Σx per metric.
	type acc struct {
		n   int64
		sum map[string]*big.Int
	}
	ref := map[string]map[string]map[string]*acc{}
	for _, dim := range spec.DrillDimensions() {
		ref[dim] = map[string]map[string]*acc{}
		slot := map[string]string{}
		for i, v := range spec.DrillValues(dim) {
			slot[v] = fmt.Sprintf("v%04d", i)
		}
		for _, r := range recs[1:] {
			id, ok := slot[r[col[dim]]]
			if r[col[dim+"_null"]] == "1" || !ok {
				id = "other"
			}
			if ref[dim][id] == nil {
				ref[dim][id] = map[string]*acc{}
			}
			a := ref[dim][id][r[col["variant"]]]
			if a == nil {
				a = &acc{sum: map[string]*big.Int{}}
				ref[dim][id][r[col["variant"]]] = a
			}
			a.n++
			for _, m := range spec.Metrics {
				x, ok := new(big.Int).SetString(r[col[m.Name]], 10)
				if !ok {
					t.Fatalf("x %q", r[col[m.Name]])
				}
				if a.sum[m.Name] == nil {
					a.sum[m.Name] = new(big.Int)
				}
				a.sum[m.Name].Add(a.sum[m.Name], x)
			}
		}
	}
	host := fixtureHost(t)
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}, Host: host})
	var gate *analysis.GateError
	if err != nil && !(errors.As(err, &gate) && res != nil) {
		t.Fatal(err)
	}
	var m publish.Manifest
	readJSON(t, filepath.Join(res.Dir, "manifest.json"), &m)
	var rec publish.RestrictedRecord
	readJSON(t, filepath.Join(ledgers.RestrictedDir(host.RestrictedRoot(), spec.Experiment, m.NominalDate, m.Privacy.ReleaseDigest), "release.json"), &rec)
	exact := map[string]string{}
	noisy := map[string]int64{}
	for _, n := range rec.Numbers {
		k := n.Cohort + "|" + n.Variant + "|" + n.Metric + "|" + n.Statistic
		exact[k] = n.Exact
		v, _ := strconv.ParseInt(n.Noisy, 10, 64)
		noisy[k] = v
	}
	refUnits := func(dim string, ids []string, variant string) (int64, map[string]*big.Int) {
		n, sums := int64(0), map[string]*big.Int{}
		for _, m := range spec.Metrics {
			sums[m.Name] = new(big.Int)
		}
		for _, id := range ids {
			for v, a := range ref[dim][id] {
				if variant != "*" && v != variant {
					continue
				}
				n += a.n
				for name, s := range a.sum {
					sums[name].Add(sums[name], s)
				}
			}
		}
		return n, sums
	}
	checked := 0
	for _, dim := range spec.DrillDimensions() {
		ids := []string{}
		for i := range spec.DrillValues(dim) {
			ids = append(ids, fmt.Sprintf("v%04d", i))
		}
		ids = append(ids, "other")
		stage := map[string]int64{}
		for _, id := range ids {
			k := id + "|*|(drill " + dim + ")(stage1)|n"
			n, _ := refUnits(dim, []string{id}, "*")
			if exact[k] != strconv.FormatInt(n, 10) {
				t.Errorf("%s: exact %q, reference %d", k, exact[k], n)
			}
			stage[id] = noisy[k]
			checked++
		}
		var slices []privatize.DrillSlice
		for _, d := range m.Privacy.DrillSlices {
			if d.Dimension == dim {
				slices = d.Slices
			}
		}
		if len(slices) == 0 {
			t.Fatalf("%s: no published slices", dim)
		}
		for _, s := range slices {
			members := []string{s.ID}
			if s.ID == "other" {
				for _, q := range s.CollapsedFrom {
					v, err := strconv.Unquote(q)
					if err != nil {
						t.Fatal(err)
					}
					members = append(members, fmt.Sprintf("v%04d", slices0Index(spec.DrillValues(dim), v)))
				}
			}
			// Decided on the noisy stage-one counts alone.
			var count int64
			for _, id := range members {
				count += stage[id]
			}
			if s.NoisyCount == nil || count != *s.NoisyCount || s.Analysed != (count >= spec.Cohorts.MinUnits) || (s.ID != "other" && count < spec.Cohorts.MinUnits) {
				t.Errorf("%s slice %s: noisy count %v (members %v), analysed %v: not decided on the noisy stage-one counts (%d)", dim, s.ID, s.NoisyCount, members, s.Analysed, count)
			}
			if !s.Analysed {
				continue
			}
			for _, v := range spec.Variants {
				n, sums := refUnits(dim, members, v.Name)
				k := s.ID + "|" + v.Name + "|(drill " + dim + ")(cell)|n"
				if exact[k] != strconv.FormatInt(n, 10) {
					t.Errorf("%s: exact %q, reference %d", k, exact[k], n)
				}
				for _, mt := range spec.Metrics {
					k := s.ID + "|" + v.Name + "|(drill " + dim + ")" + mt.Name + "|sum_x"
					if exact[k] != sums[mt.Name].String() {
						t.Errorf("%s: exact %q, reference %s", k, exact[k], sums[mt.Name])
					}
					checked++
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d numbers", checked)
	}
}

func slices0Index(values []string, v string) int {
	for i, x := range values {
		if x == v {
			return i
		}
	}
	return -1
}

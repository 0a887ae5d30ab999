package pipeline_test

// Event-level quantile metrics (over: events; issue 20 item 1) against
// hostile inputs: a unit with many events (whose clustering the variance
// must count), NULL values (which count as 1, as for every metric), events
// outside the window or before exposure, a duplicate, a NaN value and an
// unassigned unit's events (each excluded and counted in quality.json),
// and values beyond the clamp (clamped event by event). The expected
// numbers are computed here from the rows as built, with plain Go that
// shares no code with the engine or stats: the pooled events' definition-1
// quantile, each unit's n_i and m_i, the cluster-robust variance and the
// normal interval.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

const evqSpec = `version: 1
experiment: exp
inputs:
  traces: ["traces/*.parquet"]
  events: ["events/*.parquet"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
persona_algo_version: pa-2
templates: {traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4, eventbins: v1}
cohorts: {dimension: persona, taxonomy: [a/x, a/y]}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal, attribution_hours: 96}
  - {name: lat_p50, kind: quantile, over: events, level: 0.5, event: lat, clamp: {lower: 0, upper: 1000}, attribution_hours: 96}
  - {name: lat_p90, kind: quantile, over: events, level: 0.9, event: lat, clamp: {lower: 0, upper: 1000}, attribution_hours: 96}
  - {name: lat_p90_clamped, kind: quantile, over: events, level: 0.9, event: lat, clamp: {lower: 0, upper: 150}, attribution_hours: 96}
statistics: {fixed_point_decimals: 6}
privacy: {enabled: false}
`

// evqEvent is a "lat" event as built, with whether it must count.
type evqEvent struct {
	row    fixtures.EventRow
	counts bool
}

// evqData is baseData's traces and buys with "lat" events: unit i has
// 1 + i%3 of them; unit 0 (control) 60 more above every other unit's, three
// of them 5000 (clamped to 1000);
// every 10th unit's first has a NULL value; and the hostile rows.
func evqData() (dataset, []evqEvent) {
	d := baseData()
	var lat []evqEvent
	add := func(e fixtures.EventRow, counts bool) { lat = append(lat, evqEvent{e, counts}) }
	ev := func(i, k int, at time.Time, v *float64) fixtures.EventRow {
		return fixtures.EventRow{TS: micros(at), UnitID: str(unitID(i)), Metric: str("lat"), Value: v, EventID: str(fmt.Sprintf("l-%03d-%d", i, k))}
	}
	for i := 0; i < baseUnits; i++ {
		for k := 0; k < 1+i%3; k++ {
			v := num(float64(i*37%200) + float64(k)*13.5 + 0.25)
			if k == 0 && i%10 == 0 {
				v = nil // counts as 1
			}
			add(ev(i, k, exposureOf(i).Add(time.Duration(k+1)*time.Minute), v), true)
		}
	}
	for k := 10; k < 70; k++ {
		v := 5000.0 // clamped to 1000
		if k >= 13 {
			v = 250 + float64(k)*0.5
		}
		add(ev(0, k, exposureOf(0).Add(time.Duration(k)*time.Minute), num(v)), true)
	}
	add(ev(2, 90, time.Date(2026, 11, 21, 1, 0, 0, 0, time.UTC), num(7)), false) // after the window
	add(ev(4, 91, exposureOf(4).Add(-time.Hour), num(7)), false)                 // before exposure
	dup := ev(6, 0, exposureOf(6).Add(2*time.Hour), num(999))                    // a copy of unit 6's first event id, later
	add(dup, false)                                                              // (the earlier copy is kept)
	add(ev(8, 92, exposureOf(8).Add(time.Hour), num(math.NaN())), false)         // invalid value
	add(fixtures.EventRow{TS: micros(baseT0), UnitID: str("stranger"), Metric: str("lat"), Value: num(3), EventID: str("l-x")}, false)
	for _, e := range lat {
		d.events["part-1"] = append(d.events["part-1"], e.row)
	}
	return d, lat
}

func TestEventQuantileHostile(t *testing.T) {
	d, lat := evqData()
	dir := t.TempDir()
	d.write(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "spec.yaml"), []byte(evqSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runIn(t, dir); err != nil {
		t.Fatalf("run: %v (exit %d)", err, pipeline.ExitCode(err))
	}
	out := filepath.Join(dir, "out", badExperiment, badDate)
	q := readCSV(t, filepath.Join(out, "quantiles.csv"))
	// Expected arms of cohort (all): every counted event, clamped.
	arms := map[string]map[string][]int64{"control": {}, "treatment": {}}
	for _, e := range lat {
		if !e.counts {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(*e.row.UnitID, "u%d", &i); err != nil {
			t.Fatal(err)
		}
		v := int64(1_000_000)
		if e.row.Value != nil {
			v = int64(math.Round(*e.row.Value * 1e6))
		}
		v = min(max(v, 0), 1000*1_000_000)
		arms[variantOf(i)][unitID(i)] = append(arms[variantOf(i)][unitID(i)], v)
	}
	checked := 0
	for _, level := range []float64{0.5, 0.9} {
		name := "lat_p" + strconv.Itoa(int(level*100))
		var row map[string]string
		for _, r := range q {
			if r["cohort"] == "(all)" && r["metric"] == name {
				row = r
			}
		}
		if row == nil {
			t.Fatalf("quantiles.csv has no (all) row of %s", name)
		}
		if row["status"] != "ok" || row["over"] != "events" || row["method"] != "clustered_order_statistic" {
			t.Fatalf("%s: status %q over %q method %q", name, row["status"], row["over"], row["method"])
		}
		c, tr := evqArm(arms["control"], level), evqArm(arms["treatment"], level)
		if level == 0.9 && !(c.deff > 3) {
			t.Errorf("%s: control's design effect %v; unit 0's 60 events must inflate it", name, c.deff)
		}
		want := map[string]float64{
			"events_control": c.events, "events_variant": tr.events,
			"units_with_events_control": c.units, "units_with_events_variant": tr.units,
			"quantile_control": c.q, "quantile_variant": tr.q, "se_control": c.se, "se_variant": tr.se,
			"design_effect_control": c.deff, "design_effect_variant": tr.deff,
			"abs_effect":  tr.q - c.q,
			"abs_ci_low":  tr.q - c.q - 1.959963984540054*math.Hypot(c.se, tr.se),
			"abs_ci_high": tr.q - c.q + 1.959963984540054*math.Hypot(c.se, tr.se),
		}
		for col, w := range want {
			g, err := strconv.ParseFloat(row[col], 64)
			if err != nil || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Errorf("%s: %s = %q, want %v", name, col, row[col], w)
			}
			checked++
		}
	}
	// Clamped event by event: more than a tenth of the events lie above
	// 150, so both arms' p90 is the bound, in a tie.
	for _, r := range q {
		if r["cohort"] == "(all)" && r["metric"] == "lat_p90_clamped" {
			if r["quantile_control"] != "150" || r["quantile_variant"] != "150" || r["status"] != "quantile in a tie wider than its interval (control)" {
				t.Errorf("lat_p90_clamped: quantiles %s, %s, status %q", r["quantile_control"], r["quantile_variant"], r["status"])
			}
			checked++
		}
	}
	if checked != 27 {
		t.Errorf("%d numbers checked", checked)
	}
	// Each hostile row is excluded and counted once, where the events
	// template counts it; every counted lat event is attributed.
	b, err := os.ReadFile(filepath.Join(out, "quality.json"))
	if err != nil {
		t.Fatal(err)
	}
	var qual struct{ Counts map[string]int64 }
	if err := json.Unmarshal(b, &qual); err != nil {
		t.Fatal(err)
	}
	var attributed int64 // the buys (this spec reads no views) and the counted lat events
	for i := 0; i < baseUnits; i += 3 {
		attributed++
	}
	for _, e := range lat {
		if e.counts {
			attributed++
		}
	}
	want := map[string]int64{"event_after_window": 1, "event_before_exposure": 1, "event_duplicates": 1, "event_invalid_value": 1,
		"event_unassigned": 1, "event_attributed": attributed}
	for field, n := range want {
		if qual.Counts[field] != n {
			t.Errorf("quality.json %s = %d, want %d", field, qual.Counts[field], n)
		}
	}
}

// evqArmStats is one arm's expected event-level quantile.
type evqArmStats struct{ events, units, q, se, deff float64 }

// evqArm computes an arm's event-level quantile from its units' events
// (fixed point, 6 decimals): definition 1 on the pooled events, the
// order-statistic band at p ∓ z·√(p(1−p)/n), and the cluster-robust
// variance of the share of events at or below the quantile.
func evqArm(units map[string][]int64, p float64) evqArmStats {
	var all []int64
	for _, vs := range units {
		all = append(all, vs...)
	}
	slices.Sort(all)
	n := float64(len(all))
	at := func(level float64) int64 { return all[int(math.Ceil(n*level-1e-9))-1] }
	const z = 1.959963984540054
	delta := z * math.Sqrt(p*(1-p)/n)
	q := at(p)
	lo, hi := at(p-delta), at(p+delta)
	var m, k, sumM, sumN float64
	type mn struct{ m, n float64 }
	var per []mn
	for _, vs := range units {
		m = 0
		for _, v := range vs {
			if v <= q {
				m++
			}
		}
		per = append(per, mn{m, float64(len(vs))})
		sumM += m
		sumN += float64(len(vs))
		k++
	}
	share := sumM / sumN
	var ss float64
	for _, u := range per {
		ss += (u.m - share*u.n) * (u.m - share*u.n)
	}
	varC := k / (k - 1) * ss / (n * n)
	deff := varC / (p * (1 - p) / n)
	seIID := float64(hi-lo) / 1e6 / (2 * z)
	return evqArmStats{events: n, units: k, q: float64(q) / 1e6, se: seIID * math.Sqrt(deff), deff: deff}
}

// TestEventQuantileSpecRefusals: a typo'd over, an aggregate with over:
// events and a private spec are refused before any data is read (exit 78,
// naming the key).
func TestEventQuantileSpecRefusals(t *testing.T) {
	for _, c := range []struct{ name, old, new, key string }{
		{"over typo", "over: events, level: 0.5", "over: event, level: 0.5", "metrics[1].over"},
		{"aggregate", "over: events, level: 0.5,", "over: events, level: 0.5, aggregate: sum,", "metrics[1].aggregate"},
		{"private", "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1e-6, run_share: 1, key_env: K}", "metrics[1].kind"},
		{"no pin", ", eventbins: v1", "", "templates.eventbins"},
		// over on a proportion was accepted and computed per unit while the
		// manifest said over: events (found by an outside review).
		{"over on a proportion", "{name: converted, kind: proportion, event: buy,", "{name: converted, kind: proportion, over: events, event: buy,", "metrics[0].over"},
		{"over: units on a proportion", "{name: converted, kind: proportion, event: buy,", "{name: converted, kind: proportion, over: units, event: buy,", "metrics[0].over"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "spec.yaml")
			if err := os.WriteFile(path, []byte(replaceOnce(t, evqSpec, c.old, c.new)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := expspec.LoadSpec(path)
			if err == nil || pipeline.ExitCode(err) != 78 || !strings.Contains(err.Error(), c.key) {
				t.Errorf("got %v (exit %d), want exit 78 naming %s", err, pipeline.ExitCode(err), c.key)
			}
		})
	}
}

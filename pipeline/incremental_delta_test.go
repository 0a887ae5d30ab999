package pipeline_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// deltaNights runs nights of a spec over a copy of the committed fixture
// (multi-variant units dropped) incrementally and in full, and compares
// every output file of every night.
type deltaNights struct {
	t                  *testing.T
	dir, tr, ev, state string
	spec               *expspec.Spec
	n                  int
	log                bytes.Buffer
}

func newDeltaNights(t *testing.T, specText string) *deltaNights {
	d := &deltaNights{t: t}
	d.dir, d.spec = incrFixture(t, true, specText)
	d.tr, d.ev = filepath.Join(d.dir, "data", "traces"), filepath.Join(d.dir, "data", "events")
	d.state = filepath.Join(d.dir, "state")
	return d
}

// night runs date both ways, checks the incremental run's mode and that
// every output is the full run's, and returns the full run's folder.
func (d *deltaNights) night(date, wantMode string) string {
	t := d.t
	t.Helper()
	d.n++
	run := func(o pipeline.Options) *pipeline.Outcome {
		t.Helper()
		r, err := pipeline.Run(context.Background(), d.spec, o)
		var ge *analysis.GateError
		if err != nil && !errors.As(err, &ge) {
			t.Fatalf("night %d (%s): %v", d.n, date, err)
		}
		if r == nil {
			t.Fatalf("night %d (%s): no outcome", d.n, date)
		}
		return r
	}
	out := func(s string) string { return filepath.Join(d.dir, s+strconv.Itoa(d.n)) }
	d.log.Reset()
	ri := run(pipeline.Options{OutDir: out("incr"), Date: date, Engine: engine.Engine{Threads: 2},
		Incremental: true, Host: ledgers.Host{StateDir: d.state}, Build: publish.CurrentBuild(),
		Logger: slog.New(slog.NewJSONHandler(&d.log, nil))})
	checkProgressSteps(t, "night "+strconv.Itoa(d.n)+" ("+date+")", d.log.Bytes())
	rf := run(pipeline.Options{OutDir: out("full"), Date: date, Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
	if !strings.HasPrefix(ri.Mode, wantMode) {
		t.Errorf("night %d (%s): mode %q, want %q…", d.n, date, ri.Mode, wantMode)
	}
	sameOutputs(t, "night "+strconv.Itoa(d.n), ri.Dir, rf.Dir)
	if ri.Mode == "incremental" {
		// Every statement of an incremental night ran in a stage: none may
		// be recorded under a planned statement's name, or the next full
		// night would estimate from a run over the touched units only.
		var m publish.Manifest
		if err := json.Unmarshal([]byte(mustRead(t, filepath.Join(ri.Dir, "manifest.json"))), &m); err != nil {
			t.Fatal(err)
		}
		for _, ph := range m.Volatile.Phases {
			if strings.HasPrefix(ph.Name, "sql ") && !strings.HasPrefix(ph.Name, "sql incremental ") {
				t.Errorf("night %d (%s): phase %q of an incremental night is named as a planned statement", d.n, date, ph.Name)
			}
		}
	}
	return rf.Dir
}

// checkProgressSteps reads a run's JSON log as an on-call engineer would:
// each sequence of SQL statements counts its steps 1, 2, 3, …; the planned
// pass says "step n of m" and ends at m; an incremental pass and the
// state's save name their stage and give no total (their statements are
// not the planned pass's), so no line ever says "step 20 of 16".
func checkProgressSteps(t *testing.T, what string, log []byte) {
	t.Helper()
	var stage string
	last, of, seqs := 0, 0, 0
	end := func() {
		if stage == "" && last > 0 && last != of {
			t.Errorf("%s: the planned pass ended at step %d of %d", what, last, of)
		}
	}
	for _, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%s: log line %q: %v", what, line, err)
		}
		if r["msg"] != "sql statement" {
			continue
		}
		step := int(r["step"].(float64))
		st, _ := r["stage"].(string)
		total, hasTotal := r["of"].(float64)
		if hasTotal == (st != "") {
			t.Errorf("%s: step %d of stage %q: total %v (a total belongs to the planned pass only)", what, step, st, r["of"])
		}
		if step == 1 {
			end()
			stage, seqs = st, seqs+1
		} else if st != stage || step != last+1 {
			t.Errorf("%s: step %d (stage %q) after step %d (stage %q): %v", what, step, st, last, stage, r["statement"])
		}
		if hasTotal && step > int(total) {
			t.Errorf("%s: step %d of %d: %v", what, step, int(total), r["statement"])
		}
		last, of = step, int(total)
	}
	end()
	if seqs == 0 {
		t.Errorf("%s: no SQL statement logged", what)
	}
}

// copyRows writes the rows of query (over the fixture's files) as a new
// file: a new partition for the next night.
func (d *deltaNights) copyRows(path, query string) {
	d.t.Helper()
	duckExec(d.t, `COPY (`+query+`) TO '`+path+`' (FORMAT parquet)`)
	if duckCount(d.t, `SELECT count(*) FROM read_parquet('`+path+`')`) == 0 {
		d.t.Fatalf("%s: no rows, the case is not exercised", path)
	}
}

// traceRow is a copy of one valid fixture trace row with its unit, time,
// variant and persona replaced.
func (d *deltaNights) traceRow(unit, ts, variant, persona, eventID string) string {
	return `SELECT * REPLACE ('` + unit + `' AS unit_id, TIMESTAMPTZ '` + ts + `' AS ts, '` + variant + `' AS variant, '` + persona + `' AS persona, '` + eventID + `' AS event_id)
		FROM (SELECT * FROM read_parquet('` + d.tr + `/dt=2026-11-16/*.parquet') WHERE experiment_id = 'checkout-button' AND persona_algo_version = 'pa-2' ORDER BY event_id LIMIT 1)`
}

// eventRow is one event row.
func eventRow(unitExpr, ts, metric, value, eventID string) string {
	return `SELECT TIMESTAMPTZ '` + ts + `' AS ts, ` + unitExpr + ` AS unit_id, '` + metric + `' AS metric, ` + value + `::DOUBLE AS value, '` + eventID + `' AS event_id`
}

// stableUnit is SQL for a unit first exposed on 2026-11-17 (so that its
// 72-hour attribution window covers every later event of the tests), in
// one variant and persona on every trace row (so its cohort is known), the
// k-th by unit_id.
func (d *deltaNights) stableUnit(variant, persona string, k int) string {
	u := `(SELECT unit_id FROM read_parquet('` + d.tr + `/*/*.parquet') WHERE experiment_id = 'checkout-button' AND unit_id IS NOT NULL
		GROUP BY unit_id
		HAVING bool_and(variant = '` + variant + `' AND persona = '` + persona + `' AND persona_algo_version = 'pa-2') AND min(ts) >= TIMESTAMPTZ '2026-11-17 00:00:00+00' AND max(ts) < TIMESTAMPTZ '2026-11-18 00:00:00+00'
		ORDER BY unit_id LIMIT 1 OFFSET ` + strconv.Itoa(k) + `)`
	if duckCount(d.t, `SELECT count(*) FROM (SELECT `+u+` AS u) WHERE u IS NOT NULL`) != 1 {
		d.t.Fatalf("no stored unit in %s/%s: the case is not exercised", variant, persona)
	}
	return u
}

// TestIncrementalDeltaNights runs nine nights with cells by delta: four
// daily nights, then five more of the last day, each with new files (new
// partitions): a late purchase and later a page view of a stored unit
// (its values change), a newly exposed unit, an event of a unit not yet
// exposed (carried) whose exposure arrives the next night, a stored unit
// seen in a second variant (a full night, with its reason), and new units
// after it. The state compacts after three generations, so compaction
// happens twice in between; every output of every night equals the full
// run's.
func TestIncrementalDeltaNights(t *testing.T) {
	defer pipeline.SetIncrementalCompactAfter(3)()
	d := newDeltaNights(t, incrSpec)
	gens := []int{}
	night := func(date, mode string) string {
		dir := d.night(date, mode)
		gens = append(gens, pipeline.IncrementalGenerations(d.state))
		return dir
	}
	night("2026-11-16", "full: no state")
	night("2026-11-17", "incremental")
	night("2026-11-18", "incremental")
	before := night("2026-11-19", "incremental")

	// A: a late purchase of a stored unit (its revenue moves), a newly
	// exposed unit with a purchase, a purchase of a unit not exposed yet.
	u1, u2 := d.stableUnit("control", "power/mobile", 0), d.stableUnit("treatment", "casual/mobile", 0)
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "delta-a.parquet"), d.traceRow("dn-1", "2026-11-19 10:00:00+00", "control", "power/mobile", "dta-1"))
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-18", "delta-a.parquet"), eventRow(u1, "2026-11-18 12:00:00+00", "purchase", "42.5", "dea-1")+
		" UNION ALL "+eventRow("'dn-1'", "2026-11-19 11:00:00+00", "purchase", "30", "dea-2")+
		" UNION ALL "+eventRow("'dn-2'", "2026-11-19 12:00:00+00", "purchase", "12", "dea-3"))
	after := night("2026-11-19", "incremental")
	if b1, b2 := mustRead(t, filepath.Join(before, "results.csv")), mustRead(t, filepath.Join(after, "results.csv")); b1 == b2 {
		t.Fatal("night A changed no result: the late events were not counted, the case is not exercised")
	}
	// B: the carried unit is exposed; the stored unit gets a page view
	// and another purchase.
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "delta-b.parquet"), d.traceRow("dn-2", "2026-11-19 11:30:00+00", "treatment", "casual/mobile", "dtb-1"))
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "delta-b.parquet"), eventRow(u1, "2026-11-19 13:00:00+00", "page_view", "1", "deb-1")+
		" UNION ALL "+eventRow(u1, "2026-11-19 13:30:00+00", "purchase", "3.5", "deb-2"))
	night("2026-11-19", "incremental")
	// C: a stored single-variant unit is seen in the other variant.
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "delta-c.parquet"), `SELECT * REPLACE (TIMESTAMPTZ '2026-11-19 15:00:00+00' AS ts, 'control' AS variant, 'dtc-1' AS event_id)
		FROM read_parquet('`+d.tr+`/*/*.parquet') WHERE unit_id = `+u2+` AND experiment_id = 'checkout-button' ORDER BY ts LIMIT 1`)
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "delta-c.parquet"), eventRow(u1, "2026-11-19 14:00:00+00", "page_view", "1", "dec-1"))
	night("2026-11-19", "full: a stored single-variant unit is seen in another variant")
	// D, E: new units and a stored unit's purchases, incrementally again.
	for i, s := range []string{"d", "e"} {
		d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "delta-"+s+".parquet"), d.traceRow("dn-"+s, "2026-11-19 16:00:00+00", []string{"control", "treatment"}[i], "power/desktop", "dt"+s+"-1"))
		d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "delta-"+s+".parquet"), eventRow("'dn-"+s+"'", "2026-11-19 17:00:00+00", "purchase", "5", "de"+s+"-1")+
			" UNION ALL "+eventRow(u1, "2026-11-19 18:00:00+00", "purchase", "7.25", "de"+s+"-2"))
		night("2026-11-19", "incremental")
	}
	// The generations after each night: a full night writes one; an
	// incremental night appends one, or compacts them into one.
	compacted := 0
	for _, i := range []int{1, 2, 3, 4, 5, 7, 8} { // the incremental nights
		if gens[i] == 1 {
			compacted++
		}
	}
	t.Logf("generations after each night: %v", gens)
	if compacted < 2 || slicesMax(gens) < 3 {
		t.Errorf("generations after each night %v: want deltas piling up to 3 and at least two compactions", gens)
	}
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// TestIncrementalMaxBoundFallsBack plants a huge value: a unit's unclamped
// sum x with n·x² just under 2^126 in its cell (both runs prove it), then a
// negative event that brings the unit back to 0 while new units join the
// cell. The stored maximum is an upper bound, with which the proof now
// fails although the exact maximum passes: the night falls back (with the
// reason) and its outputs are the full run's; the next night is
// incremental again.
func TestIncrementalMaxBoundFallsBack(t *testing.T) {
	spec := strings.Replace(incrSpec, "statistics:", "  - {name: big, kind: mean, event: bigev, aggregate: sum, clamp: {lower: -1000000000000, upper: 1000000000000}}\nstatistics:", 1)
	d := newDeltaNights(t, spec)
	d.night("2026-11-16", "full: no state")
	d.night("2026-11-17", "incremental")
	full := d.night("2026-11-19", "incremental")
	n := cellUnits(t, filepath.Join(full, "results.csv"), "power/mobile", "big", "n_control")
	// x = v·10^6 with n·x² < 2^126 ≤ (n+20)·x².
	lim := new(big.Float).SetInt(new(big.Int).Lsh(big.NewInt(1), 126))
	x2 := new(big.Float).Quo(lim, big.NewFloat(float64(n+10)))
	xf, _ := new(big.Float).Sqrt(x2).Float64()
	v := math.Floor(xf / 1e6)
	vs := strconv.FormatFloat(v, 'f', 0, 64)
	u1 := d.stableUnit("control", "power/mobile", 1)
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "big-a.parquet"), d.traceRow("bg-0", "2026-11-19 10:00:00+00", "treatment", "casual/desktop", "bta-1"))
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "big-a.parquet"), eventRow(u1, "2026-11-19 12:00:00+00", "bigev", vs, "bea-1"))
	d.night("2026-11-19", "incremental")
	var rows []string
	for i := 1; i <= 20; i++ {
		rows = append(rows, d.traceRow("bg-"+strconv.Itoa(i), "2026-11-19 10:00:00+00", "control", "power/mobile", "btb-"+strconv.Itoa(i)))
	}
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "big-b.parquet"), strings.Join(rows, " UNION ALL "))
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "big-b.parquet"), eventRow(u1, "2026-11-19 13:00:00+00", "bigev", "-"+vs, "beb-1"))
	d.night("2026-11-19", "full: the overflow proof of cell power/mobile/control/big")
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "big-c.parquet"), d.traceRow("bg-c", "2026-11-19 10:00:00+00", "treatment", "casual/desktop", "btc-1"))
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "big-c.parquet"), eventRow("'bg-c'", "2026-11-19 12:00:00+00", "bigev", "3", "bec-1"))
	d.night("2026-11-19", "incremental")
}

// cellUnits reads one count column of a results.csv row.
func cellUnits(t *testing.T, path, cohort, metric, col string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	for _, r := range recs[1:] {
		if r[idx["cohort"]] == cohort && r[idx["metric"]] == metric {
			n, err := strconv.ParseInt(r[idx[col]], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s: no row for cohort %s metric %s", path, cohort, metric)
	return 0
}

// TestIncrementalOpenPairsTwoExperiments runs two experiments in one pass
// (checkout-button and onboarding-flow share the fixture's units and the
// page_view event): a unit exposed in one but not yet in the other has an
// open (unit, page_view) pair, whose rows are carried while its kind-2
// rows count in the first experiment's cells. The state keeps those rows
// whole with their carried share (last night's values for the delta) and
// the next night's merge takes the share out (the carry is read again). Every output of both
// experiments equals the full run's, night by night.
func TestIncrementalOpenPairsTwoExperiments(t *testing.T) {
	d := newDeltaNights(t, incrSpec)
	specs := []*expspec.Spec{d.spec, d.onboarding()}
	// Units exposed in checkout-button before onboarding-flow, with page
	// views in between: their pairs are open on the first nights.
	open := duckCount(t, `WITH f AS (SELECT experiment_id, unit_id, min(ts) AS ts FROM read_parquet('`+d.tr+`/*/*.parquet')
		WHERE unit_id IS NOT NULL GROUP BY ALL)
		SELECT count(*) FROM f AS a JOIN f AS b ON a.unit_id = b.unit_id
		WHERE a.experiment_id = 'checkout-button' AND b.experiment_id = 'onboarding-flow'
		  AND a.ts >= TIMESTAMPTZ '2026-11-16 00:00:00+00' AND b.ts >= TIMESTAMPTZ '2026-11-17 00:00:00+00' AND b.ts < TIMESTAMPTZ '2026-11-20 00:00:00+00'
		  AND date_trunc('day', a.ts) < date_trunc('day', b.ts)`)
	if open == 0 {
		t.Fatal("no unit exposed in checkout-button a day before onboarding-flow: the case is not exercised")
	}
	d.passNights(specs, "2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19")
	if n := duckCount(t, `SELECT count(*) FROM read_parquet('`+d.state+`/incremental/*/gen-*/unitev.parquet') WHERE carried_cnt > 0 AND carried_cnt = cnt`); n == 0 {
		t.Error("no wholly carried (open) row in the state: the case is not exercised")
	}
}

// TestIncrementalRepeatedKeys: a new partition repeating the event_id of
// an event or trace row read on an earlier night falls back (with the
// reason; the full run ranks the copies); repeating a carried event row's
// event_id does not (the carried row is read again and ranked with it).
func TestIncrementalRepeatedKeys(t *testing.T) {
	d := newDeltaNights(t, incrSpec)
	d.night("2026-11-16", "full: no state")
	d.night("2026-11-17", "incremental")
	newTrace := func(day, name string) {
		d.copyRows(filepath.Join(d.tr, "dt="+day, name), d.traceRow("rk-"+name, day+" 10:00:00+00", "control", "power/mobile", "rkt-"+name))
	}
	// An event row of the 17th of a unit exposed on the 16th (settled, not
	// carried) again, in a new file.
	newTrace("2026-11-18", "a.parquet")
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-18", "a.parquet"), `SELECT * FROM read_parquet('`+d.ev+`/dt=2026-11-17/*.parquet')
		WHERE event_id IS NOT NULL AND metric = 'purchase' AND unit_id IN (SELECT unit_id FROM read_parquet('`+d.tr+`/dt=2026-11-16/*.parquet')
			WHERE experiment_id = 'checkout-button' AND variant IN ('control', 'treatment') AND persona_algo_version = 'pa-2')
		ORDER BY event_id LIMIT 1`)
	d.night("2026-11-18", "full: an event event_id of a new partition was already read")
	// A trace row of the 17th again, of a unit first exposed on the 16th
	// (so that only the key check can see it).
	d.copyRows(filepath.Join(d.tr, "dt=2026-11-19", "b.parquet"), `SELECT * FROM read_parquet('`+d.tr+`/dt=2026-11-17/*.parquet')
		WHERE event_id IS NOT NULL AND experiment_id = 'checkout-button' AND unit_id IN (SELECT unit_id FROM read_parquet('`+d.tr+`/dt=2026-11-16/*.parquet')
			WHERE experiment_id = 'checkout-button' AND variant IN ('control', 'treatment') AND persona_algo_version = 'pa-2')
		ORDER BY event_id LIMIT 1`)
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "b.parquet"), eventRow("'rk-x'", "2026-11-19 12:00:00+00", "purchase", "12", "rke-1"))
	d.night("2026-11-19", "full: a trace event_id of a new partition was already read")
	// rk-x is not exposed: its purchase is carried. A later copy of it is
	// read incrementally.
	newTrace("2026-11-19", "c.parquet")
	d.copyRows(filepath.Join(d.ev, "dt=2026-11-19", "c.parquet"), eventRow("'rk-x'", "2026-11-19 12:00:01+00", "purchase", "12", "rke-1"))
	d.night("2026-11-19", "incremental")
}

// TestIncrementalTwoWindowEnds runs two experiments in one pass whose
// windows end on different days: rows at or after the earlier end are
// carried whatever their pair, while they still count in the later
// window. Every output of both equals the full run's, night by night.
func TestIncrementalTwoWindowEnds(t *testing.T) {
	early := strings.Replace(incrSpec, "end: 2026-11-20T00:00:00Z", "end: 2026-11-18T00:00:00Z", 1)
	d := newDeltaNights(t, early)
	specs := []*expspec.Spec{d.spec, d.onboarding()}
	d.passNights(specs, "2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19")
}

// onboarding is incrSpec for the onboarding-flow experiment (three
// variants), a second spec for the same pass.
func (d *deltaNights) onboarding() *expspec.Spec {
	t := d.t
	t.Helper()
	text := strings.NewReplacer(
		"experiment: checkout-button", "experiment: onboarding-flow",
		"  - {name: control, allocation: 0.5, control: true}\n  - {name: treatment, allocation: 0.5}",
		"  - {name: control, allocation: 0.34, control: true}\n  - {name: short, allocation: 0.33}\n  - {name: guided, allocation: 0.33}",
	).Replace(incrSpec)
	return writeSpec(t, d.dir, "onboarding.yaml", text)
}

// passNights runs the specs as one pass on each date, incrementally and in
// full: the first night must run in full (no state), every later one
// incrementally (a night that fell back would compare a full run with a
// full run and prove nothing), and every output of every spec must be the
// full run's.
func (d *deltaNights) passNights(specs []*expspec.Spec, dates ...string) {
	t := d.t
	t.Helper()
	for i, date := range dates {
		o := func(s string) string { return filepath.Join(d.dir, "pass-"+s+strconv.Itoa(i)) }
		ri := pipeline.RunAll(context.Background(), specs, pipeline.Options{OutDir: o("incr"), Date: date, Engine: engine.Engine{Threads: 2},
			Incremental: true, Host: ledgers.Host{StateDir: d.state}, Build: publish.CurrentBuild()})
		rf := pipeline.RunAll(context.Background(), specs, pipeline.Options{OutDir: o("full"), Date: date, Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
		for k := range specs {
			var ge *analysis.GateError
			for _, r := range []pipeline.Result{ri[k], rf[k]} {
				if r.Err != nil && !errors.As(r.Err, &ge) || r.Outcome == nil {
					t.Fatalf("%s %s: %v", date, r.Experiment, r.Err)
				}
			}
			want := "incremental"
			if i == 0 {
				want = "full: no state"
			}
			if !strings.HasPrefix(ri[k].Outcome.Mode, want) {
				t.Errorf("%s %s: mode %q, want %q…", date, ri[k].Experiment, ri[k].Outcome.Mode, want)
			}
			sameOutputs(t, date+" "+ri[k].Experiment, ri[k].Outcome.Dir, rf[k].Outcome.Dir)
		}
	}
}

package pipeline_test

// Filtered metrics (issue 20 item 3) against hostile inputs: a declared
// property column that a file lacks or holds with another type (exit 65
// naming file, column and type, nothing committed), a filter value that
// matches no row (a goal's blocks with exit 65 naming metric, column and
// value; a secondary metric's warns), and a sharded run (refused, 78).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// filteredFixture is the committed filtered-metric spec's text with its
// inputs made absolute, so that a test can write edited copies anywhere.
func filteredFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", "specs", "checkout-button-filtered.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := filepath.Abs(filepath.Join("..", "fixtures", "data"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), `"../data/`, `"`+data+`/`)
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("spec has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func runFilterSpec(t *testing.T, text string) (*pipeline.Outcome, error, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := expspec.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 2}})
	return res, err, out
}

func TestFilterPropertyColumnChecked(t *testing.T) {
	base := filteredFixture(t)
	// A file whose country is a BIGINT.
	dir := t.TempDir()
	typed := filepath.Join(dir, "typed.parquet")
	type row struct {
		TS      *int64  `parquet:"ts,timestamp(microsecond:utc)"`
		UnitID  *string `parquet:"unit_id"`
		Metric  *string `parquet:"metric"`
		Country *int64  `parquet:"country"`
		Plan    *string `parquet:"plan"`
	}
	if err := parquet.WriteFile(typed, []row{{TS: micros(baseT0), UnitID: str("u1"), Metric: str("purchase"), Country: new(int64), Plan: str("pro")}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, text string
		want       []string
	}{
		{"missing column", replaceOnce(t, replaceOnce(t, base, "event_properties: [country, plan]", "event_properties: [country, plan, region]"), "filter: {plan: [pro]}", "filter: {region: [eu]}"),
			[]string{"events.parquet", "region", "declared in inputs.event_properties", "want VARCHAR"}},
		{"wrong type", replaceOnce(t, base, "/props/events.parquet", "/props/events.parquet\", \""+typed),
			[]string{"typed.parquet", "country", "has type BIGINT, want VARCHAR"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err, out := runFilterSpec(t, c.text)
			if err == nil || pipeline.ExitCode(err) != pipeline.ExitData {
				t.Fatalf("got %v (exit %d), want a data error (65)", err, pipeline.ExitCode(err))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if res != nil {
				t.Errorf("a run with a bad property column committed %s", res.Dir)
			}
			if m, _ := filepath.Glob(filepath.Join(out, "*", "*", "manifest.json")); len(m) > 0 {
				t.Errorf("manifest committed: %v", m)
			}
		})
	}
}

// TestFilterValueUnmatched: a filter value that matches no row of the
// event — a typo (DEE), a case or whitespace variant (values match
// exactly) — is never a plausible number in silence.
func TestFilterValueUnmatched(t *testing.T) {
	base := filteredFixture(t)
	t.Run("goal blocks", func(t *testing.T) {
		text := replaceOnce(t, base, "filter: {country: [DE]}, role: goal", "filter: {country: [DE, DEE]}, role: goal")
		res, err, _ := runFilterSpec(t, text)
		var gate *analysis.GateError
		if !errors.As(err, &gate) || pipeline.ExitCode(err) != pipeline.ExitData || res == nil {
			t.Fatalf("got %v (exit %d), want a blocking check (65) with committed outputs", err, pipeline.ExitCode(err))
		}
		if !strings.Contains(err.Error(), analysis.FilterValueCheck) || !strings.Contains(err.Error(), `"DEE"`) {
			t.Errorf("error %q does not name the check and the value", err)
		}
		q := readQuality(t, res.Dir)
		c := findCheck(t, q, analysis.FilterValueCheck)
		if c.Outcome != "block" || c.Observed != 1 || !strings.Contains(c.Detail, `revenue_de: filter country value "DEE" matched no row of event "purchase"`) {
			t.Errorf("check %+v", c)
		}
		if n := filterRows(t, q, "revenue_de", "DEE"); n != 0 {
			t.Errorf("filter_counts DEE: %d rows", n)
		}
		if n := filterRows(t, q, "revenue_de", "DE"); n <= 0 {
			t.Errorf("filter_counts DE: %d rows", n)
		}
		results, _ := os.ReadFile(filepath.Join(res.Dir, "results.csv"))
		if !strings.Contains(string(results), `filter value matched no row: country=""DEE""`) {
			t.Errorf("results.csv rows of revenue_de do not say why:\n%s", results)
		}
		// The verdict's evidence on the goal says it too (decisions.json, which
		// the report's evidence table renders): not "ok".
		var dec struct {
			Evidence []struct{ Metric, Status string }
		}
		b, err := os.ReadFile(filepath.Join(res.Dir, "decisions.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dec); err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, e := range dec.Evidence {
			if e.Metric != "revenue_de" {
				continue
			}
			seen++
			if !strings.HasPrefix(e.Status, analysis.StatusFilterUnmatched) {
				t.Errorf("decisions.json evidence on revenue_de: status %q", e.Status)
			}
		}
		if seen == 0 {
			t.Errorf("decisions.json has no evidence on revenue_de: %s", b)
		}
	})
	t.Run("secondary warns", func(t *testing.T) {
		// "De" occurs nowhere: rows say "DE", "de" or " DE".
		text := replaceOnce(t, base, "filter: {country: [DE, FR]}", "filter: {country: [De, FR]}")
		res, err, _ := runFilterSpec(t, text)
		if err != nil {
			t.Fatalf("a secondary metric's unmatched value failed the run: %v", err)
		}
		c := findCheck(t, readQuality(t, res.Dir), "secondary_filter_value_unmatched")
		if c.Outcome != "warn" || !strings.Contains(c.Detail, `converted_eu: filter country value "De"`) {
			t.Errorf("check %+v", c)
		}
	})
	t.Run("secondary all values unmatched", func(t *testing.T) {
		// Every value misses: the metric has no event, and its rows say
		// why first (not only "zero variance", a consequence).
		text := replaceOnce(t, base, "filter: {plan: [pro]}", "filter: {plan: [Pro]}")
		res, err, _ := runFilterSpec(t, text)
		if err != nil {
			t.Fatalf("a secondary metric's unmatched value failed the run: %v", err)
		}
		results, _ := os.ReadFile(filepath.Join(res.Dir, "results.csv"))
		rows := 0
		for _, line := range strings.Split(string(results), "\n") {
			if !strings.Contains(line, "sessions_pro") {
				continue
			}
			rows++
			if !strings.Contains(line, `filter value matched no row: plan=""Pro""`) {
				t.Errorf("results.csv row does not name the unmatched value first: %s", line)
			}
		}
		if rows == 0 {
			t.Fatalf("no results.csv rows of sessions_pro:\n%s", results)
		}
	})
	t.Run("exact match", func(t *testing.T) {
		// "de" and " DE" are values of their own: matched, no warning, and
		// fewer rows than "DE".
		text := replaceOnce(t, base, "filter: {country: [DE, FR]}", `filter: {country: [de, " DE"]}`)
		res, err, _ := runFilterSpec(t, text)
		if err != nil {
			t.Fatal(err)
		}
		q := readQuality(t, res.Dir)
		if c := findCheck(t, q, "secondary_filter_value_unmatched"); c.Outcome != "pass" {
			t.Errorf("check %+v", c)
		}
		de, lower, spaced := filterRows(t, q, "revenue_de", "DE"), filterRows(t, q, "converted_eu", "de"), filterRows(t, q, "converted_eu", " DE")
		if lower <= 0 || spaced <= 0 || lower+spaced >= de {
			t.Errorf("rows DE %d, de %d, \" DE\" %d", de, lower, spaced)
		}
	})
}

// TestFilterShardRefused: a sharded run of a filtered spec is refused
// (78) naming the spec and the metric's filter; nothing is written.
func TestFilterShardRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(filteredFixture(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := expspec.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	partials := filepath.Join(dir, "partials")
	res := pipeline.RunShard(context.Background(), []*expspec.Spec{spec}, pipeline.Options{OutDir: partials, Engine: engine.Engine{Threads: 1}}, pipeline.Shard{Index: 0, Count: 2})
	if len(res) != 1 || res[0].Err == nil || pipeline.ExitCode(res[0].Err) != pipeline.ExitConfig {
		t.Fatalf("got %+v, want a configuration error (78)", res)
	}
	if msg := res[0].Err.Error(); !strings.Contains(msg, "metrics[1].filter") || !strings.Contains(msg, "spec.yaml") {
		t.Errorf("refusal %q does not name the spec and the filter", msg)
	}
	if ents, _ := os.ReadDir(partials); len(ents) > 0 {
		t.Errorf("a refused shard wrote %d entries", len(ents))
	}
}

type filterQuality struct {
	Checks []analysis.Check `json:"checks"`
	Counts []struct {
		Metric string  `json:"metric"`
		Value  *string `json:"value"`
		Rows   int64   `json:"rows"`
	} `json:"filter_counts"`
}

func readQuality(t *testing.T, dir string) filterQuality {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "quality.json"))
	if err != nil {
		t.Fatal(err)
	}
	var q filterQuality
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	return q
}

func findCheck(t *testing.T, q filterQuality, name string) analysis.Check {
	t.Helper()
	for _, c := range q.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s", name)
	return analysis.Check{}
}

func filterRows(t *testing.T, q filterQuality, metric, value string) int64 {
	t.Helper()
	for _, c := range q.Counts {
		if c.Metric == metric && c.Value != nil && *c.Value == value {
			return c.Rows
		}
	}
	t.Fatalf("no filter_counts entry %s %q", metric, value)
	return 0
}

var _ = fixtures.PropsFixture

// TestFilterReplay: a filtered run replays byte for byte from its
// manifest, the blocked one (a typo'd goal filter) included.
func TestFilterReplay(t *testing.T) {
	base := filteredFixture(t)
	for _, text := range []string{base, replaceOnce(t, base, "filter: {country: [DE]}, role: goal", "filter: {country: [DEE]}, role: goal")} {
		res, err, _ := runFilterSpec(t, text)
		var gate *analysis.GateError
		if res == nil || (err != nil && !errors.As(err, &gate)) {
			t.Fatal(err)
		}
		rep, err := replay.Replay(context.Background(), filepath.Join(res.Dir, "manifest.json"), replay.ReplayOptions{Engine: engine.Engine{Threads: 1}, Build: publish.CurrentBuild()})
		if err != nil && !errors.As(err, &gate) {
			t.Fatal(err)
		}
		if rep == nil || !rep.Identical() {
			t.Fatalf("replay of a filtered run: %+v (%v)", rep, err)
		}
	}
}

// TestFilterEqualsRemovedEvents: filtering is removing. With a plan that
// is a property of the event (every copy of an event has the same),
// the filtered metrics {plan: [pro]} over all events give exactly the
// results of the unfiltered metrics over the pro events alone — attributed
// and CUPED pre-period events alike (cuped_theta, adjusted intervals), and
// a filtered quantile metric's histograms and an event-level quantile's
// event bins, in every cohort.
func TestFilterEqualsRemovedEvents(t *testing.T) {
	rows, err := parquet.ReadFile[fixtures.PropEventRow](filepath.Join("..", "fixtures", "data", fixtures.PropsFixture, "events.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var all, pro []fixtures.PropEventRow
	for _, r := range rows {
		// Every copy of an event (same unit and event_id) has the same
		// plan; a unit's events have both.
		key := fmt.Sprint(r.TS)
		if r.EventID != nil {
			key = *r.EventID
		}
		plan := "free"
		if h := fnv.New32a(); true {
			h.Write([]byte(key))
			if h.Sum32()%2 == 0 {
				plan = "pro"
			}
		}
		r.Plan = str(plan)
		all = append(all, r)
		if plan == "pro" {
			pro = append(pro, r)
		}
	}
	if len(pro) < len(all)/4 || len(pro) > 3*len(all)/4 {
		t.Fatalf("%d of %d rows pro", len(pro), len(all))
	}
	for name, rs := range map[string][]fixtures.PropEventRow{"all.parquet": all, "pro.parquet": pro} {
		if err := parquet.WriteFile(filepath.Join(dir, name), rs); err != nil {
			t.Fatal(err)
		}
	}
	events := func(s, file string) string {
		data, _ := filepath.Abs(filepath.Join("..", "fixtures", "data"))
		return replaceOnce(t, s, data+"/props/events.parquet", filepath.Join(dir, file))
	}
	for _, variant := range []struct {
		name string
		edit func(string) string
	}{
		{"cuped", func(s string) string {
			return replaceOnce(t, s, "statistics:\n", "statistics:\n  cuped: {lookback_days: 2}\n")
		}},
		{"quantile", func(s string) string {
			s = replaceOnce(t, s, "quality: v4,", "quality: v4, histograms: v2,")
			return replaceOnce(t, s, "statistics:\n", "  - {name: revenue_p90, kind: quantile, level: 0.9, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 500}, attribution_hours: 96}\nstatistics:\n")
		}},
		{"event quantile", func(s string) string {
			s = replaceOnce(t, s, "quality: v4,", "quality: v4, eventbins: v1,")
			return replaceOnce(t, s, "statistics:\n", "  - {name: purchase_p50, kind: quantile, over: events, level: 0.5, event: purchase, clamp: {lower: 0, upper: 300}, attribution_hours: 96}\nstatistics:\n")
		}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			base := variant.edit(filteredFixture(t))
			base = replaceOnce(t, base, "filter: {country: [DE]}, ", "")
			base = replaceOnce(t, base, "filter: {country: [DE, FR]}, ", "")
			base = replaceOnce(t, base, "filter: {country: [DE], plan: [pro]}, ", "")
			filtered := events(strings.ReplaceAll(base, "attribution_hours: 96}", "filter: {plan: [pro]}, attribution_hours: 96}"), "all.parquet")
			filtered = replaceOnce(t, filtered, "filter: {plan: [pro]}, filter: {plan: [pro]}", "filter: {plan: [pro]}") // sessions_pro had one
			removed := events(base, "pro.parquet")
			removed = replaceOnce(t, removed, ", filter: {plan: [pro]}", "")
			removed = replaceOnce(t, removed, ", filter_counts: v1", "")
			resF, errF, _ := runFilterSpec(t, filtered)
			resR, errR, _ := runFilterSpec(t, removed)
			for _, e := range []error{errF, errR} {
				var gate *analysis.GateError
				if e != nil && !errors.As(e, &gate) {
					t.Fatal(e)
				}
			}
			a, b := resultsWithoutStamp(t, resF.Dir, "results.csv"), resultsWithoutStamp(t, resR.Dir, "results.csv")
			if a != b {
				t.Errorf("filtered results differ from the results on the pro events alone:\n%s\n---\n%s", a, b)
			}
			if variant.name == "quantile" || variant.name == "event quantile" {
				if a, b := resultsWithoutStamp(t, resF.Dir, "quantiles.csv"), resultsWithoutStamp(t, resR.Dir, "quantiles.csv"); a != b {
					t.Errorf("filtered quantiles differ from those on the pro events alone:\n%s\n---\n%s", a, b)
				}
			}
		})
	}
}

// resultsWithoutStamp is a CSV output without its last column
// (spec_sha256).
func resultsWithoutStamp(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.LastIndex(line, ","); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

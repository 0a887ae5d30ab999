package pipeline_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestAnomalyPlantedLoggingGap runs an experiment night by night over
// twelve nights of generated data in which the trace logger lost most of
// one day (85% of that day's trace rows deleted from its partition, as a
// broken logger would): the night of the gap flags both arms' daily units
// in decisions.json and the report, the verdict and gates are untouched,
// a clean night before it flags nothing, and the next night names the gap
// night among its series' earlier flags.
func TestAnomalyPlantedLoggingGap(t *testing.T) {
	if testing.Short() {
		t.Skip("generates twelve days and runs eleven nights")
	}
	dir := t.TempDir()
	cfg := fixtures.DefaultConfig()
	day := func(d int) time.Time { return time.Date(2026, time.November, d, 0, 0, 0, 0, time.UTC) }
	cfg.WindowStart, cfg.WindowEnd = day(3), day(15)
	cfg.DataStart, cfg.DataEnd = day(1), day(17)
	if _, err := fixtures.Generate(context.Background(), cfg, filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	const gap = "2026-11-12"
	dropMostRows(t, filepath.Join(dir, "data", "traces", "dt="+gap))

	b, err := os.ReadFile(filepath.Join("..", "fixtures", "specs", "checkout-button.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("../data/basic/"), []byte("data/"))
	b = bytes.Replace(b, []byte("start: 2026-11-16T00:00:00Z\n  end: 2026-11-20T00:00:00Z"), []byte("start: 2026-11-03T00:00:00Z\n  end: 2026-11-15T00:00:00Z"), 1)
	if !bytes.Contains(b, []byte("2026-11-03")) {
		t.Fatal("the fixture spec's window line changed; update this test")
	}
	os.WriteFile(filepath.Join(dir, "spec.yaml"), b, 0o644)
	spec, err := expspec.LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "runs")
	decisions := map[string]analysis.Decisions{}
	for d := 3; d <= 13; d++ {
		night := day(d).Format("2006-01-02")
		res := runNight(t, spec, out, night) // fails the test on any error: a flag never blocks
		var dec analysis.Decisions
		db, _ := os.ReadFile(filepath.Join(res, "decisions.json"))
		if err := json.Unmarshal(db, &dec); err != nil {
			t.Fatal(err)
		}
		decisions[night] = dec
	}
	clean, flagged, after := decisions["2026-11-11"], decisions[gap], decisions["2026-11-13"]
	if clean.Anomalies == nil || len(clean.Anomalies.Flagged) != 0 {
		t.Fatalf("a clean night flagged %+v", clean.Anomalies)
	}
	checked := 0
	for _, s := range clean.Anomalies.Series {
		if s.Status == "checked" {
			checked++
		}
	}
	if checked == 0 {
		t.Fatalf("nothing was checked on the clean night: %+v", clean.Anomalies.Series)
	}
	a := flagged.Anomalies
	if a == nil {
		t.Fatal("no anomalies block on the gap night")
	}
	for _, s := range a.Series {
		if s.Kind == "daily_units" && !s.Flagged {
			t.Errorf("gap night: daily units of %s not flagged (%+v)", s.Arm, s)
		}
		if s.Kind == "daily_units" && !slices.Contains(a.Flagged, s.Label) {
			t.Errorf("gap night: flagged list %v lacks %q", a.Flagged, s.Label)
		}
	}
	if flagged.Verdict == "invalid" {
		t.Errorf("the gap night's verdict is %q: a flag must not gate", flagged.Verdict)
	}
	page, _ := os.ReadFile(filepath.Join(out, spec.OutputName(), gap, "report.html"))
	if !strings.Contains(string(page), "Night-over-night anomalies") || !strings.Contains(string(page), "flagged") {
		t.Error("the gap night's report does not show the flag")
	}
	for _, s := range after.Anomalies.Series {
		if s.Kind == "daily_units" && !slices.Contains(s.EarlierFlags, gap) {
			t.Errorf("the night after: %s's earlier flags %v lack %s", s.Label, s.EarlierFlags, gap)
		}
	}
}

// dropMostRows rewrites every Parquet file of a partition keeping about 15%
// of its rows (those whose unit_id hashes to 0 mod 7), as a logger that
// lost most of a day would leave it.
func dropMostRows(t *testing.T, partition string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(partition, "*.parquet"))
	if len(files) == 0 {
		t.Fatalf("no Parquet under %s", partition)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range files {
		tmp := f + ".tmp"
		if _, err := db.Exec("COPY (SELECT * FROM read_parquet($1) WHERE hash(unit_id) % 7 = 0) TO $2 (FORMAT parquet)", f, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
	}
}

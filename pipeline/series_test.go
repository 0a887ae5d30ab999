package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// readCSV reads a CSV file into maps by column name.
func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func runNight(t *testing.T, spec *expspec.Spec, out, date string) string {
	t.Helper()
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Date: date, Engine: engine.Engine{Threads: 1}})
	if err != nil {
		t.Fatalf("%s: %v", date, err)
	}
	return res.Dir
}

// checkSeriesAgainstNights compares every released point of a
// timeseries.csv with the night's own results.csv, read independently,
// and checks the gaps and excluded nights.
func checkSeriesAgainstNights(t *testing.T, expDir, tonight string, gaps, excluded []string) {
	t.Helper()
	series := readCSV(t, filepath.Join(expDir, tonight, "timeseries.csv"))
	nights := map[string]map[string]map[string]string{}
	points := 0
	for _, p := range series {
		n := p["night"]
		switch {
		case contains(gaps, n):
			if p["status"] != "gap" || p["abs_effect"] != "" || p["n_control"] != "" {
				t.Errorf("night %s should be a gap: %v", n, p)
			}
			continue
		case contains(excluded, n):
			if p["status"] != "excluded" || p["abs_effect"] != "" || !strings.Contains(p["note"], "does not match its manifest") {
				t.Errorf("night %s should be excluded: %v", n, p)
			}
			continue
		}
		want := "released"
		if n == tonight {
			want = "tonight"
		}
		if p["status"] != want {
			t.Fatalf("night %s status %q, want %q", n, p["status"], want)
		}
		if nights[n] == nil {
			nights[n] = map[string]map[string]string{}
			for _, r := range readCSV(t, filepath.Join(expDir, n, "results.csv")) {
				nights[n][r["cohort"]+"|"+r["metric"]+"|"+r["variant"]] = r
			}
			if got, want := p["results_sha256"], fileSHA(t, filepath.Join(expDir, n, "results.csv")); got != want {
				t.Errorf("night %s: results_sha256 %s, file %s", n, got, want)
			}
		}
		r := nights[n][p["cohort"]+"|"+p["metric"]+"|"+p["variant"]]
		if r == nil {
			t.Fatalf("night %s: no results row for %v", n, p)
		}
		for _, c := range []string{"control", "n_control", "n_variant", "mean_control", "abs_effect", "abs_ci_low", "abs_ci_high", "interval"} {
			if p[c] != r[c] {
				t.Errorf("night %s %s/%s/%s: %s %q in the series, %q in results.csv", n, p["cohort"], p["metric"], p["variant"], c, p[c], r[c])
			}
		}
		points++
	}
	if points == 0 {
		t.Fatal("no released points")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestTimeSeriesOverNights runs an experiment night by night (the window
// cut at each night, as a nightly host does), skipping one night: the
// series repeats each night's results.csv byte for byte, the skipped
// night is a gap, a first night publishes no series, the report shows it
// with the fixed-horizon warning, and a replay reproduces it byte for
// byte even after the earlier folders are edited. A night whose
// results.csv no longer matches its manifest is excluded and named.
func TestTimeSeriesOverNights(t *testing.T) {
	out := t.TempDir()
	spec := loadFixtureSpec(t, "checkout-button.yaml", nil)
	expDir := filepath.Join(out, spec.OutputName())
	d16 := runNight(t, spec, out, "2026-11-16")
	if _, err := os.Stat(filepath.Join(d16, "timeseries.csv")); !os.IsNotExist(err) {
		t.Fatalf("a first night wrote a time series (%v)", err)
	}
	runNight(t, spec, out, "2026-11-17")
	d19 := runNight(t, spec, out, "2026-11-19")
	checkSeriesAgainstNights(t, expDir, "2026-11-19", []string{"2026-11-18"}, nil)
	series := readCSV(t, filepath.Join(d19, "timeseries.csv"))
	rows := readCSV(t, filepath.Join(d19, "results.csv"))
	if len(series) != 4*len(rows) {
		t.Errorf("%d series rows, want 4 nights × %d results rows", len(series), len(rows))
	}
	page, err := os.ReadFile(filepath.Join(d19, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="series"`, "peeking", `<svg class="series-plot"`, "2026-11-18</td><td>gap", "Night-over-night anomalies"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	var m publish.Manifest
	mb, _ := os.ReadFile(filepath.Join(d19, "manifest.json"))
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	if m.SeriesHistory == nil || len(m.SeriesHistory.Releases) != 2 || m.SeriesHistory.Releases[1].ResultsSHA256 != fileSHA(t, filepath.Join(expDir, "2026-11-17", "results.csv")) {
		t.Fatalf("manifest series history %+v", m.SeriesHistory)
	}
	var dec analysis.Decisions
	db, _ := os.ReadFile(filepath.Join(d19, "decisions.json"))
	if err := json.Unmarshal(db, &dec); err != nil {
		t.Fatal(err)
	}
	// Daily units need the night before (a gap tonight); the control
	// means have two earlier nights, fewer than the seven a check needs.
	if a := dec.Anomalies; a == nil || a.Checks != 5 || len(a.Series) != 5 || a.Series[0].Status != "missing" || a.Series[2].Status != "short history" || !strings.Contains(a.Gating, "never changes the verdict") {
		t.Fatalf("anomalies block %+v", dec.Anomalies)
	}

	// Tamper with night 17 after night 19 ran: the replay of 19 still
	// reproduces it (from its own timeseries.csv), and a new night
	// excludes 17, naming why.
	p17 := filepath.Join(expDir, "2026-11-17", "results.csv")
	b17, _ := os.ReadFile(p17)
	if err := os.WriteFile(p17, bytes.Replace(b17, []byte("0."), []byte("1."), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Replay(context.Background(), filepath.Join(d19, "manifest.json"),
		replay.ReplayOptions{Engine: engine.Engine{Threads: 2}, Build: publish.CurrentBuild(), InputsDir: filepath.Join("..", "fixtures", "specs")})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical() {
		t.Fatalf("replay of a night with a series: %+v", rep.Outputs)
	}
	runNight(t, spec, out, "2026-11-18")
	checkSeriesAgainstNights(t, expDir, "2026-11-18", nil, []string{"2026-11-17"})
	page18, _ := os.ReadFile(filepath.Join(expDir, "2026-11-18", "report.html"))
	if !strings.Contains(string(page18), "2026-11-17 excluded: results.csv does not match its manifest") {
		t.Error("the report does not name the excluded night")
	}
}

// TestTimeSeriesSequentialAndReplayRefusal: under the always-valid design
// the report says the series is safe to read every night; a replay whose
// timeseries.csv disagrees with the hashes its manifest recorded is
// refused (exit 70), and one without its timeseries.csv is missing
// input (exit 66).
func TestTimeSeriesSequentialAndReplayRefusal(t *testing.T) {
	out := t.TempDir()
	spec := loadFixtureSpec(t, "pricing-page-guardrail.yaml", nil)
	runNight(t, spec, out, "2026-11-16")
	d := runNight(t, spec, out, "2026-11-17")
	page, _ := os.ReadFile(filepath.Join(d, "report.html"))
	if !strings.Contains(string(page), "safe to read every night") || strings.Contains(string(page), "peeking") {
		t.Error("the always-valid report does not say the series is safe to read every night")
	}
	var m publish.Manifest
	mb, _ := os.ReadFile(filepath.Join(d, "manifest.json"))
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	ts, _ := os.ReadFile(filepath.Join(d, "timeseries.csv"))
	sha := m.SeriesHistory.Releases[0].ResultsSHA256
	bad := bytes.ReplaceAll(ts, []byte(sha), []byte(strings.Repeat("0", 64)))
	_, err := analysis.LoadPinnedSeries(m.SeriesHistory, bad, true)
	var se *analysis.SeriesIntegrityError
	if !errors.As(err, &se) || pipeline.ExitCode(err) != pipeline.ExitMismatch || se.Night != "2026-11-16" {
		t.Errorf("a timeseries.csv with another hash: %v (exit %d)", err, pipeline.ExitCode(err))
	}
	_, err = analysis.LoadPinnedSeries(m.SeriesHistory, nil, false)
	if pipeline.ExitCode(err) != pipeline.ExitNoInput {
		t.Errorf("no timeseries.csv: %v (exit %d)", err, pipeline.ExitCode(err))
	}
	if h, err := analysis.LoadPinnedSeries(m.SeriesHistory, ts, true); err != nil || len(h.Releases) != 1 {
		t.Errorf("the run's own timeseries.csv: %+v, %v", h, err)
	}
}

// TestTimeSeriesPrivate: a private run's series repeats the earlier
// nights' released (noisy) results byte for byte; reading them charges
// nothing beyond the night's own release.
func TestTimeSeriesPrivate(t *testing.T) {
	k := sha256.Sum256([]byte("series key"))
	out := t.TempDir()
	host := fixtureHost(t, 40)
	if _, err := runPrivate(t, host, privateFixture, out, k[:], "2026-11-19", "2026-11-17T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	spentOne := readSourceLedger(t, host).Spent()
	if _, err := runPrivate(t, host, privateFixture, out, k[:], "2026-11-20", "2026-11-18T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	expDir := filepath.Join(out, "checkout-button-private")
	checkSeriesAgainstNights(t, expDir, "2026-11-20", []string{"2026-11-16", "2026-11-17", "2026-11-18"}, nil)
	if got := readSourceLedger(t, host).Spent(); got.Cmp(new(big.Rat).Add(spentOne, spentOne)) != 0 {
		t.Errorf("two nights spent %s, want twice one night's %s", got.RatString(), spentOne.RatString())
	}
}

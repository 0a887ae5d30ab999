package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/verity-analytics/verity/fixtures"
)

// fixtureCopy copies the fixture specs, the basic data and the test key
// into a temporary folder, so that a test may damage them.
func fixtureCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"specs", filepath.Join("data", "basic"), "keys"} {
		copyTree(t, filepath.Join(repoRoot(t), "fixtures", sub), filepath.Join(dir, sub))
	}
	return dir
}

// runFixture runs one fixture spec of the copy and returns its manifest.
func runFixture(t *testing.T, dir, spec string) string {
	t.Helper()
	r := verity(t, dir, "run", "--log", "none", "--out", "runs", filepath.Join("specs", spec))
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m, err := filepath.Glob(filepath.Join(dir, "runs", "*", "*", "manifest.json"))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one manifest, got %v (%v)", m, err)
	}
	return m[0]
}

// nullableEventRow is the events schema, for rewriting a fixture file.
type nullableEventRow struct {
	TS      *int64   `parquet:"ts,timestamp(microsecond:utc)"`
	UnitID  *string  `parquet:"unit_id"`
	Metric  *string  `parquet:"metric"`
	Value   *float64 `parquet:"value"`
	EventID *string  `parquet:"event_id"`
}

// flipEventValue adds 1 to the first non-NULL value of an events file.
func flipEventValue(t *testing.T, path string) {
	t.Helper()
	rows, err := parquet.ReadFile[nullableEventRow](path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].Value != nil {
			v := *rows[i].Value + 1
			rows[i].Value = &v
			break
		}
	}
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
}

var sha256Re = regexp.MustCompile(`[0-9a-f]{64}`)

func TestReplayCommand(t *testing.T) {
	dir := fixtureCopy(t)
	manifest := runFixture(t, dir, "checkout-button.yaml")

	t.Run("identical", func(t *testing.T) {
		r := verity(t, dir, "replay", "--log", "none", manifest)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !regexp.MustCompile(`^replay identical: \d+ outputs byte-identical to run [0-9a-f]+ \(checkout-button 2026-11-19\)\n$`).MatchString(r.stdout) {
			t.Errorf("want one confirmation line, got %q", r.stdout)
		}
	})

	t.Run("run folder and flags after it", func(t *testing.T) {
		r := verity(t, dir, "replay", filepath.Dir(manifest), "--log", "none", "--threads", "1")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "replay identical: ") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("template v3 on a v1 analysis", func(t *testing.T) {
		r := verity(t, dir, "replay", "--log", "none", "--pin", "unit_metrics=v3", "--pin", "sufstats=v2", "--pin", "quality=v2", manifest)
		if r.code != 70 {
			t.Fatalf("exit %d, want 70\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{
			"template version unit_metrics: v1 -> v3",
			"template version sufstats: v1 -> v2",
			"numbers differ",
			"cohort", "metric", "variant", "column", "old", "new",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		// A moved number: the (all) conversion rate of control.
		if !regexp.MustCompile(`\(all\)\s+converted\s+treatment\s+mean_control\s+0\.\d+\s+0\.\d+`).MatchString(r.stdout) {
			t.Errorf("no moved mean_control line in:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "replay differs") {
			t.Errorf("stderr lacks the summary: %s", r.stderr)
		}
	})

	t.Run("pin that does not fit", func(t *testing.T) {
		r := verity(t, dir, "replay", "--log", "none", "--pin", "unit_metrics=v3", "--pin", "quality=v2", manifest)
		if r.code != 78 || !strings.Contains(r.stderr, "do not fit together") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("bad usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"replay"},
			{"replay", "--pin", "unit_metrics", manifest},
			{"replay", "--tol", "p_value=abs:1", manifest},
			{"replay", "--against", "x.csv", "--pin", "a=v1", manifest},
			{"replay", manifest, manifest},
		} {
			if r := verity(t, dir, args...); r.code != 78 {
				t.Errorf("%q: exit %d, want 78\n%s", args, r.code, r.stderr)
			}
		}
	})
}

func TestReplayDamaged(t *testing.T) {
	const events = "data/basic/events/dt=2026-11-17/part-00000.parquet"
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir, manifest string)
		wantCode int
		wantMsg  []string
	}{
		{"one input value flipped", func(t *testing.T, dir, _ string) {
			flipEventValue(t, filepath.Join(dir, events))
		}, 70, []string{"../" + events, "changed: sha256 ", " -> "}},
		{"input missing", func(t *testing.T, dir, _ string) {
			os.Remove(filepath.Join(dir, events))
		}, 66, []string{"../" + events, "missing"}},
		{"manifest corrupt", func(t *testing.T, _, manifest string) {
			os.WriteFile(manifest, []byte(`{"format":`), 0o644)
		}, 78, []string{"manifest.json", "not a valid manifest"}},
		{"manifest from a newer binary", func(t *testing.T, _, manifest string) {
			b, _ := os.ReadFile(manifest)
			os.WriteFile(manifest, bytes.Replace(b, []byte(`"format"`), []byte(`"future": 1, "format"`), 1), 0o644)
		}, 78, []string{`unknown field "future"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureCopy(t)
			manifest := runFixture(t, dir, "checkout-button.yaml")
			var old struct {
				Inputs []struct{ Path, SHA256 string }
			}
			b, _ := os.ReadFile(manifest)
			json.Unmarshal(b, &old)
			tc.damage(t, dir, manifest)
			r := verity(t, dir, "replay", "--log", "none", manifest)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr lacks %q:\n%s", m, r.stderr)
				}
			}
			if tc.wantCode == 70 {
				// Both hashes of the changed file are named.
				var oldHash string
				for _, in := range old.Inputs {
					if in.Path == "../"+events {
						oldHash = in.SHA256
					}
				}
				// The row count is read again and is unchanged.
				if m := regexp.MustCompile(`rows (\d+) -> (\d+)`).FindStringSubmatch(r.stderr); m == nil || m[1] != m[2] {
					t.Errorf("want equal old and new row counts, got %v", m)
				}
				hashes := sha256Re.FindAllString(r.stderr, -1)
				if len(hashes) != 2 || hashes[0] != oldHash || hashes[1] == oldHash {
					t.Errorf("want the old hash %s and a new one, got %v", oldHash, hashes)
				}
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr shows a panic:\n%s", r.stderr)
			}
		})
	}
}

func TestReplayAgainst(t *testing.T) {
	dir := fixtureCopy(t)
	manifest := runFixture(t, dir, "checkout-button.yaml")
	snap := filepath.Join(dir, "snap.csv")
	if r := verity(t, dir, "replay", "--export-snapshot", snap, manifest); r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "experiment,cohort,metric,variant,column,value\n") {
		t.Fatalf("snapshot header: %q", string(b)[:60])
	}

	r := verity(t, dir, "replay", "--against", snap, manifest)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "against ok: ") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("same numbers: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// One number differs by 1%.
	lines := strings.Split(string(b), "\n")
	var ours, theirs string
	for i, l := range lines {
		if strings.HasPrefix(l, "checkout-button,(all),revenue,treatment,mean_variant,") {
			f := strings.Split(l, ",")
			ours = f[5]
			v, _ := strconv.ParseFloat(ours, 64)
			theirs = strconv.FormatFloat(v*1.01, 'g', -1, 64)
			f[5] = theirs
			lines[i] = strings.Join(f, ",")
		}
	}
	if ours == "" {
		t.Fatal("snapshot has no (all) revenue mean_variant line")
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)
	r = verity(t, dir, "replay", "--against", bad, manifest)
	if r.code != 70 {
		t.Fatalf("one number differs: exit %d, want 70\n%s%s", r.code, r.stdout, r.stderr)
	}
	row := regexp.MustCompile(`checkout-button\s+\(all\)\s+revenue\s+treatment\s+mean_variant\s+` + regexp.QuoteMeta(ours) + `\s+` + regexp.QuoteMeta(theirs))
	if !row.MatchString(r.stdout) || !strings.Contains(r.stdout, "1 of ") {
		t.Errorf("the differing number is not printed:\n%s", r.stdout)
	}

	// A tolerance that admits it.
	r = verity(t, dir, "replay", "--against", bad, "--tol", "mean_variant=rel:0.02", manifest)
	if r.code != 0 {
		t.Errorf("within --tol: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A snapshot row the results do not have.
	missing := filepath.Join(dir, "missing.csv")
	os.WriteFile(missing, append(b, []byte("checkout-button,nobody/here,converted,treatment,p_value,0.5\n")...), 0o644)
	r = verity(t, dir, "replay", "--against", missing, manifest)
	if r.code != 70 || !strings.Contains(r.stdout, "missing from results.csv: checkout-button / nobody/here / converted / treatment") {
		t.Errorf("missing row: exit %d\n%s", r.code, r.stdout)
	}
}

func TestGenCommand(t *testing.T) {
	dir := t.TempDir()
	args := []string{"gen", "--units", "400", "--seed", "7", "--fault-srm", "0.1"}
	a := verity(t, dir, append(args, "--out", "a")...)
	b := verity(t, dir, append(args, "--out", "b")...)
	if a.code != 0 || b.code != 0 {
		t.Fatalf("gen: %+v %+v", a, b)
	}
	if !regexp.MustCompile(`^wrote \d+ rows \(\d+ traces, \d+ events\) for 400 units in 16 files to a in .*truth: a/truth.json\n$`).MatchString(a.stdout) {
		t.Errorf("summary line: %q", a.stdout)
	}
	// Same flags, same bytes.
	var files int
	filepath.Walk(filepath.Join(dir, "a"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		files++
		rel, _ := filepath.Rel(filepath.Join(dir, "a"), p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(dir, "b", rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same flags", rel)
		}
		return nil
	})
	if files != 17 {
		t.Errorf("want 16 Parquet files and truth.json, got %d files", files)
	}

	// Precedence: flag > --config file > default.
	cfg := filepath.Join(dir, "cfg.json")
	os.WriteFile(cfg, []byte(`{"units": 250, "seed": 3, "hive": false}`), 0o644)
	if r := verity(t, dir, "gen", "--config", cfg, "--units", "120", "--out", "c"); r.code != 0 {
		t.Fatalf("gen --config: %+v", r)
	}
	var truth fixtures.Truth
	tb, _ := os.ReadFile(filepath.Join(dir, "c", "truth.json"))
	if err := json.Unmarshal(tb, &truth); err != nil {
		t.Fatal(err)
	}
	if truth.Config.Units != 120 || truth.Config.Seed != 3 || truth.Config.Hive || len(truth.Files) != 2 {
		t.Errorf("config precedence: units %d seed %d hive %v files %d", truth.Config.Units, truth.Config.Seed, truth.Config.Hive, len(truth.Files))
	}

	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no out", []string{"gen", "--units", "5"}, "--out"},
		{"zero units", []string{"gen", "--units", "0", "--out", "z"}, "units"},
		{"fault rate above 1", []string{"gen", "--fault-srm", "2", "--out", "z"}, "srm"},
		{"unknown flag", []string{"gen", "--colour", "blue", "--out", "z"}, "colour"},
		{"bad effect", []string{"gen", "--effect", "nope", "--out", "z"}, "effect"},
		{"config with an unknown field", []string{"gen", "--config", filepath.Join(dir, "bad.json"), "--out", "z"}, "unknown field"},
		{"output not empty", []string{"gen", "--units", "5", "--out", "a"}, "not empty"},
		{"stray argument", []string{"gen", "--out", "z", "extra"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"units": 5, "colour": "blue"}`), 0o644)
			r := verity(t, dir, tc.args...)
			if r.code != 78 || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exit %d, want 78 with %q\n%s", r.code, tc.msg, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "z", "truth.json")); err == nil {
				t.Error("a failed gen left a truth.json")
			}
		})
	}
}

// replayCheck runs .ci/replay-check with a prepared dataset.
func replayCheck(t *testing.T, checkDir, data string) result {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), ".ci", "replay-check"))
	cmd.Env = append(os.Environ(), "VERITY_BIN="+binary, "REPLAY_CHECK_DIR="+checkDir, "REPLAY_CHECK_DATA="+data, "REPLAY_CHECK_WORK="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// TestReplayCheckFails shows that the CI replay check (make replay-check)
// passes on the committed configuration, and fails with exit 70 when a
// planted effect is mis-specified in truth.json or when the dashboard
// snapshot differs in one number.
func TestReplayCheckFails(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 100k units and runs the replay check three times")
	}
	committed := filepath.Join(repoRoot(t), "golden", "replay-check")
	data := filepath.Join(t.TempDir(), "data")
	if r := verity(t, t.TempDir(), "gen", "--config", filepath.Join(committed, "gen.json"), "--out", data); r.code != 0 {
		t.Fatalf("gen: %+v", r)
	}

	t.Run("committed", func(t *testing.T) {
		r := replayCheck(t, committed, data)
		if r.code != 0 || !strings.Contains(r.stdout, "replay-check ok") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("planted effect mis-specified", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "data")
		copyTree(t, data, bad)
		tp := filepath.Join(bad, "truth.json")
		var truth fixtures.Truth
		b, _ := os.ReadFile(tp)
		if err := json.Unmarshal(b, &truth); err != nil {
			t.Fatal(err)
		}
		found := false
		for e := range truth.Experiments {
			for i, eff := range truth.Experiments[e].Effects {
				if truth.Experiments[e].ID == "checkout" && eff.Cohort == "(all)" && eff.Event == "purchase" && eff.Stat == "p_any" {
					truth.Experiments[e].Effects[i].Absolute = 0.25 // the data has about 0.034
					found = true
				}
			}
		}
		if !found {
			t.Fatal("truth has no (all) purchase p_any effect for checkout")
		}
		nb, err := truth.Encode()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(tp, nb, 0o644)
		r := replayCheck(t, committed, bad)
		if r.code != 70 {
			t.Fatalf("exit %d, want 70\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !regexp.MustCompile(`checkout\s+\(all\)\s+converted\s+treatment\s+0\.25\s+p_any\(purchase\)\s+\[[^]]+\]\s+\S+\s+OUTSIDE`).MatchString(r.stdout) {
			t.Errorf("the mis-specified effect is not in the failure table:\n%s", r.stdout)
		}
		if strings.Count(r.stdout, "replay identical") != 2 || strings.Count(r.stdout, "against ok") != 2 {
			t.Errorf("the other checks should still pass:\n%s", r.stdout)
		}
	})

	t.Run("dashboard differs in one number", func(t *testing.T) {
		dir := t.TempDir()
		copyTree(t, committed, dir)
		dp := filepath.Join(dir, "dashboard.csv")
		b, _ := os.ReadFile(dp)
		lines := strings.Split(string(b), "\n")
		var theirs string
		for i, l := range lines {
			if strings.HasPrefix(l, "checkout,(all),converted,treatment,abs_effect,") {
				f := strings.Split(l, ",")
				v, _ := strconv.ParseFloat(f[5], 64)
				theirs = strconv.FormatFloat(v+0.001, 'g', -1, 64)
				f[5] = theirs
				lines[i] = strings.Join(f, ",")
			}
		}
		if theirs == "" {
			t.Fatal("dashboard has no (all) converted abs_effect line for checkout")
		}
		os.WriteFile(dp, []byte(strings.Join(lines, "\n")), 0o644)
		r := replayCheck(t, dir, data)
		if r.code != 70 {
			t.Fatalf("exit %d, want 70\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !regexp.MustCompile(`checkout\s+\(all\)\s+converted\s+treatment\s+abs_effect\s+\S+\s+` + regexp.QuoteMeta(theirs)).MatchString(r.stdout) {
			t.Errorf("the differing number %s is not printed:\n%s", theirs, r.stdout)
		}
		if !strings.Contains(r.stdout, "check-truth ok") {
			t.Errorf("check-truth should still pass:\n%s", r.stdout)
		}
	})
}

func TestCheckTruthUsage(t *testing.T) {
	dir := fixtureCopy(t)
	manifest := runFixture(t, dir, "checkout-button.yaml")
	truth := filepath.Join(dir, "data", "basic", "truth.json")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"fixture truth", []string{"check-truth", "--truth", truth, manifest}, 0, "check-truth ok"},
		{"no truth", []string{"check-truth", manifest}, 78, "--truth"},
		{"truth not JSON", []string{"check-truth", "--truth", manifest + ".nope", manifest}, 78, "truth"},
		{"no run", []string{"check-truth", "--truth", truth}, 78, "run folder"},
		{"bad tail", []string{"check-truth", "--truth", truth, "--aa-tail", "2", manifest}, 78, "aa-tail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := verity(t, dir, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.msg) {
				t.Errorf("exit %d, want %d with %q\n%s%s", r.code, tc.code, tc.msg, r.stdout, r.stderr)
			}
		})
	}
}

// TestReplayScratchInTempDir: a replay without --out reruns into a scratch
// folder under --temp-dir, not $TMPDIR: with $TMPDIR unusable it still
// works, and it leaves nothing behind in the --temp-dir.
func TestReplayScratchInTempDir(t *testing.T) {
	dir := fixtureCopy(t)
	manifest := runFixture(t, dir, "checkout-button.yaml")
	scratch := t.TempDir()
	r := verityEnv(t, dir, []string{"TMPDIR=/nonexistent/verity-tmp"}, "replay", "--log", "none", "--temp-dir", scratch, manifest)
	if r.code != 0 {
		t.Fatalf("replay with --temp-dir and an unusable $TMPDIR: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	left, err := os.ReadDir(scratch)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "verity-replay-") {
			t.Errorf("replay left its scratch folder %s in --temp-dir", e.Name())
		}
	}
	if r := verityEnv(t, dir, []string{"TMPDIR=/nonexistent/verity-tmp"}, "replay", "--log", "none", manifest); r.code == 0 {
		t.Errorf("replay without --temp-dir and with an unusable $TMPDIR succeeded: the test above proves nothing")
	}
}

package pipeline

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
)

func f64(v float64) *float64 { return &v }

func TestResultsCSVAndParquetAgree(t *testing.T) {
	rows := []ResultRow{
		{Experiment: "e", Name: "n", NominalDate: 20411, SpecSHA256: "abc", Cohort: "(all)", Metric: "m", Kind: "mean", Role: "goal", Variant: "t", Control: "c", NControl: 10, NVariant: 12,
			MeanControl: f64(0.1), MeanVariant: f64(1.0 / 3), AbsEffect: f64(-2.5e-17), PValue: f64(1), CILevel: 0.95,
			Interval: "fixed_horizon", Underpowered: true, Status: "ok"},
		{Experiment: "e", Cohort: "a,b", Metric: "m", Kind: "mean", Role: "secondary", Variant: "t", Control: "c", CILevel: 0.95,
			Interval: "fixed_horizon", SRM: true, Status: "missing arm"},
	}
	csvBytes, err := EncodeResultsCSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(csvBytes), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header + 2 rows, got %q", csvBytes)
	}
	// Day 20411 after 1970-01-01 is 2025-11-19.
	if want := "e,(all),m,mean,goal,t,c,10,12,0.1,0.3333333333333333,,,-2.5e-17,,,,,,,1,,,,,0.95,fixed_horizon,,,,,true,,false,false,,,,ok,n,2025-11-19,abc"; lines[1] != want {
		t.Errorf("row 1:\n got %s\nwant %s", lines[1], want)
	}
	if !strings.Contains(lines[2], `"a,b"`) {
		t.Errorf("a comma in a cohort must be quoted: %s", lines[2])
	}
	pq, err := EncodeResultsParquet(rows)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fld := range f.Schema().Fields() {
		names = append(names, fld.Name())
	}
	if diff := cmp.Diff(strings.Split(lines[0], ","), names); diff != "" {
		t.Errorf("CSV header and Parquet columns differ (-csv +parquet):\n%s", diff)
	}
	back, err := parquet.Read[ResultRow](bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows, back); diff != "" {
		t.Errorf("parquet round trip (-want +got):\n%s", diff)
	}
	pq2, _ := EncodeResultsParquet(rows)
	if !bytes.Equal(pq, pq2) {
		t.Error("parquet bytes are not deterministic")
	}
}

func TestMomentsExact(t *testing.T) {
	// Values 1.5, 2.5 and 4 at scale 10^6; mean 8/3, sample variance 19/12.
	scale := int64(1_000_000)
	xs := []int64{1_500_000, 2_500_000, 4_000_000}
	c := newCell("", "", "")
	c.N = 3
	for _, x := range xs {
		c.Sum.Add(c.Sum, big.NewInt(x))
		c.SumSq.Add(c.SumSq, new(big.Int).Mul(big.NewInt(x), big.NewInt(x)))
	}
	mean, v := moments(c, scale)
	if mean != 8.0/3 || v != 19.0/12 {
		t.Errorf("moments = %v, %v; want %v, %v", mean, v, 8.0/3, 19.0/12)
	}
	// Catastrophic cancellation in float64 would lose this variance: values
	// 1e12 + {0, 1e-6, 2e-6} have variance 1e-12.
	big12 := new(big.Int).Mul(big.NewInt(1_000_000_000_000), big.NewInt(scale))
	c = newCell("", "", "")
	c.N = 3
	for i := int64(0); i < 3; i++ {
		x := new(big.Int).Add(big12, big.NewInt(i))
		c.Sum.Add(c.Sum, x)
		c.SumSq.Add(c.SumSq, new(big.Int).Mul(x, x))
	}
	if _, v := moments(c, scale); math.Abs(v-1e-12) > 1e-24 {
		t.Errorf("variance = %v, want 1e-12", v)
	}
	if m, v := moments(newCell("", "", ""), scale); m != 0 || v != 0 {
		t.Errorf("empty cell moments = %v, %v", m, v)
	}
}

func TestBoundParams(t *testing.T) {
	sqlText := "-- uses $not_a_param in a comment\nSELECT $b, $a, $a FROM x -- and $c\n"
	args, err := boundParams(sqlText, map[string]any{"a": 1, "b": 2, "unused": 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 2 {
		t.Fatalf("want 2 args (a, b), got %v", args)
	}
	if _, err := boundParams("SELECT $missing", map[string]any{}); err == nil || !strings.Contains(err.Error(), "$missing") {
		t.Fatalf("want an error naming $missing, got %v", err)
	}
}

func TestCommitFolder(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "2026-11-19")
	files := []outputFile{{"a.txt", []byte("one")}}
	manifest := func(outs []OutputFile) ([]byte, error) {
		if len(outs) != 1 || outs[0].SHA256 != sha256Hex([]byte("one")) && outs[0].SHA256 != sha256Hex([]byte("two")) {
			t.Errorf("outputs passed to the manifest: %+v", outs)
		}
		return []byte("{}"), nil
	}
	if err := commitFolder(final, files, manifest); err != nil {
		t.Fatal(err)
	}
	// A leftover of a killed run is cleaned; a completed run is replaced.
	os.MkdirAll(filepath.Join(parent, stagingPrefix+"2026-11-19.123"), 0o755)
	if err := commitFolder(final, []outputFile{{"a.txt", []byte("two")}}, manifest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "two" {
		t.Errorf("replaced content = %q", b)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("leftovers in %s: %v", parent, entries)
	}
	// A failing manifest leaves nothing and keeps the previous run.
	boom := errors.New("boom")
	if err := commitFolder(final, files, func([]OutputFile) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "two" {
		t.Errorf("previous run damaged: %q", b)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("failed commit left %v", entries)
	}
	// A folder that is not a Verity run is never replaced.
	other := filepath.Join(parent, "mine")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("keep"), 0o644)
	if err := commitFolder(other, files, manifest); !errors.Is(err, ErrNoOverwrite) {
		t.Fatalf("want ErrNoOverwrite, got %v", err)
	}
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); !errors.Is(err, ErrLocked) || ExitCode(err) != ExitTransient {
		t.Fatalf("second lock: want ErrLocked (exit 1), got %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

// TestCommitRestoresReplacedRun: a run that died between its two renames
// left the previous result as .replaced-*; the next commit puts it back
// before anything else, so a failure then still leaves the old result.
func TestCommitRestoresReplacedRun(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "2026-11-19")
	old := filepath.Join(parent, replacedPrefix+"2026-11-19.42")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "manifest.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(old, "a.txt"), []byte("old"), 0o644)
	boom := errors.New("boom")
	err := commitFolder(final, []outputFile{{"a.txt", []byte("new")}}, func([]OutputFile) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "a.txt")); string(b) != "old" {
		t.Fatalf("the replaced run was not restored: a.txt = %q", b)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the .replaced folder is still there")
	}
}

// TestConversionWindowAccounting: with unit_metrics@v3, quality@v2 moves the
// events after the conversion window out of event_attributed into
// event_after_attribution: nothing is lost, nothing counted twice.
func TestConversionWindowAccounting(t *testing.T) {
	run := func(pins map[string]string) Quality {
		spec, err := LoadSpec("../fixtures/specs/checkout-button.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range pins {
			spec.Templates[k] = v
		}
		if err := spec.Validate(); err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), spec, Options{OutDir: t.TempDir(), Engine: Engine{Threads: 2}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Quality
	}
	v1 := run(nil)
	v3 := run(map[string]string{"unit_metrics": "v3", "sufstats": "v2", "quality": "v2"})
	if v3.EventAfterAttribution == 0 {
		t.Fatal("the fixture has no event after the 72-hour window: the test would prove nothing")
	}
	if v1.EventAfterAttribution != 0 {
		t.Errorf("without a conversion window, %d events counted after it", v1.EventAfterAttribution)
	}
	if got := v3.EventAttributed + v3.EventAfterAttribution; got != v1.EventAttributed {
		t.Errorf("attributed %d + after attribution %d = %d, want v1's attributed %d", v3.EventAttributed, v3.EventAfterAttribution, got, v1.EventAttributed)
	}
	spec, _ := LoadSpec("../fixtures/specs/checkout-button.yaml")
	spec.Templates["unit_metrics"], spec.Templates["sufstats"] = "v3", "v2"
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "pin quality: v2") {
		t.Errorf("unit_metrics@v3 with quality@v1: want a validation error, got %v", err)
	}
}

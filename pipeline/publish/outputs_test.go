package publish

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/verity-analytics/verity/pipeline/analysis"
)

func TestResultsCSVAndParquetAgree(t *testing.T) {
	rows := []analysis.ResultRow{
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
	back, err := parquet.Read[analysis.ResultRow](bytes.NewReader(pq), int64(len(pq)))
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

func f64(v float64) *float64 { return &v }

// TestExtendedLayout: rows with RowExt get the extended columns after
// spec_sha256, identical in CSV, Parquet and the schema; rows without it
// keep the base layout (and its schema) byte for byte.
func TestExtendedLayout(t *testing.T) {
	yes := true
	rows := []analysis.ResultRow{{Experiment: "e", Cohort: "(all)", Metric: "m", Kind: "mean", Role: "goal", Variant: "t", Control: "c", CILevel: 0.95,
		Interval: "fixed_horizon", Status: "ok", NominalDate: 20411,
		Ext: &analysis.RowExt{Engine: "bayesian", Prior: "flat", ChanceToBeatControl: f64(0.97), TestReject: &yes}}}
	csvBytes, err := EncodeResultsCSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Split(strings.SplitN(string(csvBytes), "\n", 2)[0], ",")
	if header[len(resultColumns)-1] != "spec_sha256" || header[len(resultColumns)] != "engine" || len(header) != len(resultColumns)+len(extColumns) {
		t.Fatalf("extended header: %v", header)
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
	if diff := cmp.Diff(header, names); diff != "" {
		t.Errorf("CSV header and Parquet columns differ (-csv +parquet):\n%s", diff)
	}
	back, err := parquet.Read[analysis.ExtendedRow](bytes.NewReader(pq), int64(len(pq)))
	if err != nil || len(back) != 1 || *back[0].ChanceToBeatControl != 0.97 || back[0].Prior != "flat" || !*back[0].TestReject {
		t.Fatalf("extended parquet round trip: %v %+v", err, back)
	}
	s, err := buildResultsSchema(true)
	if err != nil || len(s.Fields) != len(header) || s.Fields[len(resultColumns)+len(extColumns)-1].Name != "test_status" {
		t.Fatalf("extended schema: %v %+v", err, s.Fields)
	}
	rows[0].Ext = nil
	base, _ := EncodeResultsCSV(rows)
	if strings.Contains(string(base), "engine") {
		t.Error("a row without RowExt got the extended columns")
	}
}

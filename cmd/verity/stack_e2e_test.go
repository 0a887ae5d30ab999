package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestNightlyOutputsStack reads two nights of results as a data scientist
// stacking them would: every row names its night, its spec's hash and the
// spec's name, equal to what the night's manifest records, and
// results.schema.json declares for every column the type that
// results.parquet's own schema has, so the CSV reads with the Parquet
// types (pandas, when python3 has it, reads an all-empty collapsed_from as
// text with the schema's dtypes, where its guess is a float of NaNs).
func TestNightlyOutputsStack(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(repoRoot(t), "fixtures", "specs", "pricing-page-guardrail.yaml")
	nights := []string{"2026-11-18", "2026-11-19"}
	for _, d := range nights {
		r := verity(t, dir, "run", "--log", "none", "--date", d, "--out", "out", spec)
		if r.code != 0 && r.code != 65 {
			t.Fatalf("run %s: exit %d: %s %s", d, r.code, r.stdout, r.stderr)
		}
	}
	var csvs []string
	for _, d := range nights {
		night := filepath.Join(dir, "out", "pricing-page-guardrail", d)
		var m struct {
			NominalDate string `json:"nominal_date"`
			SpecSHA256  string `json:"spec_sha256"`
			Outputs     []struct {
				Name string `json:"name"`
			} `json:"outputs"`
		}
		readJSON(t, filepath.Join(night, "manifest.json"), &m)
		listed := false
		for _, o := range m.Outputs {
			listed = listed || o.Name == "results.schema.json"
		}
		if !listed {
			t.Errorf("%s: manifest does not list results.schema.json", night)
		}
		rows := readCSV(t, filepath.Join(night, "results.csv"))
		h := index(rows[0])
		if len(rows) < 2 {
			t.Fatalf("%s: no result rows", night)
		}
		for _, r := range rows[1:] {
			if r[h["nominal_date"]] != m.NominalDate || r[h["nominal_date"]] != d {
				t.Errorf("%s: row nominal_date %q, manifest %q", night, r[h["nominal_date"]], m.NominalDate)
			}
			if r[h["spec_sha256"]] != m.SpecSHA256 || len(m.SpecSHA256) != 64 {
				t.Errorf("%s: row spec_sha256 %q, manifest %q", night, r[h["spec_sha256"]], m.SpecSHA256)
			}
			if r[h["name"]] != "pricing-page-guardrail" || r[h["experiment"]] != "pricing-page" {
				t.Errorf("%s: row name %q experiment %q", night, r[h["name"]], r[h["experiment"]])
			}
		}
		csvs = append(csvs, filepath.Join(night, "results.csv"))
	}

	// The schema against the Parquet file's own column types.
	night := filepath.Join(dir, "out", "pricing-page-guardrail", nights[1])
	var schema struct {
		Fields []struct {
			Name, Type, PandasDType string
			Nullable                bool
		} `json:"fields"`
	}
	raw, err := os.ReadFile(filepath.Join(night, "results.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	header := readCSV(t, csvs[1])[0]
	if len(schema.Fields) != len(header) {
		t.Fatalf("schema has %d fields, results.csv %d columns", len(schema.Fields), len(header))
	}
	f, err := os.Open(filepath.Join(night, "results.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	cols := pf.Schema().Fields()
	for i, fld := range schema.Fields {
		if fld.Name != header[i] || fld.Name != cols[i].Name() {
			t.Fatalf("column %d: schema %q, csv %q, parquet %q", i, fld.Name, header[i], cols[i].Name())
		}
		want := parquetKind(cols[i])
		if fld.Type != want {
			t.Errorf("column %s: schema type %q, parquet says %q", fld.Name, fld.Type, want)
		}
		if fld.Nullable != cols[i].Optional() && fld.Name != "collapsed_from" {
			t.Errorf("column %s: schema nullable %v, parquet optional %v", fld.Name, fld.Nullable, cols[i].Optional())
		}
	}

	// Debian's python3-pandas (.ci/run installs it, as it installs
	// chromium); another python3 on PATH will do if it has pandas.
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import pandas").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no python3 with pandas (Debian's python3-pandas; .ci/run installs it): the pandas read is not checked here")
	}
	script := `
import json, sys
import pandas as pd
schema = json.load(open(sys.argv[1]))
dtypes = {f["name"]: f["pandas_dtype"] for f in schema["fields"]}
dates = [f["name"] for f in schema["fields"] if f["type"] == "date"]
df = pd.concat([pd.read_csv(p, dtype=dtypes, parse_dates=dates, keep_default_na=False, na_values=[""]) for p in sys.argv[2:]])
guess = pd.read_csv(sys.argv[2])
print(str(df["collapsed_from"].dtype), str(guess["collapsed_from"].dtype), df["nominal_date"].nunique(), str(df["nominal_date"].dtype), str(df["n_control"].dtype))
`
	out, err := exec.Command(py, append([]string{"-c", script, filepath.Join(night, "results.schema.json")}, csvs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pandas: %v: %s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != 5 || got[0] != "string" || got[2] != "2" || !strings.HasPrefix(got[3], "datetime64") || got[4] != "Int64" {
		t.Errorf("pandas read with the schema: collapsed_from, guessed collapsed_from, nights, nominal_date, n_control dtypes = %q", got)
	}
	t.Logf("pandas without the schema guesses collapsed_from as %s", got[1])
}

func parquetKind(f parquet.Field) string {
	if lt := f.Type().LogicalType(); lt != nil && lt.String() == "DATE" {
		return "date"
	}
	switch f.Type().Kind() {
	case parquet.ByteArray:
		return "string"
	case parquet.Int64, parquet.Int32:
		return "integer"
	case parquet.Double, parquet.Float:
		return "number"
	case parquet.Boolean:
		return "boolean"
	}
	return f.Type().String()
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func index(header []string) map[string]int {
	m := map[string]int{}
	for i, h := range header {
		m[h] = i
	}
	return m
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

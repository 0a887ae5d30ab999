package publish

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
)

// resultColumns defines results.csv: the header and how each field is
// written. Its names equal the Parquet column names (a test checks it).
var resultColumns = []struct {
	name string
	get  func(*analysis.ResultRow) string
}{
	{"experiment", func(r *analysis.ResultRow) string { return r.Experiment }},
	{"cohort", func(r *analysis.ResultRow) string { return r.Cohort }},
	{"metric", func(r *analysis.ResultRow) string { return r.Metric }},
	{"kind", func(r *analysis.ResultRow) string { return r.Kind }},
	{"role", func(r *analysis.ResultRow) string { return r.Role }},
	{"variant", func(r *analysis.ResultRow) string { return r.Variant }},
	{"control", func(r *analysis.ResultRow) string { return r.Control }},
	{"n_control", func(r *analysis.ResultRow) string { return strconv.FormatInt(r.NControl, 10) }},
	{"n_variant", func(r *analysis.ResultRow) string { return strconv.FormatInt(r.NVariant, 10) }},
	{"mean_control", func(r *analysis.ResultRow) string { return fmtOpt(r.MeanControl) }},
	{"mean_variant", func(r *analysis.ResultRow) string { return fmtOpt(r.MeanVariant) }},
	{"sd_control", func(r *analysis.ResultRow) string { return fmtOpt(r.SDControl) }},
	{"sd_variant", func(r *analysis.ResultRow) string { return fmtOpt(r.SDVariant) }},
	{"abs_effect", func(r *analysis.ResultRow) string { return fmtOpt(r.AbsEffect) }},
	{"abs_ci_low", func(r *analysis.ResultRow) string { return fmtOpt(r.AbsCILow) }},
	{"abs_ci_high", func(r *analysis.ResultRow) string { return fmtOpt(r.AbsCIHigh) }},
	{"rel_effect", func(r *analysis.ResultRow) string { return fmtOpt(r.RelEffect) }},
	{"rel_ci_low", func(r *analysis.ResultRow) string { return fmtOpt(r.RelCILow) }},
	{"rel_ci_high", func(r *analysis.ResultRow) string { return fmtOpt(r.RelCIHigh) }},
	{"df", func(r *analysis.ResultRow) string { return fmtOpt(r.DF) }},
	{"p_value", func(r *analysis.ResultRow) string { return fmtOpt(r.PValue) }},
	{"p_value_adjusted", func(r *analysis.ResultRow) string { return fmtOpt(r.PValueAdjusted) }},
	{"adj_ci_low", func(r *analysis.ResultRow) string { return fmtOpt(r.AdjCILow) }},
	{"adj_ci_high", func(r *analysis.ResultRow) string { return fmtOpt(r.AdjCIHigh) }},
	{"correction", func(r *analysis.ResultRow) string { return r.Correction }},
	{"ci_level", func(r *analysis.ResultRow) string { return analysis.FormatFloat(r.CILevel) }},
	{"interval", func(r *analysis.ResultRow) string { return r.Interval }},
	{"attribution_hours", func(r *analysis.ResultRow) string {
		if r.AttributionHours == nil {
			return ""
		}
		return strconv.FormatInt(*r.AttributionHours, 10)
	}},
	{"cuped_theta", func(r *analysis.ResultRow) string { return fmtOpt(r.CUPEDTheta) }},
	{"mde_abs", func(r *analysis.ResultRow) string { return fmtOpt(r.MDEAbs) }},
	{"mde_rel", func(r *analysis.ResultRow) string { return fmtOpt(r.MDERel) }},
	{"underpowered", func(r *analysis.ResultRow) string { return strconv.FormatBool(r.Underpowered) }},
	{"srm_p_value", func(r *analysis.ResultRow) string { return fmtOpt(r.SRMPValue) }},
	{"srm", func(r *analysis.ResultRow) string { return strconv.FormatBool(r.SRM) }},
	{"private", func(r *analysis.ResultRow) string { return strconv.FormatBool(r.Private) }},
	{"noise_sd_n", func(r *analysis.ResultRow) string { return fmtOpt(r.NoiseSDN) }},
	{"noise_sd_sum", func(r *analysis.ResultRow) string { return fmtOpt(r.NoiseSDSum) }},
	{"collapsed_from", func(r *analysis.ResultRow) string { return r.CollapsedFrom }},
	{"status", func(r *analysis.ResultRow) string { return r.Status }},
	{"name", func(r *analysis.ResultRow) string { return r.Name }},
	{"nominal_date", func(r *analysis.ResultRow) string {
		return time.Unix(int64(r.NominalDate)*86400, 0).UTC().Format(time.DateOnly)
	}},
	{"spec_sha256", func(r *analysis.ResultRow) string { return r.SpecSHA256 }},
}

// extColumns are the extended layout's columns (analysis.RowExt), written
// after resultColumns for specs that use the Bayesian engine or a metric
// hypothesis (rows with Ext set).
var extColumns = []struct {
	name string
	get  func(*analysis.RowExt) string
}{
	{"engine", func(e *analysis.RowExt) string { return e.Engine }},
	{"prior", func(e *analysis.RowExt) string { return e.Prior }},
	{"credible_level", func(e *analysis.RowExt) string { return fmtOpt(e.CredibleLevel) }},
	{"post_abs_mean", func(e *analysis.RowExt) string { return fmtOpt(e.PostAbsMean) }},
	{"post_abs_sd", func(e *analysis.RowExt) string { return fmtOpt(e.PostAbsSD) }},
	{"cred_abs_low", func(e *analysis.RowExt) string { return fmtOpt(e.CredAbsLow) }},
	{"cred_abs_high", func(e *analysis.RowExt) string { return fmtOpt(e.CredAbsHigh) }},
	{"post_rel_mean", func(e *analysis.RowExt) string { return fmtOpt(e.PostRelMean) }},
	{"post_rel_sd", func(e *analysis.RowExt) string { return fmtOpt(e.PostRelSD) }},
	{"cred_rel_low", func(e *analysis.RowExt) string { return fmtOpt(e.CredRelLow) }},
	{"cred_rel_high", func(e *analysis.RowExt) string { return fmtOpt(e.CredRelHigh) }},
	{"decision_scale", func(e *analysis.RowExt) string { return e.DecisionScale }},
	{"chance_to_beat_control", func(e *analysis.RowExt) string { return fmtOpt(e.ChanceToBeatControl) }},
	{"risk_control", func(e *analysis.RowExt) string { return fmtOpt(e.RiskControl) }},
	{"risk_treatment", func(e *analysis.RowExt) string { return fmtOpt(e.RiskTreatment) }},
	{"bayes_status", func(e *analysis.RowExt) string { return e.BayesStatus }},
	{"alternative", func(e *analysis.RowExt) string { return e.Alternative }},
	{"test", func(e *analysis.RowExt) string { return e.Test }},
	{"test_scale", func(e *analysis.RowExt) string { return e.TestScale }},
	{"null_value", func(e *analysis.RowExt) string { return fmtOpt(e.NullValue) }},
	{"test_alpha", func(e *analysis.RowExt) string { return fmtOpt(e.TestAlpha) }},
	{"test_statistic", func(e *analysis.RowExt) string { return fmtOpt(e.TestStatistic) }},
	{"test_p_value", func(e *analysis.RowExt) string { return fmtOpt(e.TestPValue) }},
	{"test_ci_low", func(e *analysis.RowExt) string { return fmtOpt(e.TestCILow) }},
	{"test_ci_high", func(e *analysis.RowExt) string { return fmtOpt(e.TestCIHigh) }},
	{"test_reject", func(e *analysis.RowExt) string {
		if e.TestReject == nil {
			return ""
		}
		return strconv.FormatBool(*e.TestReject)
	}},
	{"test_status", func(e *analysis.RowExt) string { return e.TestStatus }},
}

func isExtColumn(name string) bool {
	for _, c := range extColumns {
		if c.name == name {
			return true
		}
	}
	return false
}

// isExtended reports whether rows are in the extended layout (every row
// carries RowExt, or none does).
func isExtended(rows []analysis.ResultRow) bool { return len(rows) > 0 && rows[0].Ext != nil }

func fmtOpt(v *float64) string {
	if v == nil {
		return ""
	}
	return analysis.FormatFloat(*v)
}

// EncodeResultsCSV writes rows as canonical CSV (LF line ends).
func EncodeResultsCSV(rows []analysis.ResultRow) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	ext := isExtended(rows)
	header := make([]string, 0, len(resultColumns)+len(extColumns))
	for _, c := range resultColumns {
		header = append(header, c.name)
	}
	if ext {
		for _, c := range extColumns {
			header = append(header, c.name)
		}
	}
	if err := w.Write(header); err != nil {
		return nil, err
	}
	rec := make([]string, len(header))
	for i := range rows {
		for j, c := range resultColumns {
			rec[j] = c.get(&rows[i])
		}
		if ext {
			e := rows[i].Ext
			if e == nil {
				return nil, fmt.Errorf("results.csv: row %d lacks the extended columns of the others", i)
			}
			for j, c := range extColumns {
				rec[len(resultColumns)+j] = c.get(e)
			}
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// EncodeResultsParquet writes rows as a Parquet file. The bytes depend only
// on the rows and the parquet-go version pinned in go.mod.
func EncodeResultsParquet(rows []analysis.ResultRow) ([]byte, error) {
	if isExtended(rows) {
		ext := make([]analysis.ExtendedRow, len(rows))
		for i, r := range rows {
			if r.Ext == nil {
				return nil, fmt.Errorf("results.parquet: row %d lacks the extended columns of the others", i)
			}
			ext[i] = analysis.ExtendedRow{ResultRow: r, RowExt: *r.Ext}
		}
		return encodeParquet(ext)
	}
	return encodeParquet(rows)
}

func encodeParquet[T any](rows []T) ([]byte, error) {
	var b bytes.Buffer
	w := parquet.NewGenericWriter[T](&b, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(rows); err != nil {
		return nil, fmt.Errorf("results.parquet: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("results.parquet: %w", err)
	}
	return b.Bytes(), nil
}

// QualityReport is quality.json.
type QualityReport struct {
	Experiment  string           `json:"experiment"`
	NominalDate string           `json:"nominal_date"`
	Counts      engine.Quality   `json:"counts"`
	Checks      []analysis.Check `json:"checks"`
	// FilterCounts are the rows each filter value of a filtered metric
	// matched, and the NULL rows of its property (issue 20 item 3); only
	// for specs with filtered metrics, so other files keep their bytes.
	FilterCounts []analysis.FilterCount `json:"filter_counts,omitempty"`
}

// EncodeOutputs encodes a run's six output files, in commit order:
// results.csv, results.parquet, quality.json (quality is an exact run's
// QualityReport or a private run's PrivateQuality), decisions.json and
// the rendered report, then results.schema.json and, when there is a
// time series (nightly non-nil), timeseries.csv, and quantiles.csv when the
// spec has a quantile metric.
func EncodeOutputs(st RowStamp, rows []analysis.ResultRow, quality any, decisions analysis.Decisions, page []byte, nightly *Nightly) ([]diskio.StagedFile, error) {
	if err := st.apply(rows); err != nil {
		return nil, err
	}
	csvBytes, err := EncodeResultsCSV(rows)
	if err != nil {
		return nil, err
	}
	pq, err := EncodeResultsParquet(rows)
	if err != nil {
		return nil, err
	}
	qualityJSON, err := diskio.MarshalJSON(quality)
	if err != nil {
		return nil, err
	}
	decisionsJSON, err := diskio.MarshalJSON(decisions)
	if err != nil {
		return nil, err
	}
	schema := resultsSchema
	if isExtended(rows) {
		schema = extendedSchema
	}
	files := []diskio.StagedFile{
		{Name: "results.csv", Data: csvBytes},
		{Name: "results.parquet", Data: pq},
		{Name: "quality.json", Data: qualityJSON},
		{Name: "decisions.json", Data: decisionsJSON},
		{Name: "report.html", Data: page},
		{Name: "results.schema.json", Data: schema},
	}
	if nightly != nil {
		files = append(files, diskio.StagedFile{Name: "timeseries.csv", Data: nightly.CSV})
	}
	if q, ok, err := EncodeQuantilesCSV(rows); err != nil {
		return nil, err
	} else if ok {
		files = append(files, diskio.StagedFile{Name: "quantiles.csv", Data: q})
	}
	return files, nil
}

// RowStamp is what every row of a run shares: the spec's output name, the
// nominal date and the spec's hash.
type RowStamp struct {
	Name, Date, SpecHash string
}

func (st RowStamp) apply(rows []analysis.ResultRow) error {
	d, err := time.Parse(time.DateOnly, st.Date)
	if err != nil {
		return fmt.Errorf("nominal date %q: %w", st.Date, err)
	}
	days := int32(d.Unix() / 86400)
	for i := range rows {
		rows[i].Name, rows[i].NominalDate, rows[i].SpecSHA256 = st.Name, days, st.SpecHash
	}
	return nil
}

// resultsSchema is results.schema.json, written beside every results.csv:
// a Frictionless Table Schema (https://specs.frictionlessdata.io/table-schema/)
// naming each column's type, so that pandas, DuckDB or dbt read the CSV
// with the types of results.parquet rather than guessing (an all-empty
// collapsed_from column is text, not a float of NaNs). It is derived from
// ResultRow and resultColumns, so it cannot drift from the files.
var resultsSchema = mustResultsSchema(false)

// extendedSchema is results.schema.json of the extended layout.
var extendedSchema = mustResultsSchema(true)

// SchemaField is one column of results.schema.json.
type SchemaField struct {
	Name        string `json:"name"`
	Type        string `json:"type"`             // string, integer, number, boolean or date
	Format      string `json:"format,omitempty"` // date: %Y-%m-%d
	PandasDType string `json:"pandas_dtype"`     // the dtype= that reads it faithfully
	Nullable    bool   `json:"nullable"`         // an empty field means missing (Parquet NULL)
	Description string `json:"description,omitempty"`
}

// ResultsSchema is the layout of results.schema.json.
type ResultsSchema struct {
	Profile       string        `json:"profile"`
	Fields        []SchemaField `json:"fields"`
	MissingValues []string      `json:"missingValues"`
	PrimaryKey    []string      `json:"primaryKey"`
}

func mustResultsSchema(extended bool) []byte {
	s, err := buildResultsSchema(extended)
	if err != nil {
		panic(err) // a programming error in ResultRow's tags, caught by every test
	}
	b, err := diskio.MarshalJSON(s)
	if err != nil {
		panic(err)
	}
	return b
}

func buildResultsSchema(extended bool) (ResultsSchema, error) {
	s := ResultsSchema{Profile: "tabular-data-resource", MissingValues: []string{""},
		PrimaryKey: []string{"experiment", "name", "nominal_date", "cohort", "metric", "variant"}}
	byTag := map[string]reflect.StructField{}
	for _, t := range []reflect.Type{reflect.TypeOf(analysis.ResultRow{}), reflect.TypeOf(analysis.RowExt{})} {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("parquet"), ",")
			byTag[name] = f
		}
	}
	names := make([]string, 0, len(resultColumns)+len(extColumns))
	for _, c := range resultColumns {
		names = append(names, c.name)
	}
	if extended {
		for _, c := range extColumns {
			names = append(names, c.name)
		}
	}
	for _, name := range names {
		c := struct{ name string }{name}
		f, ok := byTag[c.name]
		if !ok {
			return s, fmt.Errorf("results.csv column %q has no ResultRow field", c.name)
		}
		field := SchemaField{Name: c.name}
		typ := f.Type
		if typ.Kind() == reflect.Pointer {
			field.Nullable = true
			typ = typ.Elem()
		}
		switch {
		case strings.Contains(f.Tag.Get("parquet"), ",date"):
			field.Type, field.Format, field.PandasDType = "date", "%Y-%m-%d", "string"
			field.Description = "parse with parse_dates=['" + c.name + "']"
		case typ.Kind() == reflect.String:
			field.Type, field.PandasDType = "string", "string"
			// Text that may be empty: collapsed_from, and the extended
			// columns that apply to some rows only.
			field.Nullable = c.name == "collapsed_from" || (byTag[c.name].Type != nil && extended && isExtColumn(c.name) && c.name != "engine")
		case typ.Kind() == reflect.Int64:
			field.Type, field.PandasDType = "integer", "Int64"
		case typ.Kind() == reflect.Float64:
			field.Type, field.PandasDType = "number", "float64"
		case typ.Kind() == reflect.Bool:
			field.Type, field.PandasDType = "boolean", "boolean"
		default:
			return s, fmt.Errorf("results.csv column %q: no schema type for %s", c.name, f.Type)
		}
		s.Fields = append(s.Fields, field)
	}
	return s, nil
}

package publish

import (
	"bytes"
	"encoding/csv"
	"fmt"

	"github.com/verity-analytics/verity/pipeline/diskio"
)

// column is one column of a side table's CSV: its header and how a row
// gives its value.
type column[R any] struct {
	name string
	get  func(*R) string
}

// encodeStampedCSV encodes a side table (adjusted.csv, interactions.csv,
// drilldown.csv): the columns, then each row stamped with the spec's name,
// the nominal date and the spec's hash, as results.csv.
func encodeStampedCSV[R any](file string, cols []column[R], st RowStamp, rows []R) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := make([]string, 0, len(cols)+3)
	for _, c := range cols {
		head = append(head, c.name)
	}
	if err := w.Write(append(head, "name", "nominal_date", "spec_sha256")); err != nil {
		return nil, err
	}
	for i := range rows {
		rec := make([]string, 0, len(head)+3)
		for _, c := range cols {
			rec = append(rec, c.get(&rows[i]))
		}
		if err := w.Write(append(rec, st.Name, st.Date, st.SpecHash)); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b.Bytes(), nil
}

// withStaged appends a side table to a run's staged files when the spec
// asked for it (rows non-nil).
func withStaged[R any](files []diskio.StagedFile, file string, rows []R, encode func() ([]byte, error)) ([]diskio.StagedFile, error) {
	if rows == nil {
		return files, nil
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	return append(files, diskio.StagedFile{Name: file, Data: b}), nil
}

package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/queries"
)

// Inspect reads a file's Parquet footer (row count, writer) and its schema
// as DuckDB sees it. A file DuckDB cannot read is an InputError naming it.
func (s *Session) Inspect(ctx context.Context, f *intake.InputFile) error {
	meta, err := queries.Load(s.fsys, "file_metadata", "v1")
	if err != nil {
		return err
	}
	schema, err := queries.Load(s.fsys, "file_schema", "v1")
	if err != nil {
		return err
	}
	found := false
	err = s.query(ctx, Rendered{Name: meta.Name, Version: meta.Version, SQL: meta.Text}, map[string]any{"file": f.Abs}, func(r *sql.Rows) error {
		found = true
		return r.Scan(&f.Rows, &f.CreatedBy)
	})
	if err != nil {
		if t := TransientOrNil(ctx, err); t != nil {
			return t
		}
		return &intake.InputError{File: f.Path, Err: fmt.Errorf("not a readable Parquet file: %s", cleanDuckErr(err))}
	}
	if !found {
		return &intake.InputError{File: f.Path, Err: errors.New("not a readable Parquet file: no footer metadata")}
	}
	f.Columns = map[string]string{}
	err = s.query(ctx, Rendered{Name: schema.Name, Version: schema.Version, SQL: schema.Text}, map[string]any{"file": f.Abs}, func(r *sql.Rows) error {
		var name, typ string
		if err := r.Scan(&name, &typ); err != nil {
			return err
		}
		f.Columns[name] = typ
		return nil
	})
	if err != nil {
		if t := TransientOrNil(ctx, err); t != nil {
			return t
		}
		return &intake.InputError{File: f.Path, Err: fmt.Errorf("schema unreadable: %s", cleanDuckErr(err))}
	}
	return nil
}

// FindDamaged decodes every column of each file in turn after a scan
// failed with an error that was neither an interrupt nor out-of-memory,
// and returns an InputError for the first file that cannot be read (a data
// page damaged behind an intact footer), or nil when every file reads.
// With private set (a private spec reads the files) DuckDB's message is
// withheld: it can quote the values it could not decode (an invalid UTF-8
// string is quoted whole, with its neighbours), and a private run's output
// is release surface.
func (s *Session) FindDamaged(ctx context.Context, files []intake.InputFile, private bool) error {
	t, err := queries.Load(s.fsys, "file_check", "v1")
	if err != nil {
		return err
	}
	for _, f := range files {
		err := s.query(ctx, Rendered{Name: t.Name, Version: t.Version, SQL: t.Text}, map[string]any{"file": f.Abs}, func(r *sql.Rows) error { return nil })
		if err == nil {
			continue
		}
		if tr := TransientOrNil(ctx, err); tr != nil {
			return tr
		}
		if private {
			return &intake.InputError{File: f.Path, Err: errors.New("a data page cannot be decoded (the footer is intact; DuckDB's message is not shown: it can quote a private spec's values)")}
		}
		return &intake.InputError{File: f.Path, Err: fmt.Errorf("a data page cannot be decoded (the footer is intact): %s", cleanDuckErr(err))}
	}
	return nil
}

// cleanDuckErr shortens a DuckDB error to its first line.
func cleanDuckErr(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

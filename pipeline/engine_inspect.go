package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/queries"
)

// inspect reads a file's Parquet footer (row count, writer) and its schema
// as DuckDB sees it. A file DuckDB cannot read is an InputError naming it.
func (s *session) inspect(ctx context.Context, f *InputFile) error {
	meta, err := queries.Load(s.fsys, "file_metadata", "v1")
	if err != nil {
		return err
	}
	schema, err := queries.Load(s.fsys, "file_schema", "v1")
	if err != nil {
		return err
	}
	found := false
	err = s.query(ctx, rendered{Name: meta.Name, Version: meta.Version, SQL: meta.Text}, map[string]any{"file": f.abs}, func(r *sql.Rows) error {
		found = true
		return r.Scan(&f.Rows, &f.CreatedBy)
	})
	if err != nil {
		if t := transientOrNil(ctx, err); t != nil {
			return t
		}
		return &InputError{File: f.Path, Err: fmt.Errorf("not a readable Parquet file: %s", cleanDuckErr(err))}
	}
	if !found {
		return &InputError{File: f.Path, Err: errors.New("not a readable Parquet file: no footer metadata")}
	}
	f.columns = map[string]string{}
	err = s.query(ctx, rendered{Name: schema.Name, Version: schema.Version, SQL: schema.Text}, map[string]any{"file": f.abs}, func(r *sql.Rows) error {
		var name, typ string
		if err := r.Scan(&name, &typ); err != nil {
			return err
		}
		f.columns[name] = typ
		return nil
	})
	if err != nil {
		if t := transientOrNil(ctx, err); t != nil {
			return t
		}
		return &InputError{File: f.Path, Err: fmt.Errorf("schema unreadable: %s", cleanDuckErr(err))}
	}
	return nil
}

// findDamaged decodes every column of each file in turn after a scan
// failed with an error that was neither an interrupt nor out-of-memory,
// and returns an InputError for the first file that cannot be read (a data
// page damaged behind an intact footer), or nil when every file reads.
func (s *session) findDamaged(ctx context.Context, files []InputFile) error {
	t, err := queries.Load(s.fsys, "file_check", "v1")
	if err != nil {
		return err
	}
	for _, f := range files {
		err := s.query(ctx, rendered{Name: t.Name, Version: t.Version, SQL: t.Text}, map[string]any{"file": f.abs}, func(r *sql.Rows) error { return nil })
		if err == nil {
			continue
		}
		if tr := transientOrNil(ctx, err); tr != nil {
			return tr
		}
		return &InputError{File: f.Path, Err: fmt.Errorf("a data page cannot be decoded (the footer is intact): %s", cleanDuckErr(err))}
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

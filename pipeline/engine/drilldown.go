package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
)

// DrillDimension is what drilldown@v1 reports of one dimension of one
// experiment: its distinct values over the sliced units (NULL counted as
// one), the units whose first-exposure rows disagree (tied), the units,
// and, when the values were within the spec's cap, one cell per value ×
// variant × metric.
type DrillDimension struct {
	Column      string
	Values      int64
	Tied, Units int64
	WithinCap   bool
	Cells       []DrillCell
}

// DrillCell is one slice × variant × metric cell: Cell holds n and the
// exact sums as sufstats@v3 computes them (Cell.Cohort is empty: the slice
// is Null/Value); Tied counts its units whose first-exposure rows
// disagreed on the value.
type DrillCell struct {
	Null  bool
	Value string
	Tied  int64
	Cell
}

// readDrilldown runs drilldown@v1 (its table statements, then the query)
// and returns each experiment's dimensions in the spec's order (an
// experiment without sliced units has no entry). A cell
// whose sums could have wrapped (n · max² ≥ 2^126) is an error of the
// pass, as for interactions: slices partition the units of cells that
// passed the sufstats proof, so this cannot happen unless the template is
// wrong. dims are the rendered dimension columns. An error about an
// experiment in withheld (a private spec's) names no value: a private
// run's messages are release surface.
func (s *Session) readDrilldown(ctx context.Context, r Rendered, p map[string]any, want, withheld map[string]bool, dims []string) (map[string][]DrillDimension, error) {
	stmts := Statements(r.SQL)
	if len(stmts) < 2 {
		return nil, fmt.Errorf("template %s@%s: want table statements and a query, got %d statement(s)", r.Name, r.Version, len(stmts))
	}
	tables := Rendered{Name: r.Name, Version: r.Version}
	for _, st := range stmts[:len(stmts)-1] {
		tables.SQL += st
	}
	if err := s.execN(ctx, tables, p, len(stmts)); err != nil {
		return nil, err
	}
	last := Rendered{Name: r.Name, Version: r.Version, SQL: stmts[len(stmts)-1]}
	out := map[string][]DrillDimension{}
	err := s.queryAt(ctx, last, p, len(stmts)-1, len(stmts), func(rows *sql.Rows) error {
		var exp, value, variant, metric string
		var dimNo, kind, n, tied, values int64
		var null bool
		sums := make([]any, 12)
		dest := []any{&exp, &dimNo, &kind, &null, &value, &variant, &metric, &n, &tied, &values}
		for i := range sums {
			dest = append(dest, &sums[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("drilldown row: %w", err)
		}
		if !want[exp] {
			return fmt.Errorf("drilldown for an experiment not analysed: %q", exp)
		}
		if dimNo < 0 || int(dimNo) >= len(dims) {
			return fmt.Errorf("drilldown: experiment %s: dimension %d of %d", exp, dimNo, len(dims))
		}
		ds, ok := out[exp]
		if !ok {
			ds = make([]DrillDimension, len(dims))
			for i, c := range dims {
				ds[i].Column = c
			}
			out[exp] = ds
		}
		d := &ds[dimNo]
		if kind == 0 {
			d.Values, d.Tied, d.Units = values, tied, n
			return nil
		}
		d.WithinCap = true
		shown, label := fmt.Sprintf("%q", value), value
		if withheld[exp] {
			shown, label = "(withheld: a private spec's value)", "(withheld)"
		}
		c := DrillCell{Null: null, Value: value, Tied: tied, Cell: NewCell("", variant, metric)}
		c.N = n
		for i, ptr := range c.Sums() {
			b, ok := sums[i].(*big.Int)
			if !ok || b == nil {
				return fmt.Errorf("drilldown: experiment %s dimension %s value %s variant %s metric %s: column %s is %T, want a non-NULL HUGEINT", exp, d.Column, shown, variant, metric, sumColumns[i], sums[i])
			}
			*ptr = b
		}
		maxAbs := new(big.Int)
		for _, v := range sums[9:] {
			b, ok := v.(*big.Int)
			if !ok || b == nil {
				return fmt.Errorf("drilldown: experiment %s dimension %s value %s variant %s metric %s: NULL maximum", exp, d.Column, shown, variant, metric)
			}
			if b.CmpAbs(maxAbs) > 0 {
				maxAbs = new(big.Int).Abs(b)
			}
		}
		if c.N <= 0 {
			return fmt.Errorf("drilldown: experiment %s dimension %s value %s: a cell with %d units", exp, d.Column, shown, c.N)
		}
		bound := new(big.Int).Mul(maxAbs, maxAbs)
		bound.Mul(bound, big.NewInt(c.N))
		if bound.BitLen() > 126 {
			return &OverflowError{Experiment: exp, Cohort: "(drill-down " + d.Column + "=" + label + ")", Variant: variant, Metric: metric}
		}
		c.MaxAbs = maxAbs
		d.Cells = append(d.Cells, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// execN runs r's statements as the first statements of an n-statement
// template (for the progress keys).
func (s *Session) execN(ctx context.Context, r Rendered, params map[string]any, n int) error {
	s.Runs[r.Name]++
	for i, stmt := range Statements(r.SQL) {
		args, err := BindParams(stmt, params)
		if err != nil {
			return fmt.Errorf("template %s@%s: %w", r.Name, r.Version, err)
		}
		if err := s.progress.Run(statementKey(r, i, n), func() error {
			_, err := s.Conn.ExecContext(ctx, stmt, args...)
			return err
		}); err != nil {
			return s.engineError(fmt.Errorf("template %s@%s statement %d of %d: %w", r.Name, r.Version, i+1, n, oneLine(err)))
		}
	}
	return nil
}

// queryAt runs r, statement i of an n-statement template, as a query
// (query is the one-statement case).
func (s *Session) queryAt(ctx context.Context, r Rendered, params map[string]any, i, n int, scan func(*sql.Rows) error) error {
	args, err := BindParams(r.SQL, params)
	if err != nil {
		return fmt.Errorf("template %s@%s: %w", r.Name, r.Version, err)
	}
	err = s.progress.Run(statementKey(r, i, n), func() error {
		rows, err := s.Conn.QueryContext(ctx, r.SQL, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		where := fmt.Sprintf("template %s@%s", r.Name, r.Version)
		if n > 1 {
			where += fmt.Sprintf(" statement %d of %d", i+1, n)
		}
		return s.engineError(fmt.Errorf("%s: %w", where, oneLine(err)))
	}
	return nil
}

package engine

import (
	"context"
	"fmt"
	"math/big"

	"github.com/verity-analytics/verity/queries"
)

// ShardPredicate is the SQL condition that keeps the rows of shard $4 of
// $5 (0-based) when the unit column is col: bucket = uint64 of the first 16
// hex digits of md5($2 ‖ unit_id) mod $3, shard = bucket mod $5; a NULL
// unit_id is in bucket 0. col must be a quoted, validated identifier or
// NULL. The parameters are bound, never spliced.
func ShardPredicate(col string) string {
	return "coalesce(CAST('0x' || left(md5(CAST($2 AS VARCHAR) || CAST(" + col + " AS VARCHAR)), 16) AS UBIGINT) % CAST($3 AS UBIGINT), 0) % CAST($5 AS UBIGINT) = CAST($4 AS UBIGINT)"
}

// ShardPredicateBucket is the bucket expression of unit column col alone
// (salt $2, buckets $3): what a producer computes to partition its files.
func ShardPredicateBucket(col string) string {
	return "coalesce(CAST('0x' || left(md5(CAST($2 AS VARCHAR) || CAST(" + col + " AS VARCHAR)), 16) AS UBIGINT) % CAST($3 AS UBIGINT), 0)"
}

// ShardBucketSQL returns a query of the bucket of one unit id ($1) under
// salt $2 and $3 buckets: what producers compute to partition their files.
const ShardBucketSQL = "SELECT coalesce(CAST('0x' || left(md5(CAST($2 AS VARCHAR) || CAST($1 AS VARCHAR)), 16) AS UBIGINT) % CAST($3 AS UBIGINT), 0)"

// CopyShard writes the rows of one Parquet file src whose unit (source
// column unitCol, "" when the file has none) falls in shard i of k to the
// Parquet file dst, keeping every column and type. Every row lands in
// exactly one shard's copy.
func (s *Session) CopyShard(ctx context.Context, src, dst, unitCol, salt string, buckets, i, k int) error {
	col := "NULL"
	if unitCol != "" {
		if !queries.ValidIdent(unitCol) {
			return fmt.Errorf("shard copy of %s: unit column %q is not a valid identifier", src, unitCol)
		}
		col = `"` + unitCol + `"`
	}
	q := "COPY (SELECT * FROM read_parquet($1) WHERE " + ShardPredicate(col) + ") TO $6 (FORMAT parquet)"
	if _, err := s.Conn.ExecContext(ctx, q, src, salt, buckets, i, k, dst); err != nil {
		return fmt.Errorf("shard %d/%d of %s: %w", i, k, src, oneLine(err))
	}
	return nil
}

// CopyEmpty writes a Parquet file dst with src's columns and no rows
// (reading only src's metadata): a bucketed file that belongs to another
// shard.
func (s *Session) CopyEmpty(ctx context.Context, src, dst string) error {
	if _, err := s.Conn.ExecContext(ctx, "COPY (SELECT * FROM read_parquet($1) LIMIT 0) TO $2 (FORMAT parquet)", src, dst); err != nil {
		return fmt.Errorf("empty copy of %s: %w", src, oneLine(err))
	}
	return nil
}

// WrongBucketRows counts the rows of a file from folder unit_bucket=b
// whose unit is not in bucket b, with the smallest such unit id (NULL ids
// belong to bucket 0).
func (s *Session) WrongBucketRows(ctx context.Context, src, unitCol, salt string, buckets, b int) (n int64, example string, err error) {
	col := "NULL"
	if unitCol != "" {
		if !queries.ValidIdent(unitCol) {
			return 0, "", fmt.Errorf("bucket check of %s: unit column %q is not a valid identifier", src, unitCol)
		}
		col = `"` + unitCol + `"`
	}
	q := "SELECT count(*), coalesce(min(CAST(" + col + " AS VARCHAR)), '(NULL)') FROM read_parquet($1) WHERE NOT (" + ShardPredicate(col) + ")"
	err = s.Conn.QueryRowContext(ctx, q, src, salt, buckets, b, buckets).Scan(&n, &example)
	if err != nil {
		return 0, "", fmt.Errorf("bucket check of %s: %w", src, oneLine(err))
	}
	return n, example, nil
}

// ShardBucket returns the bucket of one unit id, computed by DuckDB.
func (s *Session) ShardBucket(ctx context.Context, unit, salt string, buckets int) (uint64, error) {
	var b uint64
	err := s.Conn.QueryRowContext(ctx, ShardBucketSQL, unit, salt, buckets).Scan(&b)
	return b, err
}

// Add adds o's counts to q. The footer counts (files, rows read) are not
// added: every shard reads the same footers, so they are taken once.
func (q *Quality) Add(o Quality) {
	of := o.fields()
	for name, p := range q.fields() {
		*p += *of[name]
	}
	oo := o.optional()
	for name, p := range q.optional() {
		src := *oo[name]
		if src == nil {
			continue
		}
		if *p == nil {
			*p = new(int64)
		}
		**p += *src
	}
}

// MergeCell adds o into c (same cohort, variant and metric): counts and
// sums add; MaxAbs is the larger of the two.
func MergeCell(c *Cell, o Cell) {
	c.N += o.N
	dst, add := c.Sums(), o.Sums()
	for i := range dst {
		(*dst[i]).Add(*dst[i], *add[i])
	}
	if c.MaxAbs == nil || (o.MaxAbs != nil && o.MaxAbs.CmpAbs(c.MaxAbs) > 0) {
		c.MaxAbs = o.MaxAbs
	}
}

// ProveNoOverflow is the overflow proof on a merged cell: nil when
// n·max|x|² < 2^126, so that no 128-bit sum of a single pass over the same
// units could have wrapped either.
func ProveNoOverflow(experiment string, c Cell) error {
	if c.MaxAbs == nil {
		return fmt.Errorf("experiment %s cohort %s variant %s metric %s: no maximum in the partial", experiment, c.Cohort, c.Variant, c.Metric)
	}
	bound := new(big.Int).Mul(c.MaxAbs, c.MaxAbs)
	bound.Mul(bound, big.NewInt(c.N))
	if bound.BitLen() > 126 {
		return &OverflowError{Experiment: experiment, Cohort: c.Cohort, Variant: c.Variant, Metric: c.Metric}
	}
	return nil
}

// Package engine runs the SQL: one embedded DuckDB session per group of
// specs sharing inputs (fixed settings, memory limit, temp folder), the
// pinned templates rendered with validated identifiers and bound parameters,
// statement by statement with progress, and the exact integer sufficient
// statistics and quality counts read back (HUGEINT as big.Int). It also
// inspects input files (footer, schema, damage) and names DuckDB's errors:
// data, overflow, out of memory, interrupted.
package engine

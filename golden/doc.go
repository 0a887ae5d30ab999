// Package golden holds the expected outputs of every fixture spec and the
// tests that compare fresh runs with them.
//
// For each spec in fixtures/specs/<case>.yaml, golden/<case>/ holds
// results.csv, quality.json, decisions.json, report.html and manifest.stable.json (the manifest without
// its build and volatile parts). The test runs each case with 1 and with 4
// DuckDB threads, requires identical bytes, and diffs them against the
// golden files. Goldens change only through `go test ./golden -update`
// (make golden), and a golden diff is reviewed like code. A missing golden
// file is a failure, never created silently.
//
// Independently of the goldens, the numbers are checked against
// fixtures/reference, a plain-Go implementation of the same semantics that
// reads the Parquet files without DuckDB, and the Welch statistics against
// gonum's Student's t distribution.
package golden

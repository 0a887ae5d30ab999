// Package report renders report.html, the page a person opens first in an
// experiment run's output folder: did it work, is it safe, can I trust it.
//
// Render is a pure function from Data to bytes. The pipeline fills Data
// from the same in-memory results it writes to results.csv, decisions.json
// and quality.json (never by re-parsing them); this package imports
// nothing of the pipeline, so pipeline → report is the only direction.
//
// # The page
//
//  1. Summary, on the first screen: a sample-ratio-mismatch banner when the
//     SRM test tripped; the verdict (ship / hold / rollback / invalid) with
//     the rule that produced it, its reason, and the evidence that fired or
//     shows harm beyond a guardrail margin; cards for the SRM test, the
//     data-quality checks that warned or blocked, the privacy budget spent
//     and the noise scale (or "not differentially private"), and the
//     provenance (input digest, spec hash, template versions with short
//     SHA-256, DuckDB version).
//  2. Forest plots, one inline SVG per metric: a row (<g class="forest-row"
//     data-row="cohort|variant">) per cohort × treatment with the relative
//     effect and its interval, the zero line, guardrail margins (a line
//     across the plot for a relative margin; a tick per row, converted with
//     that row's control mean, for an absolute one), collapsed cohorts
//     marked "← children", and significance shown by a filled marker and
//     the text "★ sig.", not by colour alone. Intervals much wider than the
//     typical one are clipped at the axis with an arrow; rows without an
//     estimate read "n/a (status)".
//  3. Tables per metric × cohort × variant: n, means, absolute and relative
//     effects with intervals, raw and adjusted p-values, MDE, noise scale,
//     status and flags; then every data-quality check.
//
// # Guarantees
//
// Self-contained: inline CSS and SVG only, no scripts, fonts or URLs, and a
// Content-Security-Policy meta tag (default-src 'none') so that anything
// that slipped in is blocked and logged as a console error.
//
// Safe: every string from Data goes through html/template's contextual
// escaping; experiment ids and cohort names are untrusted.
//
// Deterministic: the bytes depend on Data alone. There is no clock, no
// path, no map iteration; numbers are formatted with strconv (display
// values to a fixed number of significant digits, SVG coordinates rounded
// to two decimals), and float arithmetic on coordinates is written so the
// compiler cannot fuse it into FMA, so the page is part of the golden
// outputs.
//
// Missing numbers (nil, NaN, ±Inf) are shown as "n/a", never as "NaN".
//
// # Tests
//
// report_test.go compares the rendered pages of hand-built cases with
// testdata/*.html (rewrite with go test ./pipeline/report -update) and
// checks escaping, self-containment, row counts and the first screen.
// chromium_test.go opens the pages in Debian's headless Chromium and
// checks the DOM, the console and the network log, with negative controls
// that prove each check can fail. The README's screenshot is made from a
// golden report by golden/screenshot_test.go (make golden).
package report

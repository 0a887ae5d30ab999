package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/report/browser"
)

// TestGoldenReportsInChromium opens every golden case's report.html in
// headless Chromium: it must load with no console error and no network
// request, and its forest plots must have one row per result row (cohort ×
// metric × treatment). The browser harness's own negative controls (a page
// that does fetch, a page that breaks its CSP) live in package report.
func TestGoldenReportsInChromium(t *testing.T) {
	if err := browser.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: .ci/run must install it first", err)
		}
		t.Skipf("%v; skipping", err)
	}
	for _, p := range specPaths(t) {
		name := caseName(p)
		t.Run(name, func(t *testing.T) {
			page, err := filepath.Abs(filepath.Join(name, "report.html"))
			if err != nil {
				t.Fatal(err)
			}
			rows := readCSV(t, filepath.Join(name, "results.csv"))
			run, err := browser.Open(page, t.TempDir(), "--dump-dom")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(run.DOM, "</html>") {
				t.Fatalf("the page did not load: DOM is %d bytes", len(run.DOM))
			}
			if errs := browser.ConsoleErrors(run.Stderr); len(errs) > 0 {
				t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
			}
			reqs, err := browser.PageRequests(run.NetLog)
			if err != nil {
				t.Fatal(err)
			}
			if len(reqs) > 0 {
				t.Errorf("the page made network requests: %v", reqs)
			}
			if got := strings.Count(run.DOM, `class="forest-row"`); got != len(rows) {
				t.Errorf("forest plots have %d rows, results.csv has %d (cohort × metric × treatment)", got, len(rows))
			}
		})
	}
}

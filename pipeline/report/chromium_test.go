package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verity-analytics/verity/pipeline/report/browser"
)

// The headless Chromium test opens each case's page from a file with
// Debian's chromium and checks what a person's browser would do with it:
// the page loads, every forest-plot row is in the DOM, nothing is logged
// to the console (a CSP violation is logged there), and the network log
// has no request made by the page. Negative controls prove that each
// detector fires on a page that does the forbidden thing.

func needChromium(t *testing.T) {
	t.Helper()
	if err := browser.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: .ci/run must install it first", err)
		}
		t.Skipf("%v; skipping the browser test", err)
	}
}

// runChromium opens path with the given action flags and fails the test if
// Chromium does not exit 0 within its time limit.
func runChromium(t *testing.T, path string, action ...string) browser.Run {
	t.Helper()
	r, err := browser.Open(path, t.TempDir(), action...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writePage(t *testing.T, name string, page []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, page, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChromium(t *testing.T) {
	needChromium(t)

	// Negative controls: each detector must fire on a page that breaks
	// its rule, so the checks below can fail.
	t.Run("control/csp-blocked image is a console error", func(t *testing.T) {
		page := `<!DOCTYPE html><html><head><meta charset="utf-8">` +
			`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">` +
			`<title>control</title></head><body><img src="https://example.invalid/x.png" alt=""></body></html>`
		run := runChromium(t, writePage(t, "csp.html", []byte(page)), "--dump-dom")
		errs := browser.ConsoleErrors(run.Stderr)
		if len(errs) == 0 {
			t.Fatalf("the console detector missed a CSP-blocked image; stderr:\n%s", run.Stderr)
		}
		if !strings.Contains(strings.Join(errs, "\n"), "example.invalid") {
			t.Errorf("console errors do not name the blocked URL: %q", errs)
		}
	})
	t.Run("control/image without CSP is a network request", func(t *testing.T) {
		page := `<!DOCTYPE html><html><head><meta charset="utf-8"><title>control</title></head>` +
			`<body><img src="https://example.invalid/x.png" alt=""></body></html>`
		run := runChromium(t, writePage(t, "nocsp.html", []byte(page)), "--dump-dom")
		urls, err := browser.PageRequests(run.NetLog)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(urls, []string{"https://example.invalid/x.png"}) {
			t.Fatalf("the network detector found %q, want the one image request", urls)
		}
	})
	t.Run("control/missing file is a load failure", func(t *testing.T) {
		run := runChromium(t, filepath.Join(t.TempDir(), "missing.html"), "--dump-dom")
		if len(browser.ConsoleErrors(run.Stderr)) == 0 {
			t.Fatalf("the detector missed a page that failed to load; stderr:\n%s", run.Stderr)
		}
	})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.data()
			page, err := Render(d)
			if err != nil {
				t.Fatal(err)
			}
			run := runChromium(t, writePage(t, c.name+".html", page), "--dump-dom")
			if !strings.Contains(run.DOM, "</html>") {
				t.Fatalf("no DOM dumped; stderr:\n%s", run.Stderr)
			}
			if errs := browser.ConsoleErrors(run.Stderr); len(errs) > 0 {
				t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
			}
			urls, err := browser.PageRequests(run.NetLog)
			if err != nil {
				t.Fatal(err)
			}
			if len(urls) > 0 {
				t.Errorf("the page made network requests: %q", urls)
			}
			if n := strings.Count(run.DOM, `class="forest-row"`); n != len(d.Rows) {
				t.Errorf("DOM has %d forest-row elements, want %d (one per cohort × metric × treatment)", n, len(d.Rows))
			}
			if diff := cmp.Diff(wantRows(d), forestRows(run.DOM)); diff != "" {
				t.Errorf("forest rows in the DOM (-want +got):\n%s", diff)
			}
		})
	}
}

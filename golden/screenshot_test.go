package golden

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/report/browser"
)

// The README's screenshot of report.html is made from a golden report, and
// a sidecar file records the SHA-256 of the report it shows. When the
// report changes (any golden update of it), this test fails until the
// screenshot is made again: `make golden` does it (go test ./golden -update).
const (
	shotReport  = "onboarding-flow/report.html"
	shotPNG     = "../docs/report-example.png"
	shotSidecar = "../docs/report-example.png.sha256"
	shotWidth   = 1280
	shotHeight  = 1700
)

func TestDocsScreenshot(t *testing.T) {
	page, err := os.ReadFile(shotReport)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(page)
	want := fmt.Sprintf("%s  golden/%s\n", hex.EncodeToString(sum[:]), shotReport)
	if *update {
		if err := browser.Available(); err != nil {
			t.Fatalf("%v: the screenshot needs Chromium", err)
		}
		renderScreenshot(t, shotPNG)
		if err := os.WriteFile(shotSidecar, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(shotSidecar)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/report-example.png shows another report than golden/%s (sidecar %q, report sha256 %s): make the screenshot again with `make golden` and review it",
			shotReport, strings.TrimSpace(string(got)), hex.EncodeToString(sum[:]))
	}
	checkPNG(t, shotPNG)
	// The committed picture cannot be compared pixel for pixel with a
	// fresh one (fonts and Chromium versions differ between machines), but
	// the way it is made is tested wherever Chromium is installed.
	if err := browser.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: .ci/run must install it first", err)
		}
		t.Skipf("%v; the screenshot's making is not checked", err)
	}
	renderScreenshot(t, filepath.Join(t.TempDir(), "shot.png"))
}

// renderScreenshot renders the golden report into a PNG at out.
func renderScreenshot(t *testing.T, out string) {
	t.Helper()
	abs, err := filepath.Abs(shotReport)
	if err != nil {
		t.Fatal(err)
	}
	outAbs, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	run, err := browser.Open(abs, t.TempDir(), "--screenshot="+outAbs,
		fmt.Sprintf("--window-size=%d,%d", shotWidth, shotHeight), "--hide-scrollbars")
	if err != nil {
		t.Fatal(err)
	}
	if errs := browser.ConsoleErrors(run.Stderr); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	checkPNG(t, out)
}

// checkPNG asserts that path is a PNG of the screenshot's size.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cfg.Width != shotWidth || cfg.Height != shotHeight {
		t.Fatalf("%s is %d×%d, want %d×%d", path, cfg.Width, cfg.Height, shotWidth, shotHeight)
	}
}

package golden

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/report/browser"
)

// The README's screenshot of report.html is made from a golden report, and
// a sidecar file, written when the picture is made, records the SHA-256 of
// the report it shows and of the picture itself. When the report changes
// (any golden update of it), this test fails until the screenshot is made
// again: `make golden` does it (go test ./golden -update). Where Chromium
// is installed (always in CI), a fresh rendering is also compared with the
// committed picture, coarsely (fonts differ between machines), so an old
// picture with a fresh sidecar fails too.
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
	if *update {
		if err := browser.Available(); err != nil {
			t.Fatalf("%v: the screenshot needs Chromium", err)
		}
		renderScreenshot(t, shotPNG)
		if err := os.WriteFile(shotSidecar, []byte(sidecar(t, sum[:])), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := sidecar(t, sum[:])
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
	fresh := filepath.Join(t.TempDir(), "shot.png")
	renderScreenshot(t, fresh)
	if d := coarseDiff(t, shotPNG, fresh); d > maxCoarseDiff {
		t.Errorf("docs/report-example.png differs from a fresh rendering of golden/%s by %.1f (mean luminance difference over %dx%d cells, at most %.1f allowed): make it again with `make golden`",
			shotReport, d, coarseCells, coarseCells, maxCoarseDiff)
	} else {
		t.Logf("coarse difference from a fresh rendering: %.2f", d)
	}
}

// sidecar is the sidecar's content: the report's and the picture's hashes.
func sidecar(t *testing.T, report []byte) string {
	t.Helper()
	png, err := os.ReadFile(shotPNG)
	if err != nil {
		t.Fatal(err)
	}
	p := sha256.Sum256(png)
	return fmt.Sprintf("%s  golden/%s\n%s  docs/report-example.png\n", hex.EncodeToString(report), shotReport, hex.EncodeToString(p[:]))
}

// coarseCells is the grid the pictures are compared on; maxCoarseDiff the
// largest mean absolute difference of the cells' mean luminance (0-255).
// Measured: a fresh rendering on the CI machine's Chromium differs by
// 0.00; the picture of the report before it gained one line (the criteria)
// by 1.68.
const (
	coarseCells   = 32
	maxCoarseDiff = 0.5
)

// coarseDiff compares two PNGs of the same size on a coarse grid of mean
// luminance, blind to anti-aliasing and font hinting, not to layout.
func coarseDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	ga, gb := coarseGrid(t, a), coarseGrid(t, b)
	var sum float64
	for i := range ga {
		sum += math.Abs(ga[i] - gb[i])
	}
	return sum / float64(len(ga))
}

func coarseGrid(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	bnd := img.Bounds()
	grid := make([]float64, coarseCells*coarseCells)
	count := make([]float64, coarseCells*coarseCells)
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			lum := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
			k := (y-bnd.Min.Y)*coarseCells/bnd.Dy()*coarseCells + (x-bnd.Min.X)*coarseCells/bnd.Dx()
			grid[k] += lum
			count[k]++
		}
	}
	for i := range grid {
		grid[i] /= count[i]
	}
	return grid
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

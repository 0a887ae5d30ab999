package report

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden pages in testdata/")

func render(t *testing.T, d Data) string {
	t.Helper()
	b, err := Render(d)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return string(b)
}

// TestGolden compares each case's page with testdata/<case>.html. A
// missing golden is a failure; rewrite with `go test ./pipeline/report -update`
// and review the diff like code.
func TestGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, c.data())
			path := filepath.Join("testdata", c.name+".html")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("golden %s: %v (run go test ./pipeline/report -update and review the diff)", path, err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := render(t, c.data()), render(t, c.data())
			if a != b {
				t.Fatalf("two renders of the same data differ:\n%s", cmp.Diff(a, b))
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	got := render(t, hostileData())
	for _, bad := range []string{
		"<script", "<img", "<svg onload", "<blink>", "<b>bold", "</title><script>",
		`data-evil="1"`, `onmouseover="alert`,
	} {
		if strings.Contains(got, bad) {
			t.Errorf("output contains unescaped %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;", // cohort, in text
		"&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;it&lt;/i&gt;",
		"&lt;svg onload=alert(3)&gt;",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks escaped text %q", want)
		}
	}
	// The cohort appears escaped inside the data-row attribute too.
	if !regexp.MustCompile(`data-row="&lt;script&gt;alert\(1\)&lt;/script&gt;\|b&#34;\|&#39;&lt;&gt;"`).MatchString(got) {
		t.Error(`data-row attribute of the hostile cohort is not escaped as expected`)
	}
}

// TestSelfContained checks that no page can fetch anything: no URLs, no
// scripts, no imports, and the CSP that blocks fetches comes before any
// other content of <head>.
func TestSelfContained(t *testing.T) {
	forbidden := []string{"http:", "https:", "//", "<script", "@import", "url(", "<link", "<iframe", "<object", "<embed", "<img", "<image", "<use", "@font-face"}
	tag := regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	fetching := regexp.MustCompile(`(?i)\s(src|srcset|xlink:href|action|formaction|background|poster|ping)\s*=`)
	href := regexp.MustCompile(`(?i)\shref\s*=\s*"([^"]*)"`)
	const csp = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, c.data())
			lower := strings.ToLower(got)
			for _, s := range forbidden {
				if i := strings.Index(lower, s); i >= 0 {
					t.Errorf("output contains %q at %d: …%s…", s, i, got[max(0, i-60):min(len(got), i+60)])
				}
			}
			for _, el := range tag.FindAllString(got, -1) {
				if fetching.MatchString(el) {
					t.Errorf("element with a fetching attribute: %s", el)
				}
				for _, m := range href.FindAllStringSubmatch(el, -1) {
					if !strings.HasPrefix(m[1], "#") {
						t.Errorf("link that is not a fragment: %s", el)
					}
				}
			}
			head := got[:strings.Index(got, "<style>")]
			if !strings.Contains(head, csp) {
				t.Errorf("no CSP meta before <style>; head is:\n%s", head)
			}
			if strings.Contains(got, "NaN") || strings.Contains(got, "Inf") {
				t.Error("output contains NaN or Inf")
			}
		})
	}
}

var forestRowRE = regexp.MustCompile(`<g class="forest-row" data-row="([^"]*)">`)

// forestRows returns the data-row keys of each forest-row in the page (or
// a DOM dump of it), unescaping the few entities html/template writes.
func forestRows(page string) []string {
	var out []string
	for _, m := range forestRowRE.FindAllStringSubmatch(page, -1) {
		out = append(out, unescapeAttr(m[1]))
	}
	return out
}

func unescapeAttr(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&quot;", `"`, "&#39;", "'", "&amp;", "&").Replace(s)
}

// wantRows is one cohort|variant key per row, in page order (metrics in
// order of first appearance, rows in input order within a metric).
func wantRows(d Data) []string {
	var out []string
	for _, m := range metricsOf(d.Rows) {
		for _, r := range d.Rows {
			if r.Metric == m {
				out = append(out, r.Cohort+"|"+r.Variant)
			}
		}
	}
	return out
}

func TestForestRows(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.data()
			got := render(t, d)
			if n := strings.Count(got, `class="forest-row"`); n != len(d.Rows) {
				t.Errorf("%d forest-row elements, want %d (one per cohort × metric × treatment)", n, len(d.Rows))
			}
			if diff := cmp.Diff(wantRows(d), forestRows(got)); diff != "" {
				t.Errorf("forest rows (-want +got):\n%s", diff)
			}
			if n, want := strings.Count(got, `<figure class="forest"`), len(metricsOf(d.Rows)); n != want {
				t.Errorf("%d forest plots, want %d (one per metric)", n, want)
			}
		})
	}
	// A plain count on the realistic case, independent of the helpers above.
	if n := strings.Count(render(t, exampleData()), `<g class="forest-row"`); n != 32 {
		t.Errorf("example: %d forest rows, want 32 (4 metrics × 4 cohorts × 2 treatments)", n)
	}
}

// firstScreen returns the page up to its first forest plot.
func firstScreen(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `<figure class="forest"`)
	if i < 0 {
		t.Fatal("page has no forest plot")
	}
	return page[:i]
}

func TestFirstScreen(t *testing.T) {
	t.Run("srm and harmed guardrail", func(t *testing.T) {
		top := firstScreen(t, render(t, srmData()))
		for _, want := range []string{
			"Invalid — sample ratio mismatch",
			`<div class="verdict v-invalid" id="verdict">`,
			`<td>guardrail</td><td>page_load_ms</td><td>*</td><td class="nw">treatment-b</td>`,
			"⚠ harm beyond margin",
			"▶ fired",
		} {
			if !strings.Contains(top, want) {
				t.Errorf("first part of the page lacks %q", want)
			}
		}
		if i, j := strings.Index(top, "Invalid — sample ratio mismatch"), strings.Index(top, `id="verdict"`); i > j {
			t.Error("the SRM banner comes after the verdict")
		}
	})
	t.Run("rollback", func(t *testing.T) {
		top := firstScreen(t, render(t, exampleData()))
		fired := regexp.MustCompile(`<tr class="fired"><td>guardrail</td><td>page_load_ms</td><td>\*</td><td class="nw">treatment-b</td>`)
		if !fired.MatchString(top) {
			t.Error("the fired guardrail is not in the first part of the page")
		}
		for _, want := range []string{
			"ROLLBACK", "<code>guardrail_harm</code>",
			"multi_variant_unit_rate", // the warned check
			"ρ (zCDP) = 0.0014",       // budget spent
			`<tr><th scope="row">page_load_ms</th><td class="r num">2.4</td></tr>`, // noise scale
			"9f86d081884c<", // key fingerprint, 12 hex
			"2c26b46b68ff<", // input digest
			"fcde2b2edba5<", // spec hash
			"sufstats@v1",   // template version
			"2026-11-06T00:00:00Z → 2026-11-21T00:00:00Z",
		} {
			if !strings.Contains(top, want) {
				t.Errorf("first part of the page lacks %q", want)
			}
		}
		if strings.Contains(top, "Invalid — sample ratio mismatch") {
			t.Error("SRM banner shown although the SRM test passed")
		}
		// The passing checks are only in the full list further down.
		if strings.Contains(top, "duplicate_event_rate") {
			t.Error("a passing check is shown in the first part of the page")
		}
	})
	t.Run("not private", func(t *testing.T) {
		top := firstScreen(t, render(t, minimalData()))
		if !strings.Contains(top, "Not differentially private") {
			t.Error(`a run without privacy does not say "Not differentially private"`)
		}
	})
}

func TestMissingNumbers(t *testing.T) {
	got := render(t, minimalData())
	for _, want := range []string{
		"n/a (n&lt;2)", "n/a (missing arm)", "n/a (control mean is zero)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestSignificanceWithoutColour(t *testing.T) {
	got := render(t, exampleData())
	var sig, nom, plain int
	for _, g := range strings.Split(got, `<g class="forest-row"`)[1:] {
		g = g[:strings.Index(g, "</g>")]
		switch {
		case strings.Contains(g, `class="pt sig`):
			sig++
			if !strings.Contains(g, "★ sig.") {
				t.Errorf("significant row without a text marker: %s", g[:60])
			}
		case strings.Contains(g, `class="pt nom`):
			nom++
			if !strings.Contains(g, "☆ nominal") || strings.Contains(g, "★") {
				t.Errorf("nominal row not marked ☆ nominal: %s", g[:60])
			}
		case strings.Contains(g, `class="pt"`):
			plain++
			if strings.Contains(g, "★") || strings.Contains(g, "☆") {
				t.Errorf("non-significant row with a marker: %s", g[:60])
			}
		}
	}
	wantSig, wantNom := 0, 0
	for _, r := range exampleData().Rows {
		if r.Significant && r.RelEffect != nil {
			if r.Corrected {
				wantSig++
			} else {
				wantNom++
			}
		}
	}
	if sig != wantSig || nom != wantNom || sig == 0 || nom == 0 || plain == 0 {
		t.Errorf("%d filled, %d nominal and %d hollow markers; want %d filled, %d nominal and some hollow", sig, nom, plain, wantSig, wantNom)
	}
}

// TestSignificanceLabels: "★ significant after correction" only for rows
// in the correction family; the others say nominal; a significantly
// harmed guardrail is drawn in the harm colour, never in a winning goal's.
func TestSignificanceLabels(t *testing.T) {
	got := render(t, exampleData())
	plots := strings.Split(got, `<figure class="forest"`)[1:]
	rowOf := func(plot, key string) string {
		i := strings.Index(plot, `data-row="`+key+`"`)
		if i < 0 {
			t.Fatalf("no forest row %s", key)
		}
		return plot[i : i+strings.Index(plot[i:], "</g>")]
	}
	// checkout_conversion (goal, corrected), returning/mobile · treatment-b: p 0.0001·2.
	win := rowOf(plots[0], "returning/mobile|treatment-b")
	if !strings.Contains(win, `class="pt sig"`) || !strings.Contains(win, "★ sig.") {
		t.Errorf("winning goal row: %s", win)
	}
	// page_load_ms (guardrail, nominal), new/desktop · treatment-b: raw p 1e-5, +5.1%: harm.
	harm := rowOf(plots[2], "new/desktop|treatment-b")
	if !strings.Contains(harm, `class="pt nom worse"`) || !strings.Contains(harm, `class="sigmark worse">☆ nominal`) {
		t.Errorf("harmed guardrail row: %s", harm)
	}
	if strings.Contains(harm, "★") {
		t.Error("a guardrail outside the correction family is labelled significant after correction")
	}
	for _, css := range []string{".forest-plot .pt.sig.worse { fill: var(--rollback); }", ".forest-plot .pt.sig { fill: var(--point); }"} {
		if !strings.Contains(got, css) {
			t.Errorf("style lacks %q", css)
		}
	}
	if !strings.Contains(got, "over goal metrics × treatments in every cohort") || !strings.Contains(got, "☆ nominal): secondary metrics and guardrails") {
		t.Error("the page does not say what the correction covers and what is nominal")
	}
	tables := strings.Split(got, `<table id="tbl-`)[1:]
	if !strings.Contains(tables[2], `<span class="flag flag-nominal tone-worse"`) {
		t.Error("the page_load_ms table does not flag its harmed rows as nominal and harmful")
	}
}

// TestUnderpoweredSignificantExplains: a row that is both ★ and
// underpowered says why, in visible text.
func TestUnderpoweredSignificantExplains(t *testing.T) {
	d := minimalData()
	d.MaxRelativeMDE = 0.05
	d.Rows = []Row{{Cohort: "(all)", Metric: "signup", Kind: "proportion", Variant: "b", Control: "a", NControl: 40, NVariant: 44,
		MeanControl: f(0.1), MeanVariant: f(0.2), RelEffect: f(1), RelLow: f(0.2), RelHigh: f(1.8), PValue: f(0.01), PAdjusted: f(0.02),
		MDE: f(0.9), Underpowered: true, Significant: true, Corrected: true, Role: "goal", Tone: "better", Status: "ok"}}
	got := render(t, d)
	for _, want := range []string{
		`<span class="power-note">underpowered: the minimum detectable effect is &#43;90.0%, above the &#43;5.00% target; significant anyway`,
		"overstate the true effect",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestQualityTableThresholds: every check shows its observed value, both
// thresholds and its actual outcome (a skipped check shows no value).
func TestQualityTableThresholds(t *testing.T) {
	d := minimalData()
	d.Checks = []Check{
		{Name: "multi_variant_unit_rate", Observed: 0.03, Warn: 0.01, Block: 0.05, Rule: "units in >1 variant / units", Severity: "block", Outcome: "warn"},
		{Name: "volume_drop", Observed: 0, Warn: 0.01, Block: 0.2, Rule: "drop", Severity: "block", Outcome: "skipped"},
		{Name: "metric_event_missing", Observed: 1, Warn: 0, Block: 0, Rule: "events", Severity: "block", Outcome: "block", Detail: `goal metric converted: event "buys" has no row`},
	}
	got := render(t, d)
	for _, want := range []string{
		`<th scope="col" class="r">Warns above</th><th scope="col" class="r">Blocks above</th>`,
		`<tr><th scope="row"><code>multi_variant_unit_rate</code></th><td class="r num">0.03</td><td class="r num">0.01</td><td class="r num">0.05</td>`,
		`<tr><th scope="row"><code>volume_drop</code></th><td class="r num">n/a</td>`,
		`<strong class="out-skipped">skipped</strong>`,
		`event &#34;buys&#34; has no row`,
		`(warns above <span class="num">0.01</span>, blocks above <span class="num">0.05</span>)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestCollapsedMarked(t *testing.T) {
	got := render(t, exampleData())
	if n := strings.Count(got, ">← power/desktop, power/mobile</text>"); n != 8 {
		t.Errorf("collapsed marker in %d forest rows, want 8", n)
	}
}

func TestGuardrailMargins(t *testing.T) {
	got := render(t, exampleData())
	plots := strings.Split(got, `<figure class="forest"`)[1:]
	if len(plots) != 4 {
		t.Fatalf("%d plots", len(plots))
	}
	// conversion and revenue: no margin; page_load_ms: one full-height
	// relative margin line; error_rate: absolute margin, one tick per row
	// with an estimable control mean (7 of 8).
	for i, want := range []int{0, 0, 1, 7} {
		if n := strings.Count(plots[i], `<line class="margin"`); n != want {
			t.Errorf("plot %d: %d margin lines, want %d", i, n, want)
		}
	}
	if !strings.Contains(plots[2], ">margin &#43;2.00%</text>") {
		t.Error("relative margin label missing from the page_load_ms plot")
	}
}

func TestAccessible(t *testing.T) {
	got := render(t, exampleData())
	if n, m := strings.Count(got, `<svg class="forest-plot"`), strings.Count(got, `role="img" aria-labelledby="fp-`); n != m || n == 0 {
		t.Errorf("%d SVGs, %d with role and aria-labelledby", n, m)
	}
	for i := 0; i < 4; i++ {
		id := "fp-" + string(rune('0'+i))
		if !strings.Contains(got, `<title id="`+id+`-t">`) || !strings.Contains(got, `<desc id="`+id+`-d">`) {
			t.Errorf("plot %s lacks its title or desc", id)
		}
	}
	if !strings.Contains(got, "@media print") {
		t.Error("no print styles")
	}
	if n := strings.Count(got, `<th scope="col"`); n < 50 {
		t.Errorf("only %d column headers", n)
	}
}

func TestFloat(t *testing.T) {
	zero := 0.0
	for _, v := range []float64{zero / zero, 1 / zero, -1 / zero} {
		if Float(v) != nil {
			t.Errorf("Float(%v) != nil", v)
		}
	}
	if p := Float(1.5); p == nil || *p != 1.5 {
		t.Errorf("Float(1.5) = %v", p)
	}
}

func TestFormat(t *testing.T) {
	zero := 0.0
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"num small", num(0.00123456, 3), "0.00123"},
		{"num tiny", num(0.0000123456, 3), "1.23e-05"},
		{"num big", num(123456.7, 4), "123500"},
		{"num huge", num(1.5e12, 3), "1.50e+12"},
		{"num round up", num(9.996, 3), "10.0"},
		{"num negative", num(-0.5, 2), "−0.50"},
		{"num zero", num(0, 3), "0"},
		{"num nan", num(zero/zero, 3), "n/a"},
		{"numTrim", numTrim(0.042, 4), "0.042"},
		{"numTrim exponent", numTrim(1e-6, 4), "1e-06"},
		{"numTrim whole", numTrim(2, 4), "2"},
		{"pct", pct(0.05123, 3), "+5.12%"},
		{"pct negative", pct(-0.004, 3), "−0.40%"},
		{"pct tiny", pct(0.00004, 3), "+0.00400%"},
		{"pct large", pct(-0.132, 3), "−13.2%"},
		{"pval", pval(0.0312), "0.031"},
		{"pval tiny", pval(3e-7), "< 0.0001"},
		{"count", count(1234567), "1,234,567"},
		{"count small", count(999), "999"},
		{"count negative", count(-1000), "−1,000"},
		{"countf fractional", countf(1234.56), "1235"},
		{"coord", coord(12.345), "12.35"},
		{"coord whole", coord(330), "330"},
		{"coord negative zero", coord(-0.001), "0"},
		{"short", short("0123456789abcdef"), "0123456789ab"},
		{"truncate", truncate("abcdef", 4), "abc…"},
		{"tick", tickLabel(-0.02, 0), "−2%"},
		{"tick zero", tickLabel(-0.0, 1), "0%"},
		{"tick half", tickLabel(0.005, 1), "+0.5%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestAxis(t *testing.T) {
	tests := []struct {
		vals       []float64
		lo, hi     float64
		ticks, dec int
	}{
		{[]float64{-0.012, 0.061}, -0.02, 0.08, 6, 0},
		{[]float64{0.001, 0.004}, -0.001, 0.005, 7, 1},
		{nil, -0.015, 0.015, 7, 1},
		{[]float64{-1.2, 2.5}, -2, 3, 6, 0},
	}
	for _, tt := range tests {
		sc, ticks, dec := axis(tt.vals)
		if !near(sc.lo, tt.lo) || !near(sc.hi, tt.hi) || len(ticks) != tt.ticks || dec != tt.dec {
			t.Errorf("axis(%v) = [%v, %v], %d ticks, %d decimals; want [%v, %v], %d, %d",
				tt.vals, sc.lo, sc.hi, len(ticks), dec, tt.lo, tt.hi, tt.ticks, tt.dec)
		}
		for _, v := range tt.vals {
			if x := sc.x(v); x < fpPlotX0 || x > fpPlotX1 {
				t.Errorf("axis(%v): %v maps to %v, outside the plot", tt.vals, v, x)
			}
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

// TestRenderDoesNotModifyInput checks that rendering leaves its input alone.
func TestRenderDoesNotModifyInput(t *testing.T) {
	d := exampleData()
	_ = render(t, d)
	if diff := cmp.Diff(exampleData(), d); diff != "" {
		t.Errorf("Render modified its input (-want +got):\n%s", diff)
	}
}

// TestInProgress: a fixed-horizon run before its planned end reads "IN
// PROGRESS" in its own colour and says how far the experiment is.
func TestInProgress(t *testing.T) {
	d := minimalData()
	d.Verdict = Verdict{Verdict: "in_progress", Rule: "fixed_horizon_not_reached", Reason: "before the end"}
	d.Horizon = Horizon{PlannedEnd: "2026-11-20T00:00:00Z", DaysElapsed: 3, DaysPlanned: 4, DaysRemaining: 1, FixedHorizon: true}
	d.Sensitivity = []Sensitivity{
		{Metric: "converted", Variant: "b", TargetRelMDE: 0.05, RelMDE: 0.1234, Units: 1500, UnitsNeeded: 9138, DaysNeeded: 16, Status: "ok"},
		{Metric: "revenue", Variant: "b", TargetRelMDE: 0.05, RelMDE: 0.04, Units: 1500, UnitsNeeded: 960, DaysNeeded: 0, Status: "ok"},
		{Metric: "clicks", Variant: "b", TargetRelMDE: 0.05, Units: 1500, Status: "no comparison (zero variance)"},
	}
	got := render(t, d)
	for _, want := range []string{
		`<div class="verdict v-progress" id="verdict">`, ">IN PROGRESS<",
		"day 3 of 4 · 1 day remaining (planned end 2026-11-20T00:00:00Z)",
		"Days still needed to detect a 5% relative effect (max_relative_mde) with the spec&#39;s power at the uncorrected α, fixed horizon design",
		`<tr><td>converted</td><td class="nw">b</td><td class="r num">12.34%</td><td class="r num">1,500</td><td class="r num">9,138</td><td class="r num">16 days</td><td>ok</td></tr>`,
		`<td class="r num">960</td><td class="r num">reached</td>`,
		`<tr><td>clicks</td><td class="nw">b</td><td class="r num">n/a</td><td class="r num">1,500</td><td class="r num">n/a</td><td class="r num">n/a</td><td>no comparison (zero variance)</td></tr>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	d.Horizon = Horizon{PlannedEnd: "2026-11-20T00:00:00Z", DaysElapsed: 4, DaysPlanned: 4, Reached: true}
	got = render(t, d)
	if !strings.Contains(got, "complete: 4 of 4 days") {
		t.Error("a complete run does not say so")
	}
	if strings.Contains(got, `id="sensitivity"`) {
		t.Error("a complete run still shows the days needed for the MDE")
	}
}

// TestVarReduceHorizonWarning: under an always-valid design the
// variance-reduction section says its intervals are fixed-horizon (the
// rest of the report is safe to read nightly; these rows are not).
func TestVarReduceHorizonWarning(t *testing.T) {
	row := AdjustedEstimate{Metric: "revenue", Kind: "mean", Variant: "treatment", Control: "control", Method: "cuped", Status: "ok", NControl: 100, NVariant: 100}
	for _, seq := range []bool{false, true} {
		d := minimalData()
		d.VarianceReduction = []AdjustedEstimate{row}
		d.Sequential = Sequential{Enabled: seq, Description: "always-valid mixture SPRT"}
		page := render(t, d)
		if !strings.Contains(page, `id="varreduce"`) {
			t.Fatal("no variance-reduction section")
		}
		if got := strings.Contains(page, `id="varreduce-horizon"`); got != seq {
			t.Errorf("always-valid design %v: horizon warning shown %v", seq, got)
		}
	}
	d := minimalData()
	d.Sequential = Sequential{Enabled: true}
	if strings.Contains(render(t, d), `id="varreduce-horizon"`) {
		t.Error("warning shown without a variance-reduction section")
	}
}

// TestInteractionsSection: flagged pairs are counted and marked, untested
// rows say why and show no numbers.
func TestInteractionsSection(t *testing.T) {
	p, low, high := 0.001, 0.2, 0.9
	d := minimalData()
	d.Interactions = &Interactions{Alpha: 0.01, Rows: []InteractionRow{
		{Metric: "converted", Partner: "onboarding", PartnerExperiment: "onboarding", Arms: 2, PartnerArms: 2, Units: 5000, Method: "welch_t",
			Estimate: &high, Low: &low, High: &high, P: &p, PHolm: &p, Flagged: true, Status: "tested"},
		{Metric: "revenue", Partner: "pricing", Arms: 2, Status: "partner_not_in_run", Detail: "no spec of this name is in the run"},
	}}
	page := render(t, d)
	for _, want := range []string{`id="interactions"`, "1 flagged", "<strong class=\"out-block\">flagged</strong>", "not tested: no spec of this name is in the run"} {
		if !strings.Contains(page, want) {
			t.Errorf("interactions section lacks %q", want)
		}
	}
	if strings.Contains(minimalPage(t), `id="interactions"`) {
		t.Error("interactions section shown for a spec without partners")
	}
}

func minimalPage(t *testing.T) string { return render(t, minimalData()) }

package report

// Hand-built report data for the tests. The numbers are literals or simple
// arithmetic on literals (with explicit float64 conversions, so no
// architecture fuses them into FMA): the goldens depend on nothing else.

func f(v float64) *float64 { return &v }

// rowSpec is the compact form of one comparison.
type rowSpec struct {
	cohort    string
	collapsed []string
	variant   string
	nC, nV    int64
	meanC     float64 // control mean
	rel       float64 // relative effect
	half      float64 // half-width of the relative interval
	p         float64 // raw p-value
	status    string  // "" means ok
}

// rowsFor expands specs into rows of one metric. Goal rows are in the
// correction family; their adjusted p-value is Bonferroni-like (p·k,
// capped at 1) to keep the arithmetic simple. Guardrail rows are nominal;
// an increase is harmful for them.
func rowsFor(metric, kind, role string, noise float64, k float64, specs []rowSpec) []Row {
	var out []Row
	for _, s := range specs {
		r := Row{
			Cohort: s.cohort, CollapsedFrom: s.collapsed, Metric: metric, Kind: kind,
			Variant: s.variant, Control: "control", NControl: s.nC, NVariant: s.nV,
			MeanControl: f(s.meanC), NoiseScale: f(noise), Status: "ok", Role: role, Corrected: role == "goal",
		}
		if s.status != "" {
			r.Status = s.status
			r.MeanVariant = f(s.meanC)
			r.Underpowered = true
			out = append(out, r)
			continue
		}
		mv := s.meanC + float64(s.meanC*s.rel)
		r.MeanVariant = f(mv)
		r.AbsEffect = f(mv - s.meanC)
		r.AbsLow = f(float64(s.meanC * (s.rel - s.half)))
		r.AbsHigh = f(float64(s.meanC * (s.rel + s.half)))
		r.RelEffect = f(s.rel)
		r.RelLow = f(s.rel - s.half)
		r.RelHigh = f(s.rel + s.half)
		r.PValue = f(s.p)
		mde := float64(s.half * 1.4286)
		r.MDE = f(mde)
		r.Underpowered = mde > 0.05
		r.Significant = s.p <= 0.05
		if r.Corrected {
			r.PAdjusted = f(min(1, float64(s.p*k)))
			r.Significant = *r.PAdjusted <= 0.05
		}
		r.Tone = "better"
		if (role == "guardrail") == (s.rel > 0) {
			r.Tone = "worse"
		}
		out = append(out, r)
	}
	return out
}

var powerCollapsed = []string{"power/desktop", "power/mobile"}

// exampleData is a realistic run: two treatments, four cohorts (one
// collapsed), two goals and two guardrails; treatment-b's page load time
// is harmed beyond its margin, so the verdict is rollback.
func exampleData() Data {
	var rows []Row
	rows = append(rows, rowsFor("checkout_conversion", "proportion", "goal", 0.00041, 2, []rowSpec{
		{"new/desktop", nil, "treatment-a", 18214, 18302, 0.0412, 0.034, 0.0091, 0.0023, ""},
		{"new/desktop", nil, "treatment-b", 18214, 18166, 0.0412, 0.061, 0.036, 0.0009, ""},
		{"new/mobile", nil, "treatment-a", 24987, 25112, 0.0297, 0.021, 0.041, 0.31, ""},
		{"new/mobile", nil, "treatment-b", 24987, 24850, 0.0297, 0.048, 0.041, 0.022, ""},
		{"power/*", powerCollapsed, "treatment-a", 1377, 1402, 0.118, -0.012, 0.12, 0.84, ""},
		{"power/*", powerCollapsed, "treatment-b", 1377, 1359, 0.118, 0.044, 0.12, 0.47, ""},
		{"returning/mobile", nil, "treatment-a", 30551, 30604, 0.0655, 0.009, 0.026, 0.49, ""},
		{"returning/mobile", nil, "treatment-b", 30551, 30480, 0.0655, 0.052, 0.026, 0.0001, ""},
	})...)
	rows = append(rows, rowsFor("revenue_per_user", "mean", "goal", 0.018, 2, []rowSpec{
		{"new/desktop", nil, "treatment-a", 18214, 18302, 3.412, 0.018, 0.041, 0.39, ""},
		{"new/desktop", nil, "treatment-b", 18214, 18166, 3.412, 0.027, 0.041, 0.2, ""},
		{"new/mobile", nil, "treatment-a", 24987, 25112, 2.087, -0.006, 0.047, 0.8, ""},
		{"new/mobile", nil, "treatment-b", 24987, 24850, 2.087, 0.039, 0.047, 0.1, ""},
		{"power/*", powerCollapsed, "treatment-a", 1377, 1402, 12.9, 0.041, 0.15, 0.59, ""},
		{"power/*", powerCollapsed, "treatment-b", 1377, 1359, 12.9, -0.022, 0.15, 0.77, ""},
		{"returning/mobile", nil, "treatment-a", 30551, 30604, 5.551, 0.012, 0.022, 0.28, ""},
		{"returning/mobile", nil, "treatment-b", 30551, 30480, 5.551, 0.031, 0.022, 0.0057, ""},
	})...)
	rows = append(rows, rowsFor("page_load_ms", "mean", "guardrail", 2.4, 1, []rowSpec{
		{"new/desktop", nil, "treatment-a", 18214, 18302, 1184, 0.004, 0.011, 0.47, ""},
		{"new/desktop", nil, "treatment-b", 18214, 18166, 1184, 0.051, 0.012, 0.00001, ""},
		{"new/mobile", nil, "treatment-a", 24987, 25112, 2210, 0.007, 0.013, 0.29, ""},
		{"new/mobile", nil, "treatment-b", 24987, 24850, 2210, 0.063, 0.014, 0.00001, ""},
		{"power/*", powerCollapsed, "treatment-a", 1377, 1402, 1022, -0.009, 0.04, 0.66, ""},
		{"power/*", powerCollapsed, "treatment-b", 1377, 1359, 1022, 0.048, 0.042, 0.025, ""},
		{"returning/mobile", nil, "treatment-a", 30551, 30604, 1988, 0.002, 0.01, 0.69, ""},
		{"returning/mobile", nil, "treatment-b", 30551, 30480, 1988, 0.044, 0.011, 0.00001, ""},
	})...)
	rows = append(rows, rowsFor("error_rate", "proportion", "guardrail", 0.00012, 1, []rowSpec{
		{"new/desktop", nil, "treatment-a", 18214, 18302, 0.0021, 0.05, 0.29, 0.73, ""},
		{"new/desktop", nil, "treatment-b", 18214, 18166, 0.0021, 0.11, 0.3, 0.47, ""},
		{"new/mobile", nil, "treatment-a", 24987, 25112, 0.0034, -0.04, 0.22, 0.72, ""},
		{"new/mobile", nil, "treatment-b", 24987, 24850, 0.0034, 0.08, 0.23, 0.5, ""},
		{"power/*", powerCollapsed, "treatment-a", 1377, 1402, 0, 0, 0, 0, "zero variance"},
		{"power/*", powerCollapsed, "treatment-b", 1377, 1359, 0.0007, 0.4, 1.9, 0.68, ""},
		{"returning/mobile", nil, "treatment-a", 30551, 30604, 0.0018, 0.02, 0.25, 0.88, ""},
		{"returning/mobile", nil, "treatment-b", 30551, 30480, 0.0018, 0.09, 0.26, 0.49, ""},
	})...)

	return Data{
		Experiment:     "checkout-redesign-2026q4",
		NominalDate:    "2026-11-20",
		WindowStart:    "2026-11-06T00:00:00Z",
		WindowEnd:      "2026-11-21T00:00:00Z",
		CILevel:        0.95,
		Alpha:          0.05,
		Correction:     "holm",
		Family:         "goal metrics × treatments in every cohort",
		Nominal:        "secondary metrics and guardrails",
		MaxRelativeMDE: 0.05,
		Settings: []Setting{
			{Name: "conversion window: checkout_conversion", Value: "72 h after exposure (the default of unit_metrics@v5)"},
			{Name: "design", Value: "always-valid intervals"},
		},
		Sequential: Sequential{Enabled: true, Description: "always-valid mixture SPRT intervals (τ² = 0.0025)"},
		Verdict: Verdict{
			Verdict:  "rollback",
			Rule:     "guardrail_harm",
			Reason:   `a guardrail is significantly worse than its margin in variant(s) ["treatment-b"]`,
			Variants: []string{"treatment-b"},
			Evidence: []Evidence{
				{Role: "goal", Metric: "checkout_conversion", Variant: "treatment-a", Cohort: "*", Status: "ok", Scale: "absolute", Desired: "increase",
					Estimate: f(0.0011), Low: f(0.0003), High: f(0.0019), PValue: f(0.0046), PAdjusted: f(0.0046), Outcome: "significantly better"},
				{Role: "goal", Metric: "checkout_conversion", Variant: "treatment-b", Cohort: "*", Status: "ok", Scale: "absolute", Desired: "increase",
					Estimate: f(0.0024), Low: f(0.0015), High: f(0.0033), PValue: f(0.00002), PAdjusted: f(0.00002), Outcome: "significantly better"},
				{Role: "guardrail", Metric: "page_load_ms", Variant: "treatment-a", Cohort: "*", Status: "ok", Scale: "relative", Harmful: "increase",
					Estimate: f(0.004), Low: f(-0.004), High: f(0.012), Margin: f(0.02), PValue: f(0.33), Outcome: "non-inferior"},
				{Role: "guardrail", Metric: "page_load_ms", Variant: "treatment-b", Cohort: "*", Status: "ok", Scale: "relative", Harmful: "increase",
					Estimate: f(0.052), Low: f(0.043), High: f(0.061), Margin: f(0.02), PValue: f(0.000001), Outcome: "harm beyond margin", Fired: true},
				{Role: "guardrail", Metric: "error_rate", Variant: "treatment-a", Cohort: "*", Status: "ok", Scale: "absolute", Harmful: "increase",
					Estimate: f(0.00004), Low: f(-0.0003), High: f(0.0004), Margin: f(0.0005), PValue: f(0.81), Outcome: "non-inferior"},
				{Role: "guardrail", Metric: "error_rate", Variant: "treatment-b", Cohort: "*", Status: "ok", Scale: "absolute", Harmful: "increase",
					Estimate: f(0.00019), Low: f(-0.0002), High: f(0.0006), Margin: f(0.0005), PValue: f(0.36), Outcome: "inconclusive"},
			},
		},
		SRM: SRM{
			PValue: f(0.41), ChiSquare: f(1.78), Threshold: 0.001,
			Arms: []SRMArm{
				{Variant: "control", Observed: 75129, ExpectedShare: 1},
				{Variant: "treatment-a", Observed: 75420, ExpectedShare: 1},
				{Variant: "treatment-b", Observed: 74855, ExpectedShare: 1},
			},
		},
		Checks: []Check{
			{Name: "duplicate_event_rate", Observed: 0.0008, Warn: 0.01, Block: 0.05, Rule: "duplicates / rows ≤ threshold", Severity: "block", Outcome: "pass"},
			{Name: "multi_variant_unit_rate", Observed: 0.0041, Warn: 0.002, Block: 0.05, Rule: "units in >1 variant / units ≤ threshold", Severity: "warn", Outcome: "warn"},
			{Name: "out_of_window_rate", Observed: 0.012, Warn: 0.05, Block: 0.05, Rule: "rows outside the window / rows ≤ threshold", Severity: "warn", Outcome: "pass"},
			{Name: "persona_version_mismatch_rate", Observed: 0, Warn: 0.01, Block: 0.05, Rule: "other persona-algorithm version / rows ≤ threshold", Severity: "block", Outcome: "pass"},
			{Name: "null_key_rate", Observed: 0.00003, Warn: 0.001, Block: 0.05, Rule: "null ts/unit/variant / rows ≤ threshold", Severity: "block", Outcome: "pass"},
		},
		Privacy: Privacy{
			Enabled: true, Mechanism: "discrete Gaussian", Accounting: "zcdp_rho",
			Spent: 0.0014, Total: 0.042, Remaining: 0.0196,
			Epsilon: 2, Delta: 1e-6,
			KeyFingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		},
		Provenance: Provenance{
			Templates: []Template{
				{Name: "traces", Version: "v1", SHA256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"},
				{Name: "assignment", Version: "v1", SHA256: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"},
				{Name: "unit_metrics", Version: "v1", SHA256: "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730"},
				{Name: "sufstats", Version: "v1", SHA256: "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8"},
			},
			InputDigest:   "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			SpecSHA256:    "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
			DuckDBVersion: "v1.4.3",
		},
		Guardrails: []Guardrail{
			{Metric: "page_load_ms", Harmful: "increase", Margin: 0.02, Relative: true},
			{Metric: "error_rate", Harmful: "increase", Margin: 0.0005, Relative: false},
		},
		Rows: rows,
	}
}

// srmData is exampleData with a tripped SRM: the verdict is invalid, and a
// guardrail still shows (and, in this hand-built case, fires on) harm.
func srmData() Data {
	d := exampleData()
	d.SRM = SRM{
		Invalid: true, PValue: f(0.0000031), ChiSquare: f(25.37), Threshold: 0.001,
		Arms: []SRMArm{
			{Variant: "control", Observed: 75129, ExpectedShare: 1},
			{Variant: "treatment-a", Observed: 75420, ExpectedShare: 1},
			{Variant: "treatment-b", Observed: 73411, ExpectedShare: 1},
		},
	}
	d.Verdict.Verdict = "invalid"
	d.Verdict.Rule = "srm"
	d.Verdict.Reason = "sample-ratio mismatch: the allocation differs from the design, so no verdict"
	d.Verdict.Variants = nil
	for i := range d.Rows {
		if d.Rows[i].Variant == "treatment-b" {
			d.Rows[i].SRM = true
		}
	}
	return d
}

// minimalData is a small run without privacy, sequential testing,
// guardrails or checks, with rows that have no estimate (NaN pointers must
// show as n/a) and a single cohort.
func minimalData() Data {
	nan := 0.0
	nan = nan / nan
	return Data{
		Experiment:  "tiny-exp",
		NominalDate: "2026-11-20",
		WindowStart: "2026-11-19",
		WindowEnd:   "2026-11-20",
		CILevel:     0.9,
		Correction:  "none",
		Verdict:     Verdict{Verdict: "hold", Rule: "no_significant_goal", Reason: "no goal metric is significantly better"},
		SRM:         SRM{Threshold: 0.001, Note: "too few units to test the allocation"},
		Provenance:  Provenance{DuckDBVersion: "v1.4.3"},
		Rows: []Row{
			{Cohort: "*", Metric: "clicks", Kind: "mean", Variant: "b", Control: "a", NControl: 1, NVariant: 3,
				MeanControl: f(2), MeanVariant: f(nan), RelEffect: f(nan), PValue: nil, Status: "n<2"},
			{Cohort: "*", Metric: "clicks", Kind: "mean", Variant: "c", Control: "a", NControl: 1, NVariant: 0,
				Status: "missing arm"},
			{Cohort: "*", Metric: "signup", Kind: "proportion", Variant: "b", Control: "a", NControl: 40, NVariant: 44,
				MeanControl: f(0), MeanVariant: f(0.05), AbsEffect: f(0.05), AbsLow: f(-0.01), AbsHigh: f(0.11),
				PValue: f(0.1), PAdjusted: f(0.1), Status: "control mean is zero"},
		},
	}
}

// hostileData has markup in every kind of string the page shows.
func hostileData() Data {
	d := minimalData()
	d.Experiment = `"><img src=x onerror=alert(1)>`
	d.NominalDate = "</title><script>alert(2)</script>"
	d.Verdict.Reason = "<b>bold</b> & <i>it</i>"
	d.Verdict.Criteria, d.Verdict.CriteriaChanged = `criteria "<script>alert(6)</script>`, true
	d.Verdict.Evidence = []Evidence{{Role: "guardrail", Metric: "m<1>", Variant: "v&1", Cohort: "<script>alert(1)</script>",
		Scale: "relative", Estimate: f(0.1), Low: f(0.05), High: f(0.15), Margin: f(0.02), Outcome: "harm beyond margin", Fired: true}}
	d.Checks = []Check{{Name: "<svg onload=alert(3)>", Rule: "a < b", Severity: "warn", Outcome: "warn"}}
	d.Guardrails = []Guardrail{{Metric: "clicks", Harmful: "increase", Margin: 0.01, Relative: true}}
	for i := range d.Rows {
		d.Rows[i].Cohort = "<script>alert(1)</script>"
		d.Rows[i].CollapsedFrom = []string{`x" data-evil="1`, "</text><script>alert(4)</script>"}
		d.Rows[i].Variant = `b"|'<>`
	}
	d.Privacy = Privacy{Enabled: true, Mechanism: "<blink>", KeyFingerprint: `"onmouseover="alert(5)`}
	d.Provenance.Templates = []Template{{Name: "<t>", Version: "v1", SHA256: `"'><script>`}}
	return d
}

// cases are the pages the golden, property and Chromium tests render.
var cases = []struct {
	name string
	data func() Data
}{
	{"rollback", exampleData},
	{"srm_invalid", srmData},
	{"minimal", minimalData},
	{"hostile", hostileData},
}

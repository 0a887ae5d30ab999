package report

import "math"

// Data is everything a report shows. It is plain values so that the
// pipeline can fill it from its in-memory results (never by re-parsing
// results.csv) and a test can build one by hand. Slices are shown in the
// order given: the caller decides row order, the renderer never sorts by
// map iteration.
//
// Numbers that may be missing (a comparison whose Status is not "ok", a
// run without privacy) are *float64: nil, NaN and ±Inf are all shown as
// "n/a", never as "NaN". Float turns a float64 into such a pointer.
type Data struct {
	Experiment  string // experiment id (untrusted text; escaped)
	Name        string // the spec's name: when set and not the experiment, the title (escaped)
	NominalDate string // the run's nominal date, e.g. "2026-11-20"
	WindowStart string // analysis window start as written in the spec, e.g. "2026-11-01T00:00:00Z"
	WindowEnd   string // analysis window end (exclusive)
	CILevel     float64
	Alpha       float64 // significance level (1 − CILevel); 0: not shown
	Correction  string  // multiple-testing correction: "none", "holm" or "bh"
	// Family says which comparisons the correction covers (rows with
	// Corrected); Nominal which are not corrected. Optional.
	Family  string
	Nominal string
	// MaxRelativeMDE is the target a row's MDE is held against
	// (Underpowered); 0: not shown.
	MaxRelativeMDE float64
	// Settings are the settings in effect (defaults included), shown in
	// their own section.
	Settings   []Setting
	Sequential Sequential
	// Horizon is where the run stands in the design (zero: not shown).
	Horizon Horizon

	Verdict    Verdict
	SRM        SRM
	Checks     []Check // every data-quality check, in quality.json order
	Privacy    Privacy
	Provenance Provenance
	Guardrails []Guardrail
	Rows       []Row // one per cohort × metric × treatment variant, in results order
	// Sensitivity is, per goal comparison of (all), how far the run is
	// from detecting the target relative effect (MDE); shown while the
	// design's horizon is not reached.
	Sensitivity []Sensitivity
	// Engine is "bayesian" when the Bayesian engine decided ("" for the
	// frequentist default); BayesRule states its rule in words and
	// BayesEvidence the posteriors it read (Verdict.Evidence is empty).
	Engine        string
	BayesRule     string
	BayesEvidence []BayesEvidence
	// Inference is, per result row in results order, its posterior and/or
	// hypothesis test; empty for specs that use neither.
	Inference []InferenceRow
	// Series is the experiment over time (nil: no earlier night was
	// released, and the section is not shown).
	Series *Series
	// VarianceReduction is every variance-reduced estimate the spec
	// lists (empty: the section is not shown).
	VarianceReduction []AdjustedEstimate
	// Interactions are the tests of interactions with other experiments
	// (nil: the spec lists none).
	Interactions *Interactions
	// Drilldown are the drill-downs by trace dimension (nil: the spec
	// has none).
	Drilldown *Drilldown
}

// Sensitivity is one goal comparison's distance to its target MDE.
type Sensitivity struct {
	Metric, Variant string
	TargetRelMDE    float64 // the spec's max_relative_mde
	RelMDE          float64 // at the units so far
	Units           float64 // so far, both arms
	UnitsNeeded     float64
	DaysNeeded      float64 // further days at the enrolment rate so far
	Status          string  // "ok", or why nothing is computed
}

// Sequential describes the interval type.
type Sequential struct {
	Enabled bool
	// Description says which always-valid intervals are used, e.g.
	// "always-valid mixture SPRT, τ² = 0.01"; shown when Enabled.
	Description string
}

// Setting is one setting in effect: what, its value and where it comes
// from (the spec, a default of the code, a template version).
type Setting struct {
	Name  string
	Value string
}

// Horizon is the window analysed against the design's planned one, in
// days since the window's start.
type Horizon struct {
	PlannedEnd    string // e.g. "2026-11-20T00:00:00Z"
	DaysElapsed   float64
	DaysPlanned   float64
	DaysRemaining float64
	Reached       bool
	// FixedHorizon is true for a design whose intervals hold only at its
	// planned end (not sequential).
	FixedHorizon bool
}

// Verdict is decisions.json: the verdict and the rule that produced it.
type Verdict struct {
	Verdict  string   // "ship", "hold", "rollback", "invalid" or "in_progress"
	Rule     string   // the rule that fired, e.g. "guardrail_harm"
	Reason   string   // one sentence for people
	Variants []string // the variants the verdict is about
	Evidence []Evidence
	// Criteria says in words which success criteria the verdict used;
	// CriteriaChanged is true when they differ from those locked on the
	// first night analysed (shown as a warning).
	Criteria        string
	CriteriaChanged bool
}

// Evidence is one number behind the verdict (one goal or guardrail for one
// variant and cohort). Each field means one thing for every role.
type Evidence struct {
	Role    string // "goal" or "guardrail"
	Metric  string
	Variant string
	Cohort  string
	Status  string // the comparison's status, "ok" when valid
	Scale   string // "absolute" or "relative" (Estimate, Low, High and Margin are on this scale)
	// Desired is a goal's direction of improvement ("increase" or
	// "decrease"); empty for guardrails.
	Desired string
	// Harmful is the direction in which a guardrail gets worse; empty for
	// goals.
	Harmful  string
	Estimate *float64
	Low      *float64
	High     *float64
	// CILevel is the confidence level of [Low, High] (decisions.json's
	// ci_level): a goal in a correction family is shown at its adjusted
	// level, wider than the results table's interval. 0: not known.
	CILevel float64
	// Margin is a guardrail's harmful threshold on Scale, signed in the
	// harmful direction; nil for goals.
	Margin    *float64
	PValue    *float64 // the comparison's own p-value (not adjusted)
	PAdjusted *float64 // goals: after the correction, what the outcome is judged on; nil for guardrails
	Outcome   string   // e.g. "significantly better", "harm beyond margin"
	Fired     bool     // this item triggered the rule
}

// SRM is the sample-ratio-mismatch test of the allocation.
type SRM struct {
	// Invalid is true when the test tripped (p below Threshold): the
	// verdict is blocked and the page says so in a banner.
	Invalid   bool
	PValue    *float64 // nil when the test could not run
	ChiSquare *float64
	Threshold float64 // e.g. 0.001
	// Note explains a test that did not run or was adjusted (optional).
	Note string
	Arms []SRMArm
}

// SRMArm is one variant's observed units and the share the design expects.
type SRMArm struct {
	Variant       string
	Observed      float64 // units (noisy when private)
	ExpectedShare float64 // design share; shares need not sum to one
}

// Check is one data-quality check, as in quality.json.
type Check struct {
	Name     string
	Observed float64 // NaN when not shown (withheld, or the check was skipped)
	// Warn and Block are the thresholds: above Warn the check warns,
	// above Block it blocks the verdict.
	Warn     float64
	Block    float64
	Rule     string // human-readable rule, e.g. "duplicates / rows"
	Severity string // what failing means: "warn" or "block"
	Outcome  string // "pass", "warn", "block" or "skipped"
	Detail   string // what a failing check found (optional)
}

// Privacy is the differential-privacy release of this run.
type Privacy struct {
	// Enabled is false for a run released without noise; the page then
	// says "not differentially private".
	Enabled bool
	// Mechanism names the noise, e.g. "discrete Gaussian".
	Mechanism string
	// Accounting is the unit the budget is kept in: "zcdp_rho" (ρ of
	// zero-concentrated DP) or "pure_epsilon" (ε of pure DP).
	Accounting string
	Spent      float64 // this run, in Accounting units
	Total      float64 // the experiment's total budget, in Accounting units
	Remaining  float64 // what is left after this run, in Accounting units; NaN when the page must not depend on earlier runs
	// Epsilon and Delta are the experiment's total (ε, δ) guarantee;
	// Delta is 0 for pure DP.
	Epsilon float64
	Delta   float64
	// KeyFingerprint identifies the noise key (never the key); the page
	// shows its first 12 characters.
	KeyFingerprint string
	// Covers says exactly what the guarantee covers: the data source's
	// ledger, its scope and total (empty: the (ε, δ) line alone).
	Covers string
}

// Provenance pins what produced the numbers. Hashes are given in full and
// shown shortened to their first 12 hex digits.
type Provenance struct {
	Templates     []Template
	InputDigest   string // SHA-256 over every input file's hash
	SpecSHA256    string
	DuckDBVersion string
	CodeVersion   string // VCS revision or module version (optional)
}

// Template is one pinned SQL template.
type Template struct {
	Name    string
	Version string
	SHA256  string
}

// Guardrail is a metric that must not move in its harmful direction by more
// than Margin. Its rows get margin lines in the forest plot.
type Guardrail struct {
	Metric  string
	Harmful string // "increase" or "decrease"
	// Margin ≥ 0 is the tolerated harm: a relative lift when Relative
	// (0.02 is 2%), else in the metric's units.
	Margin   float64
	Relative bool
}

// Row is one comparison: a treatment variant against control, in one
// cohort, for one metric (a row of results.csv).
type Row struct {
	Cohort string
	// CollapsedFrom lists the cohorts merged into Cohort because they were
	// below the minimum cell size (empty when nothing collapsed).
	CollapsedFrom []string
	Metric        string
	Kind          string // "proportion", "mean", "ratio" or "quantile"
	Variant       string // the treatment variant
	Control       string
	NControl      int64
	NVariant      int64
	MeanControl   *float64
	MeanVariant   *float64
	AbsEffect     *float64 // variant − control, in the metric's units
	AbsLow        *float64
	AbsHigh       *float64
	RelEffect     *float64 // (variant − control) / control: 0.05 is +5%
	RelLow        *float64
	RelHigh       *float64
	PValue        *float64 // raw
	PAdjusted     *float64 // after Correction
	MDE           *float64 // minimum detectable relative effect
	Underpowered  bool
	// Significant: the p-value the row is judged on is at or below alpha:
	// the adjusted one when Corrected, else the raw (nominal) one.
	Significant bool
	// Corrected: the row is in the correction family (PAdjusted set).
	Corrected bool
	// Role is "goal", "guardrail" or "secondary".
	Role string
	// Tone says whether the effect goes the way the metric wants:
	// "better" (a goal's desired direction, a guardrail's safe one),
	// "worse" (a goal's wrong way, a guardrail's harmful one), or ""
	// (a secondary metric, which wants nothing). A significant row is
	// drawn in its tone's colour, so harm never looks like a win.
	Tone string
	SRM  bool // this cohort's allocation tripped the SRM test
	// NoiseScale is the standard deviation of the privacy noise in this
	// row's released statistics, as results.csv reports it (nil when not
	// private).
	NoiseScale *float64
	// Status is "ok" for a valid comparison; otherwise it says why numbers
	// are missing (e.g. "n<2") and missing ones are nil.
	Status string
	// Quantile labels a quantile metric's row (empty for the others): its
	// level as a percentile, such as p90. MeanControl and MeanVariant then
	// hold the arms' quantiles, and the effects are differences of them.
	Quantile string
	// QuantileOverEvents marks an event-level quantile metric's row: its
	// quantiles are of the arms' pooled events.
	QuantileOverEvents bool
	// CapNote says, for a percentile-capped metric's rows, the night's
	// cap (empty for the others).
	CapNote string
	// FilterNote says, for a filtered metric's rows, which events it
	// counts and how many rows each filter value matched (empty for the
	// others).
	FilterNote string
}

// Float returns a pointer to v, or nil when v is NaN or infinite, so that
// a missing number is never shown as "NaN".
func Float(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// ManifestFormat identifies the manifest layout.
const ManifestFormat = "verity.manifest/1"

// Manifest is manifest.json, written last as the commit marker of a run's
// output folder. Everything outside Build and Volatile is byte-identical for
// identical inputs, spec, templates and binary, whatever the thread count;
// Build is identical between runs of the same binary; Volatile differs on
// every run.
type Manifest struct {
	Format      string `json:"format"`
	Experiment  string `json:"experiment"`
	NominalDate string `json:"nominal_date"`
	// DateFromFlag is true when the nominal date was given (--date): the
	// window was cut at it and later partitions were not read. False means
	// the date is the window's last day and every matching file was read.
	DateFromFlag bool                    `json:"date_from_flag"`
	Spec         json.RawMessage         `json:"spec"`
	SpecSHA256   string                  `json:"spec_sha256"`
	Templates    []engine.TemplateRecord `json:"templates"`
	Inputs       []intake.InputFile      `json:"inputs"`
	InputDigest  string                  `json:"input_digest"`
	DuckDB       DuckDBInfo              `json:"duckdb"`
	Statistics   analysis.StatisticsInfo `json:"statistics"`
	// Effective holds the settings in effect that the spec may not spell
	// out (defaults, template behaviour); derived, so not in SpecSHA256.
	Effective *Effective `json:"effective,omitempty"`
	// Criteria is the decision-relevant part of the spec (analysis/criteria.go),
	// and CriteriaHistory what the earlier nights' manifests of the
	// window said of theirs, as this run read them.
	Criteria json.RawMessage `json:"criteria"`
	// MetricDefinitions are the metric-library files the spec's refs
	// resolved to, with their SHA-256 (expspec/metriclib.go).
	MetricDefinitions []expspec.MetricDefinitionRecord `json:"metric_definitions,omitempty"`
	CriteriaHistory   *analysis.CriteriaHistory        `json:"criteria_history"`
	Privacy           PrivacyInfo                      `json:"privacy"`
	Checks            []analysis.Check                 `json:"checks"`
	// Baseline is the previous night's run the volume check used, if any.
	Baseline *analysis.Baseline `json:"previous_night,omitempty"`
	// SeriesHistory is the earlier nights the time series read (each
	// results.csv by SHA-256) and those it excluded; absent when no earlier
	// night had a committed run. A replay reads exactly these again.
	SeriesHistory *analysis.SeriesHistory `json:"series_history,omitempty"`
	// Interactions records the interaction partners (interactions.go):
	// each tested partner's resolved spec, which a replay reads back.
	Interactions *InteractionsRecord `json:"interactions,omitempty"`
	Outputs      []diskio.OutputFile `json:"outputs"`
	Build        *BuildInfo          `json:"build,omitempty"`
	Volatile     *Volatile           `json:"volatile,omitempty"`
}

// DuckDBInfo records the engine version and the settings that can change a
// result. Thread count, memory limit and spill directory cannot, and are in
// Volatile.Execution.
type DuckDBInfo struct {
	Version  string           `json:"version"`
	Settings []engine.Setting `json:"settings"`
}

// BuildInfo identifies the binary that produced a run. ExecutableSHA256
// is always present, whatever the build recorded (go run, -buildvcs=false,
// a container build without .git): two runs with the same executable hash
// ran the same code. Version is the release stamp when the build set one
// (-ldflags -X ...pipeline/publish.stampedVersion=v1.2.3, `make build VERSION=...`),
// else the module version Go recorded.
type BuildInfo struct {
	Module           string   `json:"module"`
	Version          string   `json:"version"`
	Revision         string   `json:"vcs_revision"`
	Modified         bool     `json:"vcs_modified"`
	GoVersion        string   `json:"go_version"`
	GOOS             string   `json:"goos"`
	GOARCH           string   `json:"goarch"`
	ExecutableSHA256 string   `json:"executable_sha256,omitempty"`
	Dependencies     []string `json:"dependencies,omitempty"` // "path version" of every module linked in
}

// CodeID is the short identity of the code: the stamped version or VCS
// revision when there is one, and always the executable's hash.
func (b BuildInfo) CodeID() string {
	id := "sha256:" + short16(b.ExecutableSHA256)
	if b.ExecutableSHA256 == "" {
		id = "sha256:unknown"
	}
	switch {
	case b.Version != "" && b.Version != "(devel)":
		return b.Version + " " + id
	case b.Revision != "" && b.Revision != "unknown":
		return RevisionLabel(b) + " " + id
	}
	return id
}

func short16(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// Volatile holds what changes on every run.
type Volatile struct {
	RunID      string           `json:"run_id"`
	ParentRun  string           `json:"parent_run,omitempty"`
	StartedAt  string           `json:"started_at,omitempty"`  // private runs: restricted record only
	FinishedAt string           `json:"finished_at,omitempty"` // private runs: restricted record only
	Phases     []engine.Phase   `json:"phases,omitempty"`      // private runs: restricted record only
	Execution  []engine.Setting `json:"execution_settings"`
	SpecFile   string           `json:"spec_file"`
	Scan       *engine.Scan     `json:"scan,omitempty"`
	// Ledger is the privacy ledger after this run (private runs only).
	Ledger *LedgerState `json:"privacy_ledger,omitempty"`
	// Incremental is, for a run asked for with --incremental (exact specs),
	// how the night ran: "incremental" (from the host's incremental state)
	// or "full: <why>". A replay that differs from an incremental night
	// names the state as the cause.
	Incremental string `json:"incremental,omitempty"`
}

// Stable returns the manifest without Build and Volatile: the part that a
// golden file pins and that identical runs reproduce byte for byte.
func (m Manifest) Stable() Manifest {
	m.Build = nil
	m.Volatile = nil
	return m
}

// stampedVersion is set by a release build:
//
//	go build -ldflags "-X github.com/verity-analytics/verity/pipeline/publish.stampedVersion=v1.2.3" ./cmd/verity
var stampedVersion string

var (
	exeOnce sync.Once
	exeHash string
)

// executableSHA256 hashes the running executable once per process. It is
// empty only when the file cannot be read (then the manifest says so by
// its absence, and replay cannot match the code by hash).
func executableSHA256() string {
	exeOnce.Do(func() {
		path, err := os.Executable()
		if err != nil {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return
		}
		exeHash = hex.EncodeToString(h.Sum(nil))
	})
	return exeHash
}

// CurrentBuild reads the running binary's build information.
func CurrentBuild() BuildInfo {
	b := BuildInfo{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	b.ExecutableSHA256 = executableSHA256()
	if info, ok := debug.ReadBuildInfo(); ok {
		b.Module = info.Main.Path
		if info.Main.Version != "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
		for _, d := range info.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			b.Dependencies = append(b.Dependencies, d.Path+" "+d.Version)
		}
	}
	if stampedVersion != "" {
		b.Version = stampedVersion
	}
	return b
}

// Effective records every setting a run applied that the spec may not
// spell out: defaults of the code (alpha, correction, power, gates) and of
// the pinned template versions (a conversion window), the clamps each
// value passes through, and where the run stands in the design. It is
// derived from the resolved spec, its pins and the nominal date, so a
// replay recomputes it; it is not part of the spec (spec_sha256) and not
// part of the noise derivation, which is why adding it changed neither.
type Effective struct {
	// Horizon: the window analysed against the planned one.
	Horizon analysis.Horizon `json:"horizon"`
	// Design: the interval type and the statistical levels.
	Design EffectiveDesign `json:"design"`
	// Correction: the multiple-testing correction and its family; every
	// other comparison is nominal (its p-value is not corrected).
	Correction EffectiveCorrection `json:"correction"`
	// Metrics, in spec order.
	Metrics []EffectiveMetric `json:"metrics"`
	// Gates: every data-quality check's thresholds and whether the spec
	// set them or they are the defaults.
	Gates []EffectiveGate `json:"quality_gates"`
	// Engine: the Bayesian engine's settings in effect (omitted for the
	// frequentist default, so that earlier manifests keep their bytes).
	Engine *EffectiveEngine `json:"engine,omitempty"`
}

// EffectiveEngine is the Bayesian engine in effect, defaults included.
type EffectiveEngine struct {
	Name          string  `json:"name"` // bayesian
	Model         string  `json:"model"`
	CredibleLevel float64 `json:"credible_level"`
	ChanceToWin   float64 `json:"chance_to_win"`
	MaxRisk       float64 `json:"max_risk"` // 0: not used
	Scale         string  `json:"scale"`
	DefaultPrior  string  `json:"default_prior"`
	Horizon       string  `json:"horizon"`
	Correction    string  `json:"correction"`
}

// EffectiveTest is a metric's hypothesis test in effect, defaults
// included (specs that state a hypothesis for some metric).
type EffectiveTest struct {
	Test        string  `json:"test"` // two-sided, superiority or non_inferiority
	Alternative string  `json:"alternative"`
	Scale       string  `json:"scale"`
	NullValue   float64 `json:"null_value"`
	Alpha       float64 `json:"alpha"`
	Power       float64 `json:"power"`
	Words       string  `json:"words"`
}

// EffectiveDesign is the statistical design in effect.
type EffectiveDesign struct {
	Interval           string  `json:"interval"` // fixed_horizon or always_valid
	NStar              float64 `json:"n_star,omitempty"`
	Alpha              float64 `json:"alpha"`
	CILevel            float64 `json:"ci_level"`
	Power              float64 `json:"power"`
	MaxRelativeMDE     float64 `json:"max_relative_mde"`
	SRMThreshold       float64 `json:"srm_threshold"`
	SRMCohorts         string  `json:"srm_cohorts"`
	FixedPointDecimals int     `json:"fixed_point_decimals"`
	CUPEDLookbackDays  int     `json:"cuped_lookback_days,omitempty"`
}

// EffectiveCorrection is the correction and the comparisons it covers.
type EffectiveCorrection struct {
	Method string `json:"method"` // holm, bh or none
	Scope  string `json:"scope"`  // overall or cohorts
	Family string `json:"family"` // in words
	// Nominal says which comparisons are not corrected.
	Nominal string `json:"nominal"`
}

// EffectiveMetric is how one metric was computed.
type EffectiveMetric struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Role  string `json:"role"`
	Event string `json:"event"`
	// AttributionHours is the conversion window after each unit's
	// exposure; nil when events count until the window ends.
	AttributionHours *int `json:"attribution_hours"`
	// Attribution says the same in words, with its source.
	Attribution string `json:"attribution"`
	// Clamp is the per-unit bounds of the value (a proportion is 0 or 1).
	Clamp string `json:"clamp"`
	// Denominator, for ratios: its event, aggregate and clamp.
	Denominator string `json:"denominator,omitempty"`
	// Covariate, with CUPED: what the pre-exposure covariate is.
	Covariate string `json:"covariate,omitempty"`
	// Prior, under the Bayesian engine: the metric's prior and its source.
	Prior string `json:"prior,omitempty"`
	// Test, when some metric of the spec states a hypothesis: this
	// metric's test (the two-sided default included).
	Test *EffectiveTest `json:"test,omitempty"`
	// VarianceReduction, when the metric lists variance-reduced
	// estimates: each method with its estimator and settings in words.
	VarianceReduction []string `json:"variance_reduction,omitempty"`
	// Quantile, for a quantile metric: its level and method in words.
	Quantile string `json:"quantile,omitempty"`
	// Cap, for a percentile-capped metric: the rule in words (the
	// night's value is in decisions.json → caps).
	Cap string `json:"cap,omitempty"`
}

// EffectiveGate is one data-quality check's thresholds in effect.
type EffectiveGate struct {
	Name   string  `json:"name"`
	Warn   float64 `json:"warn"`
	Block  float64 `json:"block"`
	Source string  `json:"source"` // "default" or "spec"
}

// hasConversionWindow reports whether the pinned unit_metrics version
// counts events only within a conversion window after exposure.
func hasConversionWindow(spec *expspec.Spec) bool {
	v := spec.Templates["unit_metrics"]
	return v == "v3" || v == "v4" || v == "v5"
}

// attributionHours is a metric's conversion window in hours, nil when its
// events count until the window end, and how it came about.
func attributionHours(spec *expspec.Spec, m expspec.Metric) (*int, string) {
	um := "unit_metrics@" + spec.Templates["unit_metrics"]
	if !hasConversionWindow(spec) {
		return nil, "until the window end (" + um + " has no conversion window)"
	}
	h := m.AttributionHours
	src := "attribution_hours in the spec"
	if h == 0 {
		h = engine.UnitMetricsV3DefaultAttributionHours
		src = "the default of " + um + "; set attribution_hours to change it"
	}
	start, end := spec.Window.Bounds()
	note := ""
	if time.Duration(h)*time.Hour >= spec.Window.Planned().Sub(start) {
		note = ", at least the window's length: every event until the window end counts"
	} else if time.Duration(h)*time.Hour < end.Sub(start) {
		note = ", shorter than the window: later events are counted apart (event_after_attribution)"
	}
	return &h, fmt.Sprintf("%d h after exposure (%s)%s", h, src, note)
}

func clampText(c *expspec.Clamp) string {
	return "[" + analysis.FormatFloat(c.Lower) + ", " + analysis.FormatFloat(c.Upper) + "] per unit"
}

// EffectiveOf derives the effective settings of a resolved spec.
func EffectiveOf(spec *expspec.Spec) *Effective {
	st := spec.Statistics
	e := &Effective{
		Horizon: analysis.HorizonOf(spec),
		Design: EffectiveDesign{
			Interval: "fixed_horizon", Alpha: st.Alpha, CILevel: 1 - st.Alpha, Power: st.Power,
			MaxRelativeMDE: st.MaxRelativeMDE, SRMThreshold: st.SRMThreshold,
			SRMCohorts:         "(all) raw; each persona cohort Bonferroni-adjusted across cohorts",
			FixedPointDecimals: *st.FixedPointDecimals,
		},
		Correction: EffectiveCorrection{Method: st.Correction, Scope: st.CorrectionScope},
	}
	if st.Sequential != nil {
		e.Design.Interval, e.Design.NStar = "always_valid", st.Sequential.NStar
	}
	if st.CUPED != nil {
		e.Design.CUPEDLookbackDays = st.CUPED.LookbackDays
	}
	e.Correction.Family, e.Correction.Nominal = correctionFamily(spec)
	for _, m := range spec.Metrics {
		h, words := attributionHours(spec, m)
		em := EffectiveMetric{Name: m.Name, Kind: m.Kind, Role: m.Role, Event: m.Event, AttributionHours: h, Attribution: words,
			Clamp: "0 or 1 (converted or not)"}
		if m.Clamp != nil {
			em.Clamp = clampText(m.Clamp)
		}
		if m.Cap != nil {
			em.Cap = fmt.Sprintf("per-unit values capped at their %s (level %s, definition 1) over every arm of cohort (all) pooled, after the clamp; one cap per night for every cohort (decisions.json → caps)",
				expspec.QuantileLabel(m.Cap.UpperQuantile), analysis.FormatFloat(m.Cap.UpperQuantile))
		}
		if m.EventLevel() {
			em.Kind = analysis.EventQuantileKind
			em.Clamp = "[" + analysis.FormatFloat(m.Clamp.Lower) + ", " + analysis.FormatFloat(m.Clamp.Upper) + "] per event"
			em.Quantile = fmt.Sprintf("%s (level %s) of the events of %q over all of an arm's attributed events, each event's own value (NULL counts as 1) clamped (definition 1 on the pooled events); %s",
				expspec.QuantileLabel(m.Level), analysis.FormatFloat(m.Level), m.Event, analysis.EventQuantileMethod)
		} else if m.Kind == expspec.KindQuantile {
			em.Quantile = fmt.Sprintf("%s (level %s) of the per-unit %s of %q over units (definition 1: x_(⌈n·level⌉)); %s",
				expspec.QuantileLabel(m.Level), analysis.FormatFloat(m.Level), m.Aggregate, m.Event, analysis.QuantileMethod)
		}
		if d := m.Denominator; d != nil {
			em.Denominator = d.Aggregate + " of " + strconv.Quote(d.Event) + ", " + clampText(d.Clamp) + ", same conversion window"
		}
		if st.CUPED != nil {
			em.Covariate = fmt.Sprintf("the same value over the %d days before exposure, clamped like it", st.CUPED.LookbackDays)
		}
		if spec.IsBayesian() {
			src := "statistics.bayesian.prior"
			if m.Prior != nil {
				src = "the metric's prior"
			}
			em.Prior = analysis.PriorWords(spec.PriorOf(m)) + " (" + src + ")"
		}
		if spec.HasHypotheses() {
			em.Test = effectiveTest(spec, m)
		}
		em.VarianceReduction = analysis.VarianceReductionWords(spec, m)
		e.Metrics = append(e.Metrics, em)
	}
	if spec.IsBayesian() {
		b := st.Bayesian
		e.Engine = &EffectiveEngine{Name: expspec.EngineBayesian,
			Model:         "normal likelihood of the effect with a flat or normal prior (gbstats 0.8.0 EffectBayesianABTest); relative effect by the delta method",
			CredibleLevel: 1 - st.Alpha, ChanceToWin: b.ChanceToWin, MaxRisk: b.MaxRisk, Scale: b.Scale,
			DefaultPrior: analysis.PriorWords(*b.Prior),
			Horizon:      "decides at the planned end only (in_progress before it)",
			Correction:   "none: posterior probabilities are not corrected; the frequentist columns keep " + st.Correction,
		}
	}
	for _, g := range expspec.GateDefaults {
		w, b := spec.Gate(g.Name)
		src := "default"
		if _, ok := spec.Quality[g.Name]; ok {
			src = "spec"
		}
		e.Gates = append(e.Gates, EffectiveGate{Name: g.Name, Warn: w, Block: b, Source: src})
	}
	return e
}

// correctionFamily says which comparisons the correction covers and which
// are nominal.
func correctionFamily(spec *expspec.Spec) (family, nominal string) {
	st := spec.Statistics
	if st.Correction == "none" {
		return "none: no correction", "every comparison (p_value_adjusted equals p_value for goals)"
	}
	family = "goal metrics × treatments in cohort (all)"
	nominal = "persona cohorts, secondary metrics and guardrails"
	if st.CorrectionScope == "cohorts" {
		family = "goal metrics × treatments in every cohort"
		nominal = "secondary metrics and guardrails"
	}
	return family, nominal
}

// AnnotateRows writes the effective settings each result row rests on:
// its correction ("nominal" outside the correction family) and its
// conversion window (nil when every event until the window end counts:
// no conversion window, or one at least as long as the data analysed).
func AnnotateRows(spec *expspec.Spec, rows []analysis.ResultRow) {
	hours := map[string]*int64{}
	start, end := spec.Window.Bounds()
	for _, m := range spec.Metrics {
		// A window at least as long as the data analysed counts every
		// event until the window end, as templates without one do.
		if h, _ := attributionHours(spec, m); h != nil && time.Duration(*h)*time.Hour < end.Sub(start) {
			v := int64(*h)
			hours[m.Name] = &v
		}
	}
	st := spec.Statistics
	for i := range rows {
		r := &rows[i]
		r.AttributionHours = hours[r.Metric]
		r.Correction = "nominal"
		if r.Role == "goal" && (r.Cohort == expspec.AllCohort || st.CorrectionScope == "cohorts") {
			r.Correction = st.Correction
		}
	}
}

// effectiveTest is metric m's test in effect: its own hypothesis, or the
// two-sided test of no effect; a guardrail's is its non-inferiority rule.
func effectiveTest(spec *expspec.Spec, m expspec.Metric) *EffectiveTest {
	t := &EffectiveTest{Test: "two-sided", Alternative: expspec.AltTwoSided, Scale: "absolute",
		Alpha: spec.MetricAlpha(m), Power: spec.MetricPower(m)}
	src := "the default"
	if h := m.Hypothesis; h != nil {
		src = "the metric's hypothesis"
		t.Alternative = h.Alternative
		if h.Relative {
			t.Scale = "relative"
		}
		if m.Role == "goal" && h.Test != "" {
			t.Test = h.Test
			t.NullValue = h.Margin
			if h.Test == expspec.TestNonInferiority {
				t.NullValue = -h.Margin
			}
			if m.Direction == "decrease" {
				t.NullValue = -t.NullValue
			}
		}
	}
	if m.Role == "guardrail" {
		t.Test = "non_inferiority"
		if m.Guardrail.Relative {
			t.Scale = "relative"
		}
		t.NullValue = m.Guardrail.Margin
		if m.Guardrail.Harmful == "decrease" {
			t.NullValue = -t.NullValue
		}
		if t.Alternative == expspec.AltTwoSided {
			t.Words = fmt.Sprintf("guardrail non-inferiority on the %s effect with margin %s, judged on the two-sided %s%% interval (each bound a one-sided test at α/2 = %s); power %s (%s)",
				t.Scale, analysis.FormatFloat(t.NullValue), analysis.FormatFloat((1-t.Alpha)*100), analysis.FormatFloat(t.Alpha/2), analysis.FormatFloat(t.Power), src)
			return t
		}
	}
	t.Words = fmt.Sprintf("%s test, alternative %s, on the %s effect, null value %s, α %s, power %s (%s)",
		t.Test, t.Alternative, t.Scale, analysis.FormatFloat(t.NullValue), analysis.FormatFloat(t.Alpha), analysis.FormatFloat(t.Power), src)
	return t
}

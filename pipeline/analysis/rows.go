package analysis

import (
	"math"
	"strconv"
)

// ResultRow is one row of results.csv and results.parquet: one cohort ×
// metric × treatment-versus-control comparison. Optional numbers are nil
// where they are undefined (Status says why); they are written as an empty
// CSV field and a Parquet NULL, never as NaN. The columns are documented in
// README.md.
type ResultRow struct {
	Experiment     string   `parquet:"experiment"`
	Cohort         string   `parquet:"cohort"`
	Metric         string   `parquet:"metric"`
	Kind           string   `parquet:"kind"`
	Role           string   `parquet:"role"`
	Variant        string   `parquet:"variant"`
	Control        string   `parquet:"control"`
	NControl       int64    `parquet:"n_control"`
	NVariant       int64    `parquet:"n_variant"`
	MeanControl    *float64 `parquet:"mean_control,optional"`
	MeanVariant    *float64 `parquet:"mean_variant,optional"`
	SDControl      *float64 `parquet:"sd_control,optional"`
	SDVariant      *float64 `parquet:"sd_variant,optional"`
	AbsEffect      *float64 `parquet:"abs_effect,optional"`
	AbsCILow       *float64 `parquet:"abs_ci_low,optional"`
	AbsCIHigh      *float64 `parquet:"abs_ci_high,optional"`
	RelEffect      *float64 `parquet:"rel_effect,optional"`
	RelCILow       *float64 `parquet:"rel_ci_low,optional"`
	RelCIHigh      *float64 `parquet:"rel_ci_high,optional"`
	DF             *float64 `parquet:"df,optional"`
	PValue         *float64 `parquet:"p_value,optional"`
	PValueAdjusted *float64 `parquet:"p_value_adjusted,optional"`
	AdjCILow       *float64 `parquet:"adj_ci_low,optional"`
	AdjCIHigh      *float64 `parquet:"adj_ci_high,optional"`
	// Correction is the multiple-testing correction of the row's family
	// (holm, bh or none), or "nominal" for a row outside the family, whose
	// p-value is not corrected.
	Correction string  `parquet:"correction"`
	CILevel    float64 `parquet:"ci_level"`
	Interval   string  `parquet:"interval"`
	// AttributionHours is the conversion window in effect; nil when every
	// event until the window end counts (no conversion window, or one at
	// least as long as the window analysed).
	AttributionHours *int64   `parquet:"attribution_hours,optional"`
	CUPEDTheta       *float64 `parquet:"cuped_theta,optional"`
	MDEAbs           *float64 `parquet:"mde_abs,optional"`
	MDERel           *float64 `parquet:"mde_rel,optional"`
	Underpowered     bool     `parquet:"underpowered"`
	SRMPValue        *float64 `parquet:"srm_p_value,optional"`
	SRM              bool     `parquet:"srm"`
	Private          bool     `parquet:"private"`
	NoiseSDN         *float64 `parquet:"noise_sd_n,optional"`
	NoiseSDSum       *float64 `parquet:"noise_sd_sum,optional"`
	CollapsedFrom    string   `parquet:"collapsed_from"`
	Status           string   `parquet:"status"`
	// Name is the spec's output name (name:, default the experiment);
	// NominalDate and SpecSHA256 identify the night and the spec, so that
	// nightly outputs stack without parsing paths. NominalDate is a Parquet
	// DATE (days since 1970-01-01) and YYYY-MM-DD in the CSV. They come
	// last, so that the earlier columns keep their positions.
	Name        string `parquet:"name"`
	NominalDate int32  `parquet:"nominal_date,date"`
	SpecSHA256  string `parquet:"spec_sha256"`
	// Ext holds the columns of the extended layout (RowExt), written only
	// for specs that use the Bayesian engine or a metric hypothesis; nil
	// otherwise, so that every other spec keeps its results bytes.
	Ext *RowExt `parquet:"-"`
	// Quantile is a quantile metric's row of quantiles.csv (nil for every
	// other metric): see quantile.go.
	Quantile *QuantileRow `parquet:"-"`
}

// RowExt is the extended layout's extra columns, after spec_sha256 (so
// that every earlier column keeps its position). The Bayesian columns are
// set under the Bayesian engine, the test columns for a metric with a
// hypothesis; the others are empty. Columns are documented in README.md.
type RowExt struct {
	// Engine is the engine that decides: frequentist or bayesian.
	Engine string `parquet:"engine"`
	// Prior names the prior in words ("flat", "normal(mean 0, sd 0.3) on
	// the relative effect"); CredibleLevel is 1 − statistics.alpha.
	Prior         string   `parquet:"prior"`
	CredibleLevel *float64 `parquet:"credible_level,optional"`
	// Posterior mean and sd of the absolute and relative effect, and
	// their equal-tailed credible intervals.
	PostAbsMean *float64 `parquet:"post_abs_mean,optional"`
	PostAbsSD   *float64 `parquet:"post_abs_sd,optional"`
	CredAbsLow  *float64 `parquet:"cred_abs_low,optional"`
	CredAbsHigh *float64 `parquet:"cred_abs_high,optional"`
	PostRelMean *float64 `parquet:"post_rel_mean,optional"`
	PostRelSD   *float64 `parquet:"post_rel_sd,optional"`
	CredRelLow  *float64 `parquet:"cred_rel_low,optional"`
	CredRelHigh *float64 `parquet:"cred_rel_high,optional"`
	// ChanceToBeatControl is the posterior probability (on DecisionScale)
	// that the effect is in the metric's desired direction (a goal's
	// direction, away from a guardrail's harm, up for a secondary metric);
	// RiskControl and RiskTreatment the expected loss of keeping control
	// and of shipping, on DecisionScale.
	DecisionScale       string   `parquet:"decision_scale"`
	ChanceToBeatControl *float64 `parquet:"chance_to_beat_control,optional"`
	RiskControl         *float64 `parquet:"risk_control,optional"`
	RiskTreatment       *float64 `parquet:"risk_treatment,optional"`
	BayesStatus         string   `parquet:"bayes_status"`
	// The metric's hypothesis test: alternative (two-sided, greater,
	// less), test (two-sided, superiority, non_inferiority), its scale,
	// null value δ₀ (the margin, signed), level, statistic, p-value, the
	// matching confidence set (one side empty for a one-sided test) and
	// whether H₀ is rejected at test_alpha (before any correction).
	Alternative   string   `parquet:"alternative"`
	Test          string   `parquet:"test"`
	TestScale     string   `parquet:"test_scale"`
	NullValue     *float64 `parquet:"null_value,optional"`
	TestAlpha     *float64 `parquet:"test_alpha,optional"`
	TestStatistic *float64 `parquet:"test_statistic,optional"`
	TestPValue    *float64 `parquet:"test_p_value,optional"`
	TestCILow     *float64 `parquet:"test_ci_low,optional"`
	TestCIHigh    *float64 `parquet:"test_ci_high,optional"`
	TestReject    *bool    `parquet:"test_reject,optional"`
	TestStatus    string   `parquet:"test_status"`
}

// ExtendedRow is a result row in the extended layout: ResultRow's
// columns, then RowExt's (Parquet flattens both embedded structs).
type ExtendedRow struct {
	ResultRow
	RowExt
}

// FormatFloat writes a float in Verity's canonical form: the shortest
// decimal that round-trips.
func FormatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// opt returns a pointer to v, or nil when v is not a finite number.
func opt(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Check is one data-quality check: what was observed, its warn and block
// thresholds, and the outcome: pass, warn, block, or skipped (not
// computable, such as a volume change on the first night). Threshold is
// the one that decided the outcome (the warn threshold unless blocked).
type Check struct {
	Name      string  `json:"name"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	Warn      float64 `json:"warn"`
	Block     float64 `json:"block"`
	Rule      string  `json:"rule"`
	Severity  string  `json:"severity"`
	Outcome   string  `json:"outcome"`
	// Detail says what a failing check found, in words (the metrics and
	// events concerned); empty when there is nothing more to say.
	Detail string `json:"detail,omitempty"`
}

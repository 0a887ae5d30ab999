// Package calibrate is Verity's calibration suite: it generates many
// seeded datasets with planted effects (package fixtures, in process),
// analyses them exactly as a nightly run does (pipeline.CalibrationPass,
// the pinned SQL in DuckDB) in every statistical mode, and checks that the
// intervals cover the generator's population truth as often as they say.
//
// # Design
//
// Each dataset has Units units over a 12-day window and four experiments
// that every unit is randomised into independently: two A/A (50/50 and
// 30/70) and two with planted effects (one raising, one lowering the
// metrics). The experiments share the data, so one SQL pass per night
// analyses all four; independent randomisation makes their comparisons
// independent replicates. Every night of the window is analysed (the
// window cut at that night, as `verity run --date` does).
//
// Modes, all from the same exact cells: exact, exact with CUPED, private,
// private with CUPED (fixed horizon), and exact and private always-valid
// (statistics.sequential). Metrics: a proportion, a mean of a sum, a mean
// of a count, and a ratio. Cohorts: (all), the taxonomy leaves (and
// _unclassified) and, in private runs, the parents that small leaves
// collapse into ("a/*", "b/*").
//
// Truth is the generator's population expectation (fixtures.Expectation)
// of each arm, per cohort; the clamps are set so wide that they bind with
// negligible probability (a unit's purchase total above 1000 needs a
// 4.4σ lognormal value, about one unit in 10⁵, and moves a mean by less
// than 10⁻⁴ of its standard error), so the unclamped truth is the clamped
// one. The absolute truth is
// T − C, the relative truth (T − C)/|C|, a ratio's truth E[num]/E[den].
// Personas share the model's parameters, so every cohort's truth is the
// (all) truth (checked, not assumed). Intermediate nights have a truth
// only for the A/A experiments (zero); planted effects are judged at the
// final night.
//
// # What is checked (Judge)
//
// For each fixed-horizon mode × cohort type × metric kind × scale
// (absolute, relative), at the final night: coverage (nominal 1−α), and
// the two one-sided miss rates (α/2 each). For the always-valid modes:
// final-night coverage at least 1−α, and the A/A rate of a significant
// difference on any night at most α. A/A false SRM (any SRM check invalid)
// and false gate blocks at most the SRM threshold and zero respectively
// are reported, and fail only beyond their binomial interval. Each check
// is a binomial proportion with a Clopper–Pearson interval at level
// 1 − 0.01/m, m the number of checks (Bonferroni over a 99% family); a
// check fails when that interval excludes its nominal value (or lies
// wholly on the wrong side, for one-sided checks). Rows without a usable
// interval are counted and reported; an unbounded Fieller relative
// interval counts as covering (the set it stands for is unbounded).
// Fixed-horizon nightly A/A "significant on some night" rates are
// reported, not judged: they show what peeking costs.
//
// # Exact quantiles mode
//
// RunQuantiles (quantiles.go) plants data whose population quantiles are
// known in closed form (a lognormal spend with a 10% mass at zero, ×1.1
// in one experiment's treatment) and judges the quantile metrics'
// difference and relative intervals (p50, p90, p99; (all) and leaves) the
// same way; `verity-calibrate --only-quantiles --quantile-datasets N`
// runs it, calibrate/CALIBRATION-quantiles.md holds its results. The same
// datasets carry means capped at the pooled p90 and p99 (caps.go), judged
// against the capped population means.
package calibrate

// Package stats is Verity's statistics engine: pure computation on per-arm
// moments (no I/O, no SQL), checked against SciPy and statsmodels
// (testdata/reference.py) and calibrated by seeded simulation.
//
// The pipeline computes each arm's moments exactly from integer sufficient
// statistics and passes them as an Arm. Everything here works from those
// moments; distributions come from gonum (called only with validated
// parameters) or, for Student's t, from this package's own accurate
// implementation (gonum's loses precision beyond about 1e5 degrees of
// freedom).
//
// # Estimators
//
// Per arm, with n units, the estimate m and the variance of m are
//
//	mean, proportion:  m = x̄,     Var(m) = s²_x/n + σ²_x̄
//	ratio Σx/Σy:       m = x̄/ȳ,   Var(m) = (s²_x - 2R·s_xy + R²·s²_y)/(n·ȳ²) + (σ²_x̄ + R²σ²_ȳ)/ȳ²,  R = x̄/ȳ
//
// where s² are sample (co)variances and σ² the variance of the
// differential-privacy noise added to the released means (0 without
// privacy). The ratio variance is the delta method (linearisation
// ℓ = (x - R·y)/ȳ), including the covariance term.
//
// # Comparisons (Compare)
//
//	Δ = m_t - m_c,  SE = √(V_c + V_t),
//	ν = SE⁴ / (S_c²/(n_c-1) + S_t²/(n_t-1))        (Welch–Satterthwaite; S = sampling part of V)
//	Δ ± t_{ν,1-α/2}·SE,  p = 2·P(T_ν ≥ |Δ|/SE)
//	L = (m_t - m_c)/|m_c|,  SE_L = √(V_t/m_c² + m_t²V_c/m_c⁴),  Fieller's interval at t_{ν,1-α/2} (see fieller)
//
// Under privacy each s² comes from noisy sums (Arm.MomentNoise) and is
// truncated at zero, so V̂ = N + Ŝ, N the known noise variance of the
// means: the critical value and p-value are those of the pivot
// |Δ̂−Δ|/√V̂ under the fitted noise model (a parametric bootstrap computed
// by quadrature, Ferrando, Wang & Sheldon 2022; see noisyPivot), with ν
// above; Welch's t when the variances carry no noise.
//
// Multi-arm experiments call Compare for each treatment against control.
//
// # CUPED (CUPEDTheta, NewCUPED)
//
//	θ = Σ(n_i-1)·Cov_i(ℓ, c) / Σ(n_i-1)·Var_i(c)          (pooled within arms)
//	m_adj = m - θ(c̄ - c̄*),  s²_adj = s² - 2θ·Cov(ℓ, c) + θ²·Var(c)
//
// with ℓ = x for means and ℓ = (x - R·y)/ȳ (pooled R, ȳ) for ratios, and c̄*
// the pooled covariate mean.
//
// # Sequential testing (Sequential)
//
// Always-valid asymptotic confidence sequences (Waudby-Smith et al. 2021;
// Howard et al. 2021) after t = n_c + n_t units, tuned at N*:
//
//	ρ² = (-2 ln α + ln(-2 ln α + 1))/N*
//	Δ ± SE·√(2(tρ²+1)/(tρ²) · ln(√(tρ²+1)/α))
//	p = min(1, √(tρ²+1)·exp(-(tρ²/(tρ²+1))·z²/2)),  z = Δ/SE
//
// # Sample-ratio mismatch (SRM, SRMCohorts)
//
//	χ² = Σ (O_i - E_i)²/E_i,  df = k-1,  Bonferroni across cohorts;
//	exact binomial test (arm vs rest, Bonferroni over arms) when some E_i < 10;
//	invalid when the adjusted p < 0.001.
//
// # Multiple testing (Holm, BenjaminiHochberg, HolmAlphas, BenjaminiHochbergAlphas)
//
//	Holm:  p̃_(j) = max_{i≤j} min(1, (m-i+1)·p_(i)),  interval α_(j) = α/(m-j+1) if rejected, else α/(m-r)
//	BH:    p̃_(j) = min_{i≥j} min(1, m·p_(i)/i),      interval α·R/m (Benjamini–Yekutieli FCR; α/m if R = 0)
//
// # Power (MDEFromSE, MDE, PowerFor, Underpowered)
//
//	δ solving Φ(δ/SE - z_{1-α/2}) + Φ(-δ/SE - z_{1-α/2}) = power;  underpowered when δ/|m_c| > 5%
//
// # Decisions (Decide)
//
// invalid on SRM; rollback when a guardrail's interval lies entirely beyond
// its non-inferiority margin on the harmful side; ship when a goal metric
// is significantly better (adjusted p ≤ α, right direction) and every
// guardrail of that variant is non-inferior (its interval lies entirely on
// the safe side of the margin); hold otherwise.
//
// # Nearest covariance (NearestCovariance)
//
// Noisy (co)variances are projected onto the nearest positive
// semi-definite matrix with bounded variances (Higham 1988), so that
// delta-method and CUPED variances, quadratic forms of it, are never
// negative.
//
// # Degenerate input
//
// Compare never panics and never returns NaN or ±Inf: zero variance, n < 2,
// missing arms, zero denominators, negative (noisy) variances, NaN or
// infinite input and overflow give a Status with PValue 1. The other
// functions return errors wrapping ErrInvalidInput, ErrDegenerate,
// ErrLength or ErrNoCovariate.
//
// # Bayesian engine (Bayes, EffectPosterior, ExpectedLoss, DecideBayes)
//
// GrowthBook's default (gbstats 0.8.0; see bayes.go): a normal posterior
// for the absolute and the relative effect from Compare's estimates, flat
// or Gaussian prior N(μ₀, σ₀²) on either scale,
//
//	1/v = 1/s² + 1/σ₀²,  m = v·(d/s² + μ₀/σ₀²),   chance to win Φ(m/√v),
//	risk of control E[max(δ,0)] = √v(zΦ(z) + φ(z)),  of treatment E[max(−δ,0)],  z = m/√v,
//
// and a rule on chance-to-win and risk thresholds: ship, rollback, hold.
//
// # Hypotheses (TestHypothesis, Superiority, NonInferiority)
//
// One-sided, margin (δ₀ ≠ 0) and equivalence (TOST) Welch or normal tests
// of the absolute or relative effect (Fieller's test, or the delta
// method's), as statsmodels' ttest_ind(usevar='unequal', value=,
// alternative=) and ttost_ind and R's t.test(mu=, alternative=).
//
// # Planning (PlanSampleSize, ConfidenceSequenceHorizon, DaysRemaining)
//
//	t = K·k²/δ²,  K = (1 − ρ²)(σ_c²/(1−w) + σ_t²/w),  k from Φ(k − c) + Φ(−k − c) = power,
//
// with c = z_{1−α/2} for a fixed horizon and the confidence sequence's
// h(t) for the always-valid design (see plan.go).
//
// # Variance reduction, interactions, anomalies (PostStratify, RegressionAdjust, Interaction, NightlyAnomalies)
//
// Post-stratification τ̂ = Σ w_k(ȳ_kt − ȳ_kc) with Miratrix, Sekhon & Yu's
// (2013) conditional variance; Lin's (2013) interacted regression
// adjustment from each arm's moments of (y, x₁…x_k), Eppo's CUPED++ without
// its ridge penalty; the interaction θ = (ȳ_11 − ȳ_01) − (ȳ_10 − ȳ_00) of
// two experiments (Welch t, or a Wald F test for larger tables) with a
// Benjamini–Hochberg flag rule; night-over-night checks against a weighted
// least-squares prediction, exact Student's t at Alpha/Checks. See
// poststrat.go, regadjust.go, interaction.go and anomaly.go.
//
// # Quantiles and percentile caps
//
// Quantiles and percentile caps: histogram.go, quantile.go, quantileevent.go, quantilegrid.go.
package stats

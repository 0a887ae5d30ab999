package stats

import (
	"fmt"
	"math"
)

// Night-over-night anomaly flags.
//
// A series is one number per night from the experiment's own history: the
// log of an arm's daily unit volume (VolumeNight), or a metric's control
// mean with its standard error. Each night's value x₀ is tested against a
// prediction from the last h usable nights (at most Window; missing nights
// are skipped, and with ExcludeFlagged so are nights already flagged). The
// prediction is the weighted least-squares fit of
//
//	x_j = β₀ (+ β₁·t_j) + e_j,   e_j ~ N(0, κ/w_j) independent,
//
// with w_j = 1/SE_j² when UseSE (the standard errors known up to a common
// over-dispersion factor κ, estimated) and w_j = 1 otherwise (the nights
// exchangeable), a linear trend in the night index t_j when Trend. With
// q = 1 or 2 coefficients,
//
//	κ̂ = Σ w_j (x_j − x̂_j)²/(h − q),   T = (x₀ − x̂₀)/√(κ̂·(1/w₀ + x₀ᵀ(XᵀWX)⁻¹x₀)),
//
// which under the model is exactly Student's t with h − q degrees of
// freedom (the WLS prediction interval; statsmodels'
// WLS(…).get_prediction(…, weights=w₀).se_obs is its denominator). The night
// is flagged when the two-sided p-value is at most Alpha/Checks: the
// false-alarm rate of one check is Alpha/Checks, and of the night's
// family of Checks series (Bonferroni) at most Alpha. Nothing is fitted
// with randomness: the same series gives the same flags.
//
// What it catches and misses. A data gap that halves the volume moves
// log volume by ln 2 ≈ 0.69, many times the night-to-night spread of a
// stable experiment; a logger break that shifts the control mean by k
// standard errors gives T ≈ k/√(1 + 1/h) when the SEs are the only
// noise.
//
// A flagged night stays in later histories by default, so the rate above
// holds for every check, but a large fault widens κ̂ for the next Window
// nights (a second fault soon after is harder to see) and a break that
// persists is absorbed after a few nights: the alert is its onset.
// ExcludeFlagged keeps flagged nights out of later histories, so a
// persistent break stays flagged every night; the price is that a false
// alarm caused by a history that happens to be tight keeps it tight, and
// false alarms cluster: in seeded simulations of 40-night null series
// (defaults otherwise) the rate per check was 0.0135 and 0.0144 at level
// 0.01 with ExcludeFlagged and 0.0101 and 0.0103 without, while the share
// of series with any false alarm was the same. Start a new series at a declared change (a
// ramp of the allocation, a new metric definition). Weekly seasonality
// and a ramp-up beyond a linear trend widen κ̂ (fewer flags, not more);
// nights too close to the start (fewer than MinHistory usable nights
// before them) are not checked.

// Defaults of AnomalyOptions.
const (
	DefaultAnomalyWindow     = 14
	DefaultAnomalyMinHistory = 7
	DefaultAnomalyAlpha      = 0.01
)

// Statuses of an AnomalyCheck.
const (
	AnomalyChecked      = "checked"
	AnomalyMissing      = "missing"       // no value that night
	AnomalyShortHistory = "short history" // fewer than MinHistory usable nights before it
	// AnomalyFlatHistory: the history fits its prediction exactly (κ̂ = 0);
	// the night is flagged when its value differs from the prediction at
	// all, with Statistic 0 and PValue 0.
	AnomalyFlatHistory = "flat history"
)

// AnomalyOptions are the settings of NightlyAnomalies. The zero value means
// every default.
type AnomalyOptions struct {
	// Window is the most past usable nights a prediction uses; zero means
	// DefaultAnomalyWindow.
	Window int
	// MinHistory is the fewest past usable nights a night needs to be
	// checked; zero means DefaultAnomalyMinHistory. At least 3 (4 with
	// Trend), at most Window.
	MinHistory int
	// Alpha is the false-alarm rate of one night's family of Checks series;
	// zero means DefaultAnomalyAlpha.
	Alpha float64
	// Checks is the number of series checked each night in the family
	// (arms × volumes and metrics); each check is at Alpha/Checks. Zero
	// means 1.
	Checks int
	// UseSE weights the past nights by 1/SE²; otherwise they weigh the
	// same and SE is ignored.
	UseSE bool
	// Trend fits a linear trend in the night index.
	Trend bool
	// ExcludeFlagged leaves flagged nights out of later histories (see
	// above for what that costs).
	ExcludeFlagged bool
}

func (o AnomalyOptions) withDefaults() AnomalyOptions {
	if o.Window == 0 {
		o.Window = DefaultAnomalyWindow
	}
	if o.MinHistory == 0 {
		o.MinHistory = min(DefaultAnomalyMinHistory, o.Window)
	}
	if o.Alpha == 0 {
		o.Alpha = DefaultAnomalyAlpha
	}
	if o.Checks == 0 {
		o.Checks = 1
	}
	return o
}

// Validate reports whether the options (after defaults) are usable.
func (o AnomalyOptions) Validate() error {
	o = o.withDefaults()
	q := 1
	if o.Trend {
		q = 2
	}
	switch {
	case o.MinHistory < q+2 || o.Window < o.MinHistory:
		return fmt.Errorf("anomaly: window %d, min history %d (need %d ≤ min history ≤ window): %w", o.Window, o.MinHistory, q+2, ErrInvalidInput)
	case !(o.Alpha > 0 && o.Alpha < 1):
		return fmt.Errorf("anomaly: alpha %v: %w", o.Alpha, ErrInvalidInput)
	case o.Checks < 1:
		return fmt.Errorf("anomaly: %d checks: %w", o.Checks, ErrInvalidInput)
	}
	return nil
}

// Night is one night's value of a series.
type Night struct {
	Value float64
	// SE is the value's standard error; read only when UseSE, and then it
	// must be positive.
	SE float64
	// Missing marks a night without a value (no release): it is reported
	// and skipped.
	Missing bool
}

// VolumeNight returns the night of a unit volume (a count) on the log
// scale, ln(count + ½), with SE = 1/√(count + ½) (Poisson counting noise;
// use it only with UseSE when counting noise dominates, which it rarely
// does for traffic). Adding ½ keeps an empty night finite, and flagged.
func VolumeNight(count float64) (Night, error) {
	if !finite(count) || count < 0 {
		return Night{}, fmt.Errorf("volume %v: %w", count, ErrInvalidInput)
	}
	return Night{Value: math.Log(count + 0.5), SE: 1 / math.Sqrt(count+0.5)}, nil
}

// AnomalyCheck is the check of one night. Every float is finite; the
// prediction fields are zero unless Status is AnomalyChecked or
// AnomalyFlatHistory.
type AnomalyCheck struct {
	Night     int // index in the series
	Status    string
	History   int     // past nights the prediction used
	Predicted float64 // x̂₀
	PredSE    float64 // √(κ̂·(1/w₀ + x₀ᵀ(XᵀWX)⁻¹x₀))
	Statistic float64 // T
	DF        float64 // h − q
	PValue    float64 // two-sided, 1 when not checked
	Level     float64 // Alpha/Checks
	Flagged   bool
}

// NightlyAnomalies checks every night of the series in order (see above)
// and returns one AnomalyCheck per night.
//
// Errors: ErrInvalidInput for bad options; a *CellError (table "night")
// wrapping ErrInvalidInput for a non-missing night with a NaN or infinite
// value, or, with UseSE, a standard error that is not positive and finite.
func NightlyAnomalies(series []Night, opts AnomalyOptions) ([]AnomalyCheck, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	for t, n := range series {
		if n.Missing {
			continue
		}
		if !finite(n.Value) {
			return nil, fmt.Errorf("anomaly: %w", &CellError{Table: "night", Row: t, Col: -1, Err: fmt.Errorf("value %v: %w", n.Value, ErrInvalidInput)})
		}
		if o.UseSE && !(n.SE > 0 && finite(n.SE) && finite(1/(n.SE*n.SE))) {
			return nil, fmt.Errorf("anomaly: %w", &CellError{Table: "night", Row: t, Col: -1, Err: fmt.Errorf("standard error %v: %w", n.SE, ErrInvalidInput)})
		}
	}
	level := o.Alpha / float64(o.Checks)
	out := make([]AnomalyCheck, len(series))
	for t, n := range series {
		c := AnomalyCheck{Night: t, PValue: 1, Level: level}
		var hist []int
		for j := t - 1; j >= 0 && len(hist) < o.Window; j-- {
			if !series[j].Missing && !(o.ExcludeFlagged && out[j].Flagged) {
				hist = append(hist, j)
			}
		}
		c.History = len(hist)
		switch {
		case n.Missing:
			c.Status = AnomalyMissing
		case len(hist) < o.MinHistory:
			c.Status = AnomalyShortHistory
		default:
			var err error
			if c, err = predictNight(c, series, hist, t, o); err != nil {
				return nil, fmt.Errorf("anomaly: %w", &CellError{Table: "night", Row: t, Col: -1, Err: err})
			}
		}
		out[t] = c
	}
	return out, nil
}

// predictNight fits the history and tests night t.
func predictNight(c AnomalyCheck, series []Night, hist []int, t int, o AnomalyOptions) (AnomalyCheck, error) {
	weight := func(j int) float64 {
		if o.UseSE {
			return 1 / (series[j].SE * series[j].SE)
		}
		return 1
	}
	// Centre the night index at its weighted mean, so XᵀWX is diagonal.
	var sw, swt float64
	for _, j := range hist {
		sw += weight(j)
		swt += weight(j) * float64(j)
	}
	tbar := swt / sw
	var swy, swxy, swxx float64
	for _, j := range hist {
		x := float64(j) - tbar
		swy += weight(j) * series[j].Value
		swxy += weight(j) * x * series[j].Value
		swxx += weight(j) * x * x
	}
	b0 := swy / sw
	var b1 float64
	q := 1
	if o.Trend {
		q = 2
		b1 = swxy / swxx
	}
	var rss float64
	for _, j := range hist {
		r := series[j].Value - b0 - b1*(float64(j)-tbar)
		rss += weight(j) * r * r
	}
	x0 := float64(t) - tbar
	c.Predicted = b0 + b1*x0
	c.DF = float64(len(hist) - q)
	kappa := rss / c.DF
	factor := 1/weight(t) + 1/sw
	if o.Trend {
		factor += x0 * x0 / swxx
	}
	c.PredSE = math.Sqrt(kappa * factor)
	if !(finite(c.Predicted) && finite(c.PredSE)) {
		return AnomalyCheck{}, fmt.Errorf("overflow: %w", ErrInvalidInput)
	}
	d := series[t].Value - c.Predicted
	if c.PredSE == 0 {
		c.Status = AnomalyFlatHistory
		c.Flagged = d != 0
		if c.Flagged {
			c.PValue = 0
		}
		return c, nil
	}
	c.Status = AnomalyChecked
	c.Statistic = d / c.PredSE
	if !finite(c.Statistic) {
		return AnomalyCheck{}, fmt.Errorf("overflow: %w", ErrInvalidInput)
	}
	c.PValue = tTwoSidedP(c.Statistic, c.DF)
	c.Flagged = c.PValue <= c.Level
	return c, nil
}

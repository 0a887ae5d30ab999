package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// Reference values: the anomaly sections of testdata/vr_reference.json
// (statsmodels' WLS get_prediction and SciPy's t for single checks at
// relTol; SciPy's noncentral t for the expected detection rates, which
// the simulations below must match within 4.5 binomial standard
// deviations).

type anomalyReference struct {
	Anomaly []struct {
		Name    string
		Series  []Night
		Options AnomalyOptions
		Want    struct {
			Predicted, PredSE, Statistic, DF, PValue float64
			History                                  int
			Flagged                                  bool
		}
	}
	AnomalyPower []struct {
		Name    string
		History int
		Level   float64
		ShiftSD float64 `json:"shift_sd"`
		Power   float64
	} `json:"anomaly_power"`
}

func TestNightlyAnomaliesAgainstReference(t *testing.T) {
	var ref anomalyReference
	loadJSON(t, "testdata/vr_reference.json", &ref)
	if len(ref.Anomaly) == 0 || len(ref.AnomalyPower) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Anomaly {
		t.Run(c.Name, func(t *testing.T) {
			checks, err := NightlyAnomalies(c.Series, c.Options)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range checks[:len(checks)-1] {
				if ch.Flagged || (ch.Status != AnomalyShortHistory && ch.Status != AnomalyMissing) {
					t.Fatalf("night %d: %+v before the checked night", ch.Night, ch)
				}
			}
			got, w := checks[len(checks)-1], c.Want
			if got.Status != AnomalyChecked || got.History != w.History || got.Flagged != w.Flagged {
				t.Errorf("status %q, history %d, flagged %v; want checked, %d, %v", got.Status, got.History, got.Flagged, w.History, w.Flagged)
			}
			checkClose(t, "Predicted", got.Predicted, w.Predicted, w.PredSE)
			checkClose(t, "PredSE", got.PredSE, w.PredSE, 0)
			checkClose(t, "Statistic", got.Statistic, w.Statistic, 1)
			checkClose(t, "DF", got.DF, w.DF, 0)
			checkClose(t, "PValue", got.PValue, w.PValue, 1e-300)
		})
	}
}

// nullSeries fills x with h+1 nights of a series under the model: level
// mu (plus slope·t), noise sd·SE_t.
func nullSeries(rng *rand.Rand, x []Night, mu, slope float64, se func(int) float64) {
	for j := range x {
		s := se(j)
		x[j] = Night{Value: mu + slope*float64(j) + s*rng.NormFloat64(), SE: s}
	}
}

// TestAnomalyFalseAlarmRate: the false-alarm rate of one check is its
// level. Each simulated series has exactly MinHistory = Window = 14 nights
// before the checked one, so the 20,000 checks per configuration are
// independent; each rate must be within 4.5 binomial standard deviations
// (±0.0032) of the level 0.01. The volume configuration is not the
// model's: Poisson counts of lognormal traffic (night-to-night spread
// 10%), checked on the log scale with equal weights.
func TestAnomalyFalseAlarmRate(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const reps, h, level = 20000, 14, 0.01
	rng := rand.New(rand.NewPCG(1405, 9))
	weekday := func(j int) float64 { return []float64{1, 1, 1, 1, 1, 1.5, 1.4}[j%7] }
	one := func(int) float64 { return 1 }
	volumes := func(x []Night) {
		for j := range x {
			lambda := 20000 * math.Exp(0.1*rng.NormFloat64())
			// Poisson by its normal approximation (λ ≈ 20,000), rounded.
			n, err := VolumeNight(math.Max(0, math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
			if err != nil {
				t.Fatal(err)
			}
			x[j] = n
		}
	}
	configs := []struct {
		name string
		opts AnomalyOptions
		fill func([]Night)
	}{
		{"level, equal weights", AnomalyOptions{}, func(x []Night) { nullSeries(rng, x, 5, 0, one) }},
		{"trend, equal weights", AnomalyOptions{Trend: true}, func(x []Night) { nullSeries(rng, x, 5, 0.3, one) }},
		{"level, weekday SEs", AnomalyOptions{UseSE: true}, func(x []Night) { nullSeries(rng, x, 5, 0, weekday) }},
		{"trend, weekday SEs, 5 checks", AnomalyOptions{UseSE: true, Trend: true, Alpha: 0.05, Checks: 5},
			func(x []Night) { nullSeries(rng, x, 5, -0.2, weekday) }},
		{"log volumes, equal weights", AnomalyOptions{}, volumes},
	}
	tol := 4.5 * math.Sqrt(level*(1-level)/reps)
	x := make([]Night, h+1)
	for _, c := range configs {
		c.opts.Window, c.opts.MinHistory = h, h
		flags := 0
		for range reps {
			c.fill(x)
			checks, err := NightlyAnomalies(x, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if checks[h].Status != AnomalyChecked {
				t.Fatalf("%s: last night %+v", c.name, checks[h])
			}
			if checks[h].Flagged {
				flags++
			}
		}
		rate := float64(flags) / reps
		t.Logf("%s: false-alarm rate %.4f (level %v ± %.4f)", c.name, rate, level, tol)
		if math.Abs(rate-level) > tol {
			t.Errorf("%s: false-alarm rate %.4f, want %v ± %.4f", c.name, rate, level, tol)
		}
	}

	// Every night of 3,000 40-night series with the defaults (window 14,
	// at least 7 nights): each check is still exact, but the checks share
	// history, so the binomial band of independent checks does not apply;
	// the rate must be within ±0.002 of the level (ten times the band of
	// 99,000 independent checks would be ±0.0014). ExcludeFlagged makes
	// false alarms cluster (see anomaly.go): its rate is logged and must
	// stay below 2× the level.
	for _, exclude := range []bool{false, true} {
		var n, f int
		y := make([]Night, 40)
		for range 3000 {
			nullSeries(rng, y, 0, 0, one)
			checks, err := NightlyAnomalies(y, AnomalyOptions{ExcludeFlagged: exclude})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range checks {
				if c.Status == AnomalyChecked {
					n++
					if c.Flagged {
						f++
					}
				}
			}
		}
		rate := float64(f) / float64(n)
		t.Logf("every night, defaults, ExcludeFlagged %v: %d of %d checks flagged, rate %.4f (level %v)", exclude, f, n, rate, level)
		if (!exclude && math.Abs(rate-level) > 0.002) || (exclude && rate > 2*level) {
			t.Errorf("every night, ExcludeFlagged %v: false-alarm rate %.4f, level %v", exclude, rate, level)
		}
	}
}

// TestAnomalyDetection: planted faults on the last night of a stable
// series are flagged at the rate the noncentral t predicts (SciPy, in the
// reference), within 4.5 binomial standard deviations.
func TestAnomalyDetection(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	var ref anomalyReference
	loadJSON(t, "testdata/vr_reference.json", &ref)
	power := map[string]float64{}
	for _, p := range ref.AnomalyPower {
		if p.History != 14 {
			t.Fatalf("%s: history %d, the simulation uses 14", p.Name, p.History)
		}
		power[p.Name] = p.Power
	}
	const reps, h = 4000, 14
	rng := rand.New(rand.NewPCG(99, 14))
	x := make([]Night, h+1)
	cases := []struct {
		ref  string
		opts AnomalyOptions
		fill func([]Night)
	}{
		// A data gap: log volume (night-to-night sd 0.1) drops by ln 2.
		{"volume halved, night-to-night sd 0.1", AnomalyOptions{}, func(x []Night) {
			nullSeries(rng, x, math.Log(50000), 0, func(int) float64 { return 0.1 })
			x[h].Value -= math.Ln2
		}},
		// A logger break: the control mean moves by 5 of its SEs.
		{"logger break of 5 SE", AnomalyOptions{UseSE: true}, func(x []Night) {
			nullSeries(rng, x, 12, 0, func(int) float64 { return 0.3 })
			x[h].Value += 5 * 0.3
		}},
		// The same break of 4 SE among 20 series checked that night.
		{"logger break of 4 SE, 20 checks", AnomalyOptions{UseSE: true, Alpha: 0.05, Checks: 20}, func(x []Night) {
			nullSeries(rng, x, 12, 0, func(int) float64 { return 0.3 })
			x[h].Value -= 4 * 0.3
		}},
	}
	for _, c := range cases {
		want, ok := power[c.ref]
		if !ok {
			t.Fatalf("no reference power for %q", c.ref)
		}
		c.opts.Window, c.opts.MinHistory = h, h
		hits := 0
		for range reps {
			c.fill(x)
			checks, err := NightlyAnomalies(x, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if checks[h].Flagged {
				hits++
			}
		}
		rate := float64(hits) / reps
		tol := 4.5*math.Sqrt(want*(1-want)/reps) + 1e-3
		t.Logf("%s: detected %.4f (noncentral t %.4f ± %.4f)", c.ref, rate, want, tol)
		if math.Abs(rate-want) > tol {
			t.Errorf("%s: detected %.4f, want %.4f ± %.4f", c.ref, rate, want, tol)
		}
	}
}

func TestNightlyAnomaliesBehaviour(t *testing.T) {
	stable := func(n int) []Night {
		x := make([]Night, n)
		for j := range x {
			x[j] = Night{Value: 100 + []float64{0.5, -0.3, 0.1, -0.6, 0.4, 0.2, -0.1}[j%7], SE: 0.5}
		}
		return x
	}
	// A break that persists: its onset is flagged by default; with
	// ExcludeFlagged it stays flagged, flagged nights never entering the
	// history.
	x := stable(20)
	for j := 12; j < 20; j++ {
		x[j].Value += 10
	}
	checks, err := NightlyAnomalies(x, AnomalyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for j, c := range checks[:13] {
		if want := j == 12; c.Flagged != want {
			t.Errorf("default, night %d: flagged %v, want %v (%+v)", j, c.Flagged, want, c)
		}
	}
	checks, err = NightlyAnomalies(x, AnomalyOptions{ExcludeFlagged: true})
	if err != nil {
		t.Fatal(err)
	}
	for j, c := range checks {
		if want := j >= 12; c.Flagged != want {
			t.Errorf("night %d: flagged %v, want %v (%+v)", j, c.Flagged, want, c)
		}
		if j < 7 && c.Status != AnomalyShortHistory {
			t.Errorf("night %d: status %q, want short history", j, c.Status)
		}
	}
	if checks[19].History != 12 || checks[19].DF != 11 {
		t.Errorf("night 19 used %d nights (DF %v), want the 12 before the break", checks[19].History, checks[19].DF)
	}
	// Missing nights are reported and skipped; they do not count.
	x = stable(10)
	x[3] = Night{Missing: true, Value: math.NaN()}
	checks, err = NightlyAnomalies(x, AnomalyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if checks[3].Status != AnomalyMissing || checks[8].Status != AnomalyChecked || checks[7].Status != AnomalyShortHistory {
		t.Errorf("statuses %q %q %q", checks[3].Status, checks[7].Status, checks[8].Status)
	}
	// A flat history: equal values are fine, any change is flagged.
	flat := make([]Night, 9)
	for j := range flat {
		flat[j] = Night{Value: 7}
	}
	checks, _ = NightlyAnomalies(flat, AnomalyOptions{})
	if c := checks[8]; c.Status != AnomalyFlatHistory || c.Flagged || c.PValue != 1 {
		t.Errorf("flat, unchanged: %+v", c)
	}
	flat[8].Value = 7.001
	checks, _ = NightlyAnomalies(flat, AnomalyOptions{})
	if c := checks[8]; c.Status != AnomalyFlatHistory || !c.Flagged || c.PValue != 0 {
		t.Errorf("flat, changed: %+v", c)
	}
	if _, err := json.Marshal(checks); err != nil {
		t.Errorf("does not encode: %v", err)
	}
	// An empty night's volume is finite and flagged.
	vol := make([]Night, 10)
	for j := range vol {
		if vol[j], err = VolumeNight(float64(1000 + 10*(j%3))); err != nil {
			t.Fatal(err)
		}
	}
	if vol[9], err = VolumeNight(0); err != nil {
		t.Fatal(err)
	}
	checks, _ = NightlyAnomalies(vol, AnomalyOptions{})
	if !checks[9].Flagged {
		t.Errorf("empty night not flagged: %+v", checks[9])
	}
}

func TestNightlyAnomaliesHostile(t *testing.T) {
	ok := []Night{{Value: 1, SE: 1}, {Value: 2, SE: 1}, {Value: 1.5, SE: 1}, {Value: 1.2, SE: 1}}
	for _, c := range []struct {
		name string
		opts AnomalyOptions
	}{
		{"window below min history", AnomalyOptions{Window: 5, MinHistory: 6}},
		{"min history 2", AnomalyOptions{MinHistory: 2}},
		{"trend needs 4", AnomalyOptions{MinHistory: 3, Trend: true}},
		{"alpha 1", AnomalyOptions{Alpha: 1}},
		{"negative checks", AnomalyOptions{Checks: -1}},
		{"negative window", AnomalyOptions{Window: -3}},
	} {
		if _, err := NightlyAnomalies(ok, c.opts); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrInvalidInput", c.name, err)
		}
	}
	for _, c := range []struct {
		name   string
		series []Night
		opts   AnomalyOptions
		row    int
	}{
		{"NaN value", []Night{{Value: 1}, {Value: math.NaN()}}, AnomalyOptions{}, 1},
		{"infinite value", []Night{{Value: math.Inf(1)}}, AnomalyOptions{}, 0},
		{"zero SE", []Night{{Value: 1, SE: 1}, {Value: 1, SE: 0}}, AnomalyOptions{UseSE: true}, 1},
		{"NaN SE", []Night{{Value: 1, SE: math.NaN()}}, AnomalyOptions{UseSE: true}, 0},
		{"tiny SE", []Night{{Value: 1, SE: 1e-200}}, AnomalyOptions{UseSE: true}, 0},
	} {
		_, err := NightlyAnomalies(c.series, c.opts)
		var ce *CellError
		if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &ce) || ce.Row != c.row || ce.Table != "night" {
			t.Errorf("%s: %v, want a night %d CellError wrapping ErrInvalidInput", c.name, err, c.row)
		}
	}
	// Zero SEs are fine without UseSE, and an empty series has no checks.
	if _, err := NightlyAnomalies([]Night{{Value: 1}}, AnomalyOptions{}); err != nil {
		t.Errorf("zero SE without UseSE: %v", err)
	}
	if got, err := NightlyAnomalies(nil, AnomalyOptions{}); err != nil || len(got) != 0 {
		t.Errorf("empty series: %v, %v", got, err)
	}
	for _, v := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := VolumeNight(v); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("VolumeNight(%v): %v", v, err)
		}
	}
	// Overflowing values give an error, not a NaN.
	big := make([]Night, 8)
	for j := range big {
		big[j] = Night{Value: math.MaxFloat64 * float64(1-2*(j%2)) / 2}
	}
	if _, err := NightlyAnomalies(big, AnomalyOptions{}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("overflow: %v", err)
	}
}

package stats

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

// allFinite fails unless every float64 field of c is finite.
func allFinite(t *testing.T, c Comparison) {
	t.Helper()
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Float64 && !finite(f.Float()) {
			t.Errorf("%s = %v, want finite", v.Type().Field(i).Name, f.Float())
		}
	}
	if _, err := json.Marshal(c); err != nil {
		t.Errorf("json.Marshal: %v", err)
	}
}

func TestCompareDegenerate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	ok := Arm{N: 100, Mean: 5, Var: 4}
	okRatio := Arm{N: 100, Mean: 2, Var: 4, DenMean: 4, DenVar: 9, CovXY: 3}
	withCov := func(a Arm) Arm {
		a.HasCovariate, a.CovMean, a.CovVar, a.CovXC = true, 5, 4, 2
		return a
	}
	cu := &CUPED{Theta: 0.5, CovariateMean: 5}
	tests := []struct {
		name           string
		control, treat Arm
		kind           Kind
		opts           Options
		status         string
		diff           float64 // checked when the status keeps Diff
	}{
		{"all-zero arms", Arm{N: 100}, Arm{N: 120}, Proportion, Options{}, StatusZeroVariance, 0},
		{"constant arms differ", Arm{N: 100, Mean: 0}, Arm{N: 100, Mean: 1}, Proportion, Options{}, StatusZeroVariance, 1},
		{"zero variance sequential", Arm{N: 50, Mean: 2}, Arm{N: 50, Mean: 2}, Mean, Options{Sequential: &Sequential{NStar: 100}}, StatusZeroVariance, 0},
		{"control n=1", Arm{N: 1, Mean: 3}, ok, Mean, Options{}, StatusTooFew, 2},
		{"treatment n=1.5 (noisy)", ok, Arm{N: 1.5, Mean: 3}, Mean, Options{}, StatusTooFew, -2},
		{"ratio n=1 reports the ratio", okRatio, Arm{N: 1, Mean: 3, DenMean: 2}, Ratio, Options{}, StatusTooFew, 1},
		{"n=1 under CUPED reports the adjusted mean", withCov(ok), Arm{N: 1, Mean: 7, HasCovariate: true, CovMean: 7}, Mean, Options{CUPED: cu}, StatusTooFew, 1},
		{"missing control", Arm{}, ok, Mean, Options{}, StatusMissingArm, 0},
		{"missing treatment", ok, Arm{}, Ratio, Options{}, StatusMissingArm, 0},
		{"missing beats n<2", Arm{N: 1}, Arm{}, Mean, Options{}, StatusMissingArm, 0},
		{"negative n", Arm{N: -5, Mean: 1, Var: 1}, ok, Mean, Options{}, StatusInvalidInput, 0},
		{"NaN n", Arm{N: nan, Mean: 1, Var: 1}, ok, Mean, Options{}, StatusInvalidInput, 0},
		{"NaN mean", Arm{N: 10, Mean: nan, Var: 1}, ok, Mean, Options{}, StatusInvalidInput, 0},
		{"Inf variance", ok, Arm{N: 10, Mean: 1, Var: inf}, Mean, Options{}, StatusInvalidInput, 0},
		{"NaN noise", ok, Arm{N: 10, Mean: 1, Var: 1, NoiseVarMean: nan}, Mean, Options{}, StatusInvalidInput, 0},
		{"NaN ratio denominator", okRatio, Arm{N: 10, Mean: 1, Var: 1, DenMean: nan}, Ratio, Options{}, StatusInvalidInput, 0},
		{"NaN covariate under CUPED", withCov(ok), Arm{N: 100, Mean: 5, Var: 4, HasCovariate: true, CovMean: nan}, Mean, Options{CUPED: cu}, StatusInvalidInput, 0},
		{"negative variance (noisy moments)", Arm{N: 100, Mean: 5, Var: -0.1}, ok, Mean, Options{}, StatusNegativeVariance, 0},
		{"negative noise variance", Arm{N: 100, Mean: 5, Var: 1, NoiseVarMean: -1}, ok, Mean, Options{}, StatusNegativeVariance, 0},
		{"ratio covariance inconsistent", okRatio, Arm{N: 100, Mean: 1, Var: 1, DenMean: 1, DenVar: 1, CovXY: 5}, Ratio, Options{}, StatusNegativeVariance, 0.5},
		{"ratio zero denominator", okRatio, Arm{N: 100, Mean: 0, Var: 0, DenMean: 0}, Ratio, Options{}, StatusZeroDenominator, 0},
		{"CUPED variance negative", withCov(ok), Arm{N: 100, Mean: 5, Var: 1, HasCovariate: true, CovMean: 5, CovVar: 1, CovXC: 3}, Mean, Options{CUPED: &CUPED{Theta: 1, CovariateMean: 5}}, StatusNegativeVariance, 0},
		{"signed metric with zero control mean", Arm{N: 100, Mean: 0, Var: 4}, Arm{N: 100, Mean: 1, Var: 4}, Mean, Options{}, StatusControlMeanZero, 1},
		{"proportion control never converts", Arm{N: 200, Mean: 0, Var: 0}, Arm{N: 200, Mean: 0.05, Var: 0.05 * 0.95 * 200 / 199}, Proportion, Options{}, StatusControlMeanZero, 0.05},
		{"huge means are fine", Arm{N: 1000, Mean: 1e15, Var: 4e28}, Arm{N: 1000, Mean: 1.001e15, Var: 4e28}, Mean, Options{}, StatusOK, 1e12},
		{"huge ratio is fine", Arm{N: 1000, Mean: 1e15, Var: 4e28, DenMean: 3, DenVar: 2, CovXY: 1e13}, Arm{N: 1000, Mean: 1e15, Var: 4e28, DenMean: 3, DenVar: 2, CovXY: 1e13}, Ratio, Options{}, StatusOK, 0},
		{"overflowing difference", Arm{N: 100, Mean: -1e308, Var: 1}, Arm{N: 100, Mean: 1e308, Var: 1}, Mean, Options{}, StatusOverflow, 0},
		{"very large variances still fit", Arm{N: 2, Mean: 1, Var: 1e300}, Arm{N: 2, Mean: 2, Var: 1e300}, Mean, Options{}, StatusRelativeUnbounded, 1}, // the control mean is indistinguishable from 0
		{"overflowing relative lift", Arm{N: 100, Mean: 1e-300, Var: 1}, Arm{N: 100, Mean: 1e10, Var: 1}, Mean, Options{}, StatusOverflow, 0},
		{"unknown kind", ok, ok, Kind(9), Options{}, StatusInvalidInput, 0},
		{"alpha above one", ok, ok, Mean, Options{Alpha: 1.5}, StatusInvalidOptions, 0},
		{"negative alpha", ok, ok, Mean, Options{Alpha: -0.05}, StatusInvalidOptions, 0},
		{"power below alpha", ok, ok, Mean, Options{Alpha: 0.2, Power: 0.1}, StatusInvalidOptions, 0},
		{"bad N*", ok, ok, Mean, Options{Sequential: &Sequential{NStar: -1}}, StatusInvalidOptions, 0},
		{"NaN theta", withCov(ok), withCov(ok), Mean, Options{CUPED: &CUPED{Theta: nan}}, StatusInvalidOptions, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(tc.control, tc.treat, tc.kind, tc.opts)
			if got.Status != tc.status {
				t.Fatalf("Status = %q, want %q", got.Status, tc.status)
			}
			allFinite(t, got)
			switch {
			case got.Status == StatusOK:
				if !(got.PValue >= 0 && got.PValue <= 1) || !(got.SE > 0) || !(got.DiffLow < got.DiffHigh) {
					t.Errorf("ok comparison has p %v, SE %v, interval [%v, %v]", got.PValue, got.SE, got.DiffLow, got.DiffHigh)
				}
			case got.Status == StatusControlMeanZero:
				if !got.Valid() || !(got.SE > 0) || got.RelDiff != 0 || got.RelLow != 0 || got.RelHigh != 0 || !got.Underpowered {
					t.Errorf("control-mean-zero comparison: %+v", got)
				}
				if !(got.PValue < 1 && got.PValue > 0) {
					t.Errorf("PValue = %v, want the absolute test's p in (0, 1)", got.PValue)
				}
			case got.Status == StatusRelativeUnbounded:
				if !got.Valid() || !got.HasRelative() || !(got.SE > 0) || got.RelLow != 0 || got.RelHigh != 0 || !(got.DiffLow < got.DiffHigh) {
					t.Errorf("relative-unbounded comparison: %+v", got)
				}
			default:
				if got.Valid() {
					t.Errorf("Valid() = true for status %q", got.Status)
				}
				if got.PValue != 1 || got.SE != 0 || got.DiffLow != 0 || got.DiffHigh != 0 || got.RelSE != 0 || !got.Underpowered {
					t.Errorf("degenerate comparison must have PValue 1 and zero inferential fields: %+v", got)
				}
			}
			if math.Abs(got.Diff-tc.diff) > 1e-12*math.Max(1, math.Abs(tc.diff)) {
				t.Errorf("Diff = %v, want %v", got.Diff, tc.diff)
			}
		})
	}
}

func TestCompareCUPEDNeedsBothCovariates(t *testing.T) {
	c := Arm{N: 100, Mean: 5, Var: 4, HasCovariate: true, CovMean: 5, CovVar: 4, CovXC: 3}
	tr := Arm{N: 100, Mean: 6, Var: 4}
	got := Compare(c, tr, Mean, Options{CUPED: &CUPED{Theta: 0.75, CovariateMean: 4}})
	want := Compare(c, tr, Mean, Options{})
	if got.CUPEDApplied || got != want {
		t.Errorf("CUPED applied with one covariate: %+v", got)
	}
}

func TestCompareDirectionAndSymmetry(t *testing.T) {
	c := Arm{N: 400, Mean: 10, Var: 9}
	tr := Arm{N: 380, Mean: 10.8, Var: 12}
	ab := Compare(c, tr, Mean, Options{})
	ba := Compare(tr, c, Mean, Options{})
	if !(ab.Diff > 0) || ab.Diff != -ba.Diff || ab.PValue != ba.PValue || ab.DF != ba.DF {
		t.Errorf("swapping arms: %+v vs %+v", ab, ba)
	}
	if math.Abs(ab.DiffLow+ba.DiffHigh) > 1e-12 {
		t.Errorf("intervals not mirrored: [%v,%v] vs [%v,%v]", ab.DiffLow, ab.DiffHigh, ba.DiffLow, ba.DiffHigh)
	}
	// A smaller alpha gives a wider interval and the same p-value.
	wide := Compare(c, tr, Mean, Options{Alpha: 0.01})
	if !(wide.DiffHigh-wide.DiffLow > ab.DiffHigh-ab.DiffLow) || wide.PValue != ab.PValue {
		t.Errorf("alpha 0.01 interval %v not wider than %v", wide.DiffHigh-wide.DiffLow, ab.DiffHigh-ab.DiffLow)
	}
	// Interval excludes 0 exactly when p < alpha.
	for _, a := range []float64{0.001, 0.01, 0.05, 0.1, 0.3} {
		x := Compare(c, tr, Mean, Options{Alpha: a})
		if (x.DiffLow > 0) != (x.PValue < a) {
			t.Errorf("alpha %v: interval [%v, %v] disagrees with p %v", a, x.DiffLow, x.DiffHigh, x.PValue)
		}
	}
}

func TestCUPEDThetaErrors(t *testing.T) {
	cov := func(n, v float64) Arm {
		return Arm{N: n, Mean: 1, Var: 1, HasCovariate: true, CovMean: 1, CovVar: v, CovXC: 0.5, DenMean: 2}
	}
	tests := []struct {
		name string
		arms []Arm
		kind Kind
		want error
	}{
		{"no arms", nil, Mean, ErrDegenerate},
		{"only missing arms", []Arm{{}, {}}, Mean, ErrDegenerate},
		{"arm without covariate", []Arm{cov(10, 1), {N: 10, Mean: 1, Var: 1}}, Mean, ErrNoCovariate},
		{"constant covariate", []Arm{cov(10, 0), cov(12, 0)}, Mean, ErrDegenerate},
		{"NaN covariance", []Arm{cov(10, 1), {N: 10, HasCovariate: true, CovVar: 1, CovXC: math.NaN()}}, Mean, ErrInvalidInput},
		{"negative covariate variance", []Arm{cov(10, 1), cov(10, -1)}, Mean, ErrInvalidInput},
		{"ratio zero denominators", []Arm{{N: 10, HasCovariate: true, CovVar: 1}, {N: 10, HasCovariate: true, CovVar: 1}}, Ratio, ErrDegenerate},
		{"unknown kind", []Arm{cov(10, 1)}, Kind(-1), ErrInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th, err := CUPEDTheta(tc.arms, tc.kind)
			if !errors.Is(err, tc.want) || th != 0 {
				t.Errorf("CUPEDTheta = %v, %v; want 0, %v", th, err, tc.want)
			}
			if _, err := NewCUPED(tc.arms, tc.kind); err == nil {
				t.Errorf("NewCUPED: nil error")
			}
		})
	}
	// A missing arm (N = 0) without a covariate is skipped, not an error.
	if _, err := CUPEDTheta([]Arm{cov(10, 1), {}, cov(12, 2)}, Mean); err != nil {
		t.Errorf("missing arm: %v", err)
	}
}

func TestMDEErrorsAndPowerFor(t *testing.T) {
	c := Arm{N: 1000, Mean: 10, Var: 25}
	tr := Arm{N: 1000, Mean: 10.2, Var: 25}
	for _, tc := range []struct {
		name         string
		alpha, power float64
		want         error
	}{
		{"alpha 1", 1, 0.8, ErrInvalidInput},
		{"power 1", 0.05, 1, ErrInvalidInput},
		{"power below alpha", 0.05, 0.04, ErrInvalidInput},
		{"NaN alpha", math.NaN(), 0.8, ErrInvalidInput},
	} {
		if _, err := MDE(c, tr, tc.alpha, tc.power); !errors.Is(err, tc.want) {
			t.Errorf("%s: MDE error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := MDE(Arm{N: 10}, Arm{N: 10}, 0, 0); !errors.Is(err, ErrDegenerate) {
		t.Errorf("zero variance: MDE error %v, want ErrDegenerate", err)
	}
	if _, err := MDEFromSE(0, 0.05, 0.8); !errors.Is(err, ErrDegenerate) {
		t.Errorf("MDEFromSE(0): %v", err)
	}
	// Defaults (alpha 0.05, power 0.8): MDE ≈ (z_0.975 + z_0.8)·SE; the exact
	// two-sided equation (checked against statsmodels in the reference
	// test) is 3.4e-6 relative smaller because of the far tail.
	got, err := MDE(c, tr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	se := math.Sqrt(25.0/1000 + 25.0/1000)
	if want := 2.801585218 * se; math.Abs(got-want) > 1e-5*want || got >= want {
		t.Errorf("MDE = %v, want ≈ %v", got, want)
	}
	pr, err := PowerFor(c, tr, Mean, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pr.MDE != got || math.Abs(pr.RelMDE-got/10) > 1e-15 || pr.Underpowered != (got/10 > DefaultMaxRelMDE) {
		t.Errorf("PowerFor = %+v", pr)
	}
	// Four times the units halve the MDE.
	c4, tr4 := c, tr
	c4.N, tr4.N = 4000, 4000
	got4, _ := MDE(c4, tr4, 0, 0)
	if math.Abs(got4-got/2) > 1e-12*got {
		t.Errorf("MDE at 4n = %v, want %v", got4, got/2)
	}
}

func TestUnderpowered(t *testing.T) {
	for _, tc := range []struct {
		rel, max float64
		want     bool
	}{
		{0.01, 0, false}, {0.05, 0, false}, {0.0501, 0, true}, {0.2, 0.25, false},
		{0.3, 0.25, true}, {math.NaN(), 0.1, true}, {math.Inf(1), 0.1, true}, {-1, 0.1, true},
	} {
		if got := Underpowered(tc.rel, tc.max); got != tc.want {
			t.Errorf("Underpowered(%v, %v) = %v, want %v", tc.rel, tc.max, got, tc.want)
		}
	}
	// Compare's flag follows the rule.
	small := Compare(Arm{N: 50, Mean: 10, Var: 100}, Arm{N: 50, Mean: 11, Var: 100}, Mean, Options{})
	big := Compare(Arm{N: 1e6, Mean: 10, Var: 100}, Arm{N: 1e6, Mean: 10.01, Var: 100}, Mean, Options{})
	if !small.Underpowered || big.Underpowered {
		t.Errorf("underpowered: small n %v (RelMDE %v), large n %v (RelMDE %v)", small.Underpowered, small.RelMDE, big.Underpowered, big.RelMDE)
	}
}

func TestKindAndDirectionText(t *testing.T) {
	for _, k := range []Kind{Proportion, Mean, Ratio} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k || string(b) != k.String() {
			t.Errorf("kind %v round trip: %q %v %v", k, b, back, err)
		}
	}
	if _, err := ParseKind("median"); err == nil {
		t.Error("ParseKind(median) succeeded")
	}
	if b, _ := Kind(5).MarshalText(); string(b) != "Kind(5)" {
		t.Errorf("Kind(5).MarshalText = %q", b)
	} else if err := new(Kind).UnmarshalText(b); err == nil {
		t.Error("UnmarshalText(Kind(5)) succeeded")
	}
	for _, d := range []Direction{Increase, Decrease} {
		b, _ := d.MarshalText()
		var back Direction
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Errorf("direction %v round trip: %q %v %v", d, b, back, err)
		}
	}
	if _, err := ParseDirection("up"); err == nil {
		t.Error("ParseDirection(up) succeeded")
	}
	for _, c := range []Correction{NoCorrection, HolmCorrection, BHCorrection} {
		if back, err := ParseCorrection(c.String()); err != nil || back != c {
			t.Errorf("correction %v round trip: %v %v", c, back, err)
		}
	}
}

// TestNoiseOnlyVariance: arms with no sampling variance but known privacy
// noise still get a valid, normal interval rather than "zero variance".
func TestNoiseOnlyVariance(t *testing.T) {
	c := Arm{N: 100, Mean: 1, Var: 0, NoiseVarMean: 0.01}
	tr := Arm{N: 100, Mean: 1.5, Var: 0, NoiseVarMean: 0.01}
	got := Compare(c, tr, Mean, Options{})
	if got.Status != StatusOK {
		t.Fatalf("status %q, want ok", got.Status)
	}
	if got.DF != NoiseOnlyDF {
		t.Errorf("df = %v, want %v", got.DF, NoiseOnlyDF)
	}
	// Normal interval: 0.5 ± 1.959964·√0.02.
	want := 1.959963984540054 * math.Sqrt(0.02)
	if math.Abs((got.DiffHigh-got.Diff)-want) > 1e-9 {
		t.Errorf("half width %v, want %v", got.DiffHigh-got.Diff, want)
	}
	zero := Compare(Arm{N: 100, Mean: 1}, Arm{N: 100, Mean: 1}, Mean, Options{})
	if zero.Status != StatusZeroVariance {
		t.Errorf("without noise: status %q, want %q", zero.Status, StatusZeroVariance)
	}
}

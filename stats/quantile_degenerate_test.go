package stats

import (
	"errors"
	"math"
	"testing"
)

// checkQuantileError: err wraps want (and, when arm is not empty, is an
// ArmError naming it), and the result carries no NaN or infinity.
func checkQuantileError(t *testing.T, r QuantileComparison, err, want error, arm string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	var ae *ArmError
	if gotArm := errors.As(err, &ae); gotArm != (arm != "") || (gotArm && ae.Arm != arm) {
		t.Errorf("error %v: ArmError %v, want arm %q", err, ae, arm)
	}
	if r != (QuantileComparison{}) {
		t.Errorf("result %+v with an error, want the zero value", r)
	}
	if err.Error() == "" {
		t.Error("empty error message")
	}
}

func TestCompareQuantilesHostile(t *testing.T) {
	spread := func(n int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(i * 7 % 1009)
		}
		return v
	}
	ok := mustHistogramOf(t, 2, spread(500))
	constant := mustHistogramOf(t, 2, []int64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5})
	one := mustHistogramOf(t, 2, []int64{3})
	otherScale := mustHistogramOf(t, 3, spread(500))
	for _, c := range []struct {
		name     string
		control  Histogram
		treat    Histogram
		p        float64
		opts     QuantileOptions
		want     error
		wantsArm string
	}{
		{"empty control", Histogram{decimals: 2}, ok, 0.5, QuantileOptions{}, ErrDegenerate, "control"},
		{"empty treatment", ok, Histogram{decimals: 2}, 0.5, QuantileOptions{}, ErrDegenerate, "treatment"},
		{"one unit", one, ok, 0.5, QuantileOptions{}, ErrDegenerate, "control"},
		{"all values equal", ok, constant, 0.5, QuantileOptions{}, ErrDegenerate, "treatment"},
		{"p 0", ok, ok, 0, QuantileOptions{}, ErrInvalidInput, ""},
		{"p 1", ok, ok, 1, QuantileOptions{}, ErrInvalidInput, ""},
		{"p negative", ok, ok, -0.1, QuantileOptions{}, ErrInvalidInput, ""},
		{"p above 1", ok, ok, 1.01, QuantileOptions{}, ErrInvalidInput, ""},
		{"p NaN", ok, ok, math.NaN(), QuantileOptions{}, ErrInvalidInput, ""},
		{"p 0.999 with 500 units", ok, ok, 0.999, QuantileOptions{}, ErrDegenerate, "control"},
		{"alpha 1", ok, ok, 0.5, QuantileOptions{Alpha: 1}, ErrInvalidInput, ""},
		{"alpha NaN", ok, ok, 0.5, QuantileOptions{Alpha: math.NaN()}, ErrInvalidInput, ""},
		{"alpha negative", ok, ok, 0.5, QuantileOptions{Alpha: -0.05}, ErrInvalidInput, ""},
		{"scales differ", ok, otherScale, 0.5, QuantileOptions{}, ErrInvalidInput, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := CompareQuantiles(c.control, c.treat, c.p, c.opts)
			checkQuantileError(t, r, err, c.want, c.wantsArm)
		})
	}
	// The smallest arm the band allows at the median: n > z² = 3.84.
	four := mustHistogramOf(t, 0, []int64{1, 2, 3, 4})
	if _, err := EstimateQuantile(four, 0.5); err != nil {
		t.Errorf("four distinct units at the median: %v", err)
	}
	three := mustHistogramOf(t, 0, []int64{1, 2, 3})
	if _, err := EstimateQuantile(three, 0.5); !errors.Is(err, ErrDegenerate) {
		t.Errorf("three units at the median: %v, want ErrDegenerate", err)
	}
}

package calibrate

import (
	"math"
	"testing"
)

// TestCapTruthAgainstSciPy: the capped means mode's truth (the pooled
// population cap and the arms' capped means, in closed form) agrees with
// testdata/caps_truth.py, which finds the cap with brentq and integrates
// the lognormal density numerically (SciPy 1.10.1).
func TestCapTruthAgainstSciPy(t *testing.T) {
	for _, tc := range []struct {
		q                   float64
		planted             bool
		cap, control, treat float64
	}{
		{0.9, false, 53.33, 21.837710544359755, 21.837710544359755},
		{0.9, true, 56.03, 22.09375364130407, 23.745092067122634},
		{0.99, false, 125.12, 24.438583940700557, 24.438583940700557},
		{0.99, true, 131.65, 24.49863170773741, 26.818106108039085},
	} {
		c := capTruth(tc.q, tc.planted)
		if c != tc.cap {
			t.Errorf("cap(%v, planted %v) = %v, SciPy %v", tc.q, tc.planted, c, tc.cap)
		}
		lift := 1.0
		if tc.planted {
			lift = quantileLift
		}
		for _, v := range []struct {
			name      string
			got, want float64
		}{{"control", cappedMean(c, 1), tc.control}, {"treatment", cappedMean(c, lift), tc.treat}} {
			if math.Abs(v.got-v.want) > 1e-9*v.want {
				t.Errorf("cap %v planted %v: %s capped mean %v, SciPy %v", tc.q, tc.planted, v.name, v.got, v.want)
			}
		}
	}
}

// TestJudgeCapMode: the capped means checks can fail: 85% coverage, and
// an A/A rejecting 15% of the time.
func TestJudgeCapMode(t *testing.T) {
	for _, tc := range []struct {
		key      string
		hits, n  int
		wantFail bool
	}{
		{"coverage/capped means/all/capped-p90/absolute", 1700, 2000, true},
		{"coverage/capped means/all/capped-p90/absolute", 1900, 2000, false},
		{"above/capped means/leaf/capped-p99/relative", 150, 2000, true},
		{"aa-final/capped means/capped-p99", 30, 200, true},
		{"interval/capped means/leaf/capped-p90/absolute", 1990, 2000, true},
	} {
		if _, failed := Judge(Tally{tc.key: {Hits: tc.hits, N: tc.n}}); failed != tc.wantFail {
			t.Errorf("%s %d/%d: failed %v, want %v", tc.key, tc.hits, tc.n, failed, tc.wantFail)
		}
	}
}

// TestJudgeFilterMode: the filtered metrics' checks can fail: 85%
// coverage, an interval above the truth 15% of the time, an A/A rejecting
// 15% of the time.
func TestJudgeFilterMode(t *testing.T) {
	for _, tc := range []struct {
		key      string
		hits, n  int
		wantFail bool
	}{
		{"coverage/filtered metrics/all/filtered-mean/absolute", 1700, 2000, true},
		{"coverage/filtered metrics/all/filtered-mean/absolute", 1900, 2000, false},
		{"above/filtered metrics/leaf/filtered-proportion/relative", 150, 2000, true},
		{"aa-final/filtered metrics/filtered-mean", 30, 200, true},
		{"interval/filtered metrics/leaf/filtered-proportion/absolute", 1990, 2000, true},
	} {
		if _, failed := Judge(Tally{tc.key: {Hits: tc.hits, N: tc.n}}); failed != tc.wantFail {
			t.Errorf("%s %d/%d: failed %v, want %v", tc.key, tc.hits, tc.n, failed, tc.wantFail)
		}
	}
}

// TestFilterTruth: the filtered metrics' population values, by hand: a web
// spend event in 0.6 · 0.9 of units, lognormal(3, 0.8) mean exp(3.32).
func TestFilterTruth(t *testing.T) {
	if got := filterTruth("converted_web", true); math.Abs(got-0.54) > 1e-15 {
		t.Errorf("converted_web %v, want 0.54", got)
	}
	want := 0.54 * math.Exp(3.32)
	if got := filterTruth("spend_web", false); math.Abs(got-want) > 1e-12*want {
		t.Errorf("spend_web control %v, want %v", got, want)
	}
	if got := filterTruth("spend_web", true); math.Abs(got-1.1*want) > 1e-12*want {
		t.Errorf("spend_web treatment %v, want %v", got, 1.1*want)
	}
	var null, web int
	for i := range 100 {
		switch c := channelOf(float64(i) / 100); {
		case c == nil:
			null++
		case *c == "web":
			web++
		}
	}
	if null != 5 || web != 60 {
		t.Errorf("channel: %d NULL, %d web of 100 equally spaced draws, want 5 and 60", null, web)
	}
}

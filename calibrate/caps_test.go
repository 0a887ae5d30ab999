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

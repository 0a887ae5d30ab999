package calibrate

import (
	"strings"
	"testing"
)

// TestJudgeVarianceReduction: the variance-reduction checks are judged and
// can fail (85% coverage, a missing interval); the mean reduction is
// reported from its millionths.
func TestJudgeVarianceReduction(t *testing.T) {
	mk := func(cov, n int) Tally {
		base := "regression[pre_period]/mean"
		return Tally{
			"vr-interval/" + base:  {Hits: n, N: n},
			"vr-coverage/" + base:  {Hits: cov, N: n},
			"vr-below/" + base:     {Hits: (n - cov) / 2, N: n},
			"vr-above/" + base:     {Hits: n - cov - (n-cov)/2, N: n},
			"vr-reduction/" + base: {Hits: 165_000 * n, N: n},
		}
	}
	checks, failed := Judge(mk(1900, 2000))
	if failed || len(checks) != 4 {
		t.Fatalf("nominal coverage: failed %v, %d checks", failed, len(checks))
	}
	var b strings.Builder
	writeVR(&b, mk(1900, 2000))
	if !strings.Contains(b.String(), "| regression[pre_period]/mean | 2000 | 0.1650 |") {
		t.Errorf("reduction not reported:\n%s", b.String())
	}
	if _, failed := Judge(mk(1700, 2000)); !failed {
		t.Error("85% coverage of an adjusted interval judged as passing")
	}
	tl := mk(1900, 2000)
	tl["vr-interval/regression[pre_period]/mean"].Hits--
	if _, failed := Judge(tl); !failed {
		t.Error("an adjusted estimate without an interval judged as passing")
	}
}

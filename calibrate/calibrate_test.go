package calibrate

import (
	"bytes"
	"context"
	"testing"
)

// TestQuickCalibration is the fixed-seed subset of the suite that `make
// test` runs: six datasets of 6,000 units, the last three nights of each,
// every mode, metric kind and cohort type. Its binomial intervals are wide
// (few datasets), so it catches gross miscalibration — a mode without
// intervals, a one-sided bias, an always-valid interval that peeks like a
// fixed one — and leaves the fine judgement to `make calibrate`.
func TestQuickCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and analyses six datasets")
	}
	tally, err := Run(context.Background(), Config{Seeds: QuickSeeds(), Units: 6000, Nights: 3, Workers: 2, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checks, failed := Judge(tally)
	var b bytes.Buffer
	if err := WriteReport(&b, tally, checks, failed); err != nil {
		t.Fatal(err)
	}
	if len(checks) < 200 {
		t.Errorf("only %d checks: a mode, kind or cohort type is missing", len(checks))
	}
	for _, c := range checks {
		if c.Failed {
			t.Errorf("%s: %d/%d = %.4f, interval [%.4f, %.4f] excludes nominal %s %v", c.Key, c.Hits, c.N, c.Rate, c.Low, c.Hi, c.Side, c.Nominal)
		}
	}
	if t.Failed() {
		t.Log(b.String())
	}
}

// TestJudgeFailsMiscalibration: the judge must be able to fail. A mode
// whose intervals cover 85% of the time, or that has a cell without an
// interval, fails; nominal behaviour passes.
func TestJudgeFailsMiscalibration(t *testing.T) {
	mk := func(cov, n int) Tally {
		return Tally{
			"coverage/exact/all/mean/absolute": {Hits: cov, N: n},
			"below/exact/all/mean/absolute":    {Hits: (n - cov) / 2, N: n},
			"above/exact/all/mean/absolute":    {Hits: n - cov - (n-cov)/2, N: n},
			"interval/exact/all/mean/absolute": {Hits: n, N: n},
		}
	}
	if _, failed := Judge(mk(1900, 2000)); failed {
		t.Error("95% coverage judged as failing")
	}
	if _, failed := Judge(mk(1700, 2000)); !failed {
		t.Error("85% coverage judged as passing")
	}
	if _, failed := Judge(mk(1990, 2000)); !failed {
		t.Error("99.5% coverage (over-coverage) judged as passing")
	}
	tl := mk(1900, 2000)
	tl["interval/exact/all/mean/absolute"].Hits = 1999
	if _, failed := Judge(tl); !failed {
		t.Error("a cell without an interval judged as passing")
	}
	tl = mk(1900, 2000)
	tl["below/exact/all/mean/absolute"].Hits = 88 // 4.4% below, 0.6% above
	tl["above/exact/all/mean/absolute"].Hits = 12
	if _, failed := Judge(tl); !failed {
		t.Error("one-sided misses of 4.4% and 0.6% judged as passing")
	}
}

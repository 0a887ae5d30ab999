package analysis

import (
	"math"

	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/stats"
)

// SRMCheck is one sample-ratio-mismatch test: for the whole experiment
// (cohort "(all)") or one cohort (Bonferroni-adjusted across cohorts).
type SRMCheck struct {
	Cohort string `json:"cohort"`
	// Method is the test used: chi_square, or exact_binomial when an
	// expected count is below stats.MinChiSquareExpected.
	Method    string    `json:"method"`
	Observed  []int64   `json:"observed"`
	Expected  []float64 `json:"expected"`
	ChiSquare float64   `json:"chi_square"`
	PValue    float64   `json:"p_value"`
	AdjPValue float64   `json:"adjusted_p_value"`
	Threshold float64   `json:"threshold"`
	Invalid   bool      `json:"invalid"`
	Status    string    `json:"status"`
}

// sampleRatioChecks tests every released cohort, in output order, for a
// sample-ratio mismatch on assigned units, and decides each check's
// outcome with the cohorts' p-values Bonferroni-adjusted.
func (a *analyser) sampleRatioChecks() []SRMCheck {
	shares := make([]float64, len(a.spec.Variants))
	for i, v := range a.spec.Variants {
		shares[i] = v.Allocation
	}
	checks := make([]SRMCheck, 0, len(a.cohorts))
	for _, coh := range a.cohorts {
		checks = append(checks, a.srmCheck(coh, shares))
	}
	adjustSRMAcrossCohorts(checks, a.spec.Statistics.SRMThreshold)
	return checks
}

// srmCheck tests one cohort's assigned units (the first metric's n: every
// metric has a value for every assigned unit) against the allocation
// shares; a cohort with no units is not tested.
func (a *analyser) srmCheck(coh string, shares []float64) SRMCheck {
	chk := SRMCheck{Cohort: coh, Threshold: a.spec.Statistics.SRMThreshold, PValue: 1, AdjPValue: 1, Status: "ok"}
	obs := make([]float64, len(a.spec.Variants))
	for i, v := range a.spec.Variants {
		n := a.cell(coh, v.Name, a.spec.Metrics[0].Name).N
		chk.Observed = append(chk.Observed, n)
		obs[i] = float64(n)
	}
	res, err := a.srmTest(coh, obs, shares)
	if err != nil {
		chk.Status = "not tested: no units"
		chk.Expected = make([]float64, len(shares))
		return chk
	}
	chk.Method, chk.ChiSquare, chk.PValue, chk.AdjPValue, chk.Expected = res.Method, res.ChiSquare, res.PValue, res.PValue, res.Expected
	return chk
}

// srmTest runs the sample-ratio test on a cohort's counts. A private
// release's counts carry noise of a known sd: the noise-aware test, so
// that noise alone does not read as a mismatch (Pearson's χ² on noisy
// counts does).
func (a *analyser) srmTest(coh string, obs, shares []float64) (stats.SRMResult, error) {
	sd, ok := a.noise[privatize.NoiseKey(coh, a.spec.Metrics[0].Name)]
	if !ok {
		return stats.SRM(obs, shares)
	}
	sds := make([]float64, len(obs))
	for i := range sds {
		sds[i] = sd.N
	}
	return stats.SRMNoisy(obs, shares, sds)
}

// adjustSRMAcrossCohorts Bonferroni-adjusts the p-value of every tested
// cohort (not (all)) across the tested cohorts, and marks the tested
// checks whose mismatch invalidates the run.
func adjustSRMAcrossCohorts(checks []SRMCheck, threshold float64) {
	tested := 0
	for _, c := range checks {
		if c.Cohort != expspec.AllCohort && c.Status == "ok" {
			tested++
		}
	}
	for i := range checks {
		c := &checks[i]
		if c.Cohort != expspec.AllCohort && c.Status == "ok" {
			c.AdjPValue = math.Min(1, c.PValue*float64(tested)) // Bonferroni across cohorts
		}
		if c.Status == "ok" {
			r := stats.SRMResult{PValue: c.PValue, AdjPValue: c.AdjPValue, Expected: c.Expected}
			c.Invalid = r.Invalid(threshold)
		}
	}
}

// srmInvalid reports whether any check's mismatch invalidates the run.
func srmInvalid(checks []SRMCheck) bool {
	for _, c := range checks {
		if c.Invalid {
			return true
		}
	}
	return false
}

// srmByCohort indexes the checks by cohort.
func srmByCohort(checks []SRMCheck) map[string]SRMCheck {
	by := map[string]SRMCheck{}
	for _, c := range checks {
		by[c.Cohort] = c
	}
	return by
}

package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// The values in testdata/plan_reference.json come from
// testdata/plan_reference.py: statsmodels' NormalIndPower.solve_power for
// equal variances, and brentq on the power equation (fixed horizon with
// unequal variances; the confidence sequence's, with N* given or tuned at
// the horizon) otherwise:
//
//	/usr/bin/python3 stats/testdata/plan_reference.py
//
// Tolerance: planTol = 1e-8 relative on the sample sizes (statsmodels'
// solver stops there; the brentq roots are tighter) and relTol on the
// critical values; whole units and days must match exactly.
const planTol = 1e-8

type planReference struct {
	Plan []struct {
		Name  string
		Input struct {
			BaselineMean, BaselineVar, TreatmentVar, MDE float64
			Relative                                     bool
			Alpha, Power, TreatmentShare                 float64
			Alternative                                  Alternative
			CUPEDCorrelation, DailyUnits, NStar          float64
			Design                                       string
		}
		Want struct {
			MDE, TotalN, ControlN, TreatmentN        float64
			ControlUnits, TreatmentUnits, TotalUnits float64
			Days, Critical, NStar                    float64
			Method                                   string
		}
	}
	Horizon []struct {
		UnitVar float64 `json:"unit_var"`
		MDE     float64
		Alpha   float64
		NStar   float64
		Want    float64
	}
}

func TestPlanReference(t *testing.T) {
	var ref planReference
	loadJSON(t, "testdata/plan_reference.json", &ref)
	if len(ref.Plan) == 0 || len(ref.Horizon) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Plan {
		t.Run(c.Name, func(t *testing.T) {
			in := c.Input
			p := PlanInput{BaselineMean: in.BaselineMean, BaselineVar: in.BaselineVar, TreatmentVar: in.TreatmentVar,
				MDE: in.MDE, Relative: in.Relative, Alpha: in.Alpha, Power: in.Power, Alternative: in.Alternative,
				TreatmentShare: in.TreatmentShare, CUPEDCorrelation: in.CUPEDCorrelation, DailyUnits: in.DailyUnits,
				NStar: in.NStar}
			if in.Design == "sequential" {
				p.Design = AlwaysValid
			}
			got, err := PlanSampleSize(p)
			if err != nil {
				t.Fatal(err)
			}
			w := c.Want
			checkClose(t, "MDE", got.MDE, w.MDE, 0)
			checkCloseTol(t, "TotalN", got.TotalN, w.TotalN, 0, planTol)
			checkCloseTol(t, "ControlN", got.ControlN, w.ControlN, 0, planTol)
			checkCloseTol(t, "TreatmentN", got.TreatmentN, w.TreatmentN, 0, planTol)
			checkCloseTol(t, "NStar", got.NStar, w.NStar, 0, planTol)
			checkClose(t, "Critical", got.Critical, w.Critical, 0)
			if got.ControlUnits != w.ControlUnits || got.TreatmentUnits != w.TreatmentUnits ||
				got.TotalUnits != w.TotalUnits || got.Days != w.Days {
				t.Errorf("units %v+%v=%v in %v days, want %v+%v=%v in %v days (%s)", got.ControlUnits, got.TreatmentUnits,
					got.TotalUnits, got.Days, w.ControlUnits, w.TreatmentUnits, w.TotalUnits, w.Days, w.Method)
			}
		})
	}
	for _, c := range ref.Horizon {
		got, err := ConfidenceSequenceHorizon(c.UnitVar, c.MDE, c.Alpha, c.NStar)
		if err != nil {
			t.Errorf("ConfidenceSequenceHorizon(%+v): %v", c, err)
			continue
		}
		checkClose(t, "horizon", got, c.Want, 0)
		// At the horizon the half-width is the MDE.
		nstar := c.NStar
		if nstar == 0 {
			nstar = got
		}
		h, _ := Sequential{NStar: nstar}.halfWidthFactor(got, c.Alpha, 0)
		checkClose(t, "half-width at horizon", math.Sqrt(c.UnitVar/got)*h, c.MDE, 0)
	}
}

// TestPlanConsistentWithPower: at the planned units the MDE of
// MDEFromSE is the planned MDE (two-sided fixed design), and the planned
// sequential design needs more units than the fixed one.
func TestPlanConsistentWithPower(t *testing.T) {
	in := PlanInput{BaselineMean: 5, BaselineVar: 4, MDE: 0.1}
	p, err := PlanSampleSize(in)
	if err != nil {
		t.Fatal(err)
	}
	mde, err := MDEFromSE(math.Sqrt(p.UnitVar/p.TotalN), DefaultAlpha, DefaultPower)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "MDE at plan", mde, 0.1, 0)
	in.Design = AlwaysValid
	s, err := PlanSampleSize(in)
	if err != nil {
		t.Fatal(err)
	}
	if !(s.TotalN > p.TotalN) {
		t.Errorf("sequential %v units not above fixed %v", s.TotalN, p.TotalN)
	}
}

func TestPlanInvalid(t *testing.T) {
	base := PlanInput{BaselineMean: 1, BaselineVar: 1, MDE: 0.1}
	cases := []struct {
		name string
		mod  func(*PlanInput)
		want error
	}{
		{"zero variance", func(p *PlanInput) { p.BaselineVar = 0 }, ErrDegenerate},
		{"negative variance", func(p *PlanInput) { p.BaselineVar = -1 }, ErrInvalidInput},
		{"zero MDE", func(p *PlanInput) { p.MDE = 0 }, ErrInvalidInput},
		{"NaN MDE", func(p *PlanInput) { p.MDE = math.NaN() }, ErrInvalidInput},
		{"relative zero baseline", func(p *PlanInput) { p.Relative, p.BaselineMean = true, 0 }, ErrDegenerate},
		{"share 1", func(p *PlanInput) { p.TreatmentShare = 1 }, ErrInvalidInput},
		{"rho 1", func(p *PlanInput) { p.CUPEDCorrelation = 1 }, ErrInvalidInput},
		{"power 1", func(p *PlanInput) { p.Power = 1 }, ErrInvalidInput},
		{"power below alpha", func(p *PlanInput) { p.Power, p.Alpha = 0.04, 0.05 }, ErrInvalidInput},
		{"equivalence", func(p *PlanInput) { p.Alternative = Equivalent }, ErrInvalidInput},
		{"sequential one-sided", func(p *PlanInput) { p.Design, p.Alternative = AlwaysValid, Greater }, ErrInvalidInput},
		{"negative daily", func(p *PlanInput) { p.DailyUnits = -1 }, ErrInvalidInput},
		{"overflow", func(p *PlanInput) { p.MDE = 1e-160 }, ErrDegenerate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			c.mod(&in)
			if _, err := PlanSampleSize(in); !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
	if _, err := ConfidenceSequenceHorizon(0, 1, 0.05, 0); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("ConfidenceSequenceHorizon zero variance: %v", err)
	}
}

func TestDaysRemaining(t *testing.T) {
	for _, c := range []struct{ req, enrolled, daily, want float64 }{
		{1000, 0, 100, 10}, {1000, 1, 100, 10}, {1000, 999, 100, 1}, {1000, 1000, 100, 0}, {1000, 5000, 100, 0}, {1, 0, 1e6, 1},
	} {
		got, err := DaysRemaining(c.req, c.enrolled, c.daily)
		if err != nil || got != c.want {
			t.Errorf("DaysRemaining(%v, %v, %v) = %v, %v; want %v", c.req, c.enrolled, c.daily, got, err, c.want)
		}
	}
	if _, err := DaysRemaining(10, 0, 0); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("zero daily units: %v", err)
	}
}

// TestPlanAchievesPower is a Monte Carlo property test with a fixed seed:
// experiments run at the planned units with the planned effect reject
// (Compare, two-sided Welch) with about the planned power. The rate must
// be within 4.5 binomial standard deviations of 0.8.
func TestPlanAchievesPower(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	p, err := PlanSampleSize(PlanInput{BaselineMean: 10, BaselineVar: 9, TreatmentVar: 16, MDE: 0.05, Relative: true, TreatmentShare: 0.4})
	if err != nil {
		t.Fatal(err)
	}
	const reps = 2000
	rng := rand.New(rand.NewPCG(19, 3))
	draw := func(n int, mu, sd float64) Arm { return normalArm(rng, n, mu, sd) }
	hits := 0
	for range reps {
		c := Compare(draw(int(p.ControlUnits), 10, 3), draw(int(p.TreatmentUnits), 10.5, 4), Mean, Options{})
		if c.PValue <= DefaultAlpha {
			hits++
		}
	}
	rate := float64(hits) / reps
	t.Logf("power at %v+%v units: %.4f", p.ControlUnits, p.TreatmentUnits, rate)
	if tol := 4.5 * math.Sqrt(0.8*0.2/reps); math.Abs(rate-0.8) > tol {
		t.Errorf("power %.4f, want 0.8 ± %.4f", rate, tol)
	}
}

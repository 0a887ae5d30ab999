package privatize

import (
	"fmt"
	"math"
	"math/big"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

// AssemblePrivate builds the release from the noisy numbers alone: the
// released cohorts, every released cell (with (all) as the sum of the
// released cohorts' cells), the noise of each, and the gate statistics.
// It reads no exact value, so everything computed from its result is a
// function of charged noisy values and the spec.
func AssemblePrivate(spec *expspec.Spec, alloc privacy.Allocation, noisy map[NumberKey]*big.Int) (*PrivateRelease, error) {
	r := releasedNumbers{noisy: noisy, shares: sharesByStat(alloc)}
	cohorts, err := releasedCohorts(spec, noisy)
	if err != nil {
		return nil, err
	}
	rel := &PrivateRelease{Allocation: alloc, Noise: map[string]NoiseSD{}, Cohorts: cohorts}
	all := map[cellKey]engine.Cell{}
	for _, coh := range cohorts {
		for _, v := range spec.Variants {
			n, err := r.cellCount(coh.Label, v.Name)
			if err != nil {
				return nil, err
			}
			for _, m := range spec.Metrics {
				c, nsd, err := r.noisyCell(spec, coh.Label, v.Name, m, n)
				if err != nil {
					return nil, err
				}
				rel.Noise[NoiseKey(coh.Label, m.Name)] = nsd
				rel.Cells = append(rel.Cells, c)
				addToAll(all, c)
			}
		}
	}
	allCohortNoise(spec, cohorts, rel.Noise)
	rel.Cells = append(allCells(spec, all), rel.Cells...)
	if rel.Gates, err = r.noisyGates(spec); err != nil {
		return nil, err
	}
	if privateDrill(spec) {
		if rel.Drill, err = r.assembleDrill(spec); err != nil {
			return nil, err
		}
	}
	return rel, nil
}

// releasedNumbers reads the noisy numbers of a release and the noise
// each carries.
type releasedNumbers struct {
	noisy  map[NumberKey]*big.Int
	shares map[string]privacy.Share // by metric and statistic (sharesByStat)
}

// get returns a copy of one released number, or an error when it was not
// released.
func (r releasedNumbers) get(k NumberKey) (*big.Int, error) {
	v := r.noisy[k]
	if v == nil {
		return nil, fmt.Errorf("privacy: released number %s/%s/%s/%s missing", k.Cohort, k.Variant, k.Metric, k.Statistic)
	}
	return new(big.Int).Set(v), nil
}

// sd is the standard deviation of the noise on a metric's statistic.
func (r releasedNumbers) sd(metric, stat string) float64 {
	return r.shares[metric+"\x00"+stat].Mechanism.StdDev()
}

// cellCount is the noisy unit count of a released cohort × variant,
// clamped at zero: a count is never negative, and clamping the noisy
// value is post-processing, which costs no privacy.
func (r releasedNumbers) cellCount(cohort, variant string) (int64, error) {
	return r.count(NumberKey{cohort, variant, cellNMetric, string(privacy.StatN)})
}

// count is a released count clamped at zero (cellCount).
func (r releasedNumbers) count(k NumberKey) (int64, error) {
	nv, err := r.get(k)
	if err != nil {
		return 0, err
	}
	if !nv.IsInt64() {
		return 0, fmt.Errorf("privacy: noisy count of %s/%s out of range", k.Cohort, k.Variant)
	}
	if nv.Sign() < 0 {
		nv.SetInt64(0)
	}
	return nv.Int64(), nil
}

// noisyCell is the released cell of a cohort × variant × metric with unit
// count n, and the noise on each of its numbers. A proportion's squares,
// never released, are derived from its sums.
func (r releasedNumbers) noisyCell(spec *expspec.Spec, cohort, variant string, m expspec.Metric, n int64) (engine.Cell, NoiseSD, error) {
	return r.cell(spec, cohort, variant, m, m.Name, cellNMetric, n)
}

// cell is noisyCell for numbers released under the metric name relMetric,
// whose count was released under cellMetric (a drill-down's names).
func (r releasedNumbers) cell(spec *expspec.Spec, cohort, variant string, m expspec.Metric, relMetric, cellMetric string, n int64) (engine.Cell, NoiseSD, error) {
	nsd := NoiseSD{N: r.sd(cellMetric, string(privacy.StatN))}
	c := engine.NewCell(cohort, variant, m.Name)
	c.N = n
	sums := c.Sums()
	idx, _ := releasedStats(spec, m)
	for _, k := range idx {
		out, err := r.get(NumberKey{cohort, variant, relMetric, string(statOfSum[k])})
		if err != nil {
			return engine.Cell{}, NoiseSD{}, err
		}
		*sums[k] = out
		nsd.Sums[k] = r.sd(relMetric, string(statOfSum[k]))
	}
	if m.Kind == "proportion" {
		// Post-processing: x ∈ {0, S} ⇒ x² = S·x.
		sc := big.NewInt(spec.Scale())
		c.SumSq.Mul(c.Sum, sc)
		if spec.Statistics.CUPED != nil {
			c.SumC2.Mul(c.SumC, sc)
		}
	}
	return c, nsd, nil
}

// addToAll adds a released cohort's cell into the (all) cell of its
// variant × metric.
func addToAll(all map[cellKey]engine.Cell, c engine.Cell) {
	k := cellKey{expspec.AllCohort, c.Variant, c.Metric}
	a := all[k]
	if a.Sum == nil {
		a = engine.NewCell(expspec.AllCohort, c.Variant, c.Metric)
	}
	a.N += c.N
	as, cs := a.Sums(), c.Sums()
	for i := range as {
		(*as[i]).Add(*as[i], *cs[i])
	}
	all[k] = a
}

// allCohortNoise sets the noise of each metric's (all) cells: the sum of
// the independent noise of every released cohort.
func allCohortNoise(spec *expspec.Spec, cohorts []privacy.Cohort, noise map[string]NoiseSD) {
	for _, m := range spec.Metrics {
		var sum NoiseSD
		for _, coh := range cohorts {
			s := noise[NoiseKey(coh.Label, m.Name)]
			sum.N = math.Hypot(sum.N, s.N)
			for i := range sum.Sums {
				sum.Sums[i] = math.Hypot(sum.Sums[i], s.Sums[i])
			}
		}
		noise[NoiseKey(expspec.AllCohort, m.Name)] = sum
	}
}

// allCells lists the (all) cells by variant, then metric, in spec order.
func allCells(spec *expspec.Spec, all map[cellKey]engine.Cell) []engine.Cell {
	var withAll []engine.Cell
	for _, v := range spec.Variants {
		for _, m := range spec.Metrics {
			withAll = append(withAll, all[cellKey{expspec.AllCohort, v.Name, m.Name}])
		}
	}
	return withAll
}

// noisyGates lists the released gate statistics, with their noise and
// sensitivity.
func (r releasedNumbers) noisyGates(spec *expspec.Spec) ([]NoisyGate, error) {
	var gates []NoisyGate
	for _, g := range gateStats {
		out, err := r.get(NumberKey{"*", "*", gateMetric, g.name})
		if err != nil {
			return nil, err
		}
		if !out.IsInt64() {
			return nil, fmt.Errorf("privacy: noisy %s out of range", g.name)
		}
		gates = append(gates, NoisyGate{Name: g.name, Value: out.Int64(), NoiseSD: r.sd(gateMetric, g.name), Sensitivity: g.sens(spec)})
	}
	return gates, nil
}

package privatize

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

// Private drill-downs (issue 21 item 2).
//
// A private spec declares each dimension's slices. Every unit of a
// dimension is in one slice — its first-exposure value's declared slice, or
// "other" for an undeclared value or NULL — so a dimension's slices
// partition the units: its per-slice releases compose in parallel, as the
// persona cohorts do, and each dimension is one more sequential part of the
// run budget (spec.DrillBudgetShare(), split evenly across dimensions).
// Which slices exist never depends on the data; which are analysed alone
// depends only on noisy stage-one counts (drillSlices).

// Slice kinds of a private drill-down: a declared value, or the remainder
// (undeclared values, NULL and the declared slices below min_units).
const (
	DrillKindValue = "value"
	DrillKindOther = "other"
)

// DrillOtherID is the release id of a dimension's "other" slice; a declared
// value's id is drillValueID of its position in the spec.
const DrillOtherID = "other"

func drillValueID(i int) string { return fmt.Sprintf("v%04d", i) }

// drillMetric is the release's metric name of a drill-down number of
// dimension dim: "(drill DIM)" then the metric or pseudo-metric name. A
// dimension is an identifier and a metric name has no parentheses, so no
// drill-down number shares a noise stream with another or with a cohort's.
func drillMetric(dim, name string) string { return "(drill " + dim + ")" + name }

// DrillSlice is one published slice of a private drill-down.
type DrillSlice struct {
	// ID is the slice's release id (its NumberKey.Cohort): drillValueID
	// for a declared value released alone, DrillOtherID for the remainder.
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Value string `json:"value,omitempty"`
	// CollapsedFrom lists, quoted, the declared values merged into other
	// because their noisy count was below cohorts.min_units.
	CollapsedFrom []string `json:"collapsed_from"`
	// Members are the release ids of the stage-one counts it covers.
	Members []string `json:"-"`
	// NoisyCount is the sum of its members' noisy stage-one counts (every
	// arm together), which decided the collapsing; nil without min_units,
	// when no stage-one count is drawn. It is not drilldown.csv's units
	// (the sum of the slice's per-arm noisy counts, drawn separately).
	NoisyCount *int64 `json:"noisy_count,omitempty"`
	// Analysed is false for an "other" slice whose noisy count is below
	// min_units: nothing more of it is released.
	Analysed bool `json:"analysed"`
}

// DrillRelease is the noisy release of one dimension.
type DrillRelease struct {
	Dimension string
	Slices    []DrillSlice
	// Cells are the analysed slices' noisy cells (Cohort: the slice ID)
	// per variant × metric analysed per slice.
	Cells []engine.Cell
	// Noise is by NoiseKey(slice ID, metric).
	Noise map[string]NoiseSD
}

// drillMetrics are the metrics analysed per slice.
func drillMetrics(spec *expspec.Spec) []expspec.Metric {
	var out []expspec.Metric
	for _, m := range spec.Metrics {
		if ok, _ := expspec.DrillMetric(m); ok {
			out = append(out, m)
		}
	}
	return out
}

// privateDrill reports whether the release has drill-downs.
func privateDrill(spec *expspec.Spec) bool {
	return spec.Drilldowns != nil && spec.Privacy.Enabled && len(drillMetrics(spec)) > 0
}

// drillIDs lists a dimension's stage-one ids: every declared value in spec
// order, then other.
func drillIDs(spec *expspec.Spec, dim string) []string {
	var ids []string
	for i := range spec.DrillValues(dim) {
		ids = append(ids, drillValueID(i))
	}
	return append(ids, DrillOtherID)
}

// drillGroups are the allocation's groups of the drill-downs: per
// dimension, share/len(dimensions) of the run, split across its
// stage-one count (when collapsing), its cell count and every released sum
// of each metric analysed per slice.
func drillGroups(spec *expspec.Spec, share *big.Rat) []privacy.Group {
	dims := spec.DrillDimensions()
	frac := new(big.Rat).Quo(share, big.NewRat(int64(len(dims)), 1))
	var groups []privacy.Group
	for _, dim := range dims {
		var req []privacy.StatSpec
		if spec.Cohorts.MinUnits > 0 {
			req = append(req, privacy.StatSpec{Metric: drillMetric(dim, stageOneMetric), Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
		}
		req = append(req, privacy.StatSpec{Metric: drillMetric(dim, cellNMetric), Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
		for _, m := range drillMetrics(spec) {
			idx, sens := releasedStats(spec, m)
			for i, k := range idx {
				req = append(req, privacy.StatSpec{Metric: drillMetric(dim, m.Name), Statistic: statOfSum[k], Sensitivity: sens[i], Weight: privacy.DefaultWeight(statOfSum[k])})
			}
		}
		groups = append(groups, privacy.Group{Fraction: frac, Stats: req})
	}
	return groups
}

// exactDrill maps the exact per-value cells of drilldown@v1 onto the
// declared slices: per dimension (spec order), the cells by slice id ×
// variant × metric, every slice × variant × drilled metric present (zero
// when no unit is in it). A value that is not declared, and NULL, go to
// other.
func exactDrill(spec *expspec.Spec, dims []engine.DrillDimension) ([]map[cellKey]engine.Cell, error) {
	var out []map[cellKey]engine.Cell
	for i, dim := range spec.DrillDimensions() {
		cells := map[cellKey]engine.Cell{}
		for _, id := range drillIDs(spec, dim) {
			for _, v := range spec.Variants {
				for _, m := range drillMetrics(spec) {
					cells[cellKey{id, v.Name, m.Name}] = engine.NewCell(id, v.Name, m.Name)
				}
			}
		}
		slot := map[string]string{}
		for j, v := range spec.DrillValues(dim) {
			slot[v] = drillValueID(j)
		}
		if i < len(dims) {
			d := dims[i]
			if d.Column != dim {
				return nil, fmt.Errorf("drilldown: dimension %d is %q, want %q", i, d.Column, dim)
			}
			if d.Units > 0 && !d.WithinCap {
				return nil, fmt.Errorf("drilldown %s: the pass capped a private dimension", dim)
			}
			for _, c := range d.Cells {
				id, ok := slot[c.Value]
				if c.Null || !ok {
					id = DrillOtherID
				}
				k := cellKey{id, c.Variant, c.Metric}
				dst, ok := cells[k]
				if !ok {
					continue // a metric not analysed per slice
				}
				dst.N += c.N
				ds, add := dst.Sums(), c.Cell.Sums()
				for p := range ds {
					(*ds[p]).Add(*ds[p], *add[p])
				}
				cells[k] = dst
			}
		}
		out = append(out, cells)
	}
	return out, nil
}

// exactDrillUnits is a set of slices' exact units, of one variant or of
// every variant ("*").
func exactDrillUnits(spec *expspec.Spec, cells map[cellKey]engine.Cell, ids []string, variant string) *big.Int {
	first := drillMetrics(spec)[0].Name
	n := int64(0)
	for _, id := range ids {
		for _, v := range spec.Variants {
			if variant == "*" || v.Name == variant {
				n += cells[cellKey{id, v.Name, first}].N
			}
		}
	}
	return big.NewInt(n)
}

// noisyDrill draws every drill-down number: per dimension, the stage-one
// count of each declared slice and other (when collapsing), then, per
// analysed slice × variant, the cell count and every released sum.
func (d *noiseDrawer) noisyDrill(exact []map[cellKey]engine.Cell) error {
	spec := d.spec
	for i, dim := range spec.DrillDimensions() {
		if spec.Cohorts.MinUnits > 0 {
			for _, id := range drillIDs(spec, dim) {
				if err := d.draw(NumberKey{id, "*", drillMetric(dim, stageOneMetric), string(privacy.StatN)}, exactDrillUnits(spec, exact[i], []string{id}, "*")); err != nil {
					return err
				}
			}
		}
		slices, err := drillSlices(spec, dim, d.noisy)
		if err != nil {
			return err
		}
		for _, s := range slices {
			if !s.Analysed {
				continue
			}
			for _, v := range spec.Variants {
				if err := d.draw(NumberKey{s.ID, v.Name, drillMetric(dim, cellNMetric), string(privacy.StatN)}, exactDrillUnits(spec, exact[i], s.Members, v.Name)); err != nil {
					return err
				}
				for _, m := range drillMetrics(spec) {
					sums := leafSums(exact[i], privacy.Cohort{Label: s.ID, Leaves: s.Members}, v.Name, m.Name)
					ps := sums.Sums()
					idx, _ := releasedStats(spec, m)
					for _, k := range idx {
						if err := d.draw(NumberKey{s.ID, v.Name, drillMetric(dim, m.Name), string(statOfSum[k])}, *ps[k]); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}

// drillSlices decides a dimension's published slices from the noisy
// stage-one counts alone. Without cohorts.min_units every declared value is
// a slice and other is the rest. With it, a declared value whose noisy
// count reaches the minimum is a slice of its own; the others join other
// (listed in its CollapsedFrom), which is analysed only when its noisy
// count (the sum of its members') reaches the minimum.
//
// This is privacy.Collapse's rule for flat leaves except at the root:
// Collapse would have a small remainder absorb released slices, and the
// undeclared remainder is usually empty when every value is declared, so
// it would swallow the smallest declared slice every night. Here a small
// other is reported without numbers instead.
func drillSlices(spec *expspec.Spec, dim string, noisy map[NumberKey]*big.Int) ([]DrillSlice, error) {
	minUnits := spec.Cohorts.MinUnits
	other := DrillSlice{ID: DrillOtherID, Kind: DrillKindOther, CollapsedFrom: []string{}, Members: []string{DrillOtherID}}
	count := func(id string) (int64, error) {
		if minUnits <= 0 {
			return 0, nil
		}
		nv := noisy[NumberKey{id, "*", drillMetric(dim, stageOneMetric), string(privacy.StatN)}]
		if nv == nil || !nv.IsInt64() {
			return 0, fmt.Errorf("privacy: noisy count of drill-down %s slice %s missing or out of range", dim, id)
		}
		return nv.Int64(), nil
	}
	var out []DrillSlice
	var otherCount int64
	for i, v := range spec.DrillValues(dim) {
		id := drillValueID(i)
		n, err := count(id)
		if err != nil {
			return nil, err
		}
		if minUnits <= 0 || n >= minUnits {
			out = append(out, DrillSlice{ID: id, Kind: DrillKindValue, Value: v, CollapsedFrom: []string{}, Members: []string{id}, NoisyCount: stageOne(minUnits, n), Analysed: true})
			continue
		}
		other.Members = append(other.Members, id)
		other.CollapsedFrom = append(other.CollapsedFrom, fmt.Sprintf("%q", v))
		if otherCount, err = addNoisy(otherCount, n); err != nil {
			return nil, err
		}
	}
	n, err := count(DrillOtherID)
	if err != nil {
		return nil, err
	}
	if otherCount, err = addNoisy(otherCount, n); err != nil {
		return nil, err
	}
	other.NoisyCount = stageOne(minUnits, otherCount)
	other.Analysed = minUnits <= 0 || otherCount >= minUnits
	return append(out, other), nil
}

// stageOne is a slice's stage-one count for the manifest: none without
// min_units (no stage-one count is drawn).
func stageOne(minUnits, n int64) *int64 {
	if minUnits <= 0 {
		return nil
	}
	return &n
}

func addNoisy(a, b int64) (int64, error) {
	s := new(big.Int).Add(big.NewInt(a), big.NewInt(b))
	if !s.IsInt64() {
		return 0, fmt.Errorf("privacy: noisy drill-down counts overflow int64")
	}
	return s.Int64(), nil
}

// assembleDrill builds each dimension's release from the noisy numbers
// alone: its slices, and the analysed slices' cells and noise.
func (r releasedNumbers) assembleDrill(spec *expspec.Spec) ([]DrillRelease, error) {
	var out []DrillRelease
	for _, dim := range spec.DrillDimensions() {
		slices, err := drillSlices(spec, dim, r.noisy)
		if err != nil {
			return nil, err
		}
		dr := DrillRelease{Dimension: dim, Slices: slices, Noise: map[string]NoiseSD{}}
		for _, s := range slices {
			if !s.Analysed {
				continue
			}
			for _, v := range spec.Variants {
				n, err := r.count(NumberKey{s.ID, v.Name, drillMetric(dim, cellNMetric), string(privacy.StatN)})
				if err != nil {
					return nil, err
				}
				for _, m := range drillMetrics(spec) {
					c, nsd, err := r.cell(spec, s.ID, v.Name, m, drillMetric(dim, m.Name), drillMetric(dim, cellNMetric), n)
					if err != nil {
						return nil, err
					}
					dr.Noise[NoiseKey(s.ID, m.Name)] = nsd
					dr.Cells = append(dr.Cells, c)
				}
			}
		}
		out = append(out, dr)
	}
	return out, nil
}

// drillDigestLines writes the exact drill-down cells into the data digest.
func drillDigestLines(spec *expspec.Spec, exact []map[cellKey]engine.Cell) string {
	var b strings.Builder
	for i, dim := range spec.DrillDimensions() {
		for _, id := range drillIDs(spec, dim) {
			for _, v := range spec.Variants {
				for _, m := range drillMetrics(spec) {
					c := exact[i][cellKey{id, v.Name, m.Name}]
					fmt.Fprintf(&b, "drill %q %q %q %q %d", dim, id, v.Name, m.Name, c.N)
					for _, p := range c.Sums() {
						fmt.Fprintf(&b, " %s", (*p).String())
					}
					b.WriteString("\n")
				}
			}
		}
	}
	return b.String()
}

package privatize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"sort"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

// NoiseSD is the standard deviation of the noise added to one released
// cell's numbers, in scaled units: the count and each sum position.
type NoiseSD struct {
	N    float64
	Sums [9]float64
}

// NoiseKey is the key of a released cohort × metric in
// PrivateRelease.Noise.
func NoiseKey(cohort, metric string) string { return cohort + "\x00" + metric }

// NoisyGate is one released gate statistic.
type NoisyGate struct {
	Name        string  `json:"name"`
	Value       int64   `json:"value"`
	NoiseSD     float64 `json:"noise_sd"`
	Sensitivity int64   `json:"sensitivity"`
}

// ReleasedNumber records one noisy number with the exact value behind it.
// It is restricted material: the audit and the operators read it, the
// release never does.
type ReleasedNumber struct {
	Cohort      string `json:"cohort"`
	Variant     string `json:"variant"`
	Metric      string `json:"metric"`
	Statistic   string `json:"statistic"`
	Exact       string `json:"exact"`
	Noisy       string `json:"noisy"`
	Sensitivity string `json:"sensitivity"`
	Mechanism   string `json:"mechanism"`
}

// PrivateRelease is what a private run publishes and spends. Everything a
// private run writes to its output folder, prints or exits with is computed
// from it and from data-independent facts (spec, templates, code, key
// fingerprint): see publish.PublishPrivate.
type PrivateRelease struct {
	Cells   []engine.Cell // noisy, per released cohort (and (all)) × variant × metric
	Cohorts []privacy.Cohort
	Noise   map[string]NoiseSD // by NoiseKey(cohort, metric); the same for every variant
	Gates   []NoisyGate
	// Drill is the drill-downs' release, per dimension in spec order
	// (nil without drill-downs).
	Drill      []DrillRelease
	Allocation privacy.Allocation
	Digest     string // RunDigest over every released number
	Count      int    // numbers released
	// Numbers is the restricted record of every released number.
	Numbers []ReleasedNumber
	// DataDigest binds the noise to the exact values (restricted).
	DataDigest string
}

// dataDigest is the SHA-256 of every exact value a private release is
// computed from — the leaf cells and the gate statistics — and the night.
// Noise streams are derived from it, so two runs whose exact values are
// identical draw identical noise (a byte-identical, free rerun, whatever
// build or template version computed them), and any change in any exact
// value draws fresh noise everywhere.
func dataDigest(date string, cells []engine.Cell, q engine.Quality, drill string) string {
	sorted := append([]engine.Cell(nil), cells...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Cohort != b.Cohort {
			return a.Cohort < b.Cohort
		}
		if a.Variant != b.Variant {
			return a.Variant < b.Variant
		}
		return a.Metric < b.Metric
	})
	h := sha256.New()
	fmt.Fprintf(h, "verity/private/data-digest/v1\x00date %q\n", date)
	for _, c := range sorted {
		fmt.Fprintf(h, "cell %q %q %q %d", c.Cohort, c.Variant, c.Metric, c.N)
		for _, p := range c.Sums() {
			fmt.Fprintf(h, " %s", (*p).String())
		}
		fmt.Fprintln(h)
	}
	for _, g := range gateStats {
		fmt.Fprintf(h, "gate %s %d\n", g.name, g.value(q))
	}
	h.Write([]byte(drill)) // empty without drill-downs: other specs keep their noise
	return hex.EncodeToString(h.Sum(nil))
}

// publishedDigestMarker replaces the data digest in the descriptions the
// run digest covers.
const publishedDigestMarker = "(published)"

// NumberKey identifies one released number: cohort ("*" for the gate
// statistics), variant ("*" for stage-one counts and gates), metric (or a
// pseudo-metric) and statistic.
type NumberKey struct{ Cohort, Variant, Metric, Statistic string }

// Privatize releases the exact leaf cells and gate statistics with keyed
// noise. Stage one adds noise to each leaf's unit count (all arms together)
// and collapses leaves below cohorts.min_units; stage two adds noise to every
// count and sum of each released cohort × variant × metric, and to every
// gate statistic. The release is then assembled from the noisy numbers
// alone (AssemblePrivate). specHash and the data digest bind the noise to
// the analysis and to the exact values.
//
// When no cohort reaches min_units, Privatize returns the stage-one release
// (to be charged: the failure is decided on its noisy counts) with an error.
func Privatize(spec *expspec.Spec, cells []engine.Cell, drill []engine.DrillDimension, q engine.Quality, key privacy.Key, specHash, date string) (*PrivateRelease, error) {
	alloc, err := Allocate(spec)
	if err != nil {
		return nil, fmt.Errorf("privacy budget: %w", err)
	}
	exact := indexCells(cells)
	var exactDr []map[cellKey]engine.Cell
	digestDr := ""
	if privateDrill(spec) {
		if exactDr, err = exactDrill(spec, drill); err != nil {
			return nil, err
		}
		digestDr = drillDigestLines(spec, exactDr)
	}
	d := &noiseDrawer{spec: spec, shares: sharesByStat(alloc), key: key, specHash: specHash, digest: dataDigest(date, cells, q, digestDr), noisy: map[NumberKey]*big.Int{}}
	if err := d.noisyLeafCounts(exact); err != nil {
		return nil, err
	}
	cohorts, cerr := releasedCohorts(spec, d.noisy)
	if cerr == nil {
		if err := d.noisyCohortCells(cohorts, exact); err != nil {
			return nil, err
		}
		if err := d.noisyGateStats(q); err != nil {
			return nil, err
		}
		if exactDr != nil {
			if err := d.noisyDrill(exactDr); err != nil {
				return nil, err
			}
		}
	}
	count := len(d.released)
	runDigest, err := privacy.RunDigest(key.Fingerprint(), d.released)
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return &PrivateRelease{Allocation: alloc, Digest: runDigest, Count: count, Numbers: d.numbers, DataDigest: d.digest}, cerr
	}
	rel, err := AssemblePrivate(spec, alloc, d.noisy)
	if err != nil {
		return nil, err
	}
	rel.Digest, rel.Count, rel.Numbers, rel.DataDigest = runDigest, count, d.numbers, d.digest
	return rel, nil
}

// cellKey identifies a cell: cohort, variant, metric.
type cellKey struct{ c, v, m string }

// indexCells indexes cells by cohort × variant × metric.
func indexCells(cells []engine.Cell) map[cellKey]engine.Cell {
	exact := map[cellKey]engine.Cell{}
	for _, c := range cells {
		exact[cellKey{c.Cohort, c.Variant, c.Metric}] = c
	}
	return exact
}

// noiseDrawer draws the keyed noise of one private run and keeps, in draw
// order, every number it released.
type noiseDrawer struct {
	spec     *expspec.Spec
	shares   map[string]privacy.Share // by metric and statistic (sharesByStat)
	key      privacy.Key
	specHash string
	digest   string // dataDigest of the exact values

	noisy    map[NumberKey]*big.Int
	released []privacy.Released // public descriptions, for the run digest
	numbers  []ReleasedNumber   // restricted record
}

// draw releases one number: its exact value plus noise from the keyed
// stream its description names, with the mechanism of its allocation share.
func (d *noiseDrawer) draw(k NumberKey, value *big.Int) error {
	sh, ok := d.shares[k.Metric+"\x00"+k.Statistic]
	if !ok {
		return fmt.Errorf("privacy: no allocation for %s/%s", k.Metric, k.Statistic)
	}
	r := privacy.Release{Analysis: d.spec.Experiment, SpecHash: d.specHash, DataDigest: d.digest,
		Cohort: k.Cohort, Variant: k.Variant, Metric: k.Metric, Statistic: privacy.Statistic(k.Statistic), Mechanism: sh.Mechanism}
	out, err := privacy.AddNoise(privacy.NewStream(d.key, r), value, sh.Mechanism)
	if err != nil {
		return fmt.Errorf("privacy: release %s/%s/%s/%s: %w", k.Cohort, k.Variant, k.Metric, k.Statistic, err)
	}
	d.noisy[k] = out
	// The run digest identifies what is published: the public part of
	// each description and the noisy value. The data digest is left
	// out, or the published digest would be an unkeyed hash of the
	// exact values, which anyone could test candidate datasets against.
	pub := r
	pub.DataDigest = publishedDigestMarker
	d.released = append(d.released, privacy.Released{Release: pub, Value: out})
	d.numbers = append(d.numbers, ReleasedNumber{Cohort: k.Cohort, Variant: k.Variant, Metric: k.Metric, Statistic: k.Statistic,
		Exact: value.String(), Noisy: out.String(), Sensitivity: sh.Sensitivity.String(), Mechanism: sh.Mechanism.String()})
	return nil
}

// exactUnits is the exact number of units in the leaves, of one variant or
// of every variant ("*"): the first metric's n, which every assigned unit
// has.
func exactUnits(spec *expspec.Spec, exact map[cellKey]engine.Cell, leaves []string, variant string) *big.Int {
	n := int64(0)
	for _, l := range leaves {
		for _, v := range spec.Variants {
			if variant == "*" || v.Name == variant {
				n += exact[cellKey{l, v.Name, spec.Metrics[0].Name}].N
			}
		}
	}
	return big.NewInt(n)
}

// noisyLeafCounts is stage one: when the spec collapses cohorts, a noisy
// unit count per leaf, every arm together.
func (d *noiseDrawer) noisyLeafCounts(exact map[cellKey]engine.Cell) error {
	if d.spec.Cohorts.MinUnits <= 0 {
		return nil
	}
	for _, l := range PrivateLeaves(d.spec) {
		if err := d.draw(NumberKey{l, "*", stageOneMetric, string(privacy.StatN)}, exactUnits(d.spec, exact, []string{l}, "*")); err != nil {
			return err
		}
	}
	return nil
}

// noisyCohortCells is stage two: for each released cohort × variant, the
// noisy unit count, then every released sum of each metric, summed
// exactly over the cohort's leaves.
func (d *noiseDrawer) noisyCohortCells(cohorts []privacy.Cohort, exact map[cellKey]engine.Cell) error {
	for _, coh := range cohorts {
		for _, v := range d.spec.Variants {
			if err := d.draw(NumberKey{coh.Label, v.Name, cellNMetric, string(privacy.StatN)}, exactUnits(d.spec, exact, coh.Leaves, v.Name)); err != nil {
				return err
			}
			for _, m := range d.spec.Metrics {
				sums := leafSums(exact, coh, v.Name, m.Name)
				ps := sums.Sums()
				idx, _ := releasedStats(d.spec, m)
				for _, k := range idx {
					if err := d.draw(NumberKey{coh.Label, v.Name, m.Name, string(statOfSum[k])}, *ps[k]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// leafSums is the exact cell of a released cohort × variant × metric: the
// sums of its leaves' cells (its count is left at zero).
func leafSums(exact map[cellKey]engine.Cell, coh privacy.Cohort, variant, metric string) engine.Cell {
	sums := engine.NewCell(coh.Label, variant, metric)
	ps := sums.Sums()
	for _, l := range coh.Leaves {
		if src := exact[cellKey{l, variant, metric}]; src.Sum != nil {
			for i, p := range src.Sums() {
				(*ps[i]).Add(*ps[i], *p)
			}
		}
	}
	return sums
}

// noisyGateStats releases every gate statistic with noise, after the
// cells.
func (d *noiseDrawer) noisyGateStats(q engine.Quality) error {
	for _, g := range gateStats {
		if err := d.draw(NumberKey{"*", "*", gateMetric, g.name}, big.NewInt(g.value(q))); err != nil {
			return err
		}
	}
	return nil
}

func sharesByStat(alloc privacy.Allocation) map[string]privacy.Share {
	m := map[string]privacy.Share{}
	for _, sh := range alloc.Shares {
		m[sh.Metric+"\x00"+string(sh.Statistic)] = sh
	}
	return m
}

// PrivateLeaves are the collapsible leaves: the taxonomy and _unclassified.
func PrivateLeaves(spec *expspec.Spec) []string {
	leaves := append(append([]string{}, spec.Cohorts.Taxonomy...), expspec.UnclassifiedLeaf)
	sort.Strings(leaves)
	return leaves
}

// releasedCohorts decides the released cohorts from the noisy stage-one
// counts alone (every leaf when the spec does not collapse).
func releasedCohorts(spec *expspec.Spec, noisy map[NumberKey]*big.Int) ([]privacy.Cohort, error) {
	leaves := PrivateLeaves(spec)
	if spec.Cohorts.MinUnits <= 0 {
		var out []privacy.Cohort
		for _, l := range leaves {
			out = append(out, privacy.Cohort{Label: l, Leaves: []string{l}})
		}
		return out, nil
	}
	counts := map[string]int64{}
	for _, l := range leaves {
		nv := noisy[NumberKey{l, "*", stageOneMetric, string(privacy.StatN)}]
		if nv == nil || !nv.IsInt64() {
			return nil, fmt.Errorf("privacy: noisy count of %s missing or out of range", l)
		}
		counts[l] = nv.Int64()
	}
	out, err := privacy.Collapse(leaves, counts, spec.Cohorts.MinUnits)
	if err != nil {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "cohorts.min_units", Err: fmt.Errorf("nothing can be released (decided on noisy counts, charged to the ledger): %w", err)}
	}
	return out, nil
}

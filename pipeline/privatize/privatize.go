package privatize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"sort"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// LoadKey reads the noise key of a private spec. A missing or malformed key
// is a configuration error (exit 78); the key never appears in a message.
func LoadKey(spec *expspec.Spec, host ledgers.Host) (privacy.Key, error) {
	p := spec.Privacy
	path := ""
	if p.KeyFile != "" {
		path = p.KeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(spec.Path()), filepath.FromSlash(path))
		}
	}
	k, err := privacy.LoadKey(p.KeyEnv, path, os.Getenv, diskio.ReadRegularFile)
	if err != nil {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("no usable noise key, so no private release: %w", err)}
	}
	if k.Fingerprint() == ledgers.TestKeyFingerprint && !host.AllowTestKey {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("%w: this is the committed TEST-ONLY key, which is public and protects nothing; it is accepted only with --allow-test-key (tests)", privacy.ErrBadKey)}
	}
	return k, nil
}

// internalTemplates are the templates the code pins (not the spec).
var internalTemplates = []string{"session/v1.sql", "settings/v1.sql", "file_metadata/v1.sql", "file_schema/v1.sql", "file_check/v1.sql", "event_names/v1.sql"}

// ReleasedTemplatesOnly refuses, for a private spec, any template that is
// not byte for byte the one released in the binary's own lock: a template
// folder with its own lock (--queries-dir) could drop a clamp or a
// de-duplication key and so break the sensitivity the noise is calibrated
// for.
func ReleasedTemplatesOnly(fsys fs.FS, spec *expspec.Spec) error {
	lock, err := queries.ReadLock(queries.FS())
	if err != nil {
		return err
	}
	released := map[string]string{}
	for _, e := range lock.Entries {
		released[e.Path] = e.SHA256
	}
	paths := append([]string{}, internalTemplates...)
	for _, name := range expspec.TemplateNames {
		paths = append(paths, name+"/"+spec.Templates[name]+".sql")
	}
	for _, p := range paths {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return &expspec.SpecError{File: spec.Path(), Key: "templates", Err: fmt.Errorf("template %s: %w", p, err)}
		}
		if sum := queries.Sum(data); released[p] != sum {
			return &expspec.SpecError{File: spec.Path(), Key: "templates", Err: fmt.Errorf("a private run uses only the templates released in this binary: %s has sha256 %s, the binary's lock %q", p, sum, released[p])}
		}
	}
	return nil
}

// statOfSum maps Cell.Sums() positions to the released statistics.
var statOfSum = []privacy.Statistic{
	privacy.StatSumX, privacy.StatSumX2, privacy.StatSumY, privacy.StatSumY2, privacy.StatSumXY,
	privacy.StatSumC, privacy.StatSumC2, privacy.StatSumXC, privacy.StatSumYC,
}

// Pseudo-metric names of the count releases in the budget allocation; a
// real metric name cannot contain parentheses.
const (
	stageOneMetric = "(stage1)" // noisy unit count per leaf, all arms together
	cellNMetric    = "(cell)"   // noisy unit count per released cohort × variant
)

// releasedStats returns, for one metric, the positions in Cell.Sums() that
// are released and their sensitivities (scaled integer units, at least 1).
func releasedStats(spec *expspec.Spec, m expspec.Metric) (idx []int, sens []*big.Int) {
	scale := big.NewInt(spec.Scale())
	lo, hi := new(big.Int), new(big.Int).Set(scale) // proportion: x in {0, S}
	if m.Clamp != nil {
		lo, hi = big.NewInt(expspec.ScaleBound(m.Clamp.Lower, spec.Scale())), big.NewInt(expspec.ScaleBound(m.Clamp.Upper, spec.Scale()))
	}
	ylo, yhi := new(big.Int), new(big.Int)
	if m.Denominator != nil {
		ylo = big.NewInt(expspec.ScaleBound(m.Denominator.Clamp.Lower, spec.Scale()))
		yhi = big.NewInt(expspec.ScaleBound(m.Denominator.Clamp.Upper, spec.Scale()))
	}
	add := func(i int, s *big.Int) {
		if s.Sign() == 0 {
			s = big.NewInt(1) // a constant statistic: any positive sensitivity is safe
		}
		idx, sens = append(idx, i), append(sens, s)
	}
	// A proportion's x is 0 or S, so Σx² = S·Σx: derived, never released.
	prop := m.Kind == "proportion"
	add(0, privacy.SumSensitivity(lo, hi))
	if !prop {
		add(1, privacy.SquareSensitivity(lo, hi))
	}
	ratio := m.Kind == "ratio"
	if ratio {
		add(2, privacy.SumSensitivity(ylo, yhi))
		add(3, privacy.SquareSensitivity(ylo, yhi))
		add(4, privacy.ProductSensitivity(lo, hi, ylo, yhi))
	}
	if spec.Statistics.CUPED != nil {
		add(5, privacy.SumSensitivity(lo, hi))
		if !prop {
			add(6, privacy.SquareSensitivity(lo, hi))
		}
		add(7, privacy.ProductSensitivity(lo, hi, lo, hi))
		if ratio {
			add(8, privacy.ProductSensitivity(ylo, yhi, lo, hi))
		}
	}
	return idx, sens
}

// gateStat is one per-unit statistic a private run's quality gates decide
// on, released with noise like any cell statistic.
type gateStat struct {
	name  string
	value func(q engine.Quality) int64
	// sens is the statistic's sensitivity: the most one unit's rows can
	// change it.
	sens func(spec *expspec.Spec) int64
}

func one(*expspec.Spec) int64 { return 1 }

// eventNames is the number of distinct event names a spec reads: a unit
// counts at most once per event name in a per-event-name unit count.
func eventNames(spec *expspec.Spec) int64 {
	names := map[string]bool{}
	for _, m := range spec.Metrics {
		names[m.Event] = true
		if m.Denominator != nil {
			names[m.Denominator.Event] = true
		}
	}
	return int64(len(names))
}

// Opt64 is *p, or 0 when p is nil (a count the quality template's version
// does not compute).
func Opt64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// gateStats are the statistics behind a private run's quality gates, each
// bounded per unit. Rows with a NULL, empty or blank unit_id belong to no
// unit: adding or removing a unit's history leaves their number unchanged
// (sensitivity 0), so they could be released exactly; they are noised
// with sensitivity 1 anyway, which costs little and keeps every gate input
// noisy.
var gateStats = []gateStat{
	{"units_exposed", func(q engine.Quality) int64 { return q.UnitsExposed }, one},
	{"units_multi_variant", func(q engine.Quality) int64 { return q.UnitsMultiVariant }, one},
	{"units_trace_null_keys", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceNullKeys) }, one},
	{"trace_no_unit", func(q engine.Quality) int64 { return Opt64(q.TraceNoUnit) }, one},
	{"units_trace_duplicate", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceDuplicate) }, one},
	{"units_trace_version_mismatch", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceVersionMismatch) }, one},
	{"units_trace_unknown_variant", func(q engine.Quality) int64 { return Opt64(q.UnitsTraceUnknownVariant) }, one},
	{"units_event_null_keys", func(q engine.Quality) int64 { return Opt64(q.UnitsEventNullKeys) }, eventNames},
	{"event_no_unit", func(q engine.Quality) int64 { return Opt64(q.EventNoUnit) }, one},
	{"units_event_duplicate", func(q engine.Quality) int64 { return Opt64(q.UnitsEventDuplicate) }, eventNames},
	{"units_event_invalid_value", func(q engine.Quality) int64 { return Opt64(q.UnitsEventInvalidValue) }, eventNames},
	{"units_event_null_metric", func(q engine.Quality) int64 { return Opt64(q.UnitsEventNullMetric) }, one},
}

// gateMetric is the pseudo-metric name of the gate statistics in the
// allocation and the noise streams.
const gateMetric = "(gates)"

// Allocate splits the run budget across the statistics one unit can touch:
// its leaf's stage-one count (when collapsing), its cell's count, every
// released sum of every metric (1 − gate_share of the run), and every
// gate statistic (gate_share). Each unit is in one leaf and one cell, so the
// run's cost is the allocation's total.
func Allocate(spec *expspec.Spec) (privacy.Allocation, error) {
	var req []privacy.StatSpec
	if spec.Cohorts.MinUnits > 0 {
		req = append(req, privacy.StatSpec{Metric: stageOneMetric, Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
	}
	req = append(req, privacy.StatSpec{Metric: cellNMetric, Statistic: privacy.StatN, Sensitivity: big.NewInt(1), Weight: privacy.DefaultWeight(privacy.StatN)})
	for _, m := range spec.Metrics {
		idx, sens := releasedStats(spec, m)
		for i, k := range idx {
			req = append(req, privacy.StatSpec{Metric: m.Name, Statistic: statOfSum[k], Sensitivity: sens[i], Weight: privacy.DefaultWeight(statOfSum[k])})
		}
	}
	var gates []privacy.StatSpec
	for _, g := range gateStats {
		gates = append(gates, privacy.StatSpec{Metric: gateMetric, Statistic: privacy.Statistic(g.name), Sensitivity: big.NewInt(g.sens(spec)), Weight: 1})
	}
	share := new(big.Rat).SetFloat64(spec.Privacy.EffectiveGateShare())
	rest := new(big.Rat).Sub(big.NewRat(1, 1), share)
	return privacy.AllocateGroups(spec.Privacy.Budget(), []privacy.Group{{Fraction: rest, Stats: req}, {Fraction: share, Stats: gates}})
}

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
	Cells      []engine.Cell // noisy, per released cohort (and (all)) × variant × metric
	Cohorts    []privacy.Cohort
	Noise      map[string]NoiseSD // by NoiseKey(cohort, metric); the same for every variant
	Gates      []NoisyGate
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
func dataDigest(date string, cells []engine.Cell, q engine.Quality) string {
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
func Privatize(spec *expspec.Spec, cells []engine.Cell, q engine.Quality, key privacy.Key, specHash, date string) (*PrivateRelease, error) {
	alloc, err := Allocate(spec)
	if err != nil {
		return nil, fmt.Errorf("privacy budget: %w", err)
	}
	exact := indexCells(cells)
	d := &noiseDrawer{spec: spec, shares: sharesByStat(alloc), key: key, specHash: specHash, digest: dataDigest(date, cells, q), noisy: map[NumberKey]*big.Int{}}
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
	nv, err := r.get(NumberKey{cohort, variant, cellNMetric, string(privacy.StatN)})
	if err != nil {
		return 0, err
	}
	if !nv.IsInt64() {
		return 0, fmt.Errorf("privacy: noisy count of %s/%s out of range", cohort, variant)
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
	nsd := NoiseSD{N: r.sd(cellNMetric, string(privacy.StatN))}
	c := engine.NewCell(cohort, variant, m.Name)
	c.N = n
	sums := c.Sums()
	idx, _ := releasedStats(spec, m)
	for _, k := range idx {
		out, err := r.get(NumberKey{cohort, variant, m.Name, string(statOfSum[k])})
		if err != nil {
			return engine.Cell{}, NoiseSD{}, err
		}
		*sums[k] = out
		nsd.Sums[k] = r.sd(m.Name, string(statOfSum[k]))
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

package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/privacy"
)

// Privacy is the spec's privacy section. It is required, so that a release
// is private or not by an explicit decision: `privacy: {enabled: false}`
// releases exact numbers and every output says so.
type Privacy struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Epsilon and Delta are the experiment's total budget over all its
	// runs. Delta 0 means pure ε-DP with the discrete Laplace mechanism;
	// Delta > 0 means ρ-zCDP with the discrete Gaussian (the default
	// mechanism), converted from (ε, δ) with the tight CKS20 bound.
	Epsilon float64 `yaml:"epsilon,omitempty" json:"epsilon,omitempty"`
	Delta   float64 `yaml:"delta,omitempty" json:"delta,omitempty"`
	// RunShare is the fraction of the total one run may spend (e.g. 0.05
	// for twenty nightly releases).
	RunShare float64 `yaml:"run_share,omitempty" json:"run_share,omitempty"`
	// KeyEnv names the environment variable holding the noise key
	// (default VERITY_NOISE_KEY); KeyFile, relative to the spec, names a
	// file instead. The key itself is never written anywhere.
	KeyEnv  string `yaml:"key_env,omitempty" json:"key_env,omitempty"`
	KeyFile string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
}

var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DefaultKeyEnv is the environment variable read for the noise key when a
// private spec names neither key_env nor key_file.
const DefaultKeyEnv = "VERITY_NOISE_KEY"

// UnclassifiedLeaf is the cohort of units whose persona is not a declared
// taxonomy leaf (NULL, unknown, or an internal node). It is a top-level
// leaf for collapsing; in private runs a small one merges into "*".
const UnclassifiedLeaf = "_unclassified"

func (p *Privacy) validate(s *Spec) error {
	if !p.Enabled {
		if p.Epsilon != 0 || p.Delta != 0 || p.RunShare != 0 || p.KeyEnv != "" || p.KeyFile != "" {
			return s.errf("privacy", "budget or key given but enabled is false; remove them or enable privacy")
		}
		return nil
	}
	b := privacy.Budget{Epsilon: p.Epsilon, Delta: p.Delta, RunShare: p.RunShare}
	if err := b.Validate(); err != nil {
		return s.errf("privacy", "%v (want epsilon > 0, delta 0 or in (0, 1), run_share in (0, 1])", strings.TrimPrefix(err.Error(), "privacy: "))
	}
	if p.KeyEnv != "" && p.KeyFile != "" {
		return s.errf("privacy", "name key_env or key_file, not both")
	}
	if p.KeyEnv == "" && p.KeyFile == "" {
		p.KeyEnv = DefaultKeyEnv
	}
	if p.KeyEnv != "" && !envRE.MatchString(p.KeyEnv) {
		return s.errf("privacy.key_env", "want an environment variable name, got %q", p.KeyEnv)
	}
	return nil
}

func (p Privacy) budget() privacy.Budget {
	return privacy.Budget{Epsilon: p.Epsilon, Delta: p.Delta, RunShare: p.RunShare}
}

// loadKey reads the noise key of a private spec. A missing or malformed key
// is a configuration error (exit 78); the key never appears in a message.
func loadKey(spec *Spec) (privacy.Key, error) {
	p := spec.Privacy
	path := ""
	if p.KeyFile != "" {
		path = p.KeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(spec.Path()), filepath.FromSlash(path))
		}
	}
	k, err := privacy.LoadKey(p.KeyEnv, path, os.Getenv, os.ReadFile)
	if err != nil {
		return nil, &SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("no usable noise key, so no private release: %w", err)}
	}
	return k, nil
}

// statSumIndex maps Cell.sums() positions to the released statistics.
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

// releasedStats returns, for one metric, the positions in Cell.sums() that
// are released and their sensitivities (scaled integer units, at least 1).
func releasedStats(spec *Spec, m Metric) (idx []int, sens []*big.Int) {
	scale := big.NewInt(spec.Scale())
	lo, hi := new(big.Int), new(big.Int).Set(scale) // proportion: x in {0, S}
	if m.Clamp != nil {
		lo, hi = big.NewInt(scaleBound(m.Clamp.Lower, spec.Scale())), big.NewInt(scaleBound(m.Clamp.Upper, spec.Scale()))
	}
	ylo, yhi := new(big.Int), new(big.Int)
	if m.Denominator != nil {
		ylo = big.NewInt(scaleBound(m.Denominator.Clamp.Lower, spec.Scale()))
		yhi = big.NewInt(scaleBound(m.Denominator.Clamp.Upper, spec.Scale()))
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

// allocate splits the run budget across the statistics one unit can touch:
// its leaf's stage-one count (when collapsing), its cell's count, and every
// released sum of every metric. Each unit is in one leaf and one cell, so
// the run's cost is the allocation's total.
func allocate(spec *Spec) (privacy.Allocation, error) {
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
	return privacy.Allocate(spec.Privacy.budget(), req)
}

// noiseSD is the standard deviation of the noise added to one released
// cell's numbers, in scaled units: the count and each sum position.
type noiseSD struct {
	N    float64
	Sums [9]float64
}

func noiseKey(cohort, metric string) string { return cohort + "\x00" + metric }

// privateRelease is what a private run publishes and spends.
type privateRelease struct {
	Cells      []Cell // noisy, per released cohort (and (all)) × variant × metric
	Cohorts    []privacy.Cohort
	Noise      map[string]noiseSD // by noiseKey(cohort, metric); the same for every variant
	Allocation privacy.Allocation
	Digest     string // RunDigest over every released number
	Count      int    // numbers released
}

// privatize releases the exact leaf cells with keyed noise. Stage one adds
// noise to each leaf's unit count (all arms together) and collapses leaves
// below cohorts.min_units (privacy.Collapse); stage two adds noise to every
// count and sum of each released cohort × variant × metric. (all) is the sum
// of the released cells: post-processing, free. analysisHash binds the
// noise to the spec and the exact templates; inputDigest to the data.
func privatize(spec *Spec, cells []Cell, key privacy.Key, analysisHash, inputDigest string) (*privateRelease, error) {
	alloc, err := allocate(spec)
	if err != nil {
		return nil, fmt.Errorf("privacy budget: %w", err)
	}
	mech := map[string]privacy.Mechanism{}
	for _, sh := range alloc.Shares {
		mech[sh.Metric+"\x00"+string(sh.Statistic)] = sh.Mechanism
	}
	type key3 struct{ c, v, m string }
	exact := map[key3]Cell{}
	for _, c := range cells {
		exact[key3{c.Cohort, c.Variant, c.Metric}] = c
	}
	leaves := append(append([]string{}, spec.Cohorts.Taxonomy...), UnclassifiedLeaf)
	sort.Strings(leaves)
	rel := &privateRelease{Allocation: alloc, Noise: map[string]noiseSD{}}
	var released []privacy.Released
	noisy := func(cohort, variant, metric string, stat privacy.Statistic, value *big.Int) (*big.Int, float64, error) {
		m, ok := mech[metric+"\x00"+string(stat)]
		if !ok {
			return nil, 0, fmt.Errorf("privacy: no allocation for %s/%s", metric, stat)
		}
		r := privacy.Release{Analysis: spec.Experiment, SpecHash: analysisHash, InputDigest: inputDigest,
			Cohort: cohort, Variant: variant, Metric: metric, Statistic: stat, Mechanism: m}
		out, err := privacy.AddNoise(privacy.NewStream(key, r), value, m)
		if err != nil {
			return nil, 0, fmt.Errorf("privacy: release %s/%s/%s/%s: %w", cohort, variant, metric, stat, err)
		}
		released = append(released, privacy.Released{Release: r, Value: out})
		return out, m.StdDev(), nil
	}

	// Stage one: noisy unit counts per leaf, every arm together.
	first := spec.Metrics[0].Name
	if spec.Cohorts.MinUnits > 0 {
		counts := map[string]int64{}
		for _, l := range leaves {
			n := int64(0)
			for _, v := range spec.Variants {
				n += exact[key3{l, v.Name, first}].N
			}
			nv, _, err := noisy(l, "*", stageOneMetric, privacy.StatN, big.NewInt(n))
			if err != nil {
				return nil, err
			}
			if !nv.IsInt64() {
				return nil, fmt.Errorf("privacy: noisy count of %s out of range", l)
			}
			counts[l] = nv.Int64()
		}
		rel.Cohorts, err = privacy.Collapse(leaves, counts, spec.Cohorts.MinUnits)
		if err != nil {
			return nil, &SpecError{File: spec.Path(), Key: "cohorts.min_units", Err: fmt.Errorf("nothing can be released: %w", err)}
		}
	} else {
		for _, l := range leaves {
			rel.Cohorts = append(rel.Cohorts, privacy.Cohort{Label: l, Leaves: []string{l}})
		}
	}

	// Stage two: every count and sum of each released cohort × variant.
	all := map[key3]Cell{}
	for _, coh := range rel.Cohorts {
		for _, v := range spec.Variants {
			n := int64(0)
			for _, l := range coh.Leaves {
				n += exact[key3{l, v.Name, first}].N
			}
			nv, sdN, err := noisy(coh.Label, v.Name, cellNMetric, privacy.StatN, big.NewInt(n))
			if err != nil {
				return nil, err
			}
			if !nv.IsInt64() {
				return nil, fmt.Errorf("privacy: noisy count of %s/%s out of range", coh.Label, v.Name)
			}
			// A count is never negative: clamping the noisy value is
			// post-processing and costs no privacy.
			if nv.Sign() < 0 {
				nv.SetInt64(0)
			}
			for _, m := range spec.Metrics {
				sd := noiseSD{N: sdN}
				c := newCell(coh.Label, v.Name, m.Name)
				c.N = nv.Int64()
				sums := c.sums()
				for _, l := range coh.Leaves {
					src := exact[key3{l, v.Name, m.Name}]
					if src.Sum == nil {
						continue
					}
					ss := src.sums()
					for i := range sums {
						(*sums[i]).Add(*sums[i], *ss[i])
					}
				}
				idx, _ := releasedStats(spec, m)
				released := map[int]bool{}
				for _, k := range idx {
					released[k] = true
					out, sdS, err := noisy(coh.Label, v.Name, m.Name, statOfSum[k], *sums[k])
					if err != nil {
						return nil, err
					}
					*sums[k] = out
					sd.Sums[k] = sdS
				}
				for i := range sums {
					if !released[i] {
						*sums[i] = new(big.Int) // never published: not computed, or not needed
					}
				}
				if m.Kind == "proportion" {
					// Post-processing: x ∈ {0, S} ⇒ x² = S·x.
					sc := big.NewInt(spec.Scale())
					c.SumSq.Mul(c.Sum, sc)
					if spec.Statistics.CUPED != nil {
						c.SumC2.Mul(c.SumC, sc)
					}
				}
				rel.Noise[noiseKey(coh.Label, m.Name)] = sd
				rel.Cells = append(rel.Cells, c)
				a := all[key3{AllCohort, v.Name, m.Name}]
				if a.Sum == nil {
					a = newCell(AllCohort, v.Name, m.Name)
				}
				a.N += c.N
				as, cs := a.sums(), c.sums()
				for i := range as {
					(*as[i]).Add(*as[i], *cs[i])
				}
				all[key3{AllCohort, v.Name, m.Name}] = a
			}
		}
	}
	// (all) sums independent noise of every released cohort.
	for _, m := range spec.Metrics {
		var sum noiseSD
		for _, coh := range rel.Cohorts {
			sd := rel.Noise[noiseKey(coh.Label, m.Name)]
			sum.N = math.Hypot(sum.N, sd.N)
			for i := range sum.Sums {
				sum.Sums[i] = math.Hypot(sum.Sums[i], sd.Sums[i])
			}
		}
		rel.Noise[noiseKey(AllCohort, m.Name)] = sum
	}
	var withAll []Cell
	for _, v := range spec.Variants {
		for _, m := range spec.Metrics {
			withAll = append(withAll, all[key3{AllCohort, v.Name, m.Name}])
		}
	}
	rel.Cells = append(withAll, rel.Cells...)
	rel.Count = len(released)
	rel.Digest, err = privacy.RunDigest(key.Fingerprint(), released)
	if err != nil {
		return nil, err
	}
	return rel, nil
}

// analysisHash binds noise streams to the resolved spec and to the exact
// SQL that produced the numbers, so that a template change draws fresh
// noise instead of publishing the difference of two releases exactly. The
// code version is deliberately not part of it: a replay on a newer binary
// must reproduce the same noise.
func analysisHash(specHash string, tmpls []TemplateRecord) string {
	h := sha256.New()
	fmt.Fprintf(h, "spec %s\n", specHash)
	for _, t := range tmpls {
		fmt.Fprintf(h, "template %s %s %s %s\n", t.Name, t.Version, t.SHA256, t.RenderedSHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LedgerFile is the privacy ledger's name in each experiment's folder.
const LedgerFile = "privacy-ledger.json"

// spendBudget records the run in the experiment's ledger before anything
// is released: budget spent without a release is safe, a release without
// its spending recorded is not. A rerun that publishes exactly the same
// numbers (same digest) spends nothing. The caller holds the folder lock.
func spendBudget(expDir string, spec *Spec, date string, rel *privateRelease) (privacy.Ledger, *big.Rat, error) {
	path := filepath.Join(expDir, LedgerFile)
	var l privacy.Ledger
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l, err = privacy.NewLedger(spec.Experiment, spec.Privacy.budget())
		if err != nil {
			return privacy.Ledger{}, nil, err
		}
	case err != nil:
		return privacy.Ledger{}, nil, fmt.Errorf("privacy ledger %s: %w", path, err)
	default:
		l, err = privacy.UnmarshalLedger(b)
		if err != nil {
			return privacy.Ledger{}, nil, fmt.Errorf("privacy ledger %s is unreadable (%v): refusing to release without knowing what was spent", path, err)
		}
		if l.Budget != spec.Privacy.budget() {
			return privacy.Ledger{}, nil, &SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("budget %+v differs from the one in %s (%+v): an experiment's total budget cannot change", spec.Privacy.budget(), path, l.Budget)}
		}
	}
	entry := privacy.Entry{Experiment: spec.Experiment, NominalDate: date, ReleaseDigest: rel.Digest, Spent: rel.Allocation.Spent}
	cost, err := l.Cost(entry)
	if err == nil {
		err = l.Spend(entry)
	}
	if err != nil {
		return privacy.Ledger{}, nil, &SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("refusing to release: %w", err)}
	}
	out, err := l.Marshal()
	if err != nil {
		return privacy.Ledger{}, nil, err
	}
	if err := writeAtomic(path, out); err != nil {
		return privacy.Ledger{}, nil, fmt.Errorf("privacy ledger %s: %w", path, err)
	}
	return l, cost, nil
}

// writeAtomic replaces path with data through a synced temporary file.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// PrivacyInfo states whether and how the release is differentially
// private and what it costs. It depends only on the spec, key, data and
// code, so a rerun reproduces it; what earlier runs spent is history and
// lives in the ledger (and in the manifest's volatile LedgerState).
type PrivacyInfo struct {
	Enabled        bool             `json:"enabled"`
	Note           string           `json:"note"`
	Mechanism      string           `json:"mechanism,omitempty"`
	Accounting     string           `json:"accounting,omitempty"`
	Budget         *privacy.Budget  `json:"budget,omitempty"`
	Total          string           `json:"total,omitempty"`    // the experiment's total, exact, in accounting units
	PerRun         string           `json:"per_run,omitempty"`  // one run's share, exact
	RunCost        string           `json:"run_cost,omitempty"` // what this release costs the first time it is published
	EpsilonRun     float64          `json:"epsilon_equivalent_of_run,omitempty"`
	KeyFingerprint string           `json:"key_fingerprint,omitempty"` // never the key
	SamplerVersion string           `json:"sampler_version,omitempty"`
	ReleaseDigest  string           `json:"release_digest,omitempty"`
	MinUnits       int64            `json:"min_units,omitempty"`
	Released       int              `json:"released_numbers,omitempty"`
	Cohorts        []privacy.Cohort `json:"cohorts,omitempty"`
	Allocation     []privacy.Share  `json:"allocation,omitempty"`
}

// LedgerState is the privacy ledger as this run left it (volatile: it
// depends on the runs before).
type LedgerState struct {
	SpentThisRun string  `json:"spent_this_run"` // "0" for a rerun that republished the same numbers
	Spent        string  `json:"spent"`          // over every recorded run
	Total        string  `json:"total"`
	EpsilonSpent float64 `json:"epsilon_equivalent_spent"`
	Entries      int     `json:"entries"`
}

func privacyInfo(spec *Spec, key privacy.Key, rel *privateRelease, l privacy.Ledger, spentNow *big.Rat) (PrivacyInfo, LedgerState) {
	info := PrivacyInfo{
		Enabled:        true,
		Note:           "differentially private: counts and sums carry exact discrete noise; intervals include its variance",
		Accounting:     string(rel.Allocation.Accounting),
		Budget:         &l.Budget,
		Total:          l.Total.RatString(),
		PerRun:         rel.Allocation.PerRun.RatString(),
		RunCost:        rel.Allocation.Spent.RatString(),
		KeyFingerprint: key.Fingerprint(),
		SamplerVersion: privacy.SamplerVersion,
		ReleaseDigest:  rel.Digest,
		MinUnits:       spec.Cohorts.MinUnits,
		Released:       rel.Count,
		Cohorts:        rel.Cohorts,
		Allocation:     rel.Allocation.Shares,
	}
	if len(rel.Allocation.Shares) > 0 {
		info.Mechanism = string(rel.Allocation.Shares[0].Mechanism.Kind)
	}
	state := LedgerState{SpentThisRun: spentNow.RatString(), Spent: l.Spent().RatString(), Total: l.Total.RatString(), Entries: len(l.Entries)}
	toEps := func(r *big.Rat) float64 {
		f, _ := r.Float64()
		if rel.Allocation.Accounting != privacy.AccountingZCDP {
			return f
		}
		eps, err := privacy.CDPEpsilon(f, spec.Privacy.Delta)
		if err != nil {
			return 0
		}
		return eps
	}
	info.EpsilonRun = toEps(rel.Allocation.Spent)
	state.EpsilonSpent = toEps(l.Spent())
	return info, state
}

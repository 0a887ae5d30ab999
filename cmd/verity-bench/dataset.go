package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/verity-analytics/verity/fixtures"
)

// benchConfig is the generator configuration the bench starts from: the
// basic fixture's shape (two experiments, six personas of which four are
// taxonomy leaves, purchase / page_view / session events, eight daily
// partitions, a four-day window) with about 3 traces and 10 events per unit,
// and no injected faults, so that the reference query, which handles none of
// them, computes exactly what Verity computes. Generator flags change it.
func benchConfig() fixtures.Config {
	cfg := fixtures.DefaultConfig()
	cfg.Faults = fixtures.Faults{}
	for i := range cfg.Events {
		if cfg.Events[i].Name == "page_view" {
			cfg.Events[i].Rate = 5
		}
	}
	return cfg
}

// nightlyConfig turns cfg into a dataset of n experiments evaluated on the
// same traffic: each unit is randomised into every experiment with
// probability min(1, 2/n), so a unit still sees about two experiments and
// the trace volume stays that of the two-experiment dataset. Each experiment
// has control/treatment 50/50 and a planted purchase lift.
func nightlyConfig(cfg fixtures.Config, n int) fixtures.Config {
	traffic := 1.0
	if n > 2 {
		traffic = 2 / float64(n)
	}
	cfg.Experiments = nil
	cfg.Effects = nil
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("exp-%02d", i)
		cfg.Experiments = append(cfg.Experiments, fixtures.Experiment{
			ID: id, FlagKey: "flag_" + strconv.Itoa(i), FlagVersion: 1, Control: "control",
			Variants: []fixtures.Variant{{Name: "control", Share: 0.5}, {Name: "treatment", Share: 0.5}},
			Traffic:  traffic,
		})
		cfg.Effects = append(cfg.Effects, fixtures.Effect{
			Experiment: id, Variant: "treatment", Event: "purchase", Param: fixtures.ParamProb, Relative: true, Size: 0.1,
		})
	}
	return cfg
}

// dataset is one generated, cached dataset.
type dataset struct {
	Dir   string
	Truth fixtures.Truth
	// Generated is how long generation took; zero when it came from the
	// cache.
	Generated time.Duration
}

// Rows is the number of input rows: traces plus events.
func (d dataset) Rows() int64 { return d.Truth.TraceRows + d.Truth.EventRows }

// Bytes is the total size of the Parquet files (the generated ones: the
// sorted copy of the events, events-sorted/, holds the same rows again).
func (d dataset) Bytes() int64 {
	var n int64
	filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && e.Name() == "events-sorted" {
			return fs.SkipDir
		}
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".parquet") {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// configHash identifies a generator configuration: the SHA-256 of its JSON.
func configHash(cfg fixtures.Config) (string, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ensureDataset returns the dataset for cfg from cacheDir, generating it
// first when it is not there. Generation writes into a scratch folder that is
// renamed into place when complete, so a killed bench never leaves a dataset
// that looks cached.
func ensureDataset(ctx context.Context, cacheDir string, cfg fixtures.Config, logf func(string, ...any)) (dataset, error) {
	dir, err := datasetDir(cacheDir, cfg)
	if err != nil {
		return dataset{}, err
	}
	if ds, ok, err := cachedDataset(dir); ok || err != nil {
		return ds, err
	}
	scratch := dir + ".partial"
	if err := os.RemoveAll(scratch); err != nil {
		return dataset{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return dataset{}, err
	}
	logf("generating %d units, %d experiments into %s", cfg.Units, len(cfg.Experiments), dir)
	t0 := time.Now()
	truth, err := fixtures.Generate(ctx, cfg, scratch)
	if err != nil {
		os.RemoveAll(scratch)
		return dataset{}, fmt.Errorf("generate: %w", err)
	}
	took := time.Since(t0)
	if err := os.RemoveAll(dir); err != nil {
		return dataset{}, err
	}
	if err := os.Rename(scratch, dir); err != nil {
		return dataset{}, err
	}
	return dataset{Dir: dir, Truth: truth, Generated: took}, nil
}

// datasetDir is where the dataset of cfg is cached under cacheDir.
func datasetDir(cacheDir string, cfg fixtures.Config) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", fmt.Errorf("generator config: %w", err)
	}
	h, err := configHash(cfg)
	if err != nil {
		return "", err
	}
	return filepath.Join(cacheDir, "data", fmt.Sprintf("u%d-e%d-%s", cfg.Units, len(cfg.Experiments), h[:12])), nil
}

// cachedDataset reads the dataset cached in dir; ok is false when there is
// none (no truth.json).
func cachedDataset(dir string) (ds dataset, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, fixtures.TruthFile))
	if err != nil {
		return dataset{}, false, nil
	}
	var t fixtures.Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return dataset{}, false, fmt.Errorf("cached dataset %s: %w", dir, err)
	}
	return dataset{Dir: dir, Truth: t}, true, nil
}

// benchMetric is one metric of the bench's specs, in the spec's terms.
type benchMetric struct {
	Name, Kind, Event, Aggregate string
	Clamped                      bool
	Lower, Upper                 float64
}

// benchSpec is what the bench's spec says about one experiment: enough to
// write the YAML, to bind the templates' parameters (profile, proto) and to
// drive the reference query.
type benchSpec struct {
	Experiment     string
	Variants       []fixtures.Variant
	Control        string
	Start, End     time.Time
	PersonaVersion string
	Leaves         []string
	Metrics        []benchMetric
	Decimals       int
	// Set is the template set the spec pins (templateSets).
	Set string
}

// templateSets are the template pins the bench can measure. single-join is
// the fastest released layout; its metrics get a conversion window as long
// as the analysis window, so that events count until the window ends, as in
// the reference query and the v1 templates.
var templateSets = map[string]string{
	"single-join": "{traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3}",
	// The single-join set with events@v11 (event_units grouped once, issue
	// 18 part 5); "single-join" stays events@v4, which incremental runs pin.
	"single-join-v11": "{traces: v5, assignment: v4, events: v11, unit_metrics: v5, sufstats: v3, quality: v3}",
	"single-join-v13": "{traces: v5, assignment: v4, events: v13, unit_metrics: v5, sufstats: v3, quality: v3}",
	"unit-keyed":      "{traces: v9, assignment: v6, events: v12, unit_metrics: v5, sufstats: v3, quality: v4}",
	"unit-keyed-v10":  "{traces: v9, assignment: v6, events: v10, unit_metrics: v5, sufstats: v3, quality: v4}",
	"unit-keyed-v3":   "{traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4}",
	"unit-keyed-v2":   "{traces: v7, assignment: v5, events: v6, unit_metrics: v5, sufstats: v3, quality: v4}",
	sortedSet:         "{traces: v8, assignment: v5, events: v8, unit_metrics: v5, sufstats: v3, quality: v4}",
	"unit-keyed-v1":   "{traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}",
	"per-event":       "{traces: v2, assignment: v2, events: v2, unit_metrics: v3, sufstats: v2, quality: v2}",
	"v1":              "{traces: v1, assignment: v1, events: v1, unit_metrics: v1, sufstats: v1, quality: v1}",
}

// setVersions returns the version each template has in a set.
func setVersions(set string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(strings.Trim(templateSets[set], "{}"), ",") {
		k, v, _ := strings.Cut(kv, ":")
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// specsFor returns one spec per experiment of cfg, with three metrics: the
// conversion of the first binary event (proportion), the sum of the first
// event with values (mean of a per-unit sum) and the count of the first
// Poisson event (mean of a per-unit count). Clamps are wide enough never to
// bind on the generated data, as on healthy real data.
func specsFor(cfg fixtures.Config, set string) ([]benchSpec, error) {
	if _, ok := templateSets[set]; !ok {
		return nil, fmt.Errorf("unknown template set %q; want unit-keyed, unit-keyed-sorted, unit-keyed-v10, unit-keyed-v3, unit-keyed-v2, unit-keyed-v1, single-join, single-join-v11, single-join-v13, per-event or v1", set)
	}
	var prop, sum, count string
	for _, e := range cfg.Events {
		switch {
		case prop == "" && e.Model == fixtures.ModelBinary:
			prop = e.Name
		case count == "" && e.Model == fixtures.ModelPoisson:
			count = e.Name
		}
		if sum == "" && e.Value == fixtures.ValueLognormal {
			sum = e.Name
		}
	}
	if prop == "" || sum == "" || count == "" {
		return nil, errors.New("the generator config needs a binary event, an event with values and a Poisson event")
	}
	metrics := []benchMetric{
		{Name: "converted", Kind: "proportion", Event: prop},
		{Name: "revenue", Kind: "mean", Event: sum, Aggregate: "sum", Clamped: true, Lower: 0, Upper: 100000},
		{Name: count + "s", Kind: "mean", Event: count, Aggregate: "count", Clamped: true, Lower: 0, Upper: 10000},
	}
	var specs []benchSpec
	for _, e := range cfg.Experiments {
		specs = append(specs, benchSpec{
			Experiment: e.ID, Variants: e.Variants, Control: e.Control,
			Start: cfg.WindowStart, End: cfg.WindowEnd,
			PersonaVersion: cfg.PersonaAlgoVersion, Leaves: cfg.Leaves,
			Metrics: metrics, Decimals: 6, Set: set,
		})
	}
	return specs, nil
}

// treatments returns the non-control variants, in spec order.
func (s benchSpec) treatments() []string {
	var out []string
	for _, v := range s.Variants {
		if v.Name != s.Control {
			out = append(out, v.Name)
		}
	}
	return out
}

// yaml renders the spec file (format version 1, the set's templates, privacy off)
// whose inputs are the hive-partitioned folders beside it.
func (s benchSpec) yaml() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by verity-bench; rewritten on every bench run.\n")
	fmt.Fprintf(&b, "version: 1\nexperiment: %s\n", s.Experiment)
	if s.Set == sortedSet {
		fmt.Fprintf(&b, "inputs:\n  traces: [\"traces/\"]\n  events: [\"events-sorted/\"]\n  sorted_by: {events: [unit_id, event_id]}\n")
	} else {
		fmt.Fprintf(&b, "inputs:\n  traces: [\"traces/\"]\n  events: [\"events/\"]\n")
	}
	fmt.Fprintf(&b, "window:\n  start: %s\n  end: %s\n", s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
	total := 0.0
	for _, v := range s.Variants {
		total += v.Share
	}
	fmt.Fprintf(&b, "variants:\n")
	for _, v := range s.Variants {
		ctl := ""
		if v.Name == s.Control {
			ctl = ", control: true"
		}
		fmt.Fprintf(&b, "  - {name: %s, allocation: %s%s}\n", v.Name, strconv.FormatFloat(v.Share/total, 'g', -1, 64), ctl)
	}
	fmt.Fprintf(&b, "persona_algo_version: %s\n", s.PersonaVersion)
	fmt.Fprintf(&b, "templates: %s\n", templateSets[s.Set])
	fmt.Fprintf(&b, "cohorts:\n  dimension: persona\n  taxonomy: [%s]\n", strings.Join(s.Leaves, ", "))
	fmt.Fprintf(&b, "metrics:\n")
	for _, m := range s.Metrics {
		fmt.Fprintf(&b, "  - {name: %s, kind: %s, event: %s", m.Name, m.Kind, m.Event)
		if m.Aggregate != "" {
			fmt.Fprintf(&b, ", aggregate: %s", m.Aggregate)
		}
		if m.Clamped {
			fmt.Fprintf(&b, ", clamp: {lower: %s, upper: %s}", strconv.FormatFloat(m.Lower, 'g', -1, 64), strconv.FormatFloat(m.Upper, 'g', -1, 64))
		}
		if s.Set != "v1" {
			fmt.Fprintf(&b, ", attribution_hours: %d", int(s.End.Sub(s.Start).Hours()))
		}
		fmt.Fprintf(&b, ", role: goal}\n")
	}
	fmt.Fprintf(&b, "statistics:\n  alpha: 0.05\n  fixed_point_decimals: %d\n  correction: holm\n", s.Decimals)
	fmt.Fprintf(&b, "privacy: {enabled: false}\n")
	return []byte(b.String())
}

// writeSpecs writes one spec file per experiment into the dataset folder and
// returns their paths in experiment order.
func writeSpecs(d dataset, specs []benchSpec) ([]string, error) {
	var paths []string
	for _, s := range specs {
		p := filepath.Join(d.Dir, "spec-"+s.Experiment+".yaml")
		if err := os.WriteFile(p, s.yaml(), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// inputFiles lists the dataset's Parquet files of one role, sorted.
func inputFiles(d dataset, role string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(d.Dir, role), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(p, ".parquet") {
			abs, err := filepath.Abs(p)
			if err != nil {
				return err
			}
			out = append(out, abs)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// parseScale reads a unit count such as 1M, 300k, 2.5M or 250000.
func parseScale(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1e6, s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f*mult < 1 || f*mult > 1e9 {
		return 0, fmt.Errorf("scale %q: want a unit count such as 1M, 300k or 250000", s)
	}
	return int(f * mult), nil
}

// scaleLabel writes a unit count compactly: 1M, 300k, 1234.
func scaleLabel(n int) string {
	switch {
	case n >= 1e6 && n%100000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'g', -1, 64) + "M"
	case n >= 1e3 && n%100 == 0:
		return strconv.FormatFloat(float64(n)/1e3, 'g', -1, 64) + "k"
	}
	return strconv.Itoa(n)
}

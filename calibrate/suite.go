package calibrate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/stats"
)

// Config is one calibration run.
type Config struct {
	// Seeds are the datasets' generator seeds, fixed in advance (FullSeeds,
	// QuickSeeds): a failing seed is a finding, never a reason to change
	// the list.
	Seeds []uint64
	// Units per dataset.
	Units int
	// Nights analysed per dataset: every night of the 12-day window when
	// 12, else only the last Nights nights (the final night is always in).
	Nights int
	// Workers analyse datasets in parallel (each runs DuckDB with one
	// thread).
	Workers int
	// WorkDir holds the generated datasets (removed as they are done).
	WorkDir string
	// Progress, when set, receives one line per finished dataset.
	Progress func(string)
}

// Seeds of the full and the quick suite. They were fixed before any run;
// do not edit them to make a run pass.
func FullSeeds(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = 1_000_003 + uint64(i)*7919
	}
	return s
}

// QuickSeeds are the seeds of the subset in `make test`.
func QuickSeeds() []uint64 { return []uint64{11, 23, 37, 41, 53, 67} }

// Design constants of the generated data.
const (
	alpha        = 0.05
	windowDays   = 12
	srmThreshold = 0.001
	minUnits     = 700 // private collapsing: the 5% leaves (about 500 units) collapse into their parents
	epsilon      = 8.0 // private budget of one run (run_share 1): noise comparable to sampling error in the leaves
)

var (
	windowStart = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)
	windowEnd   = windowStart.AddDate(0, 0, windowDays)
	leaves      = []string{"a/x", "a/y", "a/z", "b/x", "b/y", "b/z"}
)

// experiment is one generated experiment: its id, control share, and
// whether it has planted effects.
type experiment struct {
	id           string
	controlShare float64
	aa           bool
}

var experiments = []experiment{
	{"aa-even", 0.5, true},
	{"aa-uneven", 0.3, true},
	{"ab-up", 0.5, false},
	{"ab-down", 0.4, false},
}

// genConfig is the generator configuration of one dataset.
func genConfig(seed uint64, units int) fixtures.Config {
	var exps []fixtures.Experiment
	for _, e := range experiments {
		exps = append(exps, fixtures.Experiment{
			ID: e.id, FlagKey: e.id, FlagVersion: 1, Control: "control",
			Variants: []fixtures.Variant{{Name: "control", Share: e.controlShare}, {Name: "treatment", Share: 1 - e.controlShare}},
			Traffic:  1,
		})
	}
	eff := func(exp, event, param string, size float64) fixtures.Effect {
		return fixtures.Effect{Experiment: exp, Variant: "treatment", Event: event, Param: param, Relative: true, Size: size}
	}
	return fixtures.Config{
		Seed: seed, Units: units, Experiments: exps,
		Leaves: leaves,
		PersonaMix: []fixtures.PersonaShare{
			{Persona: "a/x", Weight: 0.36}, {Persona: "a/y", Weight: 0.05}, {Persona: "a/z", Weight: 0.05},
			{Persona: "b/x", Weight: 0.34}, {Persona: "b/y", Weight: 0.05}, {Persona: "b/z", Weight: 0.05},
			{Null: true, Weight: 0.10},
		},
		PersonaAlgoVersion: "pa-2", StaleAlgoVersion: "pa-1",
		WindowStart: windowStart, WindowEnd: windowEnd,
		DataStart: windowStart.AddDate(0, 0, -2), DataEnd: windowEnd.AddDate(0, 0, 1),
		PrePeriod:     48 * time.Hour,
		TracesPerUnit: 1.5, TraceGap: 30 * time.Hour, EngagementShape: 2,
		Events: []fixtures.EventSpec{
			{Name: "purchase", Model: fixtures.ModelBinary, Prob: 0.12, Extra: 0.25, PreFactor: 1,
				Value: fixtures.ValueLognormal, Mu: 3.4, Sigma: 0.8, Decimals: 2},
			{Name: "page_view", Model: fixtures.ModelPoisson, Rate: 4, PreFactor: 0.5},
			{Name: "session", Model: fixtures.ModelPoisson, Rate: 1.5, PreFactor: 0.5},
		},
		Effects: []fixtures.Effect{
			eff("ab-up", "purchase", fixtures.ParamProb, 0.2),
			eff("ab-up", "purchase", fixtures.ParamValue, 0.1),
			eff("ab-up", "page_view", fixtures.ParamRate, 0.05),
			eff("ab-down", "purchase", fixtures.ParamProb, -0.15),
			eff("ab-down", "page_view", fixtures.ParamRate, -0.08),
			eff("ab-down", "session", fixtures.ParamRate, 0.1),
		},
		// Faults below every gate's warn threshold: the gates must not
		// block clean-enough data.
		Faults: fixtures.Faults{
			Duplicates: 0.005, Retries: 0.002, MultiVariant: 0.003, NullKeys: 0.0005,
			UnknownVariants: 0.0005, EarlyEvents: 0.02, LateEvents: 0.02, StalePersona: 0.01,
		},
		RowGroupRows: 1 << 16,
	}
}

// specYAML is the analysis spec of one experiment; mode adds the
// statistics and privacy sections that differ.
func specYAML(e experiment, units int, cuped, sequential, private bool, extra ...Mode) string {
	var bayes, oneSided bool
	for _, m := range extra {
		bayes, oneSided = bayes || m.Bayes, oneSided || m.OneSided
	}
	// One-sided mode: each goal's superiority test (margin 0, alternative
	// its direction) and the guardrail's one-sided non-inferiority test.
	goalH, guardH := "", ""
	if oneSided {
		goalH, guardH = ", hypothesis: {alternative: greater}", ", hypothesis: {alternative: greater}"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexperiment: %s\n", e.id)
	b.WriteString("inputs: {traces: [traces.parquet], events: [events.parquet]}\n")
	fmt.Fprintf(&b, "window: {start: %s, end: %s}\n", windowStart.Format(time.RFC3339), windowEnd.Format(time.RFC3339))
	fmt.Fprintf(&b, "variants:\n  - {name: control, allocation: %g, control: true}\n  - {name: treatment, allocation: %g}\n", e.controlShare, 1-e.controlShare)
	b.WriteString("persona_algo_version: pa-2\n")
	b.WriteString("templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}\n")
	fmt.Fprintf(&b, "cohorts: {dimension: persona, taxonomy: [%s]", strings.Join(leaves, ", "))
	if private {
		fmt.Fprintf(&b, ", min_units: %d", minUnits)
	}
	b.WriteString("}\n")
	h := windowDays * 24
	fmt.Fprintf(&b, `metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal, attribution_hours: %d%s}
  - {name: revenue, kind: mean, event: purchase, aggregate: sum, clamp: {lower: 0, upper: 1000}, role: goal, attribution_hours: %d%s}
  - {name: page_views, kind: mean, event: page_view, aggregate: count, clamp: {lower: 0, upper: 60}, role: guardrail, guardrail: {harmful: decrease, margin: 0.05, relative: true}, attribution_hours: %d%s}
  - name: revenue_per_session
    kind: ratio
    event: purchase
    aggregate: sum
    clamp: {lower: 0, upper: 1000}
    denominator: {event: session, aggregate: count, clamp: {lower: 0, upper: 40}}
    attribution_hours: %d
`, h, goalH, h, goalH, h, guardH, h)
	fmt.Fprintf(&b, "statistics:\n  alpha: %g\n  fixed_point_decimals: 2\n  correction: holm\n  srm_threshold: %g\n", alpha, srmThreshold)
	if cuped {
		b.WriteString("  cuped: {lookback_days: 2}\n")
	}
	if bayes {
		// Flat prior, GrowthBook's default threshold.
		b.WriteString("  engine: bayesian\n  bayesian: {chance_to_win: 0.95}\n")
	}
	if sequential {
		fmt.Fprintf(&b, "  sequential: {n_star: %d}\n", units)
	}
	if private {
		fmt.Fprintf(&b, "privacy: {enabled: true, epsilon: %g, delta: 1.0e-6, run_share: 1}\n", epsilon)
	} else {
		b.WriteString("privacy: {enabled: false}\n")
	}
	return b.String()
}

// Mode is one way of analysing the cells.
type Mode struct {
	Name       string
	Private    bool
	CUPED      bool
	Sequential bool
	// Bayes decides with the Bayesian engine (flat prior, chance to win
	// 0.95): its credible intervals are judged for coverage.
	Bayes bool
	// OneSided tests each goal one-sided (superiority, margin 0) and the
	// guardrail one-sided (non-inferiority at α).
	OneSided bool
}

// Modes are every mode the suite checks.
var Modes = []Mode{
	{"exact", false, false, false, false, false},
	{"exact+cuped", false, true, false, false, false},
	{"private", true, false, false, false, false},
	{"private+cuped", true, true, false, false, false},
	{"exact always-valid", false, false, true, false, false},
	{"private always-valid", true, false, true, false, false},
	{"exact bayesian", false, false, false, true, false},
	{"private bayesian", true, false, false, true, false},
	{"exact one-sided", false, false, false, false, true},
}

// aaDecisionBound is the most often an A/A experiment may ship or roll
// back in mode m: the union of the two goals' one-sided errors. Two-sided
// goals under Holm at α wrongly ship at most α (only the desired side
// ships), one-sided goals under Holm at most α, and the Bayesian rule at
// most 2·(1 − chance_to_win) = 0.10 (each goal's chance to win, under a
// flat prior, exceeds 0.95 with probability 0.05 when nothing changed).
func aaDecisionBound(m Mode) float64 {
	if m.Bayes {
		return 2 * (1 - 0.95)
	}
	return alpha
}

// metricKind maps the spec's metrics to the kinds the suite reports.
var metricKind = map[string]string{
	"converted": "proportion", "revenue": "mean", "page_views": "mean", "revenue_per_session": "ratio",
}

// truthOf returns each metric's true per-arm value from the truth:
// control and treatment.
func truthOf(t fixtures.ExperimentTruth) (map[string][2]float64, error) {
	stat := func(cohort, variant, event, s string) (float64, error) {
		for _, c := range t.Cohorts {
			if c.Cohort != cohort {
				continue
			}
			for _, cell := range c.Cells {
				if cell.Variant != variant {
					continue
				}
				for _, ev := range cell.Events {
					if ev.Event != event || ev.Expected == nil {
						continue
					}
					switch s {
					case "p_any":
						return ev.Expected.PAny, nil
					case "mean_count":
						return ev.Expected.MeanCount, nil
					case "mean_sum":
						return ev.Expected.MeanSum, nil
					}
				}
			}
		}
		return 0, fmt.Errorf("truth of %s: no %s/%s/%s/%s", t.ID, cohort, variant, event, s)
	}
	out := map[string][2]float64{}
	for _, arm := range []string{"control", "treatment"} {
		i := 0
		if arm == "treatment" {
			i = 1
		}
		for _, cohort := range []string{fixtures.CohortAll, "a/x", "b/y", fixtures.CohortUnclassified} {
			vals := map[string]float64{}
			for _, q := range []struct{ metric, event, stat string }{
				{"converted", "purchase", "p_any"}, {"revenue", "purchase", "mean_sum"},
				{"page_views", "page_view", "mean_count"}, {"session", "session", "mean_count"},
			} {
				v, err := stat(cohort, arm, q.event, q.stat)
				if err != nil {
					return nil, err
				}
				vals[q.metric] = v
			}
			vals["revenue_per_session"] = vals["revenue"] / vals["session"]
			for m := range metricKind {
				if cohort == fixtures.CohortAll {
					x := out[m]
					x[i] = vals[m]
					out[m] = x
					continue
				}
				// Personas share the model's parameters: every cohort has
				// the (all) truth. Check it rather than assume it.
				if w := out[m][i]; math.Abs(vals[m]-w) > 1e-9*math.Abs(w) {
					return nil, fmt.Errorf("truth of %s %s %s: cohort %s has %v, (all) %v; the suite assumes equal cohort truths", t.ID, m, arm, cohort, vals[m], w)
				}
			}
		}
	}
	return out, nil
}

// observation is one result row's outcome against the truth.
type observation struct {
	mode, cohort, kind, scale string
	hasInterval, unbounded    bool
	below, above              bool // interval entirely below / above the truth
	gap                       bool // an unbounded Fieller set that excludes the truth (also below or above; see observe)
}

// Tally counts outcomes by key.
type Tally map[string]*Count

// Count is a number of successes among trials.
type Count struct{ Hits, N int }

func (t Tally) add(key string, hit bool) {
	c := t[key]
	if c == nil {
		c = &Count{}
		t[key] = c
	}
	c.N++
	if hit {
		c.Hits++
	}
}

// Merge adds o's counts to t's (a mode run apart, such as RunQuantiles).
func (t Tally) Merge(o Tally) { t.merge(o) }

func (t Tally) merge(o Tally) {
	for k, v := range o {
		c := t[k]
		if c == nil {
			c = &Count{}
			t[k] = c
		}
		c.Hits += v.Hits
		c.N += v.N
	}
}

// cohortType classifies a released cohort label.
func cohortType(label string) string {
	switch {
	case label == expspec.AllCohort:
		return "all"
	case strings.HasSuffix(label, "*"):
		return "parent"
	}
	return "leaf"
}

// Run runs the suite and returns the tallies.
func Run(ctx context.Context, cfg Config) (Tally, error) {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Nights < 1 || cfg.Nights > windowDays {
		cfg.Nights = windowDays
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	total := Tally{}
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t0 := time.Now()
				tl, err := runDataset(ctx, cfg, cfg.Seeds[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("seed %d: %w", cfg.Seeds[i], err)
				}
				if err == nil {
					total.merge(tl)
				}
				if cfg.Progress != nil {
					cfg.Progress(fmt.Sprintf("dataset %d/%d (seed %d) in %.1fs", i+1, len(cfg.Seeds), cfg.Seeds[i], time.Since(t0).Seconds()))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range cfg.Seeds {
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return total, ctx.Err()
}

// runDataset generates one dataset, analyses every night in every mode,
// and tallies the outcomes.
func runDataset(ctx context.Context, cfg Config, seed uint64) (Tally, error) {
	dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("seed-%d", seed))
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	truth, err := fixtures.Generate(ctx, genConfig(seed, cfg.Units), dir)
	if err != nil {
		return nil, err
	}
	truths := map[string]map[string][2]float64{}
	for _, et := range truth.Experiments {
		if truths[et.ID], err = truthOf(et); err != nil {
			return nil, err
		}
	}
	// Specs: the pass uses the CUPED spec (its cells carry the covariate);
	// each mode analyses those cells under its own spec.
	specs := map[string]map[Mode]*expspec.Spec{}
	// finalSpecs add the drill-downs, which only the final night judges:
	// the other nights' passes skip drilldown@v1 (the cells are the same).
	var passSpecs, finalSpecs []*expspec.Spec
	vrSpecs := map[string]*expspec.Spec{}   // with variance_reduction (varreduce.go)
	privDrill := map[string]*expspec.Spec{} // private, with declared slices (drilldown.go)
	for _, e := range experiments {
		specs[e.id] = map[Mode]*expspec.Spec{}
		for _, m := range Modes {
			s, err := expspec.ParseSpec(filepath.Join(dir, e.id+".yaml"), []byte(specYAML(e, cfg.Units, m.CUPED, m.Sequential, m.Private, m)))
			if err != nil {
				return nil, fmt.Errorf("spec %s %s: %w", e.id, m.Name, err)
			}
			specs[e.id][m] = s
		}
		y, err := withInteractions(specYAML(e, cfg.Units, true, false, false), e)
		if err != nil {
			return nil, err
		}
		if y, err = withVR(y, e); err != nil {
			return nil, err
		}
		s, err := expspec.ParseSpec(filepath.Join(dir, e.id+".yaml"), []byte(y))
		if err != nil {
			return nil, err
		}
		passSpecs = append(passSpecs, s)
		if y, err = withDrill(y, e); err != nil {
			return nil, err
		}
		if s, err = expspec.ParseSpec(filepath.Join(dir, e.id+".yaml"), []byte(y)); err != nil {
			return nil, err
		}
		finalSpecs = append(finalSpecs, s)
		if vrSpecs[e.id], err = vrSpec(dir, e, cfg.Units); err != nil {
			return nil, err
		}
		pd, err := privateDrillSpec(specYAML(e, cfg.Units, false, false, true), e)
		if err != nil {
			return nil, err
		}
		if privDrill[e.id], err = expspec.ParseSpec(filepath.Join(dir, e.id+".yaml"), []byte(pd)); err != nil {
			return nil, fmt.Errorf("private drill spec %s: %w", e.id, err)
		}
	}

	tl := Tally{}
	// aaSig[mode/experiment/metric] is whether (all) was significant on
	// some night so far.
	aaSig := map[string]bool{}
	for night := windowDays - cfg.Nights + 1; night <= windowDays; night++ {
		date := windowStart.AddDate(0, 0, night-1).Format("2006-01-02")
		final := night == windowDays
		nightSpecs := passSpecs
		if final {
			nightSpecs = finalSpecs
		}
		ins, err := pipeline.CalibrationPass(ctx, nightSpecs, pipeline.Options{Date: date, Engine: engine.Engine{Threads: 1}})
		if err != nil {
			return nil, err
		}
		for k, e := range experiments {
			in := ins[k]
			if final {
				if err := tallyVR(tl, vrSpecs[e.id], in, truths[e.id]); err != nil {
					return nil, fmt.Errorf("%s variance reduction %s: %w", e.id, date, err)
				}
				if err := tallyIX(tl, e, in); err != nil {
					return nil, fmt.Errorf("%s interactions %s: %w", e.id, date, err)
				}
				if err := tallyDrill(tl, e, in, truths[e.id]); err != nil {
					return nil, fmt.Errorf("%s drill-down %s: %w", e.id, date, err)
				}
				key := sha256.Sum256([]byte(fmt.Sprintf("verity calibration key %d %s private drill-down", seed, e.id)))
				rows, err := pipeline.CalibrationPrivateDrill(privDrill[e.id], in, key[:], e.id+" "+date)
				if err != nil {
					return nil, fmt.Errorf("%s private drill-down %s: %w", e.id, date, err)
				}
				if err := tallyPrivateDrill(tl, e, rows, truths[e.id]); err != nil {
					return nil, fmt.Errorf("%s private drill-down %s: %w", e.id, date, err)
				}
			}
			for _, m := range Modes {
				spec := specs[e.id][m]
				var rows []analysis.ResultRow
				var cmps []stats.Comparison
				var dec analysis.Decisions
				var blocked []string
				if m.Private {
					key := sha256.Sum256([]byte(fmt.Sprintf("verity calibration key %d %s %s", seed, e.id, m.Name)))
					rows, cmps, dec, blocked, err = privateAnalysis(spec, in, key[:], date)
				} else {
					rows, cmps, dec, blocked, err = pipeline.CalibrationExact(spec, in)
				}
				if err != nil {
					return nil, fmt.Errorf("%s %s %s: %w", e.id, m.Name, date, err)
				}
				if final {
					srm := false
					for _, c := range dec.SRM {
						srm = srm || c.Invalid
					}
					tl.add("srm/"+m.Name, srm)
					tl.add("gate/"+m.Name, len(blocked) > 0)
					if e.aa {
						// A decision error: an A/A experiment ships or
						// rolls back.
						tl.add("aa-decision/"+m.Name, dec.Verdict == stats.VerdictShip || dec.Verdict == stats.VerdictRollback)
					}
				}
				for i, r := range rows {
					kind := metricKind[r.Metric]
					sig := r.PValue != nil && *r.PValue < alpha
					if e.aa && r.Cohort == expspec.AllCohort {
						key := m.Name + "/" + e.id + "/" + r.Metric
						aaSig[key] = aaSig[key] || sig
						if final {
							tl.add("aa-final/"+m.Name+"/"+kind, sig)
							tl.add("aa-anynight/"+m.Name+"/"+kind, aaSig[key])
						}
					}
					if !final {
						continue
					}
					tr := truths[e.id][r.Metric]
					if m.Bayes {
						r = credibleRow(r)
					}
					for _, o := range observe(m, r, cmps[i], tr) {
						base := o.mode + "/" + o.cohort + "/" + o.kind + "/" + o.scale
						tl.add("interval/"+base, o.hasInterval)
						if !o.hasInterval {
							continue
						}
						tl.add("unbounded/"+base, o.unbounded)
						tl.add("coverage/"+base, !o.below && !o.above && !o.gap)
						tl.add("below/"+base, o.below)
						tl.add("above/"+base, o.above)
						if o.unbounded {
							tl.add("gap/"+base, o.gap)
						}
					}
				}
			}
		}
	}
	return tl, nil
}

// observe compares one row's absolute and relative intervals with the
// truth tr (control, treatment); cmp is the comparison behind the row.
func observe(m Mode, r analysis.ResultRow, cmp stats.Comparison, tr [2]float64) []observation {
	ct := cohortType(r.Cohort)
	kind := metricKind[r.Metric]
	abs := tr[1] - tr[0]
	rel := abs / math.Abs(tr[0])
	var out []observation
	o := observation{mode: m.Name, cohort: ct, kind: kind, scale: "absolute"}
	if r.AbsCILow != nil && r.AbsCIHigh != nil {
		o.hasInterval = true
		o.below, o.above = *r.AbsCIHigh < abs, *r.AbsCILow > abs
	}
	out = append(out, o)
	o = observation{mode: m.Name, cohort: ct, kind: kind, scale: "relative"}
	switch {
	case r.RelCILow != nil && r.RelCIHigh != nil:
		o.hasInterval = true
		o.below, o.above = *r.RelCIHigh < rel, *r.RelCILow > rel
	case r.Status == stats.StatusRelativeUnbounded:
		// Fieller's set is unbounded: the whole line, which covers, or
		// the outside of an interval (the control mean is not
		// distinguishable from zero, the treatment mean is), which misses
		// when the truth lies inside that gap. The row reports neither
		// shape, only the status; counting every unbounded set as
		// covering (as the suite did) overstates the coverage of
		// Fieller's procedure, whose 1−α holds over all its sets
		// (Fieller 1954). Both are reported: unbounded and gap rates.
		//
		// A gap miss is counted on the side where Fieller's test rejects
		// the truth ℓ: its statistic (Δ̂ − ℓ·|m̂_c|)/√(…) is above q (the
		// data lie above the truth: "above") or below −q ("below"). For a
		// bounded interval this is the interval lying above or below the
		// truth; the numerator m̂_t − (1+λ)m̂_c is a linear combination of
		// the arm estimates with mean zero at the truth, so the two
		// one-sided rates are each α/2 for any set shape.
		o.hasInterval, o.unbounded = true, true
		if lo, hi, shape, ok := cmp.RelativeSet(); ok && shape == stats.SetExclusive && lo < rel && rel < hi {
			o.gap = true
			if cmp.Diff-rel*math.Abs(cmp.ControlMean) > 0 {
				o.above = true
			} else {
				o.below = true
			}
		}
	}
	out = append(out, o)
	return out
}

// privateAnalysis is the suite's only call into the private machinery
// (pipeline.CalibrationPrivate: keyed noise on the exact cells and the gate
// statistics, collapsing, noise-aware analysis, gates on noisy per-unit
// counts; no ledger, no restricted record).
func privateAnalysis(spec *expspec.Spec, in pipeline.CalibrationInput, key []byte, date string) ([]analysis.ResultRow, []stats.Comparison, analysis.Decisions, []string, error) {
	return pipeline.CalibrationPrivate(spec, in, key, spec.Experiment+" "+date)
}

// sortedKeys returns t's keys in order.
func (t Tally) sortedKeys() []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// credibleRow is r with its credible intervals in place of its confidence
// intervals, so that observe judges their frequentist coverage (under a
// flat prior they should cover the truth 1 − α of the time).
func credibleRow(r analysis.ResultRow) analysis.ResultRow {
	e := r.Ext
	r.AbsCILow, r.AbsCIHigh, r.RelCILow, r.RelCIHigh = nil, nil, nil, nil
	if e == nil {
		return r
	}
	r.AbsCILow, r.AbsCIHigh = e.CredAbsLow, e.CredAbsHigh
	r.RelCILow, r.RelCIHigh = e.CredRelLow, e.CredRelHigh
	r.Status = e.BayesStatus
	return r
}

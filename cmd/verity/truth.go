package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verity-analytics/verity/fixtures"
	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
)

// checkTruthCmd is `verity check-truth`: does a run find what `verity gen`
// planted?
//
//	verity check-truth --truth DATA/truth.json [--aa-tail P] RUN...
//
// RUN is a run folder or its manifest.json. Each run's metrics are mapped
// to the truth through the run's own pinned spec, never by name:
//
//	proportion on event E               -> truth stat p_any of E
//	mean, aggregate count, on event E   -> mean_count of E
//	mean, aggregate sum, on event E     -> mean_sum of E
//	ratio                               -> not checked (no planted truth)
//
// A metric with a conversion window shorter than the analysis window (the
// manifest's effective block says which, such as the single-join set's
// default 72 h) counts fewer events than the truth, which attributes them
// until the window end: its planted effects are not checked, but its A/A
// comparisons are (the generator draws event times independently of the
// variant, so with no planted effect the windowed value has the same
// distribution in every arm).
// Cohorts are checked where the mapping is exact: (all); every taxonomy leaf
// that is also a generator leaf; and * when the two leaf sets are equal.
//
// Three checks, all of which must pass:
//
//  1. units: n_control and n_variant equal the units the truth assigns to
//     the cell (when the spec pins the generator's persona-algorithm
//     version, so that the analysis is the truth's "natural" one);
//  2. planted effects: every comparison whose true absolute effect is
//     non-zero has it inside [abs_ci_low, abs_ci_high] in cohort (all);
//     in persona cohorts, where the truth has per-persona effects, at most
//     the binomial allowance of intervals (below) may miss;
//  3. A/A: of the comparisons with no true effect, the number with
//     p_value < alpha must not exceed the allowance: the smallest k with
//     P(X > k) <= P for X the sum of independent Bernoulli(alpha_i) (the
//     exact Poisson-binomial tail; P = --aa-tail, 0.001 by default).
//     Comparisons sharing units are correlated, so this margin is an
//     approximation; it errs on the side of allowing more.
//
// Exit 0 when every check passes, 70 with a table of the failures.
func checkTruthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("check-truth")
	truthPath := fs.String("truth", "", "truth.json written by verity gen (required)")
	tail := fs.Float64("aa-tail", 0.001, "tail probability of the binomial allowance for A/A and persona-cohort misses")
	verbose := fs.Bool("v", false, "print every check, not only the failures")
	runs, err := parseInterspersed(fs, args)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	if *truthPath == "" || len(runs) == 0 {
		return pipeline.ExitConfig, fmt.Errorf("%w: check-truth needs --truth FILE and at least one run folder or manifest", expspec.ErrUsage)
	}
	if !(*tail > 0 && *tail < 0.5) {
		return pipeline.ExitConfig, fmt.Errorf("%w: --aa-tail wants a probability in (0, 0.5), got %v", expspec.ErrUsage, *tail)
	}
	if err := checkLocalPaths(fs, "run", runs); err != nil {
		return pipeline.ExitCode(err), err
	}
	truth, err := readTruth(*truthPath)
	if err != nil {
		return pipeline.ExitConfig, err
	}
	var all truthChecks
	for _, r := range runs {
		if err := ctx.Err(); err != nil {
			return pipeline.ExitTransient, err
		}
		manifest, err := manifestArg(r)
		if err != nil {
			return pipeline.ExitCode(err), err
		}
		c, err := checkRunTruth(manifest, truth)
		if err != nil {
			code := replay.ReplayExitCode(err)
			if code == pipeline.ExitTransient {
				code = pipeline.ExitConfig
			}
			return code, err
		}
		all.merge(c)
	}
	res := all.judge(*tail)
	if err := res.write(stdout, *verbose); err != nil {
		return pipeline.ExitTransient, err
	}
	if res.failed() {
		return pipeline.ExitMismatch, errors.New(res.summary())
	}
	return pipeline.ExitOK, nil
}

func readTruth(path string) (*fixtures.Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --truth: %v", expspec.ErrUsage, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t fixtures.Truth
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: truth %s: %v", expspec.ErrUsage, path, err)
	}
	if t.Format != fixtures.TruthFormat {
		return nil, fmt.Errorf("%w: truth %s: format %q, want %q", expspec.ErrUsage, path, t.Format, fixtures.TruthFormat)
	}
	return &t, nil
}

// truthRow is one checked comparison.
type truthRow struct {
	Experiment, Cohort, Metric, Variant string
	Event, Stat                         string
	Truth                               float64 // true absolute effect
	Low, High                           float64 // reported interval
	P                                   float64 // reported p-value
	Alpha                               float64
	Kind                                string // "planted" or "aa"
	Inside, Significant                 bool
}

// unitRow is one n check.
type unitRow struct {
	Experiment, Cohort, Metric, Variant, Arm string
	Want, Got                                int64
}

type truthChecks struct {
	rows    []truthRow
	units   []unitRow
	skipped []string
}

func (c *truthChecks) merge(o *truthChecks) {
	c.rows = append(c.rows, o.rows...)
	c.units = append(c.units, o.units...)
	c.skipped = append(c.skipped, o.skipped...)
}

// metricStat maps a spec metric to the truth statistic it estimates, and
// says whether a conversion window shorter than the analysis window makes
// the statistic differ from the truth's (windowed: only A/A comparisons
// can be checked).
func metricStat(m *publish.Manifest, spec *expspec.Spec, mt expspec.Metric) (stat string, windowed bool, why string) {
	hours := attributionHours(m, spec, mt)
	start, end := spec.Window.Bounds()
	if hours != nil && time.Duration(*hours)*time.Hour < end.Sub(start) {
		windowed = true
		why = fmt.Sprintf("a %d h conversion window (unit_metrics@%s) attributes fewer events than the truth, which counts until the window end: planted effects not checked, A/A comparisons checked", *hours, spec.Templates["unit_metrics"])
	}
	switch {
	case mt.Kind == "proportion":
		return "p_any", windowed, why
	case mt.Kind == "mean" && mt.Aggregate == "count":
		return "mean_count", windowed, why
	case mt.Kind == "mean" && mt.Aggregate == "sum":
		return "mean_sum", windowed, why
	}
	return "", false, "a " + mt.Kind + " metric has no planted truth"
}

// attributionHours is a metric's conversion window in hours, nil when
// events count until the window end: the manifest's effective block when
// the run recorded one, else the template defaults of the time.
func attributionHours(m *publish.Manifest, spec *expspec.Spec, mt expspec.Metric) *int {
	if m.Effective != nil {
		for _, e := range m.Effective.Metrics {
			if e.Name == mt.Name {
				return e.AttributionHours
			}
		}
	}
	if v := spec.Templates["unit_metrics"]; v != "v3" && v != "v4" && v != "v5" {
		return nil
	}
	h := mt.AttributionHours
	if h == 0 {
		h = engine.UnitMetricsV3DefaultAttributionHours
	}
	return &h
}

// checkRunTruth collects the checks of one run.
func checkRunTruth(manifestPath string, truth *fixtures.Truth) (*truthChecks, error) {
	m, results, err := replay.ReadRunOutput(manifestPath, "results.csv")
	if err != nil {
		return nil, err
	}
	spec, err := replay.SpecFromManifest(m, manifestPath)
	if err != nil {
		return nil, &publish.ManifestError{File: manifestPath, Err: err}
	}
	ti := slices.IndexFunc(truth.Experiments, func(e fixtures.ExperimentTruth) bool { return e.ID == spec.Experiment })
	if ti < 0 {
		return nil, fmt.Errorf("%w: the truth has no experiment %q", expspec.ErrUsage, spec.Experiment)
	}
	et := truth.Experiments[ti]
	cfg := truth.Config
	start, end := spec.Window.Bounds()
	if !start.Equal(cfg.WindowStart) || !end.Equal(cfg.WindowEnd) {
		return nil, fmt.Errorf("%w: %s: the spec's window [%s, %s) is not the generator's [%s, %s), so the truth does not apply",
			expspec.ErrUsage, spec.Experiment, spec.Window.Start, spec.Window.End, cfg.WindowStart.Format("2006-01-02T15:04:05Z07:00"), cfg.WindowEnd.Format("2006-01-02T15:04:05Z07:00"))
	}
	if spec.Control() != et.Control {
		return nil, fmt.Errorf("%w: %s: the spec's control %q is not the generator's %q", expspec.ErrUsage, spec.Experiment, spec.Control(), et.Control)
	}

	// Cohorts whose units are exactly the truth's.
	genLeaves := map[string]bool{}
	for _, l := range cfg.Leaves {
		genLeaves[l] = true
	}
	cohorts := map[string]bool{fixtures.CohortAll: true}
	sameLeaves := len(spec.Cohorts.Taxonomy) == len(cfg.Leaves)
	for _, l := range spec.Cohorts.Taxonomy {
		if genLeaves[l] {
			cohorts[l] = true
		} else {
			sameLeaves = false
		}
	}
	if sameLeaves {
		cohorts[fixtures.CohortUnclassified] = true
	}
	checkUnits := spec.PersonaAlgoVersion == cfg.PersonaAlgoVersion

	effects := map[string]fixtures.EffectTruth{}
	for _, e := range et.Effects {
		effects[e.Cohort+"\x00"+e.Variant+"\x00"+e.Event+"\x00"+e.Stat] = e
	}
	cellUnits := map[string]int64{}
	for _, c := range et.Cohorts {
		for _, cell := range c.Cells {
			cellUnits[c.Cohort+"\x00"+cell.Variant] = cell.Units
		}
	}

	out := &truthChecks{}
	stats := map[string]string{}
	windowed := map[string]string{}
	for _, mt := range spec.Metrics {
		stat, w, why := metricStat(m, spec, mt)
		if stat == "" {
			out.skipped = append(out.skipped, fmt.Sprintf("%s %s: %s", spec.Experiment, mt.Name, why))
			continue
		}
		stats[mt.Name] = stat
		if w {
			windowed[mt.Name] = why
		}
	}

	r := csv.NewReader(bytes.NewReader(results))
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("results.csv: unreadable (%v)", err)}
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"cohort", "metric", "variant", "n_control", "n_variant", "abs_ci_low", "abs_ci_high", "p_value", "status"} {
		if _, ok := col[h]; !ok {
			return nil, &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("results.csv has no %s column", h)}
		}
	}
	unitsSeen := map[string]bool{}
	for _, rec := range recs[1:] {
		get := func(k string) string { return rec[col[k]] }
		cohort, metric, variant := truthCohort(get("cohort")), get("metric"), get("variant")
		if !cohorts[cohort] {
			continue
		}
		mi := slices.IndexFunc(spec.Metrics, func(x expspec.Metric) bool { return x.Name == metric })
		if mi < 0 {
			continue
		}
		if checkUnits {
			for _, arm := range []struct{ name, variant, col string }{{"control", et.Control, "n_control"}, {"variant", variant, "n_variant"}} {
				key := cohort + "\x00" + arm.variant
				want, ok := cellUnits[key]
				if !ok || unitsSeen[key] {
					continue
				}
				unitsSeen[key] = true
				got, _ := strconv.ParseInt(get(arm.col), 10, 64)
				out.units = append(out.units, unitRow{spec.Experiment, cohort, metric, variant, arm.variant, want, got})
			}
		}
		stat, ok := stats[metric]
		if !ok {
			continue
		}
		event := spec.Metrics[mi].Event
		eff, ok := effects[cohort+"\x00"+variant+"\x00"+event+"\x00"+stat]
		if !ok {
			continue // no model expectation for this cell
		}
		if why, w := windowed[metric]; w && eff.Absolute != 0 {
			out.skipped = append(out.skipped, fmt.Sprintf("%s %s / %s / %s: %s", spec.Experiment, cohort, metric, variant, why))
			continue
		}
		low, e1 := strconv.ParseFloat(get("abs_ci_low"), 64)
		high, e2 := strconv.ParseFloat(get("abs_ci_high"), 64)
		p, e3 := strconv.ParseFloat(get("p_value"), 64)
		if get("status") != "ok" || e1 != nil || e2 != nil || e3 != nil {
			out.skipped = append(out.skipped, fmt.Sprintf("%s %s / %s / %s: no interval (status %q)", spec.Experiment, cohort, metric, variant, get("status")))
			continue
		}
		row := truthRow{Experiment: spec.Experiment, Cohort: cohort, Metric: metric, Variant: variant, Event: event, Stat: stat,
			Truth: eff.Absolute, Low: low, High: high, P: p, Alpha: spec.Statistics.Alpha, Kind: "aa"}
		if eff.Absolute != 0 {
			row.Kind = "planted"
		}
		row.Inside = low <= eff.Absolute && eff.Absolute <= high
		row.Significant = p < row.Alpha
		out.rows = append(out.rows, row)
	}
	return out, nil
}

// truthCohort names a results.csv cohort as the truth does: the units
// whose persona is not a declared leaf are "_unclassified" in results and
// "*" in truth.json.
func truthCohort(c string) string {
	if c == expspec.UnclassifiedLeaf {
		return fixtures.CohortUnclassified
	}
	return c
}

// truthResult is the judged outcome of every check.
type truthResult struct {
	c                          truthChecks
	unitFails                  []unitRow
	plantedAll, plantedPersona []truthRow
	allMisses, personaMisses   []truthRow
	personaAllowed             int
	personaExpected            float64
	aa, aaSignificant          []truthRow
	aaAllowed                  int
	aaExpected                 float64
	tail                       float64
}

func (c truthChecks) judge(tail float64) *truthResult {
	r := &truthResult{c: c, tail: tail}
	for _, u := range c.units {
		if u.Want != u.Got {
			r.unitFails = append(r.unitFails, u)
		}
	}
	var personaAlphas, aaAlphas []float64
	for _, row := range c.rows {
		switch {
		case row.Kind == "planted" && row.Cohort == fixtures.CohortAll:
			r.plantedAll = append(r.plantedAll, row)
			if !row.Inside {
				r.allMisses = append(r.allMisses, row)
			}
		case row.Kind == "planted":
			r.plantedPersona = append(r.plantedPersona, row)
			personaAlphas = append(personaAlphas, row.Alpha)
			r.personaExpected += row.Alpha
			if !row.Inside {
				r.personaMisses = append(r.personaMisses, row)
			}
		default:
			r.aa = append(r.aa, row)
			aaAlphas = append(aaAlphas, row.Alpha)
			r.aaExpected += row.Alpha
			if row.Significant {
				r.aaSignificant = append(r.aaSignificant, row)
			}
		}
	}
	r.personaAllowed = poissonBinomialAllowance(personaAlphas, tail)
	r.aaAllowed = poissonBinomialAllowance(aaAlphas, tail)
	return r
}

// poissonBinomialAllowance returns the smallest k with P(X > k) <= tail,
// where X is the number of successes of independent Bernoulli(p_i) trials.
func poissonBinomialAllowance(ps []float64, tail float64) int {
	dist := []float64{1}
	for _, p := range ps {
		next := make([]float64, len(dist)+1)
		for k, q := range dist {
			next[k] += q * (1 - p)
			next[k+1] += q * p
		}
		dist = next
	}
	cum := 0.0
	for k, q := range dist {
		cum += q
		if 1-cum <= tail {
			return k
		}
	}
	return len(ps)
}

func (r *truthResult) failed() bool {
	return len(r.unitFails) > 0 || len(r.allMisses) > 0 || len(r.personaMisses) > r.personaAllowed ||
		len(r.aaSignificant) > r.aaAllowed || len(r.plantedAll)+len(r.aa) == 0
}

func (r *truthResult) summary() string {
	if len(r.plantedAll)+len(r.aa) == 0 {
		return "check-truth: nothing to check: no metric of the runs maps to the truth"
	}
	var parts []string
	if n := len(r.unitFails); n > 0 {
		parts = append(parts, fmt.Sprintf("%d cell sizes differ from the truth", n))
	}
	if n := len(r.allMisses); n > 0 {
		parts = append(parts, fmt.Sprintf("%d planted effect(s) of cohort (all) outside the reported interval", n))
	}
	if len(r.personaMisses) > r.personaAllowed {
		parts = append(parts, fmt.Sprintf("%d persona-cohort intervals miss their planted effect (allowed %d)", len(r.personaMisses), r.personaAllowed))
	}
	if len(r.aaSignificant) > r.aaAllowed {
		parts = append(parts, fmt.Sprintf("%d A/A comparisons significant (allowed %d)", len(r.aaSignificant), r.aaAllowed))
	}
	if len(parts) == 0 {
		return "check-truth ok"
	}
	return "check-truth failed: " + strings.Join(parts, "; ")
}

func (r *truthResult) write(w io.Writer, verbose bool) error {
	var b bytes.Buffer
	status := "ok"
	if r.failed() {
		status = "FAILED"
	}
	fmt.Fprintf(&b, "check-truth %s: planted (all) %d/%d inside; planted persona cohorts %d/%d inside (at most %d misses allowed, expected %.2f); A/A %d of %d significant (expected %.2f, at most %d allowed, tail %g); cell sizes %d/%d match\n",
		status,
		len(r.plantedAll)-len(r.allMisses), len(r.plantedAll),
		len(r.plantedPersona)-len(r.personaMisses), len(r.plantedPersona), r.personaAllowed, r.personaExpected,
		len(r.aaSignificant), len(r.aa), r.aaExpected, r.aaAllowed, r.tail,
		len(r.c.units)-len(r.unitFails), len(r.c.units))

	table := func(title string, rows []truthRow) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  experiment\tcohort\tmetric\tvariant\ttruth\tstat\tinterval\tp_value\toutcome")
		for _, x := range rows {
			outcome := "inside"
			switch {
			case x.Kind == "planted" && !x.Inside:
				outcome = fmt.Sprintf("OUTSIDE by %s", fmtG(distance(x)))
			case x.Kind == "aa" && x.Significant:
				outcome = "significant"
			case x.Kind == "aa":
				outcome = "not significant"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s(%s)\t[%s, %s]\t%s\t%s\n", x.Experiment, x.Cohort, x.Metric, x.Variant,
				fmtG(x.Truth), x.Stat, x.Event, fmtG(x.Low), fmtG(x.High), fmtG(x.P), outcome)
		}
		tw.Flush()
	}
	if len(r.unitFails) > 0 {
		fmt.Fprintln(&b, "\ncell sizes that differ from the truth")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  experiment\tcohort\tvariant\ttruth units\treported")
		for _, u := range r.unitFails {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", u.Experiment, u.Cohort, u.Arm, u.Want, u.Got)
		}
		tw.Flush()
	}
	if verbose {
		table("planted effects, cohort (all)", r.plantedAll)
		table("planted effects, persona cohorts", r.plantedPersona)
		table("A/A comparisons (no planted effect)", r.aa)
	} else {
		table("planted effects of cohort (all) outside the reported interval", r.allMisses)
		if len(r.personaMisses) > r.personaAllowed {
			table("persona-cohort intervals that miss their planted effect", r.personaMisses)
		}
		if len(r.aaSignificant) > r.aaAllowed {
			table("A/A comparisons flagged significant", r.aaSignificant)
		}
	}
	if verbose && len(r.c.skipped) > 0 {
		fmt.Fprintln(&b, "\nnot checked")
		s := append([]string{}, r.c.skipped...)
		sort.Strings(s)
		for _, x := range slices.Compact(s) {
			fmt.Fprintf(&b, "  - %s\n", x)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func distance(x truthRow) float64 {
	if x.Truth < x.Low {
		return x.Low - x.Truth
	}
	return x.Truth - x.High
}

func fmtG(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/privatize"
)

// Baseline is what the volume check compared with: the previous night's
// run of the experiment. It is part of the stable manifest, so a replay
// can use the same baseline instead of whatever is on disk now.
type Baseline struct {
	Date          string `json:"date"`
	UnitsExposed  int64  `json:"units_exposed"`
	QualitySHA256 string `json:"quality_sha256"`
}

// ReadBaseline reads the previous night's quality.json of the experiment,
// if that run exists.
func ReadBaseline(expDir, date string) *Baseline {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return nil
	}
	prev := d.AddDate(0, 0, -1).Format("2006-01-02")
	b, err := diskio.ReadRegularFile(filepath.Join(expDir, prev, "quality.json"))
	if err != nil {
		return nil
	}
	// An exact run's quality.json has counts; a private run's, the noisy
	// statistics it released (so the check stays a function of releases).
	var r struct {
		Counts engine.Quality        `json:"counts"`
		Noisy  []privatize.NoisyGate `json:"noisy_statistics"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	exposed := r.Counts.UnitsExposed
	for _, g := range r.Noisy {
		if g.Name == "units_exposed" {
			exposed = g.Value
		}
	}
	return &Baseline{Date: prev, UnitsExposed: exposed, QualitySHA256: diskio.SHA256Hex(b)}
}

// EvaluateGates computes every check with its thresholds and outcome, and
// returns the names of the checks that block.
func EvaluateGates(spec *expspec.Spec, q engine.Quality, released []engine.Cell, prev *Baseline, missing []MissingEvent) ([]Check, []string) {
	rate := func(num, den int64) float64 {
		if den == 0 {
			return 0
		}
		return float64(num) / float64(den)
	}
	observed := map[string]float64{
		"multi_variant_unit_rate":     rate(q.UnitsMultiVariant, q.UnitsExposed),
		"trace_duplicate_rate":        rate(q.TraceDuplicates, q.TraceRows),
		"event_duplicate_rate":        rate(q.EventDuplicates, q.EventRows),
		"trace_version_mismatch_rate": rate(q.TraceVersionMismatch, q.TraceRows),
		"trace_null_key_rate":         rate(q.TraceNullKeys, q.TraceRows),
		"event_null_key_rate":         rate(q.EventNullKeys, q.EventRows),
		"trace_unknown_variant_rate":  rate(q.TraceUnknownVariant, q.TraceRows),
		"event_invalid_value_rate":    rate(q.EventInvalidValue, q.EventRows),
		"event_null_metric_rate":      rate(privatize.Opt64(q.EventNullMetric), q.EventRows+privatize.Opt64(q.EventNullMetric)),
	}
	// Arms with no unit, in the released (all) cohort: with privacy these
	// are noisy counts, so only released information decides the gate.
	empty := 0
	for _, v := range spec.Variants {
		n := int64(0)
		for _, c := range released {
			if c.Cohort == expspec.AllCohort && c.Variant == v.Name && c.Metric == spec.Metrics[0].Name {
				n = c.N
			}
		}
		if n <= 0 {
			empty++
		}
	}
	observed["zero_exposure_arms"] = float64(empty)
	for _, m := range missing {
		observed[MissingEventCheck(m)]++
	}
	var checks []Check
	var blocked []string
	for _, d := range expspec.GateDefaults {
		warn, block := spec.Gate(d.Name)
		if d.Name == "event_null_metric_rate" && q.EventNullMetric == nil {
			continue // counted by quality@v4 and later only
		}
		c := Check{Name: d.Name, Rule: d.Rule, Warn: warn, Block: block, Threshold: warn, Severity: "block", Outcome: "pass"}
		if d.Name == "volume_drop" {
			if prev == nil || prev.UnitsExposed == 0 {
				c.Outcome, c.Rule = "skipped", d.Rule+"; no previous night's run to compare with"
				checks = append(checks, c)
				continue
			}
			observed[d.Name] = max(0, 1-float64(q.UnitsExposed)/float64(prev.UnitsExposed))
		}
		c.Observed = observed[d.Name]
		switch {
		case c.Observed > block:
			c.Outcome, c.Threshold = "block", block
			blocked = append(blocked, d.Name)
		case c.Observed > warn:
			c.Outcome = "warn"
		}
		checks = append(checks, c)
	}
	return checks, blocked
}

// privateGates are the private form of the rate checks: per-unit counts
// over the exposed units, every one a noisy released statistic.
var privateGates = map[string]struct {
	num  []string
	rule string
}{
	"multi_variant_unit_rate":     {[]string{"units_multi_variant"}, "units seen in more than one variant / exposed units"},
	"trace_duplicate_rate":        {[]string{"units_trace_duplicate"}, "units with a duplicate trace row / exposed units"},
	"event_duplicate_rate":        {[]string{"units_event_duplicate"}, "units with a duplicate event (counted once per event name) / exposed units"},
	"trace_version_mismatch_rate": {[]string{"units_trace_version_mismatch"}, "units with a trace of another persona-algorithm version / exposed units"},
	"trace_null_key_rate":         {[]string{"units_trace_null_keys", "trace_no_unit"}, "(units with a NULL ts or variant + trace rows with no unit_id) / exposed units"},
	"event_null_key_rate":         {[]string{"units_event_null_keys", "event_no_unit"}, "(units with an event with NULL ts, per event name + events with no unit_id) / exposed units"},
	"trace_unknown_variant_rate":  {[]string{"units_trace_unknown_variant"}, "units with a trace of an undeclared variant / exposed units"},
	"event_invalid_value_rate":    {[]string{"units_event_invalid_value"}, "units with an invalid event value (counted once per event name) / exposed units"},
	"event_null_metric_rate":      {[]string{"units_event_null_metric"}, "units with an event whose metric name is NULL or blank / exposed units"},
}

// privateBlockZ is how many noise standard deviations a private run's gate
// figure must lie above its block threshold before the gate blocks: a gate
// whose true rate sits exactly at the threshold blocks with probability at
// most 1% (one-sided normal quantile 0.99). A warning needs privateWarnZ
// (one-sided 95%), so that noise alone rarely warns.
const (
	privateBlockZ = 2.326
	privateWarnZ  = 1.645
)

// EvaluatePrivateGates computes every check of a private run from the
// noisy release alone: the rate checks from the noisy per-unit gate
// statistics, zero_exposure_arms from the noisy cells, volume_drop from
// the noisy exposed units of this night and of the previous night's
// release. Each rule says what noise its figure carries; a rate blocks only
// when it exceeds its block threshold by privateBlockZ noise sds.
func EvaluatePrivateGates(spec *expspec.Spec, rel *privatize.PrivateRelease, prev *Baseline) ([]Check, []string) {
	rates := noisyGateRates(rel)
	var checks []Check
	var blocked []string
	raw, _ := EvaluateGates(spec, engine.Quality{EventNullMetric: new(int64)}, rel.Cells, nil, nil)
	for _, c := range raw {
		c = privateCheck(spec, rel, prev, rates, c)
		if c.Outcome == "block" {
			blocked = append(blocked, c.Name)
		}
		checks = append(checks, c)
	}
	return checks, blocked
}

// noisyRates are the figures of the private rate checks (privateGates),
// by check name: the rate, its noise sd and the rule that says so; and
// the noisy exposed units they are rates of.
type noisyRates struct {
	exposed       privatize.NoisyGate
	observed, sds map[string]float64
	notes         map[string]string
}

// noisyGateRates computes every private rate check's figure from the
// noisy gate statistics: the numerators' sum over the noisy exposed units
// (at least 1), with the noise sd that ratio carries.
func noisyGateRates(rel *privatize.PrivateRelease) noisyRates {
	val := map[string]privatize.NoisyGate{}
	for _, g := range rel.Gates {
		val[g.Name] = g
	}
	exposed := val["units_exposed"]
	den := float64(max(1, exposed.Value))
	r := noisyRates{exposed: exposed, observed: map[string]float64{}, sds: map[string]float64{}, notes: map[string]string{}}
	for name, pg := range privateGates {
		num, v := 0.0, 0.0
		for _, n := range pg.num {
			num += float64(val[n].Value)
			v += val[n].NoiseSD * val[n].NoiseSD
		}
		r.observed[name] = max(0, num) / den
		r.sds[name] = math.Sqrt(v) / den
		r.notes[name] = fmt.Sprintf("%s; noisy figure (noise sd of the rate about %.3g; numerator noise sd %.3g units, exposed units noise sd %.3g); warns only when above the warn threshold by %.3g noise sds and blocks only when above the block threshold by %.3g", pg.rule, r.sds[name], math.Sqrt(v), exposed.NoiseSD, privateWarnZ, privateBlockZ)
	}
	return r
}

// privateCheck decides one check of a private run (as EvaluateGates
// computed it on the noisy cells alone) from the noisy release.
func privateCheck(spec *expspec.Spec, rel *privatize.PrivateRelease, prev *Baseline, rates noisyRates, c Check) Check {
	switch {
	case c.Name == "zero_exposure_arms":
		c.Rule += " (noisy cell counts)"
		return c
	case c.Name == "volume_drop":
		return noisyVolumeDrop(c, rates.exposed, prev)
	case c.Name == "metric_event_missing" || c.Name == "secondary_metric_event_missing":
		return noisyEventMissing(spec, rel, c)
	case privateGates[c.Name].rule == "":
		// A check with no private form is not evaluated: deciding it on
		// exact data would publish that data.
		c.Observed, c.Outcome, c.Detail = 0, "skipped", ""
		c.Rule += "; not evaluated in a private run (it has no noisy per-unit form)"
		return c
	default:
		c.Observed, c.Rule = rates.observed[c.Name], rates.notes[c.Name]
		return decideNoisy(c, rates.sds[c.Name])
	}
}

// noisyVolumeDrop decides volume_drop on the noisy exposed units of this
// night and of the previous night's release, or skips it when there is no
// previous release.
func noisyVolumeDrop(c Check, exposed privatize.NoisyGate, prev *Baseline) Check {
	// c comes from EvaluateGates without a previous night (the exact
	// comparison is not made in a private run): start from the rule itself,
	// not from that call's "no previous night" note.
	for _, d := range expspec.GateDefaults {
		if d.Name == c.Name {
			c.Rule = d.Rule
		}
	}
	if prev == nil || prev.UnitsExposed <= 0 {
		c.Outcome, c.Rule = "skipped", c.Rule+"; no previous night's release to compare with"
		return c
	}
	c.Observed = max(0, 1-float64(exposed.Value)/float64(prev.UnitsExposed))
	sd := math.Sqrt2 * exposed.NoiseSD / float64(prev.UnitsExposed)
	c.Rule += fmt.Sprintf(" (noisy exposed units, noise sd %.3g each night; blocks only when above the block threshold by %.3g noise sds)", exposed.NoiseSD, privateBlockZ)
	return decideNoisy(c, sd)
}

// decideNoisy sets the outcome of a noisy figure with noise sd sd: block
// only above the block threshold by privateBlockZ sds, warn only above the
// warn threshold by privateWarnZ sds.
func decideNoisy(c Check, sd float64) Check {
	c.Outcome, c.Threshold = "pass", c.Warn
	switch {
	case c.Observed-privateBlockZ*sd > c.Block:
		c.Outcome, c.Threshold = "block", c.Block
	case c.Observed-privateWarnZ*sd > c.Warn:
		c.Outcome = "warn"
	}
	return c
}

// noisyEventMissing decides metric_event_missing or
// secondary_metric_event_missing of a private run. The event names present
// in the data are restricted; the check rests on the noisy (all) sums
// instead: an event counts as present only when they show evidence of it
// (privateEventEvidence). A noisy release cannot tell a missing event from
// a rare one, so the check only warns unless the spec sets its block
// threshold explicitly.
func noisyEventMissing(spec *expspec.Spec, rel *privatize.PrivateRelease, c Check) Check {
	lacking := privateEventEvidence(spec, rel, c.Name == "secondary_metric_event_missing")
	c.Observed, c.Detail = float64(len(lacking)), strings.Join(lacking, "; ")
	c.Rule += fmt.Sprintf("; in a private run, an event counts as present only when the noisy (all) sum of its metric differs from that of units without events by more than %.3g noise sds (the names present in the data are not released)", privateBlockZ)
	g, explicit := spec.Quality[c.Name]
	c.Outcome, c.Threshold = "pass", c.Warn
	switch {
	case explicit && g.Block != nil && c.Observed > c.Block:
		c.Outcome, c.Threshold = "block", c.Block
	case c.Observed > c.Warn:
		c.Outcome = "warn"
		c.Rule += "; warns only (a spec's explicit block threshold makes it block)"
	}
	return c
}

// PrivateQuality is a private run's published quality.json: the noisy
// gate statistics and the checks decided on them. The exact counts are in
// the restricted record.
type PrivateQuality struct {
	Experiment  string                `json:"experiment"`
	NominalDate string                `json:"nominal_date"`
	Note        string                `json:"note"`
	Statistics  []privatize.NoisyGate `json:"noisy_statistics"`
	Checks      []Check               `json:"checks"`
}

// SRMCheckName is how a sample-ratio mismatch appears among the blocking
// checks: it invalidates the verdict like a blocking gate, so it exits 65
// with a BLOCK line too.
const SRMCheckName = "sample_ratio_mismatch"

// BlockOnSRM adds a sample-ratio mismatch that invalidated the verdict to
// the blocking checks.
func BlockOnSRM(d Decisions, blocked, details []string) ([]string, []string) {
	if d.Verdict != "invalid" || d.Rule != "srm" {
		return blocked, details
	}
	return append(blocked, SRMCheckName), append(details, d.Reason+" (decisions.json srm)")
}

// GateError reports blocking data-quality checks. The outputs were written
// (the verdict is invalid, quality.json says why); the exit code is 65.
type GateError struct {
	Experiment string
	Checks     []string
	Dir        string
	// Details says what the failing checks found, where they say more
	// than their name (a metric whose event is missing).
	Details []string
}

func (e *GateError) Error() string {
	details := ""
	if len(e.Details) > 0 {
		details = ": " + strings.Join(e.Details, "; ")
	}
	return fmt.Sprintf("experiment %s: blocking data-quality checks failed: %s%s (see %s and decisions.json)", e.Experiment, strings.Join(e.Checks, ", "), details, filepath.Join(e.Dir, "quality.json"))
}

// privateEventEvidence lists the metrics (goals and guardrails, or the
// secondary ones) whose event — or ratio denominator event — shows no
// evidence of presence in the noisy release: summed over the variants of
// the (all) cohort, Σx − n·x₀ (x₀ the value of a unit without events)
// is not above privateBlockZ times its noise sd. A typo'd event name (true
// difference 0) fails with probability ≥ 99%; so does an event too rare to
// tell from the noise, which a private release cannot distinguish.
func privateEventEvidence(spec *expspec.Spec, rel *privatize.PrivateRelease, secondary bool) []string {
	var lacking []string
	for _, m := range spec.Metrics {
		isSecondary := m.Role != "goal" && m.Role != "guardrail"
		if isSecondary != secondary {
			continue
		}
		parts := []struct {
			event string
			sum   int
			clamp *expspec.Clamp
		}{{m.Event, 0, m.Clamp}}
		if m.Denominator != nil {
			parts = append(parts, struct {
				event string
				sum   int
				clamp *expspec.Clamp
			}{m.Denominator.Event, 2, m.Denominator.Clamp})
		}
		for _, p := range parts {
			x0 := 0.0
			if p.clamp != nil {
				x0 = float64(expspec.ScaleBound(min(max(0, p.clamp.Lower), p.clamp.Upper), spec.Scale()))
			}
			var d, n float64
			for _, c := range rel.Cells {
				if c.Cohort == expspec.AllCohort && c.Metric == m.Name {
					v, _ := new(big.Float).SetInt(*c.Sums()[p.sum]).Float64()
					d += v
					n += float64(c.N)
				}
			}
			d -= n * x0
			sd := rel.Noise[privatize.NoiseKey(expspec.AllCohort, m.Name)]
			k := float64(len(spec.Variants))
			noise := math.Sqrt(k * (sd.Sums[p.sum]*sd.Sums[p.sum] + x0*x0*sd.N*sd.N))
			if math.Abs(d) <= privateBlockZ*noise {
				lacking = append(lacking, fmt.Sprintf("metric %s: no evidence of event %q in the noisy release (difference from units without events %.4g, noise sd %.4g, in fixed-point units)", m.Name, p.event, d, noise))
			}
		}
	}
	return lacking
}

package pipeline

import (
	"encoding/json"
	"slices"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// Interactions between experiments (issue 21 item 4; the statistics are in
// analysis/interactions.go). A spec names its partners by spec name; the
// run resolves each to the partner spec of the same run (or, in a replay,
// to the spec the manifest pinned), and the partner's trace rows are
// classified in the spec's own pass with the partner's parameters: when
// the partner does not share the pass, it joins it as a companion, an
// experiment whose assignment is computed but which has no metric and
// releases nothing. So a spec's interactions depend only on its inputs and
// the partner specs its manifest records.

// partner is a resolved partner: its status and, when it can be tested,
// its spec (window already cut at the night).
type partner struct {
	info analysis.InteractionPartner
	spec *expspec.Spec
}

// resolvePartners resolves every job's partners against the run's jobs and
// opts.Partners (a replay's pinned partner specs).
func resolvePartners(jobs []*job, opts Options) {
	byName := map[string]*job{}
	for _, j := range jobs {
		byName[j.spec.OutputName()] = j
	}
	for _, j := range jobs {
		ix := j.spec.Interactions
		if ix == nil || j.err != nil || j.skipped != "" {
			continue
		}
		for _, name := range ix.With {
			p := partner{info: analysis.InteractionPartner{Name: name}}
			var spec *expspec.Spec
			pj, inRun := byName[name]
			switch {
			case inRun && pj.skipped != "":
				spec, p.info.Status = pj.spec, analysis.IxNotStarted
			case inRun:
				// Even when it failed on its own (its inputs, its key),
				// its spec defines its arms.
				spec = pj.spec
			case opts.Partners[name] != nil:
				spec = opts.Partners[name]
			default:
				p.info.Status = analysis.IxNotInRun
			}
			if spec != nil {
				p.info.Experiment = spec.Experiment
				p.info.Variants = spec.ArmsControlFirst()
				switch {
				case p.info.Status != "":
				case spec.Privacy != nil && spec.Privacy.Enabled:
					p.info.Status = analysis.IxPrivate
				case spec.Experiment == j.spec.Experiment:
					p.info.Status = analysis.IxSameExperiment
				default:
					p.spec = spec
				}
			}
			j.partners = append(j.partners, p)
		}
	}
}

// passCompanions returns the partner specs a group's pass must classify
// besides its own experiments (without metrics, so that they add only
// their trace rows and assignment), and the interaction pairs' parameters.
// A partner whose experiment the pass already analyses under another spec,
// or that two partner specs of one experiment would both need, cannot be
// classified twice: its pairs get the status partner_conflict.
func passCompanions(jobs []*job) (companions []*expspec.Spec, ixExp, ixPartner []string) {
	inPass := map[string]*expspec.Spec{}
	pairs := map[[2]string]bool{}
	for _, j := range jobs {
		inPass[j.spec.Experiment] = j.spec
	}
	for _, j := range jobs {
		for i := range j.partners {
			p := &j.partners[i]
			if p.spec == nil {
				continue
			}
			if have, ok := inPass[p.spec.Experiment]; ok {
				if have != p.spec && !sameArms(have, p.spec) {
					p.info.Status, p.spec = analysis.IxConflict, nil
					continue
				}
			} else {
				c := *p.spec
				c.Metrics, c.Interactions, c.Statistics.CUPED, c.Drilldowns = nil, nil, nil, nil
				inPass[c.Experiment] = p.spec
				companions = append(companions, &c)
			}
			// Two partner names of one experiment are one pair: the SQL
			// must see it once, or the units in both would count twice.
			pair := [2]string{j.spec.Experiment, p.spec.Experiment}
			if !pairs[pair] {
				pairs[pair] = true
				ixExp = append(ixExp, pair[0])
				ixPartner = append(ixPartner, pair[1])
			}
		}
	}
	return companions, engine.NonNil(ixExp), engine.NonNil(ixPartner)
}

// sameArms reports whether two specs of one experiment classify its trace
// rows alike: the same window, variants, persona-algorithm version and
// cohort leaves (the assignment depends on nothing else).
func sameArms(a, b *expspec.Spec) bool {
	as, ae := a.Window.Bounds()
	bs, be := b.Window.Bounds()
	if !as.Equal(bs) || !ae.Equal(be) || a.PersonaAlgoVersion != b.PersonaAlgoVersion ||
		!slices.Equal(a.Cohorts.Taxonomy, b.Cohorts.Taxonomy) || len(a.Variants) != len(b.Variants) {
		return false
	}
	for i := range a.Variants {
		if a.Variants[i].Name != b.Variants[i].Name {
			return false
		}
	}
	return true
}

// partnerRecords are the manifest's record of a job's partners: each
// tested partner's resolved spec with its hash, which a replay reads back.
func (j *job) partnerRecords() (*publish.InteractionsRecord, error) {
	if j.spec.Interactions == nil {
		return nil, nil
	}
	rec := &publish.InteractionsRecord{Alpha: j.spec.InteractionAlpha(), Partners: []publish.PartnerRecord{}}
	for _, p := range j.partners {
		r := publish.PartnerRecord{Name: p.info.Name, Experiment: p.info.Experiment, Status: p.info.Status}
		if p.spec != nil {
			b, h, err := p.spec.Canonical()
			if err != nil {
				return nil, err
			}
			r.Spec, r.SpecSHA256 = json.RawMessage(b), h
		}
		rec.Partners = append(rec.Partners, r)
	}
	return rec, nil
}

// partnerInfos returns the partners as the analysis needs them.
func (j *job) partnerInfos() []analysis.InteractionPartner {
	var out []analysis.InteractionPartner
	for _, p := range j.partners {
		out = append(out, p.info)
	}
	return out
}

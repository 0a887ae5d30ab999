package calibrate

import (
	"fmt"
	"strings"

	"github.com/verity-analytics/verity/pipeline"
)

// Interactions between experiments (issue 21 item 4). The suite's four
// experiments share every unit, so each pass spec also tests its
// interactions with the three others (interactions@v1, the cells are
// unchanged). The generator's effects are relative, so two experiments
// with planted effects on the same event interact on the additive scale
// (ab-up's absolute lift is smaller among ab-down's treated units); an
// A/A experiment interacts with nothing: its arms are identical, so its
// effect is zero in every partner arm, and every partner's effect is the
// same in both of its arms. Checked at the final night on those null
// pairs (each unordered pair × metric once: the contrast is symmetric):
// the per-test rate of p ≤ α (two-sided, nominal α), and the rate of A/A
// experiment-nights with any flagged pair (at most interactions.alpha,
// the default 0.01: Holm over the experiment's tests). Ratio metrics are
// not tested (interactions.csv says so).

// ixAlpha is the flagging level of the suite's specs (the default).
const ixAlpha = 0.01

// withInteractions adds the interactions section (every other experiment)
// and its template pin to a spec's YAML.
func withInteractions(y string, e experiment) (string, error) {
	const pins = "quality: v4}\n"
	if !strings.Contains(y, pins) {
		return "", fmt.Errorf("spec %s: no template line to extend", e.id)
	}
	var others []string
	for _, o := range experiments {
		if o.id != e.id {
			others = append(others, o.id)
		}
	}
	y = strings.Replace(y, pins, "quality: v4, interactions: v1}\n", 1)
	return y + "interactions: {with: [" + strings.Join(others, ", ") + "]}\n", nil
}

// isAA reports whether the experiment id is an A/A experiment.
func isAA(id string) bool {
	for _, e := range experiments {
		if e.id == id {
			return e.aa
		}
	}
	return false
}

// tallyIX judges one experiment's interaction tests at the final night.
func tallyIX(tl Tally, e experiment, in pipeline.CalibrationInput) error {
	flagged, tested := false, 0
	for _, r := range in.Interactions {
		switch {
		case r.Status == "metric_not_tested" && metricKind[r.Metric] == "ratio":
			continue
		case r.Status != "tested":
			return fmt.Errorf("%s × %s %s: status %s (%s)", e.id, r.Partner, r.Metric, r.Status, r.Detail)
		}
		tested++
		flagged = flagged || r.Flagged
		if !(e.aa || isAA(r.PartnerExperiment)) || e.id > r.PartnerExperiment {
			continue
		}
		tl.add("ix-null/"+r.Method+"/"+metricKind[r.Metric], *r.PValue <= alpha)
	}
	if tested == 0 {
		return fmt.Errorf("%s: no interaction tested", e.id)
	}
	if e.aa {
		tl.add("ix-null-flagged", flagged)
	}
	return nil
}

// judgeIX adds the interaction checks (see above).
func judgeIX(add func(key, side, what string, nominal float64)) {
	for _, kind := range []string{"proportion", "mean"} {
		add("ix-null/welch_t/"+kind, "two-sided", "interaction test p ≤ α, no interaction (a pair with an A/A experiment)", alpha)
	}
	add("ix-null-flagged", "at most", "A/A experiment-night with a flagged interaction (Holm at interactions.alpha)", ixAlpha)
}

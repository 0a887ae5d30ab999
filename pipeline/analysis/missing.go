package analysis

import (
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// MissingEvent is a metric whose event (or a ratio's denominator event) has
// no row in the events files inside the analysis window: almost always a
// misspelt name. Every unit then has the same value, and the comparison
// would read "zero variance" and hold instead of failing.
type MissingEvent struct {
	Metric string
	Role   string
	// Part is "event" or "denominator.event": which spec key names it.
	Part  string
	Event string
	// Nearest are the closest event names present in the window (edit
	// distance), best first; empty when the window has no event at all.
	Nearest []string
}

func (m MissingEvent) String() string {
	s := fmt.Sprintf("%s metric %s: %s %q has no row in the analysis window", m.Role, m.Metric, m.Part, m.Event)
	if len(m.Nearest) == 0 {
		return s + "; the window has no event at all"
	}
	return s + "; nearest event names present: " + strings.Join(m.Nearest, ", ")
}

// MissingEventCheck names the check a missing event fails:
// MetricEventCheck for a goal or guardrail, secondaryEventCheck for a
// secondary metric.
func MissingEventCheck(m MissingEvent) string {
	if m.Role == "secondary" {
		return secondaryEventCheck
	}
	return MetricEventCheck
}

// SuspectParts returns, in spec order, the metric parts that no unit of the
// experiment can have had an event for: every unit has the same value
// (pooled over every cohort and variant, n·Σx² = (Σx)²). That is the cheap
// test, on sums the run has anyway; only such parts make the run look up
// the event names present (engine.Session.EventNamesIn).
func SuspectParts(spec *expspec.Spec, cells []engine.Cell) []MissingEvent {
	type pooled struct {
		n          int64
		sx, sx2    *big.Int
		sy, sy2    *big.Int
		seen, seeY bool
	}
	by := map[string]*pooled{}
	for _, c := range cells {
		p := by[c.Metric]
		if p == nil {
			p = &pooled{sx: new(big.Int), sx2: new(big.Int), sy: new(big.Int), sy2: new(big.Int)}
			by[c.Metric] = p
		}
		p.n += c.N
		p.sx.Add(p.sx, c.Sum)
		p.sx2.Add(p.sx2, c.SumSq)
		if c.SumY != nil {
			p.sy.Add(p.sy, c.SumY)
			p.sy2.Add(p.sy2, c.SumY2)
		}
	}
	constant := func(n int64, s, s2 *big.Int) bool {
		if n == 0 {
			return false // no unit at all: the zero_exposure_arms check says so
		}
		lhs := new(big.Int).Mul(big.NewInt(n), s2)
		return lhs.Cmp(new(big.Int).Mul(s, s)) == 0
	}
	var out []MissingEvent
	for _, m := range spec.Metrics {
		p := by[m.Name]
		if p == nil {
			continue
		}
		if constant(p.n, p.sx, p.sx2) {
			out = append(out, MissingEvent{Metric: m.Name, Role: m.Role, Part: "event", Event: m.Event})
		}
		if m.Denominator != nil && constant(p.n, p.sy, p.sy2) {
			out = append(out, MissingEvent{Metric: m.Name, Role: m.Role, Part: "denominator.event", Event: m.Denominator.Event})
		}
	}
	return out
}

// MissingEvents returns the parts among suspects whose event is not among
// the names present, each with its nearest names.
func MissingEvents(suspects []MissingEvent, present map[string]int64) []MissingEvent {
	var out []MissingEvent
	for _, m := range suspects {
		if _, ok := present[m.Event]; ok {
			continue
		}
		m.Nearest = nearestNames(m.Event, present, 3)
		out = append(out, m)
	}
	return out
}

// nearestNames returns up to k names closest to want by Levenshtein
// distance (ties: more rows first, then byte order), among those within
// max(2, len(want)/2) edits; if none is that close, the k most frequent.
func nearestNames(want string, present map[string]int64, k int) []string {
	type cand struct {
		name string
		d    int
		n    int64
	}
	var all []cand
	for name, n := range present {
		all = append(all, cand{name, levenshtein(want, name), n})
	}
	limit := max(2, len([]rune(want))/2)
	var close []cand
	for _, c := range all {
		if c.d <= limit {
			close = append(close, c)
		}
	}
	if len(close) > 0 {
		all = close
		sort.Slice(all, func(i, j int) bool {
			if all[i].d != all[j].d {
				return all[i].d < all[j].d
			}
			if all[i].n != all[j].n {
				return all[i].n > all[j].n
			}
			return all[i].name < all[j].name
		})
	} else {
		sort.Slice(all, func(i, j int) bool {
			if all[i].n != all[j].n {
				return all[i].n > all[j].n
			}
			return all[i].name < all[j].name
		})
	}
	var out []string
	for i := 0; i < len(all) && i < k; i++ {
		out = append(out, all[i].name)
	}
	return out
}

// levenshtein is the edit distance (insertions, deletions, substitutions)
// between a and b, over runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// ApplyMissingEvents records the check's outcome: observed is the number
// of metric parts without their event, the detail names each one; result
// rows of those metrics say why they have no numbers.
func ApplyMissingEvents(checks []Check, rows []ResultRow, missing []MissingEvent, private bool) []Check {
	for i := range checks {
		c := &checks[i]
		if c.Name != MetricEventCheck && c.Name != secondaryEventCheck {
			continue
		}
		if private {
			c.Outcome = "skipped"
			c.Rule += "; not evaluated in a private run (its verdict may rest only on noisy counts)"
			continue
		}
		var details []string
		for _, m := range missing {
			if MissingEventCheck(m) == c.Name {
				details = append(details, m.String())
			}
		}
		c.Detail = strings.Join(details, "; ")
	}
	names := map[string]bool{}
	for _, m := range missing {
		names[m.Metric] = true
	}
	for i := range rows {
		if names[rows[i].Metric] {
			rows[i].Status = StatusNoEvent
		}
	}
	return checks
}

// StatusNoEvent is the results.csv status of a metric whose event has no
// row in the analysis window.
const StatusNoEvent = "event not in window"

// MetricEventCheck is the quality check that a MissingEvent of a goal or
// guardrail fails; a secondary metric's fails secondaryEventCheck, which
// only warns by default (it cannot change the verdict).
const (
	MetricEventCheck    = "metric_event_missing"
	secondaryEventCheck = "secondary_metric_event_missing"
)

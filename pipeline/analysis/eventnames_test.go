package analysis

import (
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"purchase", "purchase", 0}, {"purchases", "purchase", 1}, {"veiw", "view", 2},
		{"kitten", "sitting", 3}, {"", "abc", 3}, {"añb", "ab", 1},
	} {
		if got := levenshtein(tc.a, tc.b); got != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

func TestNearestNames(t *testing.T) {
	present := map[string]int64{"purchase": 10, "page_view": 500, "session": 300, "purchase_refund": 2, "purchased": 1}
	for _, tc := range []struct {
		want string
		got  []string
	}{
		{"purchases", []string{"purchase", "purchased"}},                 // 1 edit each; more rows first
		{"sesion", []string{"session"}},                                  // the only one within 3 edits
		{"checkout_click", []string{"page_view", "session", "purchase"}}, // nothing close: the most frequent
	} {
		if diff := cmp.Diff(tc.got, nearestNames(tc.want, present, 3)); diff != "" {
			t.Errorf("nearestNames(%q) (-want +got):\n%s", tc.want, diff)
		}
	}
	if got := nearestNames("x", map[string]int64{}, 3); len(got) != 0 {
		t.Errorf("no names present, got %q", got)
	}
}

// TestSuspectParts: only a metric (or denominator) with the same value for
// every unit is looked up, whatever that value is (a clamp's lower bound
// above zero gives units without events a non-zero value).
func TestSuspectParts(t *testing.T) {
	spec := &expspec.Spec{Metrics: []expspec.Metric{
		{Name: "conv", Role: "goal", Event: "buys"},
		{Name: "floor", Role: "secondary", Event: "tip"},
		{Name: "views", Role: "secondary", Event: "view"},
		{Name: "rps", Role: "secondary", Event: "buy", Denominator: &expspec.Part{Event: "sesions"}},
	}}
	cell := func(metric string, n int64, xs ...int64) engine.Cell {
		c := engine.NewCell("a", "control", metric)
		c.N = n
		for _, x := range xs {
			c.Sum.Add(c.Sum, big.NewInt(x))
			c.SumSq.Add(c.SumSq, big.NewInt(x*x))
		}
		return c
	}
	cells := []engine.Cell{
		cell("conv", 3), cell("conv", 2), // every x = 0
		cell("floor", 2, 5, 5), cell("floor", 1, 5), // every x = 5 (clamp lower bound)
		cell("views", 3, 1, 0, 2),
		cell("rps", 2, 1, 3), // y all 0
	}
	var got []string
	for _, m := range SuspectParts(spec, cells) {
		got = append(got, m.Metric+"."+m.Part+"="+m.Event)
	}
	want := []string{"conv.event=buys", "floor.event=tip", "rps.denominator.event=sesions"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("suspects (-want +got):\n%s", diff)
	}
	present := map[string]int64{"buy": 4, "tip": 1, "view": 9, "session": 3}
	var missing []string
	for _, m := range MissingEvents(SuspectParts(spec, cells), present) {
		missing = append(missing, m.String())
	}
	wantMissing := []string{
		`goal metric conv: event "buys" has no row in the analysis window; nearest event names present: buy`,
		`secondary metric rps: denominator.event "sesions" has no row in the analysis window; nearest event names present: session`,
	}
	if diff := cmp.Diff(wantMissing, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}

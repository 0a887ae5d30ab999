package pipeline

import (
	"math/big"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// A partial's cross-moment cells round-trip exactly (sums beyond 64 bits
// included), and a partial whose cross cells the spec cannot have produced
// is refused: a pair the spec does not list, sums on an overflowed cell or
// none on a proven one, a cell without units, a value that is not an
// integer. (An exact spec's partial is checked by a plain SHA-256 anyone
// can recompute, so the merge must not trust its shape.)
func TestCrossPartialRoundTripAndRefusals(t *testing.T) {
	spec, err := expspec.LoadSpec("../fixtures/specs/onboarding-flow-vr2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pairs := spec.CrossMomentPairs()
	if len(pairs) == 0 {
		t.Fatal("the fixture lists no cross-moment pairs")
	}
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	cells := []engine.CrossCell{
		{Experiment: spec.Experiment, Cohort: "power/mobile", Variant: "short", MetricA: pairs[0][0], MetricB: pairs[0][1], N: 7,
			SumXC: huge, SumYC: big.NewInt(5), SumCC: big.NewInt(0), MaxAbs: [4]*big.Int{big.NewInt(1), big.NewInt(2), big.NewInt(3), big.NewInt(4)}},
		{Experiment: spec.Experiment, Cohort: expspec.UnclassifiedLeaf, Variant: "control", MetricA: pairs[0][0], MetricB: pairs[0][1], N: 2,
			Overflow: true, MaxAbs: [4]*big.Int{big.NewInt(1), big.NewInt(2), big.NewInt(3), big.NewInt(4)}},
	}
	pcs := crossToPartial(cells)
	if pcs[0].Cohort != expspec.UnclassifiedLeaf && pcs[1].Cohort != expspec.UnclassifiedLeaf {
		t.Fatalf("cells lost: %+v", pcs)
	}
	back, err := crossFromPartial(spec, pcs)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range back {
		var orig engine.CrossCell
		for _, c := range cells {
			if c.Cohort == b.Cohort {
				orig = c
			}
		}
		if b.N != orig.N || b.Overflow != orig.Overflow || (!b.Overflow && (b.SumXC.Cmp(orig.SumXC) != 0 || b.SumYC.Cmp(orig.SumYC) != 0 || b.SumCC.Cmp(orig.SumCC) != 0)) || b.MaxAbs[3].Cmp(orig.MaxAbs[3]) != 0 {
			t.Errorf("round trip of %s: got %+v, want %+v", b.Cohort, b, orig)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(p *partialCross)
		want string
	}{
		{"unlisted pair", func(p *partialCross) { p.MetricA, p.MetricB = p.MetricB, "nonexistent" }, "does not list"},
		{"sums on an overflowed cell", func(p *partialCross) { p.Overflow = true }, "overflow true with 3 sums"},
		{"no sums on a proven cell", func(p *partialCross) { p.Sums = nil }, "overflow false with 0 sums"},
		{"no units", func(p *partialCross) { p.N = 0 }, "0 units"},
		{"not an integer", func(p *partialCross) { p.Sums[1] = "1e3" }, "not an integer"},
		{"negative maximum", func(p *partialCross) { p.MaxAbs[2] = "-1" }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := crossToPartial(cells[:1])
			bad[0].Sums = append([]string(nil), bad[0].Sums...)
			tc.edit(&bad[0])
			if _, err := crossFromPartial(spec, bad); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

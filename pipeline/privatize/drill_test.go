package privatize

import (
	"math/big"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/privacy"
)

func drillTestSpec(t *testing.T, extra string) *expspec.Spec {
	t.Helper()
	s, err := expspec.ParseSpec("/tmp/spec.yaml", []byte(`version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4, drilldown: v1}
cohorts: {dimension: persona, taxonomy: [a]`+extra+`}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal}
  - {name: spend, kind: mean, event: buy, aggregate: sum, clamp: {lower: 0, upper: 100}}
drilldowns:
  dimensions: [sdk, country]
  values: {sdk: [ios, android], country: [DE]}
  budget_share: 0.25
privacy: {enabled: true, epsilon: 2, delta: 1.0e-6, run_share: 0.5, key_env: K}
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAllocateDrill: each dimension gets budget_share / dimensions of the
// run, the cells 1 − gate_share − budget_share, and the run's cost stays
// within its budget.
func TestAllocateDrill(t *testing.T) {
	spec := drillTestSpec(t, "")
	a, err := Allocate(spec)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]*big.Rat{}
	for _, sh := range a.Shares {
		g := "cells"
		switch {
		case strings.HasPrefix(sh.Metric, "(drill sdk)"):
			g = "sdk"
		case strings.HasPrefix(sh.Metric, "(drill country)"):
			g = "country"
		case sh.Metric == gateMetric:
			g = "gates"
		}
		if allowed[g] == nil {
			allowed[g] = new(big.Rat)
		}
		allowed[g].Add(allowed[g], sh.Allowed)
	}
	frac := func(f float64) *big.Rat {
		r := new(big.Rat).SetFloat64(f)
		return r.Mul(r, a.PerRun)
	}
	drill := new(big.Rat).Quo(frac(0.25), big.NewRat(2, 1))
	cells := new(big.Rat).Sub(new(big.Rat).Sub(new(big.Rat).Set(a.PerRun), frac(0.1)), frac(0.25))
	for g, want := range map[string]*big.Rat{"sdk": drill, "country": drill, "gates": frac(0.1), "cells": cells} {
		if allowed[g] == nil || allowed[g].Cmp(want) != 0 {
			t.Errorf("%s: allowed %v, want %v", g, allowed[g], want)
		}
	}
	if a.Spent.Cmp(a.PerRun) > 0 {
		t.Errorf("spent %v > per run %v", a.Spent, a.PerRun)
	}
	// A spec without drill-downs keeps its allocation.
	plain := *spec
	plain.Drilldowns = nil
	b, err := Allocate(&plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range b.Shares {
		if strings.HasPrefix(sh.Metric, "(drill ") {
			t.Errorf("a spec without drill-downs allocates %s", sh.Metric)
		}
	}
}

func drillCell(value string, null bool, variant, metric string, n int64, sum int64) engine.DrillCell {
	c := engine.DrillCell{Null: null, Value: value, Cell: engine.NewCell("", variant, metric)}
	c.N = n
	c.Sum.SetInt64(sum)
	return c
}

// TestPrivatizeDrill: undeclared values and NULL go to other; a unit moving
// between slices (the persona cells unchanged) changes the data digest, so
// its noise is fresh; identical exact values repeat every number; with
// min_units, a declared slice whose noisy count is small joins other and
// nothing of an analysed slice's stage two is drawn for it.
func TestPrivatizeDrill(t *testing.T) {
	key := privacy.Key([]byte("0123456789abcdef0123456789abcdef"))
	spec := drillTestSpec(t, "")
	dims := func(iosN int64) []engine.DrillDimension {
		var sdk, country []engine.DrillCell
		for _, m := range []string{"converted", "spend"} {
			sdk = append(sdk, drillCell("ios", false, "control", m, iosN, 3), drillCell("android", false, "control", m, 7, 1),
				drillCell("web", false, "control", m, 2, 0), drillCell("", true, "control", m, 10-iosN, 0))
			country = append(country, drillCell("FR", false, "control", m, 19, 4))
		}
		return []engine.DrillDimension{{Column: "sdk", Units: 19, WithinCap: true, Cells: sdk}, {Column: "country", Units: 19, WithinCap: true, Cells: country}}
	}
	a, err := Privatize(spec, nil, dims(5), engine.Quality{}, key, "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	exact := map[string]string{}
	for _, n := range a.Numbers {
		exact[n.Cohort+"|"+n.Variant+"|"+n.Metric+"|"+n.Statistic] = n.Exact
	}
	for k, want := range map[string]string{
		"v0000|control|(drill sdk)(cell)|n":          "5",
		"v0001|control|(drill sdk)(cell)|n":          "7",
		"other|control|(drill sdk)(cell)|n":          "7", // web 2 + NULL 5
		"v0000|control|(drill sdk)converted|sum_x":   "3",
		"other|control|(drill sdk)spend|sum_x":       "0",
		"v0000|control|(drill country)(cell)|n":      "0", // DE: absent from the data
		"other|control|(drill country)(cell)|n":      "19",
		"other|treatment|(drill country)spend|sum_x": "0",
	} {
		if exact[k] != want {
			t.Errorf("%s: exact %q, want %s", k, exact[k], want)
		}
	}
	if len(a.Drill) != 2 || len(a.Drill[0].Slices) != 3 || len(a.Drill[1].Slices) != 2 {
		t.Fatalf("drill release: %+v", a.Drill)
	}
	again, _ := Privatize(spec, nil, dims(5), engine.Quality{}, key, "h", "2026-11-19")
	if again.Digest != a.Digest || again.DataDigest != a.DataDigest {
		t.Error("identical exact values: a different release")
	}
	moved, _ := Privatize(spec, nil, dims(6), engine.Quality{}, key, "h", "2026-11-19")
	if moved.DataDigest == a.DataDigest {
		t.Error("a unit moved from NULL to ios: same data digest, so the same noise on different values")
	}

	// Collapsing: a declared slice joins other exactly when its noisy
	// stage-one count is below min_units; stage two is drawn for the
	// analysed slices only.
	spec = drillTestSpec(t, ", min_units: 5")
	var cells []engine.Cell
	for _, l := range []string{"a", expspec.UnclassifiedLeaf} {
		for _, v := range []string{"control", "treatment"} {
			for _, m := range []string{"converted", "spend"} {
				c := engine.NewCell(l, v, m)
				c.N = 1000
				cells = append(cells, c)
			}
		}
	}
	c, err := Privatize(spec, cells, dims(5), engine.Quality{}, key, "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	noisy := map[string]int64{}
	for _, n := range c.Numbers {
		v, _ := new(big.Int).SetString(n.Noisy, 10)
		noisy[n.Cohort+"|"+n.Variant+"|"+n.Metric+"|"+n.Statistic] = v.Int64()
	}
	for _, d := range c.Drill {
		for _, sl := range d.Slices {
			if sl.Kind == DrillKindValue {
				if got := noisy[sl.ID+"|*|(drill "+d.Dimension+")(stage1)|n"]; got < 5 || sl.NoisyCount == nil || got != *sl.NoisyCount {
					t.Errorf("%s %s released alone with noisy count %d (recorded %v)", d.Dimension, sl.ID, got, sl.NoisyCount)
				}
			}
			_, drawn := noisy[sl.ID+"|control|(drill "+d.Dimension+")(cell)|n"]
			if drawn != sl.Analysed {
				t.Errorf("%s %s: analysed %v, stage two drawn %v", d.Dimension, sl.ID, sl.Analysed, drawn)
			}
		}
		for i := range spec.DrillValues(d.Dimension) {
			id := drillValueID(i)
			n := noisy[id+"|*|(drill "+d.Dimension+")(stage1)|n"]
			alone := false
			for _, sl := range d.Slices {
				alone = alone || sl.ID == id
			}
			if alone != (n >= 5) {
				t.Errorf("%s %s: noisy count %d, released alone %v", d.Dimension, id, n, alone)
			}
		}
	}
}

package analysis

import (
	"math/big"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

const drillTestSpec = `version: 1
experiment: exp
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3, histograms: v1, drilldown: v1}
cohorts: {dimension: persona, taxonomy: [a]MIN}
metrics:
  - {name: converted, kind: proportion, event: buy, role: goal}
  - {name: p90, kind: quantile, level: 0.9, event: buy, aggregate: sum, clamp: {lower: 0, upper: 10}, role: secondary}
drilldowns: {dimensions: [country]}
privacy: {enabled: false}
`

// drillDim builds a dimension whose slices have the given units per arm
// (half converted), NULL as the slice "".
func drillDim(units map[string]int64) engine.DrillDimension {
	d := engine.DrillDimension{Column: "country", WithinCap: true, Values: int64(len(units))}
	for v, n := range units {
		for _, arm := range []string{"control", "treatment"} {
			c := engine.DrillCell{Null: v == "", Value: v, Cell: engine.NewCell("", arm, "converted")}
			c.N = n
			c.Sum = big.NewInt(n / 2 * 1_000_000)
			c.SumSq = big.NewInt(n / 2 * 1_000_000_000_000)
			d.Cells = append(d.Cells, c)
			d.Units += n
		}
	}
	return d
}

// TestDrilldownCollapse: small slices go to "other" as persona leaves go
// to "*": alone when large enough, the remainder absorbing the smallest
// released slice when it is too small, the whole dimension refused when
// even everything is; the quantile metric gets its not-analysed rows.
func TestDrilldownCollapse(t *testing.T) {
	for _, c := range []struct {
		name  string
		min   string
		units map[string]int64
		want  []string // slice_kind:slice[collapsed_from] units, of the converted rows
	}{
		{"no minimum", "", map[string]int64{"de": 40, "fr": 5, "": 3},
			[]string{"value:de 80", "value:fr 10", "null: 6"}},
		{"remainder large enough", ", min_units: 20", map[string]int64{"de": 40, "fr": 6, "it": 5, "": 4},
			[]string{"value:de 80", `other:["fr";"it";(null)] 30`}},
		{"remainder absorbs the smallest", ", min_units: 60", map[string]int64{"de": 40, "us": 35, "fr": 5, "": 4},
			[]string{"value:de 80", `other:["fr";"us";(null)] 88`}},
		{"everything too small", ", min_units: 500", map[string]int64{"de": 40, "fr": 5}, []string{"below_min_units"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := expspec.ParseSpec("d.yaml", []byte(strings.Replace(drillTestSpec, "MIN", c.min, 1)))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := Drilldowns(spec, []engine.DrillDimension{drillDim(c.units)}, "2026-11-19")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				switch {
				case r.Status == DrillBelowMinimum:
					got = append(got, r.Status)
				case r.Metric == "p90":
					if r.Status != DrillMetricSkipped || r.Result != nil {
						t.Errorf("quantile row: %+v", r)
					}
				default:
					s := r.SliceKind + ":" + r.Slice
					if r.CollapsedFrom != "" {
						s += "[" + r.CollapsedFrom + "]"
					}
					got = append(got, s+" "+itoa(r.Units))
					if r.Result == nil || r.Result.NControl+r.Result.NVariant != r.Units {
						t.Errorf("%s: result %+v does not hold the slice's units", s, r.Result)
					}
				}
			}
			if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
				t.Errorf("slices %q, want %q", got, c.want)
			}
		})
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

package golden

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/verity-analytics/verity/pipeline/expspec"
)

// The percentile-capped fixture against SciPy (issue 20 item 2): the
// plain-Go reference's per-unit values (testdata/capped_units.json, pinned
// like quantile_units.json) feed testdata/capped_reference.py, which caps
// them at NumPy's pooled quantile and compares the arms with SciPy's Welch
// test (testdata/capped_reference.json). Rerun it after an -update:
//
//	/usr/bin/python3 golden/testdata/capped_reference.py

const cappedSpec = "../fixtures/specs/checkout-button-capped.yaml"

type cappedRef struct {
	Caps []struct {
		Metric string
		Cap    float64
		Units  uint64
		Capped uint64
	}
	Rows []struct {
		Cohort, Metric, Variant string
		Values                  map[string]float64 // results.csv column → value
	}
}

func TestCapsMatchSciPy(t *testing.T) {
	spec, err := expspec.LoadSpec(cappedSpec)
	if err != nil {
		t.Fatal(err)
	}
	got := runCase(t, cappedSpec, 2)
	referenceUnits(t, spec, "capped_units.json")
	var ref cappedRef
	readJSON(t, filepath.Join("testdata", "capped_reference.json"), &ref)
	var dec struct {
		Caps []struct {
			Metric string   `json:"metric"`
			Cap    *float64 `json:"cap"`
			Units  uint64   `json:"units"`
			Capped uint64   `json:"units_capped"`
		} `json:"caps"`
	}
	readJSONBytes(t, got["decisions.json"], &dec)
	if len(dec.Caps) != len(ref.Caps) || len(ref.Caps) == 0 {
		t.Fatalf("decisions.json has %d caps, the reference %d", len(dec.Caps), len(ref.Caps))
	}
	for i, c := range dec.Caps {
		w := ref.Caps[i]
		if c.Metric != w.Metric || c.Cap == nil || *c.Cap != w.Cap || c.Units != w.Units || c.Capped != w.Capped {
			t.Errorf("cap %d: %+v (cap %v), reference %+v", i, c, c.Cap, w)
		}
	}
	rows := csvRows(t, got["results.csv"])
	byKey := map[string]map[string]string{}
	for _, r := range rows {
		byKey[r["cohort"]+"/"+r["metric"]+"/"+r["variant"]] = r
	}
	checked := 0
	for _, w := range ref.Rows {
		where := w.Cohort + "/" + w.Metric + "/" + w.Variant
		r, ok := byKey[where]
		if !ok {
			t.Errorf("%s: no results.csv row", where)
			continue
		}
		if r["status"] != "ok" {
			t.Errorf("%s: status %s", where, r["status"])
			continue
		}
		for col, want := range w.Values {
			g, err := strconv.ParseFloat(r[col], 64)
			if err != nil {
				t.Errorf("%s: %s = %q", where, col, r[col])
				continue
			}
			scale := 0.0
			switch col {
			case "abs_effect", "abs_ci_low", "abs_ci_high":
				scale = math.Abs(w.Values["abs_ci_high"] - w.Values["abs_ci_low"])
			case "rel_effect":
				scale = math.Abs(w.Values["abs_ci_high"]-w.Values["abs_ci_low"]) / math.Abs(w.Values["mean_control"])
			}
			if !close(g, want, scale, relTol) {
				t.Errorf("%s: %s = %v, reference %v", where, col, g, want)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Errorf("only %d numbers checked", checked)
	}
}

func readJSONBytes(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

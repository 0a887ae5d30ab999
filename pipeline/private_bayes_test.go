package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

// TestPrivateBayesian: the Bayesian engine on a private spec is
// post-processing of the charged noisy release, and its posterior
// includes the privacy noise: under a flat prior the posterior sd of the
// absolute effect is the comparison's standard error, whose arm variances
// hold the noise variance, so it is wider than the sampling part alone
// (sd²/n from the published noisy sds) and the published credible
// interval is mean ± z·sd.
func TestPrivateBayesian(t *testing.T) {
	spec, err := expspec.LoadSpec(privateFixture)
	if err != nil {
		t.Fatal(err)
	}
	spec.Statistics.Engine = expspec.EngineBayesian
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	key := sha256.Sum256([]byte("bayes key"))
	spec.Privacy.KeyFile, spec.Privacy.KeyEnv = "", "VERITY_TEST_NOISE_KEY"
	t.Setenv("VERITY_TEST_NOISE_KEY", "hex:"+fmt.Sprintf("%x", key))
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: t.TempDir(), Engine: engine.Engine{Threads: 2}, Host: fixtureHost(t, 40)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(res.Dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	num := func(r []string, c string) float64 {
		v, err := strconv.ParseFloat(r[col[c]], 64)
		if err != nil {
			t.Fatalf("%s = %q: %v", c, r[col[c]], err)
		}
		return v
	}
	checked := 0
	for _, r := range recs[1:] {
		if r[col["cohort"]] != expspec.AllCohort || r[col["engine"]] != "bayesian" || r[col["private"]] != "true" {
			continue
		}
		sampling := math.Sqrt(math.Pow(num(r, "sd_control"), 2)/num(r, "n_control") + math.Pow(num(r, "sd_variant"), 2)/num(r, "n_variant"))
		sd, mean := num(r, "post_abs_sd"), num(r, "post_abs_mean")
		if !(sd > sampling*(1+1e-9)) {
			t.Errorf("%s: posterior sd %v not above the sampling se %v: the privacy noise is missing", r[col["metric"]], sd, sampling)
		}
		if math.Abs(mean-num(r, "abs_effect")) > 1e-12*math.Max(1, math.Abs(mean)) {
			t.Errorf("%s: flat-prior posterior mean %v, effect %v", r[col["metric"]], mean, num(r, "abs_effect"))
		}
		z := 1.959963984540054
		if math.Abs(num(r, "cred_abs_high")-(mean+z*sd)) > 1e-9*sd || math.Abs(num(r, "cred_abs_low")-(mean-z*sd)) > 1e-9*sd {
			t.Errorf("%s: credible interval not mean ± z·sd", r[col["metric"]])
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no private Bayesian row checked")
	}
}

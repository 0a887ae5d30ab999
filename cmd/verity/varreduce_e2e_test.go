package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVarianceReductionCLI runs the real binary on the variance-reduction
// fixture: adjusted.csv is written and listed in the manifest; a typo in a
// covariate and a private spec listing a method are exit 78 naming the key,
// before any output.
func TestVarianceReductionCLI(t *testing.T) {
	dir := fixtureCopy(t)
	m := runFixture(t, dir, "onboarding-flow-vr.yaml")
	b, err := os.ReadFile(filepath.Join(filepath.Dir(m), "adjusted.csv"))
	if err != nil || !strings.Contains(string(b), "regression[pre_period+persona]") {
		t.Fatalf("adjusted.csv: %v\n%s", err, b)
	}
	mb, _ := os.ReadFile(m)
	if !strings.Contains(string(mb), `"adjusted.csv"`) {
		t.Error("manifest does not list adjusted.csv")
	}

	spec, err := os.ReadFile(filepath.Join(dir, "specs", "onboarding-flow-vr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, key string }{
		{"typo", "covariates: [pre_period, persona]}\n      - {method: regression, covariates: [persona]}", "covariates: [pre_period, persona]}\n      - {method: regression, covariates: [personna]}", "metrics[0].variance_reduction[3].covariates[0]"},
		{"private", "privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1.0e-6, key_file: ../keys/TEST-ONLY-noise.key}", "variance_reduction[0].method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := strings.Replace(string(spec), tc.from, tc.to, 1)
			if s == string(spec) {
				t.Fatal("edit did not apply")
			}
			p := filepath.Join(dir, "specs", "vr-"+tc.name+".yaml")
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			r := verity(t, dir, "run", "--log", "none", "--out", "bad-"+tc.name, p)
			if r.code != 78 || !strings.Contains(r.stderr, tc.key) {
				t.Fatalf("exit %d, want 78 naming %s\n%s", r.code, tc.key, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "bad-"+tc.name)); err == nil {
				if e, _ := os.ReadDir(filepath.Join(dir, "bad-"+tc.name)); len(e) > 0 {
					t.Errorf("refused spec left output: %v", e)
				}
			}
		})
	}
}

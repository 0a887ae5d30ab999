package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrilldownCLI runs the real binary on the drill-down fixture:
// drilldown.csv is written and listed in the manifest, and the run replays
// byte for byte; a misspelt dimension, a private spec and a sharded run are
// exit 78 naming the spec and the key, and commit nothing.
func TestDrilldownCLI(t *testing.T) {
	dir := fixtureCopy(t)
	m := runFixture(t, dir, "checkout-drill.yaml")
	b, err := os.ReadFile(filepath.Join(filepath.Dir(m), "drilldown.csv"))
	if err != nil || !strings.Contains(string(b), "sdk_version,3,value,android-4.1.3") {
		t.Fatalf("drilldown.csv: %v\n%s", err, b)
	}
	mb, _ := os.ReadFile(m)
	if !strings.Contains(string(mb), `"drilldown.csv"`) || !strings.Contains(string(mb), `"drilldown"`) {
		t.Error("manifest does not list drilldown.csv or pin the drilldown template")
	}
	if r := verity(t, dir, "replay", "--log", "none", m); r.code != 0 || !strings.Contains(r.stdout, "identical") {
		t.Errorf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	spec, err := os.ReadFile(filepath.Join(dir, "specs", "checkout-drill.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const unitKeyed = "templates: {traces: v8, assignment: v5, events: v7, unit_metrics: v5, sufstats: v3, quality: v4, drilldown: v1}"
	for _, tc := range []struct {
		name  string
		edits []string // from, to, ...
		key   string
		extra []string
	}{
		{"typo", []string{"dimensions: [sdk_version, rule_id, persona]", "dimensions: [sdk_version, rule_ids, persona]"}, "drilldowns.dimensions[1]", nil},
		{"private", []string{"privacy: {enabled: false}", "privacy: {enabled: true, epsilon: 1, delta: 1.0e-6, run_share: 0.25, key_file: ../keys/TEST-ONLY-noise.key}",
			"templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3, drilldown: v1}", unitKeyed}, "drilldowns", nil},
		{"sharded", []string{"templates: {traces: v5, assignment: v4, events: v4, unit_metrics: v5, sufstats: v3, quality: v3, drilldown: v1}", unitKeyed}, "drilldowns", []string{"--shard", "0/2", "--partials", "parts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := string(spec)
			for i := 0; i < len(tc.edits); i += 2 {
				e := strings.Replace(s, tc.edits[i], tc.edits[i+1], 1)
				if e == s {
					t.Fatalf("edit %q did not apply", tc.edits[i])
				}
				s = e
			}
			p := filepath.Join(dir, "specs", "drill-"+tc.name+".yaml")
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "--log", "none", "--out", "bad-" + tc.name}, tc.extra...)
			r := verity(t, dir, append(args, p)...)
			if r.code != 78 || !strings.Contains(r.stderr, tc.key) || !strings.Contains(r.stderr, "drill-"+tc.name+".yaml") {
				t.Fatalf("exit %d, want 78 naming the spec and %s\n%s", r.code, tc.key, r.stderr)
			}
			// A column is checked against the files after the output
			// folder is locked: the experiment's folder may exist, but no
			// night is committed.
			_ = filepath.WalkDir(filepath.Join(dir, "bad-"+tc.name), func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
					t.Errorf("refused spec left output: %s", path)
				}
				return nil
			})
		})
	}
}

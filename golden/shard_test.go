package golden

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// shardSpecs are the specs the sharded runs are held to: two private
// releases (one with collapsing), an exact spec with a ratio, CUPED and
// a metric whose event is missing, an exact spec with quantile metrics
// (whose shards' histograms the merge adds), one with event-level quantile
// metrics (whose shards' event bins it adds), one with percentile caps
// (computed from the merged histograms) and one whose regressions adjust
// for other metrics' pre-period values (whose shards' cross-moments the
// merge adds), all on the unit-keyed templates.
var shardSpecs = []string{
	"../fixtures/specs/checkout-button-private.yaml",
	"../fixtures/specs/checkout-button-collapsed.yaml",
	"testdata/shard-exact.yaml",
	"../fixtures/specs/checkout-button-quantiles.yaml",
	"../fixtures/specs/checkout-button-evquantiles.yaml",
	"../fixtures/specs/checkout-button-capped.yaml",
	"../fixtures/specs/onboarding-flow-vr2.yaml",
}

func loadShardSpecs(t *testing.T) []*expspec.Spec {
	t.Helper()
	var specs []*expspec.Spec
	for _, p := range shardSpecs {
		s, err := expspec.LoadSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	return specs
}

func shardOpts(out string, host ledgers.Host) pipeline.Options {
	return pipeline.Options{OutDir: out, Engine: engine.Engine{Threads: 2, MemoryLimit: "1GB"}, Build: publish.CurrentBuild(), Host: host}
}

// okOrGate fails the test on any error but a blocking gate (whose outputs
// are committed and compared like any other).
func okOrGate(t *testing.T, what string, results []pipeline.Result) {
	t.Helper()
	for _, r := range results {
		var gate *analysis.GateError
		if r.Err != nil && !errors.As(r.Err, &gate) {
			t.Fatalf("%s %s: %v", what, r.Label(), r.Err)
		}
	}
}

// releaseBytes reads every output of a committed run folder, with the
// manifest reduced to its stable part.
func releaseBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "manifest.json" {
			var m publish.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if b, err = json.Marshal(m.Stable()); err != nil {
				t.Fatal(err)
			}
		}
		got[e.Name()] = b
	}
	return got
}

func runShards(t *testing.T, specs []*expspec.Spec, partials string, host ledgers.Host, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		okOrGate(t, fmt.Sprintf("shard %d/%d", i, k), pipeline.RunShard(context.Background(), specs, shardOpts(partials, host), pipeline.Shard{Index: i, Count: k}))
	}
}

// TestShardMergeIdentical: for K = 1, 2, 3 and 7, running every shard and
// merging gives byte for byte the outputs of a single-node run (private
// releases included: the noise is drawn once, on the merged exact values,
// and charged once).
func TestShardMergeIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 13 shard passes")
	}
	specs := loadShardSpecs(t)
	single := t.TempDir()
	results := pipeline.RunAll(context.Background(), specs, shardOpts(single, fixtureHost(t)))
	okOrGate(t, "single run", results)
	want := map[string]map[string][]byte{}
	for _, r := range results {
		want[r.Name] = releaseBytes(t, r.Outcome.Dir)
	}
	for _, k := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			host := fixtureHost(t)
			partials := t.TempDir()
			runShards(t, specs, partials, host, k)
			ledger, err := ledgers.ReadLedger(filepath.Join(host.StateDir, "ledgers", "fixtures.json"))
			if err != nil || len(ledger.Entries) != 0 {
				t.Fatalf("shards charged the ledger (%v): %d entries", err, len(ledger.Entries))
			}
			out := t.TempDir()
			merged := pipeline.Merge(context.Background(), specs, shardOpts(out, host), partials, k)
			okOrGate(t, "merge", merged)
			for _, r := range merged {
				got := releaseBytes(t, r.Outcome.Dir)
				if len(got) != len(want[r.Name]) {
					t.Fatalf("%s: %d files, single run %d", r.Name, len(got), len(want[r.Name]))
				}
				for name, b := range want[r.Name] {
					if !bytes.Equal(got[name], b) {
						t.Errorf("%s/%s differs from the single-node run (K=%d)", r.Name, name, k)
					}
				}
			}
			if ledger, err = ledgers.ReadLedger(filepath.Join(host.StateDir, "ledgers", "fixtures.json")); err != nil || len(ledger.Entries) != 2 {
				t.Fatalf("want one charge per private spec after the merge, got %d (%v)", len(ledger.Entries), err)
			}
		})
	}
}

// TestShardFixtureHasCrossFileUnits checks that the fixture exercises what
// the byte-identity test claims: units whose rows are in several files and
// duplicate event ids across files.
func TestShardFixtureHasCrossFileUnits(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, role := range []string{"traces", "events"} {
		glob := "../fixtures/data/basic/" + role + "/*/*.parquet"
		var units, dups int64
		q := `SELECT (SELECT count(*) FROM (SELECT unit_id FROM read_parquet($1, filename = true) GROUP BY unit_id HAVING count(DISTINCT filename) > 1)),
			(SELECT count(*) FROM (SELECT event_id FROM read_parquet($1, filename = true) GROUP BY unit_id, event_id HAVING count(DISTINCT filename) > 1))`
		if err := db.QueryRow(q, glob).Scan(&units, &dups); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d units in several files, %d duplicate event ids across files", role, units, dups)
		if units == 0 || dups == 0 {
			t.Errorf("%s: want units in several files and duplicates across files, got %d and %d", role, units, dups)
		}
	}
}

// TestShardRefusals: a missing, duplicated, stale, altered or forged
// partial is refused naming the shard, and nothing is released or charged.
func TestShardRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shard passes")
	}
	specs := loadShardSpecs(t)
	host := fixtureHost(t)
	partials := t.TempDir()
	runShards(t, specs, partials, host, 3)
	path := func(root string, s *expspec.Spec, i int) string {
		return pipeline.PartialPath(root, s, "2026-11-19", pipeline.Shard{Index: i, Count: 3})
	}
	edit := func(file string, f func(p map[string]any)) {
		var p map[string]any
		b, _ := os.ReadFile(file)
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		f(p)
		b, _ = json.Marshal(p)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A partial of shard 1 written by another build.
	staleBuild := t.TempDir()
	other := shardOpts(staleBuild, host)
	other.Build.Revision = "another-revision"
	okOrGate(t, "stale shard", pipeline.RunShard(context.Background(), specs, other, pipeline.Shard{Index: 1, Count: 3}))
	cases := []struct {
		name, want string
		shard      int
		exit       int
		damage     func(root string, s *expspec.Spec)
	}{
		{"missing", "no such file", 1, pipeline.ExitNoInput, func(root string, s *expspec.Spec) { os.Remove(path(root, s, 1)) }},
		{"duplicate", "holds shard 0/3", 2, pipeline.ExitConfig, func(root string, s *expspec.Spec) {
			b, _ := os.ReadFile(path(root, s, 0))
			os.WriteFile(path(root, s, 2), b, 0o600)
		}},
		{"stale build", "another build", 1, pipeline.ExitConfig, func(root string, s *expspec.Spec) {
			b, _ := os.ReadFile(path(staleBuild, s, 1))
			os.WriteFile(path(root, s, 1), b, 0o600)
		}},
		{"altered", "does not", 2, pipeline.ExitConfig, func(root string, s *expspec.Spec) {
			edit(path(root, s, 2), func(p map[string]any) { p["cells"].([]any)[0].(map[string]any)["n"] = 1 })
		}},
		{"forged", "does not", 0, pipeline.ExitConfig, func(root string, s *expspec.Spec) {
			// Content changed under a made-up authentication code.
			file := path(root, s, 0)
			edit(file, func(p map[string]any) {
				p["cells"].([]any)[0].(map[string]any)["n"] = 1
				p["mac"] = "hmac-sha256:" + strings.Repeat("00", 32)
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.CopyFS(root, os.DirFS(partials)); err != nil {
				t.Fatal(err)
			}
			for _, s := range specs {
				c.damage(root, s)
			}
			out := t.TempDir()
			for _, r := range pipeline.Merge(context.Background(), specs, shardOpts(out, host), root, 3) {
				var se *pipeline.ShardError
				if !errors.As(r.Err, &se) || se.Shard.Index != c.shard || !strings.Contains(r.Err.Error(), c.want) || !strings.Contains(r.Err.Error(), fmt.Sprintf("shard %d/3", c.shard)) {
					t.Errorf("%s: want shard %d/3 refused (%q), got %v", r.Label(), c.shard, c.want, r.Err)
				}
				if code := pipeline.ExitCode(r.Err); code != c.exit {
					t.Errorf("%s: exit %d, want %d", r.Label(), code, c.exit)
				}
				if _, err := os.Stat(filepath.Join(out, r.Name, "2026-11-19")); err == nil {
					t.Errorf("%s: released despite a refused shard", r.Label())
				}
			}
			ledger, err := ledgers.ReadLedger(filepath.Join(host.StateDir, "ledgers", "fixtures.json"))
			if err != nil || len(ledger.Entries) != 0 {
				t.Fatalf("a refused merge charged the ledger (%v)", err)
			}
		})
	}
}

// writeBucketed writes the basic fixture as Hive folders unit_bucket=b/
// (salt checkout-2026, 16 buckets, as computed by DuckDB's md5) with the
// exact spec beside them, and returns the spec's path.
func writeBucketed(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, role := range []string{"traces", "events"} {
		src, _ := filepath.Abs("../fixtures/data/basic/" + role + "/*/*.parquet")
		q := "COPY (SELECT *, " + engine.ShardPredicateBucket("unit_id") + " AS unit_bucket FROM read_parquet($1)) TO $4 (FORMAT parquet, PARTITION_BY (unit_bucket))"
		if _, err := db.Exec(q, src, "checkout-2026", 16, filepath.Join(dir, role)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("testdata/shard-exact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(strings.Replace(string(b), `"../../fixtures/data/basic/traces/"`, `"traces/"`, 1), `"../../fixtures/data/basic/events/"`, `"events/"`, 1)
	spec = strings.Replace(spec, "buckets: 64", "buckets: 16", 1)
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestShardBucketedInputs: inputs already partitioned into unit_bucket=b/
// folders are read in place by the shard that owns bucket b (b mod K), and
// the merge still equals a single-node run; a row in the wrong bucket's
// folder is a data error naming the file.
func TestShardBucketedInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shard passes")
	}
	dir := t.TempDir()
	spec, err := expspec.LoadSpec(writeBucketed(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	specs := []*expspec.Spec{spec}
	host := fixtureHost(t)
	single := pipeline.RunAll(context.Background(), specs, shardOpts(t.TempDir(), host))
	okOrGate(t, "single run", single)
	want := releaseBytes(t, single[0].Outcome.Dir)
	const k = 3
	partials := t.TempDir()
	runShards(t, specs, partials, host, k)
	merged := pipeline.Merge(context.Background(), specs, shardOpts(t.TempDir(), host), partials, k)
	okOrGate(t, "merge", merged)
	got := releaseBytes(t, merged[0].Outcome.Dir)
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s differs from the single-node run over the bucketed inputs", name)
		}
	}
	// A second experiment on the same inputs (same templates, decimals and
	// events: one input group) whose spec declares another salt shares the
	// group's SQL pass in a single run, but not the shard's units: its own scheme
	// checks the folders, and these were not bucketed with its salt.
	other := filepath.Join(dir, "onboarding.yaml")
	if err := os.WriteFile(other, []byte(`version: 1
experiment: onboarding-flow
inputs:
  traces: ["traces/"]
  events: ["events/"]
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.34, control: true}
  - {name: short, allocation: 0.33}
  - {name: guided, allocation: 0.33}
persona_algo_version: pa-2
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}
cohorts:
  dimension: persona
  taxonomy: [power/mobile, power/desktop, casual/mobile, casual/desktop]
metrics:
  - {name: converted, kind: proportion, event: purchase, role: goal}
  - {name: page_views, kind: mean, event: page_view, aggregate: count, clamp: {lower: 0, upper: 80}}
  - {name: refunds, kind: mean, event: refund, aggregate: count, clamp: {lower: 0, upper: 5}}
privacy: {enabled: false}
statistics: {fixed_point_decimals: 6}
sharding: {salt: "another-salt", buckets: 16}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	otherSpec, err := expspec.LoadSpec(other)
	if err != nil {
		t.Fatal(err)
	}
	both := pipeline.RunShard(context.Background(), []*expspec.Spec{spec, otherSpec}, shardOpts(t.TempDir(), host), pipeline.Shard{Index: 1, Count: k})
	if both[0].Err != nil {
		t.Errorf("%s beside a spec with another salt: %v", spec.Experiment, both[0].Err)
	}
	if e := both[1].Err; e == nil || pipeline.ExitCode(e) != pipeline.ExitData || !strings.Contains(e.Error(), "not in bucket") {
		t.Errorf("a spec whose salt did not bucket the folders: want a bucket data error, got %v", e)
	}

	// Move bucket 5's events into bucket 4's folder (shard 1 of 3 owns 4).
	from, _ := filepath.Glob(filepath.Join(dir, "events", "unit_bucket=5", "*.parquet"))
	if len(from) == 0 {
		t.Fatal("no bucket 5")
	}
	if err := os.Rename(from[0], filepath.Join(dir, "events", "unit_bucket=4", "moved.parquet")); err != nil {
		t.Fatal(err)
	}
	spec, _ = expspec.LoadSpec(spec.Path())
	r := pipeline.RunShard(context.Background(), []*expspec.Spec{spec}, shardOpts(t.TempDir(), host), pipeline.Shard{Index: 1, Count: k})[0]
	if r.Err == nil || pipeline.ExitCode(r.Err) != pipeline.ExitData || !strings.Contains(r.Err.Error(), "moved.parquet") || !strings.Contains(r.Err.Error(), "not in bucket 4") || !strings.Contains(r.Err.Error(), "(e.g. unit ") {
		t.Fatalf("want a data error naming moved.parquet and bucket 4, got %v", r.Err)
	}
}

// TestShardPartialUnderAnotherKey: a private partial that authenticates
// under another noise key — an adversary's well-formed forgery, or a shard
// that ran with the wrong key file — is refused by the merge naming the
// shard, and nothing is released or charged.
func TestShardPartialUnderAnotherKey(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shard passes")
	}
	dir := t.TempDir()
	data, _ := filepath.Abs("../fixtures/data/basic")
	b, err := os.ReadFile("../fixtures/specs/checkout-button-private.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.NewReplacer(`"../data/basic/`, `"`+data+`/`, "key_file: ../keys/TEST-ONLY-noise.key", "key_file: noise.key").Replace(string(b))
	if src == string(b) || !strings.Contains(src, "key_file: noise.key") || strings.Contains(src, "../data") {
		t.Fatal("the private fixture spec changed shape; update this test's rewrite")
	}
	specPath, keyPath := filepath.Join(dir, "private.yaml"), filepath.Join(dir, "noise.key")
	os.WriteFile(specPath, []byte(src), 0o644)
	testKey, _ := os.ReadFile("../fixtures/keys/TEST-ONLY-noise.key")
	otherKey := []byte("hex:0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0\n")
	setKey := func(k []byte) {
		if err := os.WriteFile(keyPath, k, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := expspec.LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	specs := []*expspec.Spec{spec}
	host := fixtureHost(t)
	partials, forged := t.TempDir(), t.TempDir()
	setKey(testKey)
	runShards(t, specs, partials, host, 3)
	setKey(otherKey)
	okOrGate(t, "shard 0 under another key", pipeline.RunShard(context.Background(), specs, shardOpts(forged, host), pipeline.Shard{Index: 0, Count: 3}))
	part := func(root string) string {
		return pipeline.PartialPath(root, spec, "2026-11-19", pipeline.Shard{Index: 0, Count: 3})
	}
	mine, _ := os.ReadFile(part(partials))
	theirs, err := os.ReadFile(part(forged))
	if err != nil || bytes.Equal(mine, theirs) {
		t.Fatalf("the other key's partial is missing or equal to the real one (%v)", err)
	}
	if err := os.WriteFile(part(partials), theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	setKey(testKey)
	out := t.TempDir()
	for _, r := range pipeline.Merge(context.Background(), specs, shardOpts(out, host), partials, 3) {
		var se *pipeline.ShardError
		if !errors.As(r.Err, &se) || se.Shard.Index != 0 || !strings.Contains(r.Err.Error(), "shard 0/3") {
			t.Fatalf("%s: want shard 0/3 refused, got %v", r.Label(), r.Err)
		}
		t.Logf("refused: %v", r.Err)
		if code := pipeline.ExitCode(r.Err); code != pipeline.ExitConfig {
			t.Errorf("%s: exit %d, want %d", r.Label(), code, pipeline.ExitConfig)
		}
		if _, err := os.Stat(filepath.Join(out, r.Name, "2026-11-19")); err == nil {
			t.Errorf("%s: released despite a partial under another key", r.Label())
		}
	}
	ledger, err := ledgers.ReadLedger(filepath.Join(host.StateDir, "ledgers", "fixtures.json"))
	if err != nil || len(ledger.Entries) != 0 {
		t.Fatalf("a refused merge charged the ledger (%v)", err)
	}
	// The real partial restored, the same merge releases: the refusal was the key's.
	os.WriteFile(part(partials), mine, 0o600)
	for _, r := range pipeline.Merge(context.Background(), specs, shardOpts(out, host), partials, 3) {
		if r.Err != nil {
			t.Errorf("%s: merge with the real partials: %v", r.Label(), r.Err)
		}
	}
}

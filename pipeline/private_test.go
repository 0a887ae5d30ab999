package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/privatize"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/pipeline/replay"
	"github.com/verity-analytics/verity/privacy"
)

const privateSpecYAML = `version: 1
experiment: sim
inputs: {traces: [t.parquet], events: [e.parquet]}
window: {start: 2026-11-16, end: 2026-11-20}
variants:
  - {name: control, allocation: 0.5, control: true}
  - {name: treatment, allocation: 0.5}
templates: {traces: v6, assignment: v5, events: v5, unit_metrics: v5, sufstats: v3, quality: v4}
cohorts: {dimension: persona, taxonomy: [a]}
metrics:
  - {name: converted, kind: proportion, event: buy}
privacy: {enabled: true, epsilon: 0.5, delta: 1.0e-6, run_share: 1}
`

// TestNoiseAwareCoverage is the privacy acceptance simulation: at a small
// ε where noise dominates sampling error, the noise-aware 95% intervals
// cover the true effect 93–97% of the time, and intervals that ignore the
// noise do not.
func TestNoiseAwareCoverage(t *testing.T) {
	spec, err := expspec.ParseSpec("sim.yaml", []byte(privateSpecYAML))
	if err != nil {
		t.Fatal(err)
	}
	const sims, n = 1000, 300
	const pc, pt = 0.10, 0.12
	rng := rand.New(rand.NewPCG(7, 11))
	scale := spec.Scale()
	cover, coverNaive := 0, 0
	var noiseSD, samplingSE float64
	for s := 0; s < sims; s++ {
		var cells []engine.Cell
		for _, arm := range []struct {
			name string
			p    float64
		}{{"control", pc}, {"treatment", pt}} {
			k := int64(0)
			for i := 0; i < n; i++ {
				if rng.Float64() < arm.p {
					k++
				}
			}
			c := engine.NewCell("a", arm.name, "converted")
			c.N = n
			c.Sum.SetInt64(k * scale)
			c.SumSq.Mul(c.Sum, big.NewInt(scale))
			cells = append(cells, c, engine.NewCell(expspec.UnclassifiedLeaf, arm.name, "converted"))
		}
		key := sha256.Sum256([]byte(fmt.Sprintf("simulation key %d", s)))
		rel, err := privatize.Privatize(spec, cells, nil, engine.Quality{}, privacy.Key(key[:]), "spec", "2026-11-19")
		if err != nil {
			t.Fatal(err)
		}
		cohorts := []analysis.CohortRelease{{Label: expspec.AllCohort}}
		aware, _, err := analysis.Analyse(spec, rel.Cells, cohorts, rel.Noise, "2026-11-19")
		if err != nil {
			t.Fatal(err)
		}
		naive, _, err := analysis.Analyse(spec, rel.Cells, cohorts, nil, "2026-11-19")
		if err != nil {
			t.Fatal(err)
		}
		covers := func(r analysis.ResultRow) bool {
			return r.AbsCILow != nil && *r.AbsCILow <= pt-pc && pt-pc <= *r.AbsCIHigh
		}
		if covers(aware[0]) {
			cover++
		}
		if covers(naive[0]) {
			coverNaive++
		}
		noiseSD = *aware[0].NoiseSDSum / n
		samplingSE = math.Sqrt(pc * (1 - pc) / n)
	}
	rate, naiveRate := float64(cover)/sims, float64(coverNaive)/sims
	t.Logf("noise sd of a mean %.4f vs sampling se %.4f; coverage %.3f noise-aware, %.3f ignoring noise", noiseSD, samplingSE, rate, naiveRate)
	if noiseSD < samplingSE {
		t.Fatalf("noise (%.4f) does not dominate sampling error (%.4f): the test would prove nothing", noiseSD, samplingSE)
	}
	if rate < 0.93 || rate > 0.97 {
		t.Errorf("noise-aware 95%% intervals cover %.3f, want 0.93–0.97", rate)
	}
	if naiveRate > 0.90 {
		t.Errorf("intervals ignoring the noise cover %.3f: the noise should make them undercover", naiveRate)
	}
}

// fixtureHost returns a host whose state folder registers the committed
// fixtures' data as one source with the given total ε (δ 1e-6, scope
// source) and accepts the test-only key.
func fixtureHost(t *testing.T, epsilon float64) ledgers.Host {
	t.Helper()
	state := t.TempDir()
	if _, err := ledgers.LedgerInit(state, "fixtures", "../fixtures/data", privacy.ScopeSource, privacy.Budget{Epsilon: epsilon, Delta: 1e-6}, nil); err != nil {
		t.Fatal(err)
	}
	return ledgers.Host{StateDir: state, AllowTestKey: true}
}

// readSourceLedger reads the fixtures source's ledger of a host.
func readSourceLedger(t *testing.T, h ledgers.Host) privacy.Ledger {
	t.Helper()
	l, err := ledgers.ReadLedger(filepath.Join(h.StateDir, "ledgers", "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runPrivate runs the committed private fixture spec with the given key
// (hex) into out and returns the results bytes.
func runPrivate(t *testing.T, host ledgers.Host, specFile, out string, key []byte, date string, windowEnd ...string) ([]byte, error) {
	t.Helper()
	spec, err := expspec.LoadSpec(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(windowEnd) == 1 {
		spec.Window.End = windowEnd[0]
		if err := spec.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	spec.Privacy.KeyFile = ""
	spec.Privacy.KeyEnv = "VERITY_TEST_NOISE_KEY"
	t.Setenv("VERITY_TEST_NOISE_KEY", "hex:"+fmt.Sprintf("%x", key))
	res, err := pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Date: date, Engine: engine.Engine{Threads: 2}, Host: host})
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(res.Dir, "results.csv"))
}

const privateFixture = "../fixtures/specs/checkout-button-private.yaml"

func TestPrivateReproducibleAndKeyed(t *testing.T) {
	k1 := sha256.Sum256([]byte("key one"))
	k2 := sha256.Sum256([]byte("key two"))
	host := fixtureHost(t, 40)
	a, err := runPrivate(t, host, privateFixture, t.TempDir(), k1[:], "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := runPrivate(t, host, privateFixture, t.TempDir(), k1[:], "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("same inputs and key gave different private results")
	}
	c, err := runPrivate(t, host, privateFixture, t.TempDir(), k2[:], "")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Error("a different key gave the same noise")
	}
}

// TestOneValueChangesNoise: changing one exact value changes the data
// digest and so every noise stream, not just the affected sum; identical
// exact values draw identical noise, whatever computed them.
func TestOneValueChangesNoise(t *testing.T) {
	spec, err := expspec.LoadSpec(privateFixture)
	if err != nil {
		t.Fatal(err)
	}
	k := sha256.Sum256([]byte("key"))
	mk := func(bump int64) []engine.Cell {
		cells := []engine.Cell{}
		for _, l := range []string{"casual/desktop", "casual/mobile", "power/desktop", "power/mobile", expspec.UnclassifiedLeaf} {
			for _, v := range []string{"control", "treatment"} {
				for _, m := range []string{"converted", "revenue"} {
					c := engine.NewCell(l, v, m)
					c.N = 100
					c.Sum.SetInt64(40_000_000)
					c.SumSq.SetInt64(900_000_000_000_000)
					cells = append(cells, c)
				}
			}
		}
		cells[len(cells)-1].Sum.Add(cells[len(cells)-1].Sum, big.NewInt(bump))
		return cells
	}
	r1, err := privatize.Privatize(spec, mk(0), nil, engine.Quality{}, k[:], "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	r1b, err := privatize.Privatize(spec, mk(0), nil, engine.Quality{}, k[:], "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := privatize.Privatize(spec, mk(1), nil, engine.Quality{}, k[:], "h", "2026-11-19")
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range r1.Cells {
		if r1.Cells[i].Sum.Cmp(r2.Cells[i].Sum) == 0 {
			same++
		}
	}
	if same > 1 || r1.Digest == r2.Digest {
		t.Fatalf("a changed exact value reused the noise (%d of %d sums equal)", same, len(r1.Cells))
	}
	if r1.Digest != r1b.Digest {
		t.Fatal("identical exact values drew different noise")
	}
}

func TestPrivateNeedsKey(t *testing.T) {
	spec, err := expspec.LoadSpec(privateFixture)
	if err != nil {
		t.Fatal(err)
	}
	spec.Privacy.KeyFile = ""
	spec.Privacy.KeyEnv = "VERITY_TEST_ABSENT_KEY"
	os.Unsetenv("VERITY_TEST_ABSENT_KEY")
	out := t.TempDir()
	_, err = pipeline.Run(context.Background(), spec, pipeline.Options{OutDir: out, Host: fixtureHost(t, 40)})
	if err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "no usable noise key") {
		t.Fatalf("want exit 78 naming the missing key, got %v (exit %d)", err, pipeline.ExitCode(err))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a keyless private run wrote %v", entries)
	}
}

// TestLedgerOverNights runs the private fixture night after night, each
// night on more data (a later window end), against a source ledger whose
// total is the spec's own (ε 4): each new night spends its share, a rerun of
// the same night spends nothing, the ledger never exceeds the total, and the
// run that would exceed it refuses.
func TestLedgerOverNights(t *testing.T) {
	k := sha256.Sum256([]byte("ledger key"))
	out := t.TempDir()
	host := fixtureHost(t, 4)
	ends := map[int]string{19: "2026-11-17T00:00:00Z", 20: "2026-11-17T12:00:00Z", 21: "2026-11-18T00:00:00Z", 22: "2026-11-19T00:00:00Z", 23: "2026-11-20T00:00:00Z"}
	first, err := runPrivate(t, host, privateFixture, out, k[:], "2026-11-19", ends[19])
	if err != nil {
		t.Fatal(err)
	}
	spentOne := readSourceLedger(t, host).Spent()
	again, err := runPrivate(t, host, privateFixture, out, k[:], "2026-11-19", ends[19])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) || readSourceLedger(t, host).Spent().Cmp(spentOne) != 0 {
		t.Fatal("an identical rerun changed the results or spent budget")
	}
	// run_share 0.25: the second, third and fourth nights fit, the fifth does not.
	refused := false
	for night := 20; night <= 23 && !refused; night++ {
		_, err := runPrivate(t, host, privateFixture, out, k[:], fmt.Sprintf("2026-11-%d", night), ends[night])
		l := readSourceLedger(t, host)
		if l.Spent().Cmp(l.Total) > 0 {
			t.Fatalf("ledger spent %s exceeds total %s", l.Spent().RatString(), l.Total.RatString())
		}
		if err != nil {
			if !errors.Is(err, privacy.ErrBudgetExhausted) || pipeline.ExitCode(err) != pipeline.ExitConfig {
				t.Fatalf("night %d: want a budget refusal (exit 78), got %v", night, err)
			}
			if _, statErr := os.Stat(filepath.Join(out, "checkout-button-private", fmt.Sprintf("2026-11-%d", night))); statErr == nil {
				t.Fatalf("night %d: refused run left an output folder", night)
			}
			refused = true
			if got := len(l.Entries); got != 4 {
				t.Errorf("refused after %d recorded nights, want 4 (run_share 0.25)", got)
			}
		}
	}
	if !refused {
		t.Fatal("the ledger never refused a run")
	}
	// The published volume_drop rule says what was compared: the first
	// night had no previous release (said once), the next compared with it.
	for night, want := range map[string]string{"2026-11-19": "no previous night's release to compare with", "2026-11-20": "noisy exposed units"} {
		q, err := os.ReadFile(filepath.Join(out, "checkout-button-private", night, "quality.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Checks []struct{ Name, Rule, Outcome string } `json:"checks"`
		}
		if err := json.Unmarshal(q, &doc); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range doc.Checks {
			if c.Name != "volume_drop" {
				continue
			}
			found = true
			if strings.Count(c.Rule, want) != 1 || strings.Count(c.Rule, "no previous") > 1 || (night != "2026-11-19" && strings.Contains(c.Rule, "no previous")) {
				t.Errorf("%s: volume_drop rule %q (outcome %s), want it to say %q once and nothing else about a previous night", night, c.Rule, c.Outcome, want)
			}
		}
		if !found {
			t.Errorf("%s: quality.json has no volume_drop check", night)
		}
	}
}

// TestPrivateRerunSameFolder: the second run of a private spec into the
// same folder (the ledger now holds the first) reproduces every output
// byte and the stable manifest; only the volatile ledger state differs.
func TestPrivateRerunSameFolder(t *testing.T) {
	k := sha256.Sum256([]byte("rerun key"))
	out := t.TempDir()
	host := fixtureHost(t, 40)
	read := func() (map[string][]byte, publish.Manifest) {
		dir := filepath.Join(out, "checkout-button-private", "2026-11-19")
		files := map[string][]byte{}
		for _, f := range []string{"results.csv", "results.parquet", "quality.json", "decisions.json", "report.html"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		var m publish.Manifest
		b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return files, m
	}
	if _, err := runPrivate(t, host, privateFixture, out, k[:], ""); err != nil {
		t.Fatal(err)
	}
	a, ma := read()
	if _, err := runPrivate(t, host, privateFixture, out, k[:], ""); err != nil {
		t.Fatal(err)
	}
	b, mb := read()
	for f := range a {
		if !bytes.Equal(a[f], b[f]) {
			t.Errorf("%s differs on a rerun into the same folder", f)
		}
	}
	sa, _ := json.Marshal(ma.Stable())
	sb, _ := json.Marshal(mb.Stable())
	if !bytes.Equal(sa, sb) {
		t.Error("stable manifest differs on a rerun into the same folder")
	}
	// The report is part of the release: its quality figures are the noisy
	// ones of quality.json, and it shows no input digest.
	// The page says exactly what the guarantee covers: the source's ledger.
	if !strings.Contains(string(a["report.html"]), `every private release over data source &#34;fixtures&#34; together`) {
		t.Error("the private report does not say what its guarantee covers")
	}
	if n := strings.Count(string(a["report.html"]), "noisy"); n < len(ma.Checks)-1 {
		t.Errorf("private report says 'noisy' %d times, want every gate figure (%d) marked", n, len(ma.Checks)-1)
	}
	if ma.Volatile.Ledger.SpentThisRun == "0" || mb.Volatile.Ledger.SpentThisRun != "0" {
		t.Errorf("ledger: first run spent %s, rerun %s; want >0 then 0", ma.Volatile.Ledger.SpentThisRun, mb.Volatile.Ledger.SpentThisRun)
	}
}

// TestPrivateReplayRefusesPins: a pinned rerun of a private release would
// draw fresh noise (the streams are bound to the exact SQL) outside the
// ledger; replay refuses it, and an unpinned replay reproduces the bytes.
func TestPrivateReplayRefusesPins(t *testing.T) {
	k := sha256.Sum256([]byte("replay key"))
	out := t.TempDir()
	host := fixtureHost(t, 40)
	if _, err := runPrivate(t, host, privateFixture, out, k[:], ""); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "checkout-button-private", "2026-11-19", "manifest.json")
	_, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Pins: map[string]string{"traces": "v2"}, Host: host})
	if err == nil || pipeline.ExitCode(err) != pipeline.ExitConfig || !strings.Contains(err.Error(), "outside the privacy ledger") {
		t.Fatalf("pinned private replay: want exit 78, got %v", err)
	}
	spent := readSourceLedger(t, host).Spent()
	rep, err := replay.Replay(context.Background(), manifest, replay.ReplayOptions{Host: host})
	if err != nil {
		t.Fatalf("unpinned private replay: %v", err)
	}
	if readSourceLedger(t, host).Spent().Cmp(spent) != 0 {
		t.Error("a byte-identical private replay was charged")
	}
	for _, o := range rep.Outputs {
		if !o.Identical {
			t.Errorf("private replay: %s differs", o.Name)
		}
	}
}

package pipeline

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/stats"
)

// PartialFormat identifies the partial-result file of one shard.
const PartialFormat = "verity-shard-partial/1"

// Shard names one shard of a sharded run: Index in [0, Count).
type Shard struct{ Index, Count int }

func (s Shard) String() string { return expspec.ShardOf(s.Index, s.Count) }

// ParseShard reads "i/K".
func ParseShard(v string) (Shard, error) {
	var s Shard
	var rest string
	if n, _ := fmt.Sscanf(strings.Replace(v, "/", " ", 1)+" x", "%d %d %s", &s.Index, &s.Count, &rest); n != 3 || rest != "x" || s.Count < 1 || s.Count > 4096 || s.Index < 0 || s.Index >= s.Count || v != fmt.Sprintf("%d/%d", s.Index, s.Count) {
		return Shard{}, fmt.Errorf("%w: --shard wants i/K with 0 ≤ i < K ≤ 4096, got %q", expspec.ErrUsage, v)
	}
	return s, nil
}

// PartialPath is where shard sh of a spec's night is written under root.
func PartialPath(root string, spec *expspec.Spec, date string, sh Shard) string {
	return filepath.Join(root, spec.OutputName(), date, fmt.Sprintf("shard-%d-of-%d.json", sh.Index, sh.Count))
}

// partialCell is a Cell with its integers as decimal strings.
type partialCell struct {
	Cohort  string   `json:"cohort"`
	Variant string   `json:"variant"`
	Metric  string   `json:"metric"`
	N       int64    `json:"n"`
	Sums    []string `json:"sums"`
	MaxAbs  string   `json:"max_abs"`
	// Hist is a quantile metric's histogram: [value, units] pairs in
	// increasing order of value (absent for every other metric, so that
	// other specs' partials keep their bytes). Counts add exactly in the
	// merge.
	Hist [][2]int64 `json:"hist,omitempty"`
	// EventBins are an event-level quantile metric's bins: [value, events,
	// firsts, pos_sum, unit_events] in increasing order of value (absent
	// for every other metric). Every sum adds value by value in the merge,
	// since a shard holds whole units. A pointer, so that a cell without
	// events in this shard keeps its (empty) bins.
	EventBins *[][5]int64 `json:"event_bins,omitempty"`
}

// Partial is one shard's exact partial result for one experiment: what a
// single-node pass would have produced, restricted to the shard's units,
// with everything a merge needs to check that all shards ran on the same
// inputs, templates and code. It is exact data: a private spec's partial is
// restricted material (file mode 0600) and is authenticated by an HMAC
// under a key derived from the noise key.
type Partial struct {
	Format      string                  `json:"format"`
	Experiment  string                  `json:"experiment"`
	Name        string                  `json:"name"`
	NominalDate string                  `json:"nominal_date"`
	Shard       int                     `json:"shard"`
	Shards      int                     `json:"shards"`
	Salt        string                  `json:"salt"`
	Buckets     int                     `json:"buckets"`
	SpecSHA256  string                  `json:"spec_sha256"`
	Templates   []engine.TemplateRecord `json:"templates"`
	Inputs      []intake.InputFile      `json:"inputs"`
	InputDigest string                  `json:"input_digest"`
	DuckDB      publish.DuckDBInfo      `json:"duckdb"`
	Build       publish.BuildInfo       `json:"build"`
	Quality     engine.Quality          `json:"quality"`
	Cells       []partialCell           `json:"cells"`
	// Cross are the shard's cross-moment cells (crossmoments@v1; absent
	// for specs without pre_period:<metric> covariates, whose partials
	// keep their bytes): sums and maxima add in the merge, which redoes
	// the overflow proof.
	Cross []partialCross `json:"cross,omitempty"`
	// EventNames counts the event names in the window among the shard's
	// rows (exact specs only): the merge sums them for the missing-event
	// check.
	EventNames map[string]int64 `json:"event_names,omitempty"`
	Execution  []engine.Setting `json:"execution"`
	Scan       engine.Scan      `json:"scan"`
	// MAC authenticates everything above: "sha256:<hex>" for an exact
	// spec, "hmac-sha256:<hex>" for a private one.
	MAC string `json:"mac"`
}

// mac computes the partial's authentication code (its MAC field empty).
func (p Partial) mac(key []byte) (string, error) {
	p.MAC = ""
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	if key == nil {
		h := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(h[:]), nil
	}
	m := hmac.New(sha256.New, partialKey(key))
	m.Write(b)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)), nil
}

// partialKey derives the partials' HMAC key from the noise key, so that
// the noise key itself never authenticates anything else.
func partialKey(noiseKey []byte) []byte {
	m := hmac.New(sha256.New, noiseKey)
	m.Write([]byte("verity/shard-partial/v1"))
	return m.Sum(nil)
}

// partialCross is a CrossCell with its integers as decimal strings; an
// overflowed cell has no sums.
type partialCross struct {
	Cohort   string    `json:"cohort"`
	Variant  string    `json:"variant"`
	MetricA  string    `json:"metric_a"`
	MetricB  string    `json:"metric_b"`
	N        int64     `json:"n"`
	Sums     []string  `json:"sums,omitempty"`
	MaxAbs   [4]string `json:"max_abs"`
	Overflow bool      `json:"overflow,omitempty"`
}

// crossToPartial writes cross cells in the template's order (cohort,
// variant, metric_a, metric_b, with the unclassified leaf under its SQL
// label).
func crossToPartial(cells []engine.CrossCell) []partialCross {
	cells = slices.Clone(cells)
	sortCross(cells)
	var out []partialCross
	for _, c := range cells {
		pc := partialCross{Cohort: c.Cohort, Variant: c.Variant, MetricA: c.MetricA, MetricB: c.MetricB, N: c.N, Overflow: c.Overflow}
		for i, m := range c.MaxAbs {
			pc.MaxAbs[i] = m.String()
		}
		if !c.Overflow {
			pc.Sums = []string{c.SumXC.String(), c.SumYC.String(), c.SumCC.String()}
		}
		out = append(out, pc)
	}
	return out
}

// crossFromPartial reads a partial's cross cells back, refusing pairs the
// spec does not list and values that are not integers.
func crossFromPartial(spec *expspec.Spec, pcs []partialCross) ([]engine.CrossCell, error) {
	pairs := map[[2]string]bool{}
	for _, p := range spec.CrossMomentPairs() {
		pairs[p] = true
	}
	out := make([]engine.CrossCell, len(pcs))
	for i, pc := range pcs {
		if !pairs[[2]string{pc.MetricA, pc.MetricB}] {
			return nil, fmt.Errorf("cross-moments of %s and %s, a pair the spec does not list", pc.MetricA, pc.MetricB)
		}
		if pc.N <= 0 || pc.Overflow != (pc.Sums == nil) || (!pc.Overflow && len(pc.Sums) != 3) {
			return nil, fmt.Errorf("cross-moments of %s and %s, %s/%s: %d units, overflow %v with %d sums", pc.MetricA, pc.MetricB, pc.Cohort, pc.Variant, pc.N, pc.Overflow, len(pc.Sums))
		}
		c := engine.CrossCell{Experiment: spec.Experiment, Cohort: pc.Cohort, Variant: pc.Variant, MetricA: pc.MetricA, MetricB: pc.MetricB, N: pc.N, Overflow: pc.Overflow}
		parse := func(v string) (*big.Int, error) {
			b, ok := new(big.Int).SetString(v, 10)
			if !ok {
				return nil, fmt.Errorf("cross-moments of %s and %s: %q is not an integer", pc.MetricA, pc.MetricB, v)
			}
			return b, nil
		}
		for k, v := range pc.MaxAbs {
			b, err := parse(v)
			if err != nil {
				return nil, err
			}
			if b.Sign() < 0 {
				return nil, fmt.Errorf("cross-moments of %s and %s: a negative maximum |value|", pc.MetricA, pc.MetricB)
			}
			c.MaxAbs[k] = b
		}
		if !pc.Overflow {
			sums := make([]*big.Int, 3)
			for k, v := range pc.Sums {
				b, err := parse(v)
				if err != nil {
					return nil, err
				}
				sums[k] = b
			}
			c.SumXC, c.SumYC, c.SumCC = sums[0], sums[1], sums[2]
		}
		out[i] = c
	}
	return out, nil
}

// sortCross puts cross cells in crossmoments@v1's order.
func sortCross(cells []engine.CrossCell) {
	label := func(c string) string {
		if c == expspec.UnclassifiedLeaf {
			return "*"
		}
		return c
	}
	slices.SortStableFunc(cells, func(a, b engine.CrossCell) int {
		return strings.Compare(label(a.Cohort)+"\x00"+a.Variant+"\x00"+a.MetricA+"\x00"+a.MetricB,
			label(b.Cohort)+"\x00"+b.Variant+"\x00"+b.MetricA+"\x00"+b.MetricB)
	})
}

func cellsToPartial(cells []engine.Cell) []partialCell {
	out := make([]partialCell, len(cells))
	for i, c := range cells {
		pc := partialCell{Cohort: c.Cohort, Variant: c.Variant, Metric: c.Metric, N: c.N, MaxAbs: "0"}
		for _, s := range c.Sums() {
			pc.Sums = append(pc.Sums, (*s).String())
		}
		if c.MaxAbs != nil {
			pc.MaxAbs = c.MaxAbs.String()
		}
		if c.Hist != nil {
			pc.Hist = [][2]int64{}
			for _, b := range c.Hist.Bins() {
				pc.Hist = append(pc.Hist, [2]int64{b.Value, int64(b.Count)})
			}
		}
		if c.EventBins != nil {
			bins := [][5]int64{}
			for _, b := range c.EventBins.Bins() {
				bins = append(bins, [5]int64{b.Value, int64(b.Events), int64(b.Firsts), int64(b.PosSum), int64(b.UnitEvents)})
			}
			pc.EventBins = &bins
		}
		out[i] = pc
	}
	return out
}

// eventBinsFromPartial checks and converts a partial cell's event bins.
func eventBinsFromPartial(spec *expspec.Spec, c engine.Cell, pc partialCell) (*stats.EventBins, error) {
	in := *pc.EventBins
	bins := make([]stats.EventBin, len(in))
	for k, b := range in {
		if b[1] <= 0 || b[2] < 0 || b[3] <= 0 || b[4] <= 0 || (k > 0 && b[0] <= in[k-1][0]) {
			return nil, fmt.Errorf("cell %s/%s/%s: event bin %d is not positive counts in increasing order of value", pc.Cohort, pc.Variant, pc.Metric, k)
		}
		bins[k] = stats.EventBin{Value: b[0], Events: uint64(b[1]), Firsts: uint64(b[2]), PosSum: uint64(b[3]), UnitEvents: uint64(b[4])}
	}
	e, err := stats.NewEventBins(*spec.Statistics.FixedPointDecimals, bins)
	if err != nil {
		return nil, fmt.Errorf("cell %s/%s/%s: %w", pc.Cohort, pc.Variant, pc.Metric, err)
	}
	if err := engine.CheckEventBins(spec.Experiment, c, e, spec.Scale()); err != nil {
		return nil, err
	}
	return &e, nil
}

func cellsFromPartial(spec *expspec.Spec, pcs []partialCell) ([]engine.Cell, error) {
	quantile, eventLevel := map[string]bool{}, map[string]bool{}
	for _, m := range spec.Metrics {
		quantile[m.Name] = m.NeedsHistogram()
		eventLevel[m.Name] = m.NeedsEventBins()
	}
	out := make([]engine.Cell, len(pcs))
	for i, pc := range pcs {
		c := engine.NewCell(pc.Cohort, pc.Variant, pc.Metric)
		c.N = pc.N
		sums := c.Sums()
		if len(pc.Sums) != len(sums) {
			return nil, fmt.Errorf("cell %s/%s/%s: %d sums, want %d", pc.Cohort, pc.Variant, pc.Metric, len(pc.Sums), len(sums))
		}
		for k, s := range pc.Sums {
			if _, ok := (*sums[k]).SetString(s, 10); !ok {
				return nil, fmt.Errorf("cell %s/%s/%s: sum %q is not an integer", pc.Cohort, pc.Variant, pc.Metric, s)
			}
		}
		m, ok := new(big.Int).SetString(pc.MaxAbs, 10)
		if !ok || c.N < 0 || m.Sign() < 0 {
			return nil, fmt.Errorf("cell %s/%s/%s: bad count or maximum", pc.Cohort, pc.Variant, pc.Metric)
		}
		c.MaxAbs = m
		if quantile[pc.Metric] != (pc.Hist != nil) {
			return nil, fmt.Errorf("cell %s/%s/%s: a histogram where the spec has none, or none for a quantile metric", pc.Cohort, pc.Variant, pc.Metric)
		}
		if pc.Hist != nil {
			bins := make([]stats.Bin, len(pc.Hist))
			for k, b := range pc.Hist {
				if b[1] <= 0 || (k > 0 && b[0] <= pc.Hist[k-1][0]) {
					return nil, fmt.Errorf("cell %s/%s/%s: histogram bin %d is not a positive count in increasing order of value", pc.Cohort, pc.Variant, pc.Metric, k)
				}
				bins[k] = stats.Bin{Value: b[0], Count: uint64(b[1])}
			}
			h, err := stats.NewHistogram(*spec.Statistics.FixedPointDecimals, bins)
			if err != nil {
				return nil, fmt.Errorf("cell %s/%s/%s: %w", pc.Cohort, pc.Variant, pc.Metric, err)
			}
			if err := engine.CheckHistogram(spec.Experiment, c, h); err != nil {
				return nil, err
			}
			c.Hist = &h
		}
		if eventLevel[pc.Metric] != (pc.EventBins != nil) {
			return nil, fmt.Errorf("cell %s/%s/%s: event bins where the spec has none, or none for an event-level quantile metric", pc.Cohort, pc.Variant, pc.Metric)
		}
		if pc.EventBins != nil {
			e, err := eventBinsFromPartial(spec, c, pc)
			if err != nil {
				return nil, err
			}
			c.EventBins = e
		}
		out[i] = c
	}
	return out, nil
}

// RunShard runs shard sh of a sharded run: the same plan as RunAll, with
// each group's SQL pass over only the rows of the shard's units, and
// writes each experiment's partial result under root (OutDir) instead of
// releasing anything. Every spec must pin the unit-keyed templates.
func RunShard(ctx context.Context, specs []*expspec.Spec, opts Options, sh Shard) []Result {
	results := make([]Result, len(specs))
	for i, s := range specs {
		results[i] = Result{SpecFile: s.Path(), Experiment: s.Experiment, Name: s.OutputName()}
	}
	opts, err := opts.withDefaults()
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	var ok []*expspec.Spec
	index := map[*expspec.Spec]int{}
	for i, s := range specs {
		if results[i].Err = s.ShardableError(); results[i].Err == nil {
			index[s] = i
			ok = append(ok, s)
		}
	}
	jobs, groups := planJobs(ctx, ok, opts, false)
	for _, g := range groups {
		for _, sub := range bySchemeOf(g) {
			runShardGroup(ctx, sub, opts, sh)
		}
	}
	for k, j := range jobs {
		i := index[ok[k]]
		results[i].Err, results[i].Skipped = j.err, j.skipped
		if j.err == nil && j.skipped == "" {
			j.err = j.writePartial(opts, sh)
			results[i].Err = j.err
			results[i].Outcome = &Outcome{Experiment: j.spec.Experiment, Dir: PartialPath(opts.OutDir, j.spec, j.date, sh), Quality: j.quality}
		}
	}
	return results
}

// bySchemeOf splits a group of jobs that share their inputs by their
// specs' shard scheme (salt, buckets): a shard's rows are the units its
// scheme assigns to it, so specs with different salts need their own pass
// (in order of first appearance; one group when all agree).
func bySchemeOf(g []*job) [][]*job {
	var out [][]*job
	at := map[string]int{}
	for _, j := range g {
		salt, buckets := j.spec.ShardScheme()
		key := fmt.Sprintf("%d\x00%s", buckets, salt)
		k, ok := at[key]
		if !ok {
			k = len(out)
			at[key] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], j)
	}
	return out
}

// runShardGroup is runGroup for one shard: the inputs are inspected as a
// whole (footers, schemas, rendering: the same rendered SQL as a single
// run), then each file's rows of the shard's units are copied to a
// temporary folder and the unchanged templates run on those copies.
func runShardGroup(ctx context.Context, jobs []*job, opts Options, sh Shard) {
	st, err := inspectGroup(ctx, jobs, opts)
	if err != nil {
		failJobs(jobs, err)
		return
	}
	defer st.sess.Close()
	if err := checkSortedInputs(ctx, st, jobs); err != nil {
		failJobs(jobs, err)
		return
	}
	specs := make([]*expspec.Spec, len(jobs))
	for i, j := range jobs {
		specs[i] = j.spec
	}
	tmp, err := os.MkdirTemp(opts.Engine.TempDir, "verity-shard-")
	if err != nil {
		failJobs(jobs, &diskio.TransientError{Err: fmt.Errorf("shard temp folder: %w", err)})
		return
	}
	defer os.RemoveAll(tmp)
	t0 := time.Now()
	shardSt := *st
	private := false
	for _, j := range jobs {
		private = private || (j.spec.Privacy != nil && j.spec.Privacy.Enabled)
	}
	if shardSt.traces, err = copyShard(ctx, st, jobs[0].spec, st.traces, tmp, sh, private); err == nil {
		shardSt.events, err = copyShard(ctx, st, jobs[0].spec, st.events, tmp, sh, private)
	}
	if err != nil {
		failJobs(jobs, err)
		return
	}
	all := append(append([]intake.InputFile{}, st.traces...), st.events...)
	pass, err := runPass(ctx, &shardSt, specs, append(append([]intake.InputFile{}, shardSt.traces...), shardSt.events...), nil)
	if err == nil {
		err = checkInputsUnchanged(all)
	}
	for _, j := range jobs {
		if err == nil && !j.spec.Privacy.Enabled && pass.perExp[j.spec.Experiment] == nil {
			j.eventNames, err = st.sess.EventNamesIn(ctx, j.spec, shardSt.events)
			if err != nil {
				err = engine.ClassifySQLError(ctx, err)
			}
		}
	}
	if err != nil {
		failJobs(jobs, err)
		return
	}
	var inputBytes int64
	inspected := map[string]intake.InputFile{}
	for _, f := range all {
		inspected[f.Abs] = f
		inputBytes += f.Size
	}
	scan := scanRecord(st, jobs, len(all), inputBytes)
	for _, j := range jobs {
		j.phase("sql_shard", t0)
		j.takePass(st, pass, scan, inspected)
	}
}

// copyShard copies the shard's rows of each file into tmp; the copies keep
// the originals' role and columns. private: a private spec shares the pass.
func copyShard(ctx context.Context, st *groupState, spec *expspec.Spec, files []intake.InputFile, tmp string, sh Shard, private bool) ([]intake.InputFile, error) {
	salt, buckets := spec.ShardScheme()
	out := make([]intake.InputFile, len(files))
	for i, f := range files {
		contract, mapping := intake.TraceContract, spec.Inputs.Columns.Traces
		if f.Role == "events" {
			contract, mapping = intake.EventContract, spec.Inputs.Columns.Events
		}
		unitCol := intake.ColumnsFor([]intake.InputFile{f}, contract, mapping).Source["unit_id"]
		dst := filepath.Join(tmp, fmt.Sprintf("%s-%05d.parquet", f.Role, i))
		out[i] = f
		b, bucketed, err := BucketOfPath(f.Path, buckets)
		switch {
		case err != nil:
			return nil, &engine.DataError{Err: fmt.Errorf("input %s: %w", f.Path, err)}
		case bucketed && b%sh.Count != sh.Index:
			// Another shard's bucket: only its columns are needed.
			out[i].Abs = dst
			err = st.sess.CopyEmpty(ctx, f.Abs, dst)
		case bucketed:
			out[i].Abs = f.Abs // read in place, each row's bucket verified
			err = checkBucket(ctx, st, f, unitCol, salt, buckets, b, private)
		default:
			out[i].Abs = dst
			err = st.sess.CopyShard(ctx, f.Abs, dst, unitCol, salt, buckets, sh.Index, sh.Count)
		}
		if err != nil {
			if t := engine.TransientOrNil(ctx, err); t != nil {
				return nil, t
			}
			var de *engine.DataError
			if errors.As(err, &de) {
				return nil, err
			}
			return nil, &engine.DataError{Err: fmt.Errorf("input %s: %w", f.Path, err)}
		}
	}
	return out, nil
}

// checkBucket verifies that every row of a file in folder unit_bucket=b
// belongs to bucket b. When a private spec shares the pass the error names
// the file only: a row count and a unit id are data, not file properties.
func checkBucket(ctx context.Context, st *groupState, f intake.InputFile, unitCol, salt string, buckets, b int, private bool) error {
	n, example, err := st.sess.WrongBucketRows(ctx, f.Abs, unitCol, salt, buckets, b)
	if err != nil || n == 0 {
		return err
	}
	which := fmt.Sprintf("%d rows (e.g. unit %q) are", n, example)
	if private {
		which = "rows are"
	}
	return &engine.DataError{Err: fmt.Errorf("input %s: column unit_id: %s not in bucket %d of its folder unit_bucket=%d; expected bucket = first 8 bytes of MD5(salt ‖ unit_id) mod %d, with the spec's sharding salt", f.Path, which, b, b, buckets)}
}

// BucketOfPath returns the bucket of a file under a Hive folder
// unit_bucket=b (the innermost one), and whether there is one.
func BucketOfPath(path string, buckets int) (int, bool, error) {
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		v, ok := strings.CutPrefix(parts[i], "unit_bucket=")
		if !ok {
			continue
		}
		b, err := strconv.Atoi(v)
		if err != nil || b < 0 || b >= buckets || strconv.Itoa(b) != v {
			return 0, false, fmt.Errorf("folder unit_bucket=%s: want a bucket 0 to %d (the spec's sharding.buckets)", v, buckets-1)
		}
		return b, true, nil
	}
	return 0, false, nil
}

// writePartial writes the job's partial result (0600 in a 0700 folder: a
// partial holds exact values).
func (j *job) writePartial(opts Options, sh Shard) error {
	salt, buckets := j.spec.ShardScheme()
	inputs := append(append([]intake.InputFile{}, j.traces...), j.events...)
	cells := slices.Clone(j.cells)
	sortCells(cells)
	p := Partial{
		Format: PartialFormat, Experiment: j.spec.Experiment, Name: j.spec.OutputName(), NominalDate: j.date,
		Shard: sh.Index, Shards: sh.Count, Salt: salt, Buckets: buckets, SpecSHA256: j.specHash,
		Templates: j.recs, Inputs: inputs, InputDigest: intake.InputDigest(inputs), DuckDB: j.duck, Build: opts.Build,
		Quality: j.quality, Cells: cellsToPartial(cells), Cross: crossToPartial(j.crossCells), EventNames: j.eventNames,
		Execution: j.execSet, Scan: j.scan,
	}
	var key []byte
	if j.spec.Privacy.Enabled {
		key = j.key
	}
	var err error
	if p.MAC, err = p.mac(key); err != nil {
		return err
	}
	b, err := diskio.MarshalJSON(p)
	if err != nil {
		return err
	}
	path := PartialPath(opts.OutDir, j.spec, j.date, sh)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return &diskio.TransientError{Err: err}
	}
	if err := diskio.WriteAtomicMode(path, b, 0o600); err != nil {
		return fmt.Errorf("write partial %s: %w", path, err)
	}
	j.log.Info("shard partial written", "phase", "commit", "shard", sh.String(), "path", path)
	return nil
}

// sortCells puts cells in the sufstats template's order (experiment,
// cohort, variant, metric, with the unclassified leaf under its SQL label).
func sortCells(cells []engine.Cell) {
	label := func(c string) string {
		if c == expspec.UnclassifiedLeaf {
			return "*"
		}
		return c
	}
	slices.SortStableFunc(cells, func(a, b engine.Cell) int {
		return strings.Compare(label(a.Cohort)+"\x00"+a.Variant+"\x00"+a.Metric, label(b.Cohort)+"\x00"+b.Variant+"\x00"+b.Metric)
	})
}

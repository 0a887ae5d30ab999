package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/queries"
)

// ShardError refuses one shard's partial result: missing, unreadable,
// altered or forged, a duplicate of another shard, or stale (other inputs,
// templates, spec, date or code than the others or than this merge).
type ShardError struct {
	Shard   Shard
	Path    string
	Missing bool
	Err     error
}

func (e *ShardError) Error() string {
	return fmt.Sprintf("shard %s (%s) refused, nothing released: %v", e.Shard, e.Path, e.Err)
}
func (e *ShardError) Unwrap() error { return e.Err }

// Merge combines the partial results of shards 0..k-1 of every spec (under
// root, as RunShard wrote them) and finishes each experiment as RunAll
// would: gates, statistics, decisions, DP noise drawn once on the merged
// exact values and charged once, report and manifest. The inputs are
// resolved but not hashed again: their identity comes from the partials,
// which must all agree.
func Merge(ctx context.Context, specs []*expspec.Spec, opts Options, root string, k int) []Result {
	results := make([]Result, len(specs))
	for i, s := range specs {
		results[i] = Result{SpecFile: s.Path(), Experiment: s.Experiment, Name: s.OutputName()}
	}
	opts, err := opts.withDefaults()
	if err == nil && (k < 1 || k > 4096) {
		err = fmt.Errorf("%w: --shards wants 1 to 4096, got %d", expspec.ErrUsage, k)
	}
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	opts.noHash = true
	jobs, _ := planJobs(ctx, specs, opts, true)
	for _, j := range jobs {
		if j.err == nil && j.skipped == "" {
			j.err = j.mergePartials(ctx, opts, root, k)
		}
	}
	return finishJobs(ctx, jobs, opts, results)
}

// mergePartials reads and checks the k partials of the job's night and
// fills the job as a single pass would have.
func (j *job) mergePartials(ctx context.Context, opts Options, root string, k int) error {
	if err := j.spec.ShardableError(); err != nil {
		return err
	}
	want, err := j.expectedIdentity(ctx, opts)
	if err != nil {
		return err
	}
	var key []byte
	if j.spec.Privacy.Enabled {
		key = j.key
	}
	parts := make([]Partial, k)
	for i := range parts {
		sh := Shard{i, k}
		path := PartialPath(root, j.spec, j.date, sh)
		p, err := readPartial(path, key)
		if err == nil {
			err = checkPartial(p, sh, want, parts[0], i == 0)
		}
		if err != nil {
			return &ShardError{Shard: sh, Path: path, Missing: errors.Is(err, fs.ErrNotExist), Err: err}
		}
		parts[i] = p
	}
	return j.fillFromPartials(parts)
}

// expectedIdentity is what every partial must carry for this merge: the
// spec, date, shard scheme, templates (name, version, file hash), DuckDB
// version and build of this binary.
func (j *job) expectedIdentity(ctx context.Context, opts Options) (Partial, error) {
	salt, buckets := j.spec.ShardScheme()
	p := Partial{Format: PartialFormat, Experiment: j.spec.Experiment, Name: j.spec.OutputName(), NominalDate: j.date,
		Salt: salt, Buckets: buckets, SpecSHA256: j.specHash, Build: opts.Build}
	for _, name := range j.spec.PinnedTemplateNames() {
		t, err := queries.Load(opts.Queries, name, j.spec.Templates[name])
		if err != nil {
			return p, err
		}
		p.Templates = append(p.Templates, engine.TemplateRecord{Name: t.Name, Version: t.Version, SHA256: t.SHA256})
	}
	v, err := engine.DuckDBVersion(ctx)
	if err != nil {
		return p, &diskio.TransientError{Err: err}
	}
	p.DuckDB.Version = v
	return p, nil
}

// readPartial reads a partial and checks its authentication code.
func readPartial(path string, key []byte) (Partial, error) {
	var p Partial
	b, err := diskio.ReadRegularFile(path)
	if err != nil {
		return p, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, &expspec.IntegrityError{Err: fmt.Errorf("not a partial result: %v", err)}
	}
	mac, err := p.mac(key)
	if err != nil {
		return p, err
	}
	if p.MAC != mac {
		what := "its checksum does not match its content (altered)"
		if key != nil {
			what = "its HMAC under this spec's noise key does not verify (forged, altered, or written with another key)"
		}
		return p, &expspec.IntegrityError{Err: errors.New(what)}
	}
	return p, nil
}

// checkPartial checks one partial against the merge's expectations and
// against shard 0 (inputs, rendered templates, DuckDB settings).
func checkPartial(p Partial, sh Shard, want, first Partial, isFirst bool) error {
	bad := func(format string, args ...any) error {
		return &expspec.IntegrityError{Err: fmt.Errorf(format, args...)}
	}
	switch {
	case p.Format != PartialFormat:
		return bad("format %q, want %q", p.Format, PartialFormat)
	case p.Shard != sh.Index || p.Shards != sh.Count:
		return bad("the file holds shard %d/%d (a duplicate or misplaced partial), not %s", p.Shard, p.Shards, sh)
	case p.Experiment != want.Experiment || p.Name != want.Name || p.NominalDate != want.NominalDate:
		return bad("stale: written for %s (experiment %s) on %s", p.Name, p.Experiment, p.NominalDate)
	case p.SpecSHA256 != want.SpecSHA256:
		return bad("stale: written for spec sha256 %s, this spec is %s", p.SpecSHA256, want.SpecSHA256)
	case p.Salt != want.Salt || p.Buckets != want.Buckets:
		return bad("stale: other shard scheme (salt, %d buckets)", p.Buckets)
	case !sameJSON(p.Build, want.Build):
		return bad("stale: written by another build of verity (revision %q, %s)", p.Build.Revision, p.Build.GoVersion)
	case p.DuckDB.Version != want.DuckDB.Version:
		return bad("stale: written with DuckDB %s, this binary has %s", p.DuckDB.Version, want.DuckDB.Version)
	case len(p.Templates) != len(want.Templates):
		return bad("stale: %d templates, want %d", len(p.Templates), len(want.Templates))
	}
	for i, t := range p.Templates {
		w := want.Templates[i]
		if t.Name != w.Name || t.Version != w.Version || t.SHA256 != w.SHA256 {
			return bad("stale: template %s@%s sha256 %s, this merge pins %s@%s sha256 %s", t.Name, t.Version, t.SHA256, w.Name, w.Version, w.SHA256)
		}
	}
	if isFirst {
		return nil
	}
	switch {
	case p.InputDigest != first.InputDigest || !sameJSON(p.Inputs, first.Inputs):
		return bad("stale: other inputs than shard 0 (input digest %s, shard 0 %s)", p.InputDigest, first.InputDigest)
	case !sameJSON(p.Templates, first.Templates):
		return bad("stale: other rendered templates than shard 0")
	case !sameJSON(p.DuckDB, first.DuckDB):
		return bad("stale: other DuckDB settings than shard 0")
	case p.Quality.TraceFiles != first.Quality.TraceFiles || p.Quality.EventFiles != first.Quality.EventFiles ||
		p.Quality.TraceRowsRead != first.Quality.TraceRowsRead || p.Quality.EventRowsRead != first.Quality.EventRowsRead:
		return bad("stale: other file and row counts than shard 0")
	}
	return nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// fillFromPartials sums the partials into the job: cells and cross-moment
// cells (n and sums add, maxima take the larger, the overflow proof is
// redone), quality counts
// (footer counts taken once), event names; then the missing-event check
// on the merged cells, as a single pass does.
func (j *job) fillFromPartials(parts []Partial) error {
	first := parts[0]
	if err := j.takeInputs(first.Inputs); err != nil {
		return err
	}
	q := first.Quality
	type key struct{ c, v, m string }
	merged := map[key]*engine.Cell{}
	names := map[string]int64{}
	type ckey struct{ c, v, a, b string }
	cross := map[ckey]*engine.CrossCell{}
	for i, p := range parts {
		if i > 0 {
			q.Add(p.Quality)
		}
		cells, err := cellsFromPartial(j.spec, p.Cells)
		if err != nil {
			return &ShardError{Shard: Shard{i, len(parts)}, Err: &expspec.IntegrityError{Err: err}}
		}
		for _, c := range cells {
			k := key{c.Cohort, c.Variant, c.Metric}
			if m, ok := merged[k]; ok {
				engine.MergeCell(m, c)
				if err := engine.MergeHist(m, c); err != nil {
					return &ShardError{Shard: Shard{i, len(parts)}, Err: &expspec.IntegrityError{Err: err}}
				}
				if err := engine.MergeEventBins(m, c); err != nil {
					return &ShardError{Shard: Shard{i, len(parts)}, Err: &expspec.IntegrityError{Err: err}}
				}
			} else {
				cc := c
				merged[k] = &cc
			}
		}
		for n, c := range p.EventNames {
			names[n] += c
		}
		xs, err := crossFromPartial(j.spec, p.Cross)
		if err != nil {
			return &ShardError{Shard: Shard{i, len(parts)}, Err: &expspec.IntegrityError{Err: err}}
		}
		for _, x := range xs {
			k := ckey{x.Cohort, x.Variant, x.MetricA, x.MetricB}
			if m, ok := cross[k]; ok {
				engine.MergeCross(m, x)
			} else {
				cross[k] = &x
			}
		}
	}
	var crossCells []engine.CrossCell
	for _, x := range cross {
		engine.ProveCrossNoOverflow(x)
		crossCells = append(crossCells, *x)
	}
	sortCross(crossCells)
	j.crossCells = crossCells
	var cells []engine.Cell
	for _, c := range merged {
		cells = append(cells, *c)
	}
	sortCells(cells)
	for _, c := range cells {
		if err := engine.ProveNoOverflow(j.spec.Experiment, c); err != nil {
			return err
		}
		if c.Hist != nil {
			if err := engine.CheckHistogram(j.spec.Experiment, c, *c.Hist); err != nil {
				return &expspec.IntegrityError{Err: err}
			}
		}
		if c.EventBins != nil {
			if err := engine.CheckEventBins(j.spec.Experiment, c, *c.EventBins, j.spec.Scale()); err != nil {
				return &expspec.IntegrityError{Err: err}
			}
		}
	}
	j.cells, j.quality = cells, q
	j.recs, j.duck, j.execSet, j.scan = first.Templates, first.DuckDB, first.Execution, first.Scan
	if !j.spec.Privacy.Enabled {
		if suspects := analysis.SuspectParts(j.spec, cells); len(suspects) > 0 {
			j.missing = analysis.MissingEvents(suspects, names)
		}
	}
	return nil
}

// takeInputs gives the job's resolved inputs the identity the shards
// hashed and read; the resolved list must be the one they analysed.
func (j *job) takeInputs(recorded []intake.InputFile) error {
	var got []string
	for _, files := range [][]intake.InputFile{j.traces, j.events} {
		for _, f := range files {
			got = append(got, f.Role+" "+f.Path)
		}
	}
	var want []string
	for _, f := range recorded {
		want = append(want, f.Role+" "+f.Path)
	}
	if !slices.Equal(got, want) {
		return &expspec.IntegrityError{Err: fmt.Errorf("spec %s: the inputs resolved now (%d files) are not those the shards analysed (%d files); rerun the shards", j.spec.Path(), len(got), len(want))}
	}
	n := 0
	for _, files := range [][]intake.InputFile{j.traces, j.events} {
		for i := range files {
			r := recorded[n]
			files[i].Size, files[i].SHA256, files[i].Rows, files[i].CreatedBy = r.Size, r.SHA256, r.Rows, r.CreatedBy
			n++
		}
	}
	return nil
}

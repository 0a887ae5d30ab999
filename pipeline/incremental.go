package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
)

// Incremental nightly runs (issue 18 item 2). With Options.Incremental, a
// group whose specs qualify keeps a state in the host's state folder,
// STATE/incremental/<fingerprint>/, after every pass: per-unit partial
// aggregates (the intermediate tables of the single-join set, minus the
// rows carried to the next night), the duplicate keys of every row read,
// and the valid event rows of units not yet exposed in every experiment
// (the carry), and the night's cells. The next night reads only the new
// partitions plus the carry, merges the state of the units they touch into
// the tables the pinned templates read, runs the pinned templates after
// them unchanged over those units, and updates the stored cells by the
// touched units' delta (incremental_cells.go), so the outputs are a full
// run's byte for byte. Anything the state cannot account for exactly makes
// the night a full run, logged with its reason (incrementalStatus).

// incrementalFormat versions the state's layout and meaning. v2: state.json
// records the SHA-256 of every state file and its own digest. v3: the
// per-unit tables (units, unitev) are generations — a base and the deltas
// of the nights since, each row with its generation's gen_no — unitev keeps
// every kind-2 row whole beside its carried rows' share, and cells.json
// holds the night's cells and unit counts, which the next night updates by
// the touched units' delta.
const incrementalFormat = "verity-incremental/v3"

// incrementalCompactAfter is how many generations of per-unit tables a
// state keeps before the save rewrites them whole (also when the deltas
// hold more rows than the base): a night reads every live generation's
// files. A variable so that tests can compact more often.
var incrementalCompactAfter = 7

// singleJoinPins is the only template set the incremental pass supports.
var singleJoinPins = map[string]string{
	"traces": "v5", "assignment": "v4", "events": "v4", "unit_metrics": "v5", "sufstats": "v3", "quality": "v3",
}

// incrState is state.json: which inputs the stored tables count, and the
// facts that decide whether the next night can add to them.
type incrState struct {
	Format      string     `json:"format"`
	Fingerprint string     `json:"fingerprint"`
	Date        string     `json:"date"`
	EndUS       []int64    `json:"exp_end_us"`
	Files       []incrFile `json:"files"`
	// Gen is tonight's generation: its folder holds the per-night tables
	// (tcounts, buckets, names, carry, tcarry) and cells.json.
	Gen string `json:"gen"`
	// GenNo is Gen's number (the gen_no of its rows); Gens are the live
	// generations of the per-unit tables, oldest (the base) first, and
	// GenRows their units rows. A unit's rows are those of the newest
	// generation holding it.
	GenNo     int64            `json:"gen_no"`
	Gens      []string         `json:"gens"`
	GenRows   []int64          `json:"gen_rows"`
	TraceKeys []string         `json:"trace_keys"`
	EventKeys []string         `json:"event_keys"`
	Facts     map[string]int64 `json:"facts"`
	// Checksums is the SHA-256 of every file the next night reads from the
	// state (gen-*/<table>.parquet, keys/*), by path relative to the
	// state's folder; verified before the state is used.
	Checksums map[string]string `json:"checksums"`
	// Digest is the SHA-256 of this JSON as written with Digest empty: an
	// edited or damaged state.json is detected, not trusted.
	Digest string `json:"digest"`
}

type incrFile struct {
	Role   string `json:"role"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// incremental is one group's incremental plan.
type incremental struct {
	dir, fp string
	// reason is why the group runs in full ("" when it may run
	// incrementally); eligible is false when no state is kept at all.
	reason   string
	eligible bool
	// damaged is true when the full night is due to the state folder
	// itself (unusable, locked, unreadable, missing or altered files) or
	// to a failure of the pass over it (any error other than a planned
	// fallback, an out-of-memory included): logged as a warning, since it
	// may repeat every night until someone looks, unlike the expected
	// fallbacks (a first night, a changed input).
	damaged bool
	prev    *incrState
	newT    []intake.InputFile
	newE    []intake.InputFile
	tmpls   map[string]engine.Rendered
	// ranIncr is true when tonight's pass was incremental.
	ranIncr bool
	// lock is the state folder's exclusive lock, held from the plan to the
	// end of the save (release).
	lock *os.File
}

// fallbackError stops an incremental pass: the night runs in full.
type fallbackError struct{ reason string }

func (e *fallbackError) Error() string { return "incremental pass falls back: " + e.reason }

// planIncremental decides whether the group may run incrementally, from
// the specs, the inputs' hashes and the stored state. It takes the state
// folder's lock (released by release); a folder locked by another run
// makes the night a full run that neither reads nor writes the state.
func planIncremental(st *groupState, specs []*expspec.Spec, date string, opts Options) *incremental {
	inc := &incremental{}
	if opts.Host.StateDir == "" {
		inc.reason = "no state folder (--state-dir)"
		return inc
	}
	for _, s := range specs {
		if r := incrementalRefusal(s); r != "" {
			inc.reason = "spec " + s.OutputName() + ": " + r
			return inc
		}
	}
	p := engine.MergedParams(specs, st.traces, st.events)
	fp, err := incrementalFingerprint(st, p, opts)
	if err != nil {
		inc.reason = err.Error()
		return inc
	}
	data := engine.RenderData{
		Traces: intake.ColumnsFor(st.traces, intake.TraceContract, nil),
		Events: intake.ColumnsFor(st.events, intake.EventContract, nil),
	}
	if inc.tmpls, err = engine.LoadIncremental(opts.Queries, data); err != nil {
		inc.reason = err.Error()
		return inc
	}
	inc.fp = fp
	inc.dir = filepath.Join(opts.Host.StateDir, "incremental", fp[:16])
	if inc.lock, err = lockState(inc.dir); err != nil {
		inc.reason, inc.damaged = err.Error(), true
		return inc
	}
	inc.eligible = true
	prev, err := readIncrState(inc.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		inc.reason = "no state for these specs, inputs, templates and build yet"
		return inc
	case err != nil:
		inc.reason, inc.damaged = "state unreadable: "+err.Error(), true
		return inc
	case prev.Format != incrementalFormat || prev.Fingerprint != fp:
		inc.reason = "state of another format or fingerprint"
		return inc
	}
	inc.prev = prev
	if prev.Date > date {
		// A rerun of an earlier night: the state counts partitions after
		// tonight's window. It is kept for the nights after it (no save).
		inc.reason = fmt.Sprintf("the state is from a later night (%s) than tonight's (%s); it is kept as it is", prev.Date, date)
		inc.eligible = false
		return inc
	}
	if _, err := os.Stat(filepath.Join(inc.dir, prev.Gen)); err != nil {
		inc.reason, inc.damaged = "state tables missing: "+err.Error(), true
		return inc
	}
	if err := prev.verifyFiles(inc.dir); err != nil {
		inc.reason, inc.damaged = err.Error(), true
		return inc
	}
	inc.reason = inc.compareInputs(st, p, date)
	return inc
}

// lockState takes an exclusive, non-blocking flock on dir/lock and writes
// the holder's process id into it. When another run holds it, the error
// says so (with that run's process id): the caller then runs the night in
// full without touching the state, rather than waiting for a run of
// unknown length. The kernel releases the lock when the process dies.
func lockState(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state folder lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the state folder is locked by another incremental run (%s, %s); this night neither reads nor writes the state",
				path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("state folder lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	return f, nil
}

// release drops the state folder's lock (nil-safe, idempotent).
func (inc *incremental) release() {
	if inc == nil || inc.lock == nil {
		return
	}
	syscall.Flock(int(inc.lock.Fd()), syscall.LOCK_UN)
	inc.lock.Close()
	inc.lock = nil
}

// incrementalRefusal says why a spec never runs incrementally ("" if it may).
func incrementalRefusal(s *expspec.Spec) string {
	if s.Privacy != nil && s.Privacy.Enabled {
		return "private specs run in full (an incremental state would hold exact per-unit values, restricted material the state folder does not keep)"
	}
	var optional []string
	for _, n := range expspec.OptionalTemplateNames {
		if _, ok := s.Templates[n]; ok {
			optional = append(optional, n)
		}
	}
	if len(optional) > 0 {
		return "pins " + strings.Join(optional, ", ") + " (only the single-join set is incremental)"
	}
	for _, name := range slices.Sorted(maps.Keys(singleJoinPins)) {
		if v := singleJoinPins[name]; s.Templates[name] != v {
			return fmt.Sprintf("pins %s@%s (only the single-join set traces@v5 … quality@v3 is incremental)", name, s.Templates[name])
		}
	}
	if len(s.Inputs.Columns.Traces) > 0 || len(s.Inputs.Columns.Events) > 0 {
		return "maps input columns (the carried rows are stored under the contract's names)"
	}
	if len(s.Inputs.SortedBy) > 0 {
		return "declares a sort order"
	}
	return ""
}

// incrementalFingerprint hashes everything the stored tables depend on
// except the inputs and the window's end: the build, DuckDB, every pinned
// template's text and rendering, and every bound parameter. A changed spec
// that changes what the SQL computes changes it; one that changes only the
// statistics (computed from the tables every night) does not.
func incrementalFingerprint(st *groupState, p map[string]any, opts Options) (string, error) {
	q := map[string]any{}
	for k, v := range p {
		switch k {
		case "trace_files", "event_files", "exp_end_us", "dup_unit", "dup_event":
		default:
			q[k] = v
		}
	}
	b, err := json.Marshal(map[string]any{
		"format": incrementalFormat, "build": opts.Build, "duckdb": st.duck.Version, "templates": st.recs, "params": q,
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// readIncrState reads state.json and checks its digest.
func readIncrState(dir string) (*incrState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var s incrState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state.json: %w", err)
	}
	want, err := s.digest()
	if err != nil {
		return nil, err
	}
	if s.Digest != want {
		return nil, errors.New("state.json was edited or damaged (its SHA-256 digest does not match)")
	}
	// The names state.json gives are the save's own (gen-<run id>,
	// t-/e-<run id>.parquet): nothing outside the state's folder is read.
	for _, g := range append([]string{s.Gen}, s.Gens...) {
		if !stateNameRE.MatchString(g) || !strings.HasPrefix(g, "gen-") {
			return nil, fmt.Errorf("state.json names a generation %q that the save never writes", g)
		}
	}
	if len(s.Gens) == 0 || s.Gens[len(s.Gens)-1] != s.Gen || len(s.GenRows) != len(s.Gens) {
		return nil, errors.New("state.json lists its generations inconsistently")
	}
	for _, k := range append(slices.Clone(s.TraceKeys), s.EventKeys...) {
		if !stateNameRE.MatchString(k) || !(strings.HasPrefix(k, "t-") || strings.HasPrefix(k, "e-")) || !strings.HasSuffix(k, ".parquet") {
			return nil, fmt.Errorf("state.json names a key file %q that the save never writes", k)
		}
	}
	return &s, nil
}

// stateNameRE matches a file or folder name without a path separator or
// a leading dot.
var stateNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// digest is the SHA-256 of the state's JSON with Digest empty.
func (s incrState) digest() (string, error) {
	s.Digest = ""
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("state digest: %w", err)
	}
	return diskio.SHA256Hex(b), nil
}

// files lists the state files the next night reads, relative to the
// state's folder.
func (s *incrState) files() []string {
	var out []string
	for _, g := range s.Gens {
		for _, n := range incrUnitTables {
			out = append(out, filepath.Join(g, n+".parquet"))
		}
	}
	for _, n := range incrNightTables {
		out = append(out, filepath.Join(s.Gen, n+".parquet"))
	}
	out = append(out, filepath.Join(s.Gen, "cells.json"))
	for _, k := range append(slices.Clone(s.TraceKeys), s.EventKeys...) {
		out = append(out, filepath.Join("keys", k))
	}
	return out
}

// incrUnitTables are the per-unit tables of a generation (a base or a
// delta); incrNightTables the tables the newest generation holds for the
// next night alone.
var (
	incrUnitTables  = []string{"units", "unitev"}
	incrNightTables = []string{"tcounts", "buckets", "names", "carry", "tcarry"}
)

// verifyFiles checks every state file against its recorded SHA-256.
func (s *incrState) verifyFiles(dir string) error {
	for _, rel := range s.files() {
		want, ok := s.Checksums[rel]
		if !ok {
			return fmt.Errorf("state file %s has no recorded SHA-256", rel)
		}
		got, err := fileSHA256(filepath.Join(dir, rel))
		if err != nil {
			return fmt.Errorf("state tables missing: %w", err)
		}
		if got != want {
			return fmt.Errorf("state file %s changed since it was written (SHA-256 %s, recorded %s)", rel, got[:12], want[:12])
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compareInputs finds tonight's new partitions and says why the night must
// run in full ("" when it need not). An incremental pass reads at least one
// new partition of each kind.
func (inc *incremental) compareInputs(st *groupState, p map[string]any, date string) string {
	tonight := map[string]intake.InputFile{}
	for _, f := range append(slices.Clone(st.traces), st.events...) {
		tonight[f.Role+"\x00"+f.Abs] = f
	}
	stored := map[string]bool{}
	for _, f := range inc.prev.Files {
		k := f.Role + "\x00" + f.Path
		stored[k] = true
		now, ok := tonight[k]
		if !ok {
			return "a partition the state counts is not among tonight's inputs (the state is from another partition set): " + f.Path
		}
		if now.SHA256 != f.SHA256 {
			return "a counted partition changed (SHA-256): " + f.Path
		}
	}
	for _, f := range st.traces {
		if !stored[f.Role+"\x00"+f.Abs] {
			inc.newT = append(inc.newT, f)
		}
	}
	for _, f := range st.events {
		if !stored[f.Role+"\x00"+f.Abs] {
			inc.newE = append(inc.newE, f)
		}
	}
	switch {
	case len(inc.newT) == 0 && len(inc.newE) == 0 && inc.prev.Date == date:
		return "the state already counts every input of " + date + " (the night was run before)"
	case len(inc.newT) == 0 && len(inc.newE) == 0:
		return "no new trace or event partition since the stored night"
	case len(inc.newT) == 0:
		return "no new trace partition since the stored night (an incremental night needs a new partition of each kind)"
	case len(inc.newE) == 0:
		return "no new event partition since the stored night (an incremental night needs a new partition of each kind)"
	}
	end := p["exp_end_us"].([]int64)
	if !slices.Equal(end, inc.prev.EndUS) {
		for i := range end {
			if i < len(inc.prev.EndUS) && end[i] < inc.prev.EndUS[i] {
				return "the window ends before the stored night's"
			}
		}
	}
	return ""
}

func (inc *incremental) path(gen, name string) string {
	return filepath.Join(inc.dir, gen, name+".parquet")
}

// genPaths lists table name's file in each of the generations gens.
func (inc *incremental) genPaths(gens []string, name string) []string {
	out := make([]string, len(gens))
	for i, g := range gens {
		out[i] = inc.path(g, name)
	}
	return out
}

func (inc *incremental) keyPaths(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(inc.dir, "keys", n)
	}
	return out
}

// checkFacts turns any nonzero fallback check into a fallbackError.
func (inc *incremental) checkFacts(ctx context.Context, st *groupState) error {
	facts, err := st.sess.Facts(ctx, inc.tmpls["incr_facts"])
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(facts)) {
		if strings.HasPrefix(name, "fallback: ") && facts[name] > 0 {
			return &fallbackError{reason: fmt.Sprintf("%s (%d)", strings.TrimPrefix(name, "fallback: "), facts[name])}
		}
	}
	return nil
}

// runIncrementalPass runs tonight's pass over the new partitions and the
// stored state; a fallbackError means the night must run in full (the
// session then holds partial tables and is replaced by the caller).
func runIncrementalPass(ctx context.Context, st *groupState, specs []*expspec.Spec, inc *incremental, progress *engine.SQLProgress) (passResult, error) {
	prev := inc.prev
	p := addDupKeys(engine.MergedParams(specs, inc.newT, inc.newE), st)
	p["ix_exp"], p["ix_partner"] = engine.NonNil(st.ixExp), engine.NonNil(st.ixPartner)
	carry := inc.path(prev.Gen, "carry")
	for _, n := range []string{"tcounts", "buckets", "names"} {
		p["st_"+n] = inc.path(prev.Gen, n)
	}
	for _, n := range incrUnitTables {
		p["st_"+n] = inc.genPaths(prev.Gens, n)
	}
	p["st_carry"] = carry
	p["st_tcarry"] = inc.path(prev.Gen, "tcarry")
	p["st_tkeys"], p["st_ekeys"] = inc.keyPaths(prev.TraceKeys), inc.keyPaths(prev.EventKeys)
	p["new_trace_files"], p["new_event_files"] = p["trace_files"], p["event_files"]
	byName := map[string]engine.Rendered{}
	for _, t := range st.tmpls {
		byName[t.Name] = t
	}
	pt := maps.Clone(p)
	pt["trace_files"] = append([]string{inc.path(prev.Gen, "tcarry")}, p["trace_files"].([]string)...)
	steps := []struct {
		r     engine.Rendered
		check bool
		p     map[string]any
	}{
		{inc.tmpls["incr_load"], true, p},
		{byName["traces"], false, pt},
		{inc.tmpls["incr_traces"], true, p},
		{byName["assignment"], false, p},
	}
	for i, s := range steps {
		if err := st.sess.Exec(ctx, s.r, engine.StageParams(s.r.Name, s.p), progress); err != nil {
			if i == 0 && ctx.Err() == nil {
				// The stored tables cannot be read (removed, truncated):
				// the night runs in full and writes a new state.
				return passResult{}, &fallbackError{reason: "state tables unreadable: " + err.Error()}
			}
			return passResult{}, err
		}
		if s.check {
			if err := inc.checkFacts(ctx, st); err != nil {
				return passResult{}, err
			}
		}
	}
	pe := engine.StageParams("events", p)
	pe["event_files"] = append([]string{carry}, p["event_files"].([]string)...)
	if err := st.sess.Exec(ctx, byName["events"], pe, progress); err != nil {
		return passResult{}, err
	}
	if err := st.sess.Exec(ctx, inc.tmpls["incr_events"], p, progress); err != nil {
		return passResult{}, err
	}
	// Cells by delta: the pinned templates run over tonight's tables of
	// the touched units, then (incr_swap) over last night's; every other
	// unit's share is in the stored cells.
	newCells, newQ, newErr, err := st.sess.FinishSQL(ctx, specs, st.tmpls, p, progress)
	if err != nil {
		return passResult{}, err
	}
	if err := st.sess.Exec(ctx, inc.tmpls["incr_swap"], p, progress); err != nil {
		return passResult{}, err
	}
	oldCells, oldQ, oldErr, err := st.sess.Results(ctx, specs, st.tmpls, p, progress)
	if err != nil {
		return passResult{}, err
	}
	if err := st.sess.Exec(ctx, inc.tmpls["incr_swap"], p, progress); err != nil {
		return passResult{}, err
	}
	base, err := readIncrCells(filepath.Join(inc.dir, prev.Gen, "cells.json"), specs)
	if err != nil {
		return passResult{}, &fallbackError{reason: "stored cells unreadable: " + err.Error()}
	}
	cells, quality, err := applyCellDelta(base, oldCells, newCells, oldQ, newQ, oldErr, newErr)
	if err != nil {
		return passResult{}, err
	}
	inc.ranIncr = true
	return passResult{cells: cells, quality: quality, perExp: map[string]error{}, ix: st.sess.Interactions, cross: st.sess.CrossMoments, filters: st.sess.FilterCounts, drill: st.sess.Drilldowns}, nil
}

// save writes the next night's state from tonight's tables (full or
// incremental pass), then points state.json at it. The previous state stays
// valid until state.json is replaced.
func (inc *incremental) save(ctx context.Context, st *groupState, specs []*expspec.Spec, date, runID string, pass passResult, progress *engine.SQLProgress) error {
	gen := "gen-" + runID
	if !stateNameRE.MatchString(runID) {
		return fmt.Errorf("run id %q cannot name a state file", runID)
	}
	if err := os.MkdirAll(filepath.Join(inc.dir, gen), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(inc.dir, "keys"), 0o700); err != nil {
		return err
	}
	var readT, readE, newT, newE []intake.InputFile
	var saveEvents, saveTraces []string
	if inc.ranIncr {
		newT, newE = inc.newT, inc.newE
		saveEvents = []string{inc.path(inc.prev.Gen, "carry")}
		saveTraces = []string{inc.path(inc.prev.Gen, "tcarry")}
	} else {
		newT, newE = st.traces, st.events
	}
	readT, readE = newT, newE
	p := engine.MergedParams(specs, readT, readE)
	for _, f := range readE {
		saveEvents = append(saveEvents, f.Abs)
	}
	for _, f := range readT {
		saveTraces = append(saveTraces, f.Abs)
	}
	p["save_event_files"], p["save_trace_files"] = saveEvents, saveTraces
	p["new_trace_files"], p["new_event_files"] = p["trace_files"], p["event_files"]
	for _, n := range append(slices.Clone(incrUnitTables), incrNightTables...) {
		p["out_"+n] = inc.path(gen, n)
	}
	genNo := int64(1)
	if inc.prev != nil {
		genNo = inc.prev.GenNo + 1
	}
	p["gen_no"] = genNo
	tk, ek := "t-"+runID+".parquet", "e-"+runID+".parquet"
	p["out_tkeys"], p["out_ekeys"] = filepath.Join(inc.dir, "keys", tk), filepath.Join(inc.dir, "keys", ek)
	if err := st.sess.Exec(ctx, inc.tmpls["incr_carry"], p, progress); err != nil {
		return err
	}
	var events engine.Rendered
	for _, t := range st.tmpls {
		if t.Name == "events" {
			events = t
		}
	}
	pe := engine.StageParams("events", p)
	pe["event_files"] = []string{inc.path(gen, "carry")}
	if err := st.sess.Exec(ctx, events, pe, progress); err != nil {
		return err
	}
	if err := st.sess.Exec(ctx, inc.tmpls["incr_save"], p, progress); err != nil {
		return err
	}
	facts, err := st.sess.Facts(ctx, inc.tmpls["incr_facts"])
	if err != nil {
		return err
	}
	next := &incrState{Format: incrementalFormat, Fingerprint: inc.fp, Date: date, EndUS: p["exp_end_us"].([]int64), Gen: gen, GenNo: genNo, Facts: facts}
	rows := facts["fact: units written"]
	if inc.ranIncr {
		next.TraceKeys = append(slices.Clone(inc.prev.TraceKeys), tk)
		next.EventKeys = append(slices.Clone(inc.prev.EventKeys), ek)
		next.Gens = append(slices.Clone(inc.prev.Gens), gen)
		next.GenRows = append(slices.Clone(inc.prev.GenRows), rows)
	} else {
		next.TraceKeys, next.EventKeys = []string{tk}, []string{ek}
		next.Gens, next.GenRows = []string{gen}, []int64{rows}
	}
	if next.needsCompaction() {
		if err := inc.compact(ctx, st, next, progress); err != nil {
			return err
		}
	}
	cb, err := encodeIncrCells(pass.cells, pass.quality)
	if err != nil {
		return err
	}
	if err := diskio.WriteAtomicMode(filepath.Join(inc.dir, gen, "cells.json"), cb, 0o600); err != nil {
		return err
	}
	for _, f := range append(slices.Clone(st.traces), st.events...) {
		next.Files = append(next.Files, incrFile{Role: f.Role, Path: f.Abs, SHA256: f.SHA256})
	}
	// The stored nights' key files were verified against their recorded
	// hashes when tonight's plan read the state (under the same lock);
	// tonight's files are hashed as written.
	next.Checksums = map[string]string{}
	for _, rel := range next.files() {
		if sum, ok := inc.prevChecksum(rel, gen); ok {
			next.Checksums[rel] = sum
			continue
		}
		sum, err := fileSHA256(filepath.Join(inc.dir, rel))
		if err != nil {
			return err
		}
		next.Checksums[rel] = sum
	}
	if next.Digest, err = next.digest(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := diskio.WriteAtomicMode(filepath.Join(inc.dir, "state.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	inc.cleanup(next)
	return nil
}

// prevChecksum is the stored night's SHA-256 of a file tonight's state
// keeps from it (a key file or an older generation's per-unit table; only
// after an incremental pass: a full night writes everything anew). The
// stored files were verified when tonight's plan read the state.
func (inc *incremental) prevChecksum(rel, gen string) (string, bool) {
	if !inc.ranIncr || strings.HasPrefix(rel, gen+string(filepath.Separator)) {
		return "", false
	}
	sum, ok := inc.prev.Checksums[rel]
	return sum, ok
}

// needsCompaction reports whether the per-unit tables have piled up: more
// than incrementalCompactAfter generations, or deltas holding more rows
// than the base.
func (s *incrState) needsCompaction() bool {
	if len(s.Gens) <= 1 {
		return false
	}
	var delta int64
	for _, n := range s.GenRows[1:] {
		delta += n
	}
	return len(s.Gens) > incrementalCompactAfter || delta > s.GenRows[0]
}

// compact rewrites the per-unit tables of every live generation (tonight's
// delta included) whole into tonight's generation, which becomes the only
// one.
func (inc *incremental) compact(ctx context.Context, st *groupState, next *incrState, progress *engine.SQLProgress) error {
	p := map[string]any{
		"st_units": inc.genPaths(next.Gens, "units"), "st_unitev": inc.genPaths(next.Gens, "unitev"), "gen_no": next.GenNo,
		"out_units": inc.path(next.Gen, "units-compact"), "out_unitev": inc.path(next.Gen, "unitev-compact"),
	}
	if err := st.sess.Exec(ctx, inc.tmpls["incr_compact"], p, progress); err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	facts, err := st.sess.Facts(ctx, inc.tmpls["incr_facts"])
	if err != nil {
		return err
	}
	for _, n := range incrUnitTables {
		if err := os.Rename(inc.path(next.Gen, n+"-compact"), inc.path(next.Gen, n)); err != nil {
			return err
		}
	}
	next.Gens, next.GenRows = []string{next.Gen}, []int64{facts["fact: units compacted"]}
	next.Facts["fact: units compacted"] = facts["fact: units compacted"]
	return nil
}

// discard removes what a failed save wrote (tonight's generation and key
// files); state.json and the files it names are left as they were.
func (inc *incremental) discard(runID string) {
	os.RemoveAll(filepath.Join(inc.dir, "gen-"+runID))
	os.Remove(filepath.Join(inc.dir, "keys", "t-"+runID+".parquet"))
	os.Remove(filepath.Join(inc.dir, "keys", "e-"+runID+".parquet"))
}

// keptState says, after a failed save, what the next night finds.
func (inc *incremental) keptState() string {
	if prev, err := readIncrState(inc.dir); err == nil {
		return "the state of " + prev.Date + " is left as it was; the next night starts from it if it still matches its inputs"
	}
	return "no state is kept, so the next night runs in full"
}

// cleanup removes the generations and key files state.json no longer names.
func (inc *incremental) cleanup(cur *incrState) {
	keep := map[string]bool{cur.Gen: true}
	for _, g := range cur.Gens {
		keep[g] = true
	}
	entries, _ := os.ReadDir(inc.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "gen-") && !keep[e.Name()] {
			os.RemoveAll(filepath.Join(inc.dir, e.Name()))
		}
	}
	keys := map[string]bool{}
	for _, k := range append(slices.Clone(cur.TraceKeys), cur.EventKeys...) {
		keys[k] = true
	}
	entries, _ = os.ReadDir(filepath.Join(inc.dir, "keys"))
	for _, e := range entries {
		if !keys[e.Name()] {
			os.Remove(filepath.Join(inc.dir, "keys", e.Name()))
		}
	}
}

// report logs, per job, whether the night ran incrementally and, if not,
// why, and keeps it for the Outcome.
func (inc *incremental) report(opts Options, jobs []*job) {
	mode := "incremental"
	if !inc.ranIncr {
		mode = "full: " + inc.reason
	}
	for _, j := range jobs {
		j.mode = mode
		level := slog.LevelInfo
		if inc.damaged {
			level = slog.LevelWarn
		}
		j.log.Log(context.Background(), level, "incremental", "mode", map[bool]string{true: "incremental", false: "full"}[inc.ranIncr], "reason", inc.reason)
	}
}

// allExact reports whether every experiment of the pass has its cells (no
// per-experiment error such as an overflow): only then is a state kept.
func (p passResult) allExact() bool {
	for _, err := range p.perExp {
		if err != nil {
			return false
		}
	}
	return true
}

// reopen replaces the group's session after an incremental pass fell back,
// so that the full pass starts from no tables.
func (st *groupState) reopen(ctx context.Context, opts Options) error {
	st.sess.Close()
	sess, err := engine.OpenSession(ctx, opts.Engine, opts.Queries)
	if err != nil {
		return err
	}
	st.sess = sess
	return nil
}

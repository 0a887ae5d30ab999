package replay

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// Comparing a run with numbers observed elsewhere (a dashboard snapshot).
//
// The snapshot is a CSV file in long format, one number per line, with this
// header (columns in any order, no others):
//
//	experiment,cohort,metric,variant,column,value
//
// experiment, cohort, metric and variant identify a results.csv row;
// column is any results.csv column other than those four (n_control,
// mean_variant, abs_effect, p_value, ..., and also status or srm, which are
// compared as text); value is the observed value, with an empty value
// meaning "undefined" (results.csv's empty field). Lines of other
// experiments are skipped and counted, so one dashboard export can serve
// every run. A (row, column) may appear once.
//
// Numbers match when |ours − theirs| ≤ the column's tolerance: abs:X means
// X, rel:X means X · max(|ours|, |theirs|), exact means equal text.
// DefaultTolerance applies to columns without their own.

// SnapshotHeader is the header of a snapshot CSV.
var SnapshotHeader = []string{"experiment", "cohort", "metric", "variant", "column", "value"}

// Tolerance is how far a number may be from the snapshot's.
type Tolerance struct {
	Kind  string  // "abs", "rel" or "exact"
	Value float64 // the bound for abs and rel
}

// DefaultTolerance is rel:1e-9: agreement to about nine significant
// digits, tight enough that any real change shows, loose enough for a
// last-bit difference between platforms.
var DefaultTolerance = Tolerance{Kind: "rel", Value: 1e-9}

func (t Tolerance) String() string {
	if t.Kind == "exact" {
		return "exact"
	}
	return t.Kind + ":" + strconv.FormatFloat(t.Value, 'g', -1, 64)
}

// ParseTolerance parses COLUMN=abs:X, COLUMN=rel:X or COLUMN=exact; the
// column "*" sets the default.
func ParseTolerance(s string) (string, Tolerance, error) {
	col, spec, ok := strings.Cut(s, "=")
	if !ok || col == "" {
		return "", Tolerance{}, fmt.Errorf("%w: --tol %q: want COLUMN=abs:X, COLUMN=rel:X or COLUMN=exact", expspec.ErrUsage, s)
	}
	if spec == "exact" {
		return col, Tolerance{Kind: "exact"}, nil
	}
	kind, v, ok := strings.Cut(spec, ":")
	x, err := strconv.ParseFloat(v, 64)
	if !ok || (kind != "abs" && kind != "rel") || err != nil || !(x >= 0) || math.IsInf(x, 0) {
		return "", Tolerance{}, fmt.Errorf("%w: --tol %q: want COLUMN=abs:X, COLUMN=rel:X (X a finite number >= 0) or COLUMN=exact", expspec.ErrUsage, s)
	}
	return col, Tolerance{Kind: kind, Value: x}, nil
}

// Tolerances holds the default and per-column tolerances.
type Tolerances struct {
	Default   Tolerance
	PerColumn map[string]Tolerance
}

func (t Tolerances) of(col string) Tolerance {
	if c, ok := t.PerColumn[col]; ok {
		return c
	}
	if t.Default.Kind == "" {
		return DefaultTolerance
	}
	return t.Default
}

// withinTolerance reports whether ours and theirs agree under tol. Equal text
// always agrees; otherwise both must be numbers within the tolerance.
func withinTolerance(ours, theirs string, tol Tolerance) bool {
	if ours == theirs {
		return true
	}
	if tol.Kind == "exact" {
		return false
	}
	a, errA := strconv.ParseFloat(ours, 64)
	b, errB := strconv.ParseFloat(theirs, 64)
	if errA != nil || errB != nil || math.IsNaN(a) || math.IsNaN(b) {
		return false
	}
	d := math.Abs(a - b)
	if tol.Kind == "abs" {
		return d <= tol.Value
	}
	return d <= tol.Value*math.Max(math.Abs(a), math.Abs(b))
}

// AgainstDiff is one number that does not match.
type AgainstDiff struct {
	Experiment, Cohort, Metric, Variant, Column string
	Ours, Theirs                                string
	Tolerance                                   Tolerance
	Line                                        int // in the snapshot
}

// AgainstReport is the outcome of CompareAgainst.
type AgainstReport struct {
	Experiment, NominalDate, RunID string
	Snapshot                       string
	Compared                       int // numbers compared
	OtherExperiments               int // snapshot lines skipped
	Diffs                          []AgainstDiff
	// Missing are snapshot rows (experiment / cohort / metric / variant)
	// that results.csv does not have, with the lines that name them.
	Missing []string
}

// OK reports whether every number matched and no row was missing.
func (r *AgainstReport) OK() bool { return len(r.Diffs) == 0 && len(r.Missing) == 0 && r.Compared > 0 }

// AgainstMismatchError is returned when the run disagrees with the
// snapshot. It wraps publish.ErrReplayMismatch (exit code 70).
type AgainstMismatchError struct{ Report *AgainstReport }

func (e *AgainstMismatchError) Error() string {
	r := e.Report
	if r.Compared == 0 && len(r.Missing) == 0 {
		return fmt.Sprintf("%s has no line for experiment %s (%d lines of other experiments)", r.Snapshot, r.Experiment, r.OtherExperiments)
	}
	msg := fmt.Sprintf("run %s (%s %s) disagrees with %s: %d of %d numbers differ, %d snapshot rows missing from results.csv", r.RunID, r.Experiment, r.NominalDate, r.Snapshot, len(r.Diffs), r.Compared, len(r.Missing))
	if len(r.Diffs) > 0 {
		d := r.Diffs[0]
		msg += fmt.Sprintf("; first: %s / %s / %s %s ours %s, theirs %s", d.Cohort, d.Metric, d.Variant, d.Column, replayEmptyDash(d.Ours), replayEmptyDash(d.Theirs))
	}
	return msg
}

func (e *AgainstMismatchError) Unwrap() error { return publish.ErrReplayMismatch }

// CompareAgainst compares the results.csv beside the manifest at
// manifestPath with the snapshot CSV at snapshotPath. results.csv must still
// match the SHA-256 its manifest recorded (else a
// *publish.OutputsModifiedError). It returns the report and, when a number
// differs or a snapshot row is missing, an *AgainstMismatchError. A
// malformed snapshot is an expspec.ErrUsage error (exit 78).
func CompareAgainst(manifestPath, snapshotPath string, tols Tolerances) (*AgainstReport, error) {
	m, _, err := publish.ReadManifestFile(manifestPath)
	if err != nil {
		return nil, err
	}
	results, err := verifiedOutput(m, manifestPath, "results.csv")
	if err != nil {
		return nil, err
	}
	table, err := readResultsCSV(results)
	if err != nil {
		return nil, &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("results.csv: %w", err)}
	}
	f, _, err := diskio.OpenRegular(snapshotPath)
	if err != nil {
		return nil, fmt.Errorf("%w: --against: %v", expspec.ErrUsage, err)
	}
	defer f.Close()
	rep := &AgainstReport{Experiment: m.Experiment, NominalDate: m.NominalDate, Snapshot: snapshotPath, RunID: manifestRunID(m)}
	if err := compareSnapshot(rep, table, f, tols); err != nil {
		return nil, err
	}
	if !rep.OK() {
		return rep, &AgainstMismatchError{Report: rep}
	}
	return rep, nil
}

// verifiedOutput reads one output beside the manifest and checks it against
// the recorded SHA-256: an edited output is a *publish.OutputsModifiedError
// (exit 70), as in Replay.
func verifiedOutput(m *publish.Manifest, manifestPath, name string) ([]byte, error) {
	files, err := publish.VerifyOutputs(m, manifestPath, name)
	if err != nil {
		return nil, err
	}
	return files[name], nil
}

func compareSnapshot(rep *AgainstReport, table *csvTable, r io.Reader, tols Tolerances) error {
	for col := range tols.PerColumn {
		if _, ok := table.col[col]; !ok || slices.Contains(resultKeyColumns, col) || col == "experiment" {
			return fmt.Errorf("%w: --tol %s: not a results.csv value column", expspec.ErrUsage, col)
		}
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(SnapshotHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%w: %s: header: %v", expspec.ErrUsage, rep.Snapshot, err)
	}
	idx := map[string]int{}
	for i, h := range head {
		idx[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, h := range SnapshotHeader {
		if _, ok := idx[h]; !ok {
			return fmt.Errorf("%w: %s: header %q lacks %q; want %s", expspec.ErrUsage, rep.Snapshot, strings.Join(head, ","), h, strings.Join(SnapshotHeader, ","))
		}
	}
	seen := map[string]int{}
	missing := map[string][]int{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", expspec.ErrUsage, rep.Snapshot, err)
		}
		get := func(k string) string { return rec[idx[k]] }
		exp, coh, met, va, col, val := get("experiment"), get("cohort"), get("metric"), get("variant"), get("column"), get("value")
		if exp != rep.Experiment {
			rep.OtherExperiments++
			continue
		}
		ci, ok := table.col[col]
		if !ok || slices.Contains(resultKeyColumns, col) || col == "experiment" {
			return fmt.Errorf("%w: %s: line %d: column %q is not a results.csv value column", expspec.ErrUsage, rep.Snapshot, line, col)
		}
		key := coh + "\x00" + met + "\x00" + va
		if prev, dup := seen[key+"\x00"+col]; dup {
			return fmt.Errorf("%w: %s: line %d repeats line %d (%s / %s / %s %s)", expspec.ErrUsage, rep.Snapshot, line, prev, coh, met, va, col)
		}
		seen[key+"\x00"+col] = line
		row, ok := table.rows[key]
		if !ok {
			missing[exp+" / "+coh+" / "+met+" / "+va] = append(missing[exp+" / "+coh+" / "+met+" / "+va], line)
			continue
		}
		rep.Compared++
		tol := tols.of(col)
		if !withinTolerance(row[ci], val, tol) {
			rep.Diffs = append(rep.Diffs, AgainstDiff{Experiment: exp, Cohort: coh, Metric: met, Variant: va, Column: col,
				Ours: row[ci], Theirs: val, Tolerance: tol, Line: line})
		}
	}
	sort.SliceStable(rep.Diffs, func(i, j int) bool { return rep.Diffs[i].Line < rep.Diffs[j].Line })
	for _, k := range slices.Sorted(maps.Keys(missing)) {
		lines := missing[k]
		rep.Missing = append(rep.Missing, fmt.Sprintf("%s (snapshot line %d, %d values)", k, lines[0], len(lines)))
	}
	return nil
}

// WriteText writes the comparison for a person: one line when everything
// matched, else every difference and missing row.
func (r *AgainstReport) WriteText(w io.Writer) error {
	var b bytes.Buffer
	if r.OK() {
		fmt.Fprintf(&b, "against ok: %d numbers of run %s (%s %s) match %s within tolerance", r.Compared, r.RunID, r.Experiment, r.NominalDate, r.Snapshot)
		if r.OtherExperiments > 0 {
			fmt.Fprintf(&b, " (%d lines of other experiments skipped)", r.OtherExperiments)
		}
		fmt.Fprintln(&b)
		_, err := w.Write(b.Bytes())
		return err
	}
	fmt.Fprintf(&b, "against differs: run %s (%s %s) vs %s: %d of %d numbers differ, %d snapshot rows missing from results.csv\n",
		r.RunID, r.Experiment, r.NominalDate, r.Snapshot, len(r.Diffs), r.Compared, len(r.Missing))
	if len(r.Diffs) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  line\texperiment\tcohort\tmetric\tvariant\tcolumn\tours\ttheirs\tdifference\ttolerance")
		for _, d := range r.Diffs {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Line, d.Experiment, d.Cohort, d.Metric, d.Variant, d.Column,
				replayEmptyDash(d.Ours), replayEmptyDash(d.Theirs), snapshotDifference(d.Ours, d.Theirs), d.Tolerance)
		}
		tw.Flush()
	}
	for _, m := range r.Missing {
		fmt.Fprintf(&b, "  missing from results.csv: %s\n", m)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func snapshotDifference(ours, theirs string) string {
	a, errA := strconv.ParseFloat(ours, 64)
	b, errB := strconv.ParseFloat(theirs, 64)
	if errA != nil || errB != nil {
		return "-"
	}
	return strconv.FormatFloat(a-b, 'g', 6, 64)
}

// DefaultSnapshotColumns are the results.csv columns a snapshot export
// holds unless told otherwise: every number a dashboard shows.
var DefaultSnapshotColumns = []string{
	"n_control", "n_variant", "mean_control", "mean_variant", "sd_control", "sd_variant",
	"abs_effect", "abs_ci_low", "abs_ci_high", "rel_effect", "rel_ci_low", "rel_ci_high",
	"p_value", "p_value_adjusted", "srm_p_value",
}

// ExportSnapshot writes the results.csv beside the manifest (checked against
// its SHA-256) in the snapshot layout, rows in results.csv order, columns in
// the order given (DefaultSnapshotColumns when empty).
func ExportSnapshot(manifestPath string, columns []string, w io.Writer) error {
	m, _, err := publish.ReadManifestFile(manifestPath)
	if err != nil {
		return err
	}
	results, err := verifiedOutput(m, manifestPath, "results.csv")
	if err != nil {
		return err
	}
	t, err := readResultsCSV(results)
	if err != nil {
		return &publish.ManifestError{File: manifestPath, Err: fmt.Errorf("results.csv: %w", err)}
	}
	if len(columns) == 0 {
		columns = DefaultSnapshotColumns
	}
	for _, c := range columns {
		if _, ok := t.col[c]; !ok || slices.Contains(resultKeyColumns, c) || c == "experiment" {
			return fmt.Errorf("%w: --columns: %q is not a results.csv value column", expspec.ErrUsage, c)
		}
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(SnapshotHeader); err != nil {
		return err
	}
	for _, k := range t.keys {
		row, p := t.rows[k], t.parts[k]
		for _, c := range columns {
			if err := cw.Write([]string{m.Experiment, p[0], p[1], p[2], c, row[t.col[c]]}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadRunOutput reads the manifest at manifestPath and one of the outputs
// beside it, checked against the SHA-256 the manifest records (a mismatch
// is a *publish.OutputsModifiedError: the run folder was modified; a
// missing output is a *publish.ManifestError).
func ReadRunOutput(manifestPath, name string) (*publish.Manifest, []byte, error) {
	m, _, err := publish.ReadManifestFile(manifestPath)
	if err != nil {
		return nil, nil, err
	}
	b, err := verifiedOutput(m, manifestPath, name)
	if err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

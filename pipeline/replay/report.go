package replay

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/verity-analytics/verity/pipeline/publish"
)

// ReplayReport is the outcome of a replay that ran.
type ReplayReport struct {
	ManifestPath string
	Old, New     *publish.Manifest
	// NewDir is the rerun's output folder, empty when it was temporary.
	NewDir string
	// Pinned lists the applied --pin overrides as name=version, sorted.
	Pinned  []string
	Outputs []OutputComparison
	// Extra are outputs the rerun wrote that the old manifest does not list.
	Extra []string
	// Cells are the differing results.csv numbers, sorted by cohort, metric,
	// variant and column order, at most MaxDiffs of CellsTotal.
	Cells      []CellDiff
	CellsTotal int
	// RowsOnlyOld and RowsOnlyNew are result rows present on one side only.
	RowsOnlyOld, RowsOnlyNew []string
	// Quality and Decision hold the differing leaves of quality.json and
	// decisions.json (paths such as counts.event_attributed or verdict).
	Quality, Decision           []ValueDiff
	QualityTotal, DecisionTotal int
	Causes                      []string
	Notes                       []string
}

// OutputComparison is one output of the old run against the rerun.
type OutputComparison struct {
	Name      string
	OldSHA256 string
	NewSHA256 string // empty when the rerun did not write it
	Identical bool
}

// CellDiff is one differing results.csv number.
type CellDiff struct {
	Cohort, Metric, Variant, Column string
	Old, New                        string
}

// ValueDiff is one differing JSON leaf.
type ValueDiff struct {
	Path, Old, New string
}

// Identical reports whether every output of the old run was reproduced
// byte for byte.
func (r *ReplayReport) Identical() bool {
	for _, o := range r.Outputs {
		if !o.Identical {
			return false
		}
	}
	return true
}

// oldRunID is the replayed run's id, or "(unknown)".
func (r *ReplayReport) oldRunID() string {
	return manifestRunID(r.Old)
}

// Summary is the one-line outcome.
func (r *ReplayReport) Summary() string {
	if r.Identical() {
		s := fmt.Sprintf("replay identical: %d outputs byte-identical to run %s (%s %s)", len(r.Outputs), r.oldRunID(), r.Old.Experiment, r.Old.NominalDate)
		if len(r.Extra) > 0 {
			s += fmt.Sprintf("; the rerun also wrote %s, which the old run did not", strings.Join(r.Extra, ", "))
		}
		return s
	}
	n := 0
	for _, o := range r.Outputs {
		if !o.Identical {
			n++
		}
	}
	return fmt.Sprintf("replay differs: %d of %d outputs of run %s (%s %s) changed, %d numbers in results.csv", n, len(r.Outputs), r.oldRunID(), r.Old.Experiment, r.Old.NominalDate, r.CellsTotal)
}

// ReplayMismatchError is returned by Replay when an output differs. The
// report says what and why. It wraps publish.ErrReplayMismatch (exit code 70).
type ReplayMismatchError struct{ Report *ReplayReport }

func (e *ReplayMismatchError) Error() string {
	msg := e.Report.Summary()
	if len(e.Report.Causes) > 0 {
		msg += "; causes: " + strings.Join(e.Report.Causes, "; ")
	}
	return msg
}

func (e *ReplayMismatchError) Unwrap() error { return publish.ErrReplayMismatch }

// WriteText writes the report for a person: the outcome, then for a
// difference the outputs, causes, and the bounded, sorted diffs.
func (r *ReplayReport) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintln(&b, r.Summary())
	if r.Identical() {
		_, err := w.Write(b.Bytes())
		return err
	}
	r.writeRerunHeader(&b)
	r.writeOutputs(&b)
	writeBullets(&b, "causes", r.Causes)
	r.writeResultsDiff(&b)
	writeValueDiffs(&b, "quality.json", r.Quality, r.QualityTotal)
	writeValueDiffs(&b, "decisions.json", r.Decision, r.DecisionTotal)
	if len(r.Notes) > 0 {
		writeBullets(&b, "notes", r.Notes)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeRerunHeader writes which manifest was replayed, where the rerun
// went and the --pin overrides.
func (r *ReplayReport) writeRerunHeader(b *bytes.Buffer) {
	newRun := "(unknown)"
	if r.New.Volatile != nil {
		newRun = r.New.Volatile.RunID
	}
	fmt.Fprintf(b, "  manifest  %s\n", r.ManifestPath)
	where := "a temporary folder, removed"
	if r.NewDir != "" {
		where = r.NewDir
	}
	fmt.Fprintf(b, "  rerun     run %s in %s\n", newRun, where)
	if len(r.Pinned) > 0 {
		fmt.Fprintf(b, "  pinned    %s\n", strings.Join(r.Pinned, " "))
	}
}

// writeOutputs writes the table of outputs: each one's state and its old
// and new hash prefixes.
func (r *ReplayReport) writeOutputs(b *bytes.Buffer) {
	fmt.Fprintln(b, "\noutputs")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, o := range r.Outputs {
		state := "identical"
		if !o.Identical {
			state = "differs"
			if o.NewSHA256 == "" {
				state = "not written by the rerun"
			}
		}
		nh := o.NewSHA256
		if nh == "" {
			nh = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Name, state, replayShortHash(o.OldSHA256), replayShortHash(nh))
	}
	tw.Flush()
}

// writeBullets writes a heading after a blank line, then one "  - " line
// per item.
func writeBullets(b *bytes.Buffer, heading string, items []string) {
	fmt.Fprintln(b, "\n"+heading)
	for _, s := range items {
		fmt.Fprintf(b, "  - %s\n", s)
	}
}

// writeResultsDiff writes the differing results.csv numbers as a table,
// then the rows only one side has; nothing when results.csv matched.
func (r *ReplayReport) writeResultsDiff(b *bytes.Buffer) {
	if !(r.CellsTotal > 0 || len(r.RowsOnlyOld) > 0 || len(r.RowsOnlyNew) > 0) {
		return
	}
	fmt.Fprintf(b, "\nresults.csv: %d numbers differ", r.CellsTotal)
	if len(r.Cells) < r.CellsTotal {
		fmt.Fprintf(b, " (the first %d are shown)", len(r.Cells))
	}
	fmt.Fprintln(b)
	if len(r.Cells) > 0 {
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  cohort\tmetric\tvariant\tcolumn\told\tnew")
		for _, c := range r.Cells {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Cohort, c.Metric, c.Variant, c.Column, replayEmptyDash(c.Old), replayEmptyDash(c.New))
		}
		tw.Flush()
	}
	for _, k := range r.RowsOnlyOld {
		fmt.Fprintf(b, "  row %s: only in the old run\n", k)
	}
	for _, k := range r.RowsOnlyNew {
		fmt.Fprintf(b, "  row %s: only in the rerun\n", k)
	}
}

// writeValueDiffs writes the differing leaves of one JSON output as a
// table, bounded as the report holds them; nothing when none differ.
func writeValueDiffs(b *bytes.Buffer, name string, d []ValueDiff, total int) {
	if total == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s: %d values differ", name, total)
	if len(d) < total {
		fmt.Fprintf(b, " (the first %d are shown)", len(d))
	}
	fmt.Fprintln(b)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  field\told\tnew")
	for _, v := range d {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Path, v.Old, v.New)
	}
	tw.Flush()
}

// replayEmptyDash shows an empty results.csv or snapshot field as "(empty)".
func replayEmptyDash(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// replayShortHash is the first 16 characters of a hash, as the outputs
// table shows it.
func replayShortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

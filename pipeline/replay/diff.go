package replay

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// compareOutputs fills the output comparison and, for differing outputs,
// the detailed diffs. oldDir holds the old run's files, newDir the rerun's.
func compareOutputs(rep *ReplayReport, oldDir, newDir string, maxDiffs int) {
	oldFiles := map[string][]byte{}
	newFiles := map[string][]byte{}
	listed := map[string]bool{}
	for _, o := range rep.Old.Outputs {
		listed[o.Name] = true
		c := OutputComparison{Name: o.Name, OldSHA256: o.SHA256}
		if h, b, err := publish.ReplayFileSHA256(filepath.Join(newDir, o.Name)); err == nil {
			c.NewSHA256 = h
			newFiles[o.Name] = b
		}
		c.Identical = c.NewSHA256 == o.SHA256
		rep.Outputs = append(rep.Outputs, c)
		if c.Identical {
			continue
		}
		h, b, err := publish.ReplayFileSHA256(filepath.Join(oldDir, o.Name))
		switch {
		case err != nil:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s of the old run is not readable beside its manifest (%v); its numbers cannot be diffed", o.Name, err))
		case h != o.SHA256:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s beside the manifest has sha256 %s, not the recorded %s: the old run folder was modified; its numbers are not diffed", o.Name, h, o.SHA256))
		default:
			oldFiles[o.Name] = b
		}
	}
	for _, o := range rep.New.Outputs {
		if !listed[o.Name] {
			rep.Extra = append(rep.Extra, o.Name)
		}
	}
	sort.Strings(rep.Extra)

	if o, n := oldFiles["results.csv"], newFiles["results.csv"]; o != nil && n != nil {
		if err := diffResults(rep, o, n, maxDiffs); err != nil {
			rep.Notes = append(rep.Notes, "results.csv could not be diffed: "+err.Error())
		}
	}
	if o, n := oldFiles["quality.json"], newFiles["quality.json"]; o != nil && n != nil {
		d, err := diffJSON(o, n)
		if err != nil {
			rep.Notes = append(rep.Notes, "quality.json could not be diffed: "+err.Error())
		}
		rep.QualityTotal = len(d)
		rep.Quality = replayBoundDiffs(d, maxDiffs)
	}
	if o, n := oldFiles["decisions.json"], newFiles["decisions.json"]; o != nil && n != nil {
		d, err := diffJSON(o, n)
		if err != nil {
			rep.Notes = append(rep.Notes, "decisions.json could not be diffed: "+err.Error())
		}
		// The verdict and its rule first, then the evidence.
		sort.SliceStable(d, func(i, j int) bool { return replayDecisionRank(d[i].Path) < replayDecisionRank(d[j].Path) })
		rep.DecisionTotal = len(d)
		rep.Decision = replayBoundDiffs(d, maxDiffs)
	}
}

// replayDecisionRank orders decisions.json diffs: verdict, rule, reason,
// then the evidence.
func replayDecisionRank(path string) int {
	switch path {
	case "verdict":
		return 0
	case "rule":
		return 1
	case "reason":
		return 2
	}
	return 3
}

// replayBoundDiffs keeps the first n diffs.
func replayBoundDiffs(d []ValueDiff, n int) []ValueDiff {
	if len(d) > n {
		return d[:n]
	}
	return d
}

// resultKeyColumns identify a results.csv row.
var resultKeyColumns = []string{"cohort", "metric", "variant"}

// csvTable is a results.csv indexed by its cohort / metric / variant key.
type csvTable struct {
	header []string
	col    map[string]int
	rows   map[string][]string // key -> record
	keys   []string            // in file order
	parts  map[string][3]string
}

// readResultsCSV reads a results.csv into a csvTable; an empty file, a
// missing key column or a repeated row is an error.
func readResultsCSV(b []byte) (*csvTable, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 0
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("empty file")
	}
	t := &csvTable{header: recs[0], col: map[string]int{}, rows: map[string][]string{}, parts: map[string][3]string{}}
	for i, h := range t.header {
		t.col[h] = i
	}
	for _, k := range resultKeyColumns {
		if _, ok := t.col[k]; !ok {
			return nil, fmt.Errorf("no %s column", k)
		}
	}
	for i, rec := range recs[1:] {
		p := [3]string{rec[t.col["cohort"]], rec[t.col["metric"]], rec[t.col["variant"]]}
		key := p[0] + "\x00" + p[1] + "\x00" + p[2]
		if _, dup := t.rows[key]; dup {
			return nil, fmt.Errorf("line %d: row %s / %s / %s appears twice", i+2, p[0], p[1], p[2])
		}
		t.rows[key] = rec
		t.parts[key] = p
		t.keys = append(t.keys, key)
	}
	return t, nil
}

// diffResults compares two results.csv files cell by cell.
func diffResults(rep *ReplayReport, oldB, newB []byte, maxDiffs int) error {
	o, err := readResultsCSV(oldB)
	if err != nil {
		return fmt.Errorf("old: %w", err)
	}
	n, err := readResultsCSV(newB)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	var cols []string
	for _, h := range o.header {
		if _, ok := n.col[h]; ok && !slices.Contains(resultKeyColumns, h) {
			cols = append(cols, h)
		}
	}
	for _, h := range o.header {
		if _, ok := n.col[h]; !ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("results.csv column %s is gone in the rerun", h))
		}
	}
	for _, h := range n.header {
		if _, ok := o.col[h]; !ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("results.csv column %s is new in the rerun", h))
		}
	}
	keys := append([]string{}, o.keys...)
	for _, k := range n.keys {
		if _, ok := o.rows[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	label := func(p [3]string) string { return p[0] + " / " + p[1] + " / " + p[2] }
	for _, k := range keys {
		or, inOld := o.rows[k]
		nr, inNew := n.rows[k]
		switch {
		case !inNew:
			rep.RowsOnlyOld = append(rep.RowsOnlyOld, label(o.parts[k]))
			continue
		case !inOld:
			rep.RowsOnlyNew = append(rep.RowsOnlyNew, label(n.parts[k]))
			continue
		}
		p := o.parts[k]
		for _, c := range cols {
			ov, nv := or[o.col[c]], nr[n.col[c]]
			if ov == nv {
				continue
			}
			rep.CellsTotal++
			if len(rep.Cells) < maxDiffs {
				rep.Cells = append(rep.Cells, CellDiff{Cohort: p[0], Metric: p[1], Variant: p[2], Column: c, Old: ov, New: nv})
			}
		}
	}
	return nil
}

// diffJSON flattens two JSON documents to their leaves and returns the
// leaves that differ, sorted by path. Array elements that are objects with
// a "name" (or "cohort") field are addressed by it, so that an inserted
// check does not shift every later one.
func diffJSON(oldB, newB []byte) ([]ValueDiff, error) {
	var ov, nv any
	if err := json.Unmarshal(oldB, &ov); err != nil {
		return nil, fmt.Errorf("old: %w", err)
	}
	if err := json.Unmarshal(newB, &nv); err != nil {
		return nil, fmt.Errorf("new: %w", err)
	}
	o, n := map[string]string{}, map[string]string{}
	analysis.FlattenJSON("", ov, o)
	analysis.FlattenJSON("", nv, n)
	paths := map[string]bool{}
	for p := range o {
		paths[p] = true
	}
	for p := range n {
		paths[p] = true
	}
	var out []ValueDiff
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		a, inO := o[p]
		b, inN := n[p]
		if inO && inN && a == b {
			continue
		}
		if !inO {
			a = "(absent)"
		}
		if !inN {
			b = "(absent)"
		}
		out = append(out, ValueDiff{Path: p, Old: a, New: b})
	}
	return out, nil
}

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// verityUnclassified is how results.csv labels the units whose persona is
// not a taxonomy leaf; the reference query calls them '*'.
const verityUnclassified = "_unclassified"

// cellKey names one cohort × variant × metric.
type cellKey struct{ Cohort, Variant, Metric string }

// arm is what results.csv says about one cell: n, mean and standard
// deviation of the per-unit values.
type arm struct {
	N        int64
	Mean, SD float64
}

// readResults reads the per-cell n, mean and sd of one experiment's
// results.csv under out (each cell appears once per treatment row; the
// copies are identical).
func readResults(out, experiment string) (map[cellKey]arm, error) {
	files, _ := filepath.Glob(filepath.Join(out, experiment, "*", "results.csv"))
	if len(files) != 1 {
		return nil, fmt.Errorf("want one results.csv for %s under %s, found %d", experiment, out, len(files))
	}
	f, err := os.Open(files[0])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files[0], err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no rows", files[0])
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"cohort", "metric", "variant", "control", "n_control", "n_variant", "mean_control", "mean_variant", "sd_control", "sd_variant"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("%s: no column %q", files[0], h)
		}
	}
	cells := map[cellKey]arm{}
	for _, r := range recs[1:] {
		get := func(h string) string { return r[col[h]] }
		cohort := get("cohort")
		if cohort == verityUnclassified {
			cohort = "*"
		}
		for _, side := range []struct{ variant, suffix string }{{get("control"), "_control"}, {get("variant"), "_variant"}} {
			n, err1 := strconv.ParseInt(get("n"+side.suffix), 10, 64)
			mean, err2 := parseOptFloat(get("mean" + side.suffix))
			sd, err3 := parseOptFloat(get("sd" + side.suffix))
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("%s: bad numbers in row %v", files[0], r)
			}
			cells[cellKey{cohort, side.variant, get("metric")}] = arm{N: n, Mean: mean, SD: sd}
		}
	}
	return cells, nil
}

func parseOptFloat(s string) (float64, error) {
	if s == "" {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// parseNaive reads the reference query's tab-separated output.
func parseNaive(b []byte) ([]naiveCell, error) {
	var out []naiveCell
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 6 {
			return nil, fmt.Errorf("naive output: bad line %q", sc.Text())
		}
		n, err1 := strconv.ParseInt(p[3], 10, 64)
		s, err2 := strconv.ParseFloat(p[4], 64)
		s2, err3 := strconv.ParseFloat(p[5], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("naive output: bad numbers in %q", sc.Text())
		}
		out = append(out, naiveCell{Cohort: p[0], Variant: p[1], Metric: p[2], N: n, Sum: s, SumSq: s2})
	}
	return out, sc.Err()
}

// agreement is the outcome of comparing Verity's cells with the reference
// query's.
type agreement struct {
	Cells    int      // cells compared
	Mismatch []string // one line per disagreeing cell
	// Example is one compared cell, spelled out for the report.
	Example string
}

// compare checks every cell of results.csv (leaves, '*' and (all)) against
// the reference query: n exactly, the mean to a relative 1e-9 (Verity sums
// exact fixed-point integers, the reference query sums doubles) and the
// standard deviation to 1e-6 (the reference's sum of squares loses digits to
// cancellation).
func compare(verity map[cellKey]arm, naive []naiveCell) agreement {
	type acc struct {
		n       int64
		sum, s2 float64
	}
	ref := map[cellKey]acc{}
	for _, c := range naive {
		for _, cohort := range []string{c.Cohort, "(all)"} {
			k := cellKey{cohort, c.Variant, c.Metric}
			a := ref[k]
			a.n += c.N
			a.sum += c.Sum
			a.s2 += c.SumSq
			ref[k] = a
		}
	}
	var ag agreement
	keys := sortedCellKeys(verity)
	for _, k := range keys {
		v := verity[k]
		ag.Cells++
		r, ok := ref[k]
		if !ok {
			ag.Mismatch = append(ag.Mismatch, fmt.Sprintf("%v: not in the reference result", k))
			continue
		}
		n := float64(r.n)
		mean := r.sum / n
		sd := math.Sqrt((n*r.s2 - r.sum*r.sum) / (n * (n - 1)))
		switch {
		case r.n != v.N:
			ag.Mismatch = append(ag.Mismatch, fmt.Sprintf("%v: n verity %d, reference %d", k, v.N, r.n))
		case !near(v.Mean, mean, 1e-9):
			ag.Mismatch = append(ag.Mismatch, fmt.Sprintf("%v: mean verity %v, reference %v", k, v.Mean, mean))
		case !near(v.SD, sd, 1e-6):
			ag.Mismatch = append(ag.Mismatch, fmt.Sprintf("%v: sd verity %v, reference %v", k, v.SD, sd))
		}
		if k.Cohort == "(all)" && ag.Example == "" && strings.HasPrefix(k.Metric, "revenue") {
			ag.Example = fmt.Sprintf("%s/%s/%s: n %d = %d, Σx %.6f (verity n·mean) vs %.6f (reference)",
				k.Cohort, k.Variant, k.Metric, v.N, r.n, v.Mean*float64(v.N), r.sum)
		}
	}
	for k := range ref {
		if _, ok := verity[k]; !ok {
			ag.Mismatch = append(ag.Mismatch, fmt.Sprintf("%v: only in the reference result", k))
		}
	}
	slices.Sort(ag.Mismatch)
	return ag
}

func near(a, b, rel float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) || a == b
}

func sortedCellKeys(m map[cellKey]arm) []cellKey {
	keys := make([]cellKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b cellKey) int {
		return cmp.Or(cmp.Compare(a.Cohort, b.Cohort), cmp.Compare(a.Variant, b.Variant), cmp.Compare(a.Metric, b.Metric))
	})
	return keys
}

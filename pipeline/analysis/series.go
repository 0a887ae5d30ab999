package analysis

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
)

// The time series of an experiment: the cumulative effect and interval of
// each cohort × metric × variant on every night of the window so far,
// built from the earlier nights' committed releases and tonight's. An
// earlier night is read only through its manifest: the manifest names its
// results.csv by SHA-256, and the bytes read must have that hash, so the
// series is a function of released files only (in a private run, the
// noisy release: free post-processing). A night whose results.csv does
// not match its manifest (edited, truncated, replaced), or whose manifest
// does not parse or belongs to another experiment or night, is excluded
// and listed with the reason, never silently used or dropped; a night
// without a committed run is a gap. The nights used and their hashes are
// recorded in the manifest (series_history); a replay rebuilds the same
// history from the replayed run's own timeseries.csv (checked against its
// manifest like every output), whose released rows carry each night's
// results hash, so it needs neither the earlier folders nor what they
// hold now.

// SeriesRelease is an earlier night used by the series and the SHA-256
// of its results.csv.
type SeriesRelease struct {
	Night         string `json:"night"`
	ResultsSHA256 string `json:"results_sha256"`
}

// SeriesExclusion is an earlier night with a committed run that the
// series could not use, and why.
type SeriesExclusion struct {
	Night  string `json:"night"`
	Reason string `json:"reason"`
}

// SeriesHistory is the earlier nights a series was built from, as
// recorded in the manifest, with the bytes read (not recorded).
type SeriesHistory struct {
	Releases []SeriesRelease   `json:"releases"`
	Excluded []SeriesExclusion `json:"excluded,omitempty"`
	// records holds each used night's rows: key (cohort, metric,
	// variant) → the seriesColumns fields.
	records map[string]map[string][]string
}

// Empty reports whether no earlier night had a committed run: then no
// series is published (the first night has nothing to compare with).
func (h *SeriesHistory) Empty() bool {
	return h == nil || len(h.Releases)+len(h.Excluded) == 0
}

// committedNights lists the night folders of expDir (YYYY-MM-DD names)
// from the window's first day up to, not including, date, in order.
func committedNights(expDir, windowStart, date string) ([]string, error) {
	entries, err := os.ReadDir(expDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	first := windowStart
	if len(first) > 10 {
		first = first[:10]
	}
	var nights []string
	for _, e := range entries {
		n := e.Name()
		if _, err := time.Parse(time.DateOnly, n); err != nil || n < first || n >= date {
			continue
		}
		nights = append(nights, n)
	}
	sort.Strings(nights)
	return nights, nil
}

// ReadSeriesHistory reads the results of every committed earlier night of
// the window in expDir, each checked against its manifest's hash.
func ReadSeriesHistory(expDir, experiment, windowStart, date string) *SeriesHistory {
	h := &SeriesHistory{Releases: []SeriesRelease{}, records: map[string]map[string][]string{}}
	nights, err := committedNights(expDir, windowStart, date)
	if err != nil {
		h.Excluded = append(h.Excluded, SeriesExclusion{Night: "(output folder)", Reason: err.Error()})
		return h
	}
	for _, n := range nights {
		b, sum, reason := readNightResults(filepath.Join(expDir, n), experiment, n)
		var recs map[string][]string
		if reason == "" {
			if _, recs, err = parseResults(b); err != nil {
				reason = "results.csv: " + err.Error()
			}
		}
		switch {
		case reason == "":
			h.Releases = append(h.Releases, SeriesRelease{Night: n, ResultsSHA256: sum})
			h.records[n] = recs
		case reason != "no committed run":
			h.Excluded = append(h.Excluded, SeriesExclusion{Night: n, Reason: reason})
		}
	}
	return h
}

// readNightResults returns a night's results.csv and its hash, or why it
// cannot be used ("no committed run" for a folder without a manifest).
func readNightResults(dir, experiment, night string) ([]byte, string, string) {
	mb, err := diskio.ReadRegularFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", "no committed run"
	}
	if err != nil {
		return nil, "", "manifest.json unreadable: " + err.Error()
	}
	var m struct {
		Experiment  string `json:"experiment"`
		NominalDate string `json:"nominal_date"`
		Outputs     []struct {
			Name   string `json:"name"`
			SHA256 string `json:"sha256"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, "", "manifest.json does not parse: " + err.Error()
	}
	if m.Experiment != experiment || m.NominalDate != night {
		return nil, "", fmt.Sprintf("manifest.json is of experiment %q, night %q", m.Experiment, m.NominalDate)
	}
	want := ""
	for _, o := range m.Outputs {
		if o.Name == "results.csv" {
			want = o.SHA256
		}
	}
	if want == "" {
		return nil, "", "manifest.json lists no results.csv"
	}
	b, err := diskio.ReadRegularFile(filepath.Join(dir, "results.csv"))
	if err != nil {
		return nil, "", "results.csv unreadable: " + err.Error()
	}
	if got := diskio.SHA256Hex(b); got != want {
		return nil, "", fmt.Sprintf("results.csv does not match its manifest (sha256 %.12s, manifest %.12s)", got, want)
	}
	return b, want, ""
}

// SeriesIntegrityError is a replay whose recorded series cannot be
// rebuilt: the replayed run's timeseries.csv is missing or does not hold
// the earlier nights its manifest recorded, with their hashes.
type SeriesIntegrityError struct {
	Night, Want, Got string
	Missing          bool // no timeseries.csv
}

func (e *SeriesIntegrityError) Error() string {
	if e.Missing {
		return "time series: the replayed run records earlier nights but its timeseries.csv cannot be read"
	}
	return fmt.Sprintf("time series: night %s: timeseries.csv says results sha256 %.12s, the manifest recorded %.12s", e.Night, e.Got, e.Want)
}

// LoadPinnedSeries rebuilds the history a manifest recorded from the
// replayed run's own timeseries.csv (an output the replay has checked
// against the manifest): its released rows of each recorded night, whose
// results hash must be the recorded one. So a replay needs neither the
// earlier nights' folders nor whatever they hold now. pinned nil: the run
// had no series.
func LoadPinnedSeries(pinned *SeriesHistory, timeseries []byte, haveCSV bool) (*SeriesHistory, error) {
	h := &SeriesHistory{Releases: []SeriesRelease{}, records: map[string]map[string][]string{}}
	if pinned.Empty() {
		return h, nil
	}
	if !haveCSV {
		return nil, &SeriesIntegrityError{Missing: true}
	}
	h.Excluded = append(h.Excluded, pinned.Excluded...)
	want := map[string]string{}
	for _, r := range pinned.Releases {
		want[r.Night] = r.ResultsSHA256
		h.records[r.Night] = map[string][]string{}
	}
	recs, err := csv.NewReader(bytes.NewReader(timeseries)).ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("time series: timeseries.csv: %v: %w", err, &SeriesIntegrityError{Missing: true})
	}
	idx := map[string]int{}
	for i, c := range recs[0] {
		idx[c] = i
	}
	for _, c := range append([]string{"night", "status", "results_sha256"}, seriesColumns...) {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("time series: timeseries.csv has no column %q: %w", c, &SeriesIntegrityError{Missing: true})
		}
	}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		n := r[idx["night"]]
		if r[idx["status"]] != "released" {
			continue
		}
		if got := r[idx["results_sha256"]]; got != want[n] {
			return nil, &SeriesIntegrityError{Night: n, Want: want[n], Got: got}
		}
		v := make([]string, len(seriesColumns))
		for i, c := range seriesColumns {
			v[i] = r[idx[c]]
		}
		h.records[n][v[0]+"\x00"+v[1]+"\x00"+v[2]] = v
		seen[n] = true
	}
	for _, r := range pinned.Releases {
		if !seen[r.Night] {
			return nil, &SeriesIntegrityError{Night: r.Night, Want: r.ResultsSHA256, Got: "(no row)"}
		}
		h.Releases = append(h.Releases, r)
	}
	return h, nil
}

// SeriesPoint is one night of a series line. Numbers are the released
// text (the results.csv fields), so that the series repeats them byte for
// byte; empty where undefined or not released.
type SeriesPoint struct {
	Night string
	// Status is released, tonight, gap (no committed run), excluded, or
	// not released (no such row that night).
	Status string
	// The results.csv fields of the night's row.
	NControl, NVariant, MeanControl string
	AbsEffect, AbsCILow, AbsCIHigh  string
	Interval                        string
}

// SeriesLine is the series of one cohort × metric × variant.
type SeriesLine struct {
	Cohort, Metric, Variant, Control string
	Points                           []SeriesPoint
}

// seriesColumns are the results.csv columns a series reads.
var seriesColumns = []string{"cohort", "metric", "variant", "control", "n_control", "n_variant", "mean_control", "abs_effect", "abs_ci_low", "abs_ci_high", "interval"}

// parseResults reads a results.csv into records keyed by cohort, metric
// and variant, in file order.
func parseResults(b []byte) ([]string, map[string][]string, error) {
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, errors.New("no header")
	}
	idx := map[string]int{}
	for i, c := range recs[0] {
		idx[c] = i
	}
	for _, c := range seriesColumns {
		if _, ok := idx[c]; !ok {
			return nil, nil, fmt.Errorf("no column %q", c)
		}
	}
	var keys []string
	out := map[string][]string{}
	for _, r := range recs[1:] {
		v := make([]string, len(seriesColumns))
		for i, c := range seriesColumns {
			v[i] = r[idx[c]]
		}
		k := v[0] + "\x00" + v[1] + "\x00" + v[2]
		if _, dup := out[k]; !dup {
			keys = append(keys, k)
		}
		out[k] = v
	}
	return keys, out, nil
}

// BuildSeries lays out every night from the window's first day to date:
// the earlier nights from h, tonight from tonight's results.csv bytes.
// Lines are tonight's rows in order, then lines only earlier nights had.
func BuildSeries(windowStart, date string, h *SeriesHistory, tonight []byte) ([]SeriesLine, error) {
	keys, now, err := parseResults(tonight)
	if err != nil {
		return nil, fmt.Errorf("time series: tonight's results.csv: %w", err)
	}
	earlier := map[string]map[string][]string{}
	var extra []string
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	for _, r := range h.Releases {
		recs := h.records[r.Night]
		earlier[r.Night] = recs
		for k := range recs {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	excluded := map[string]bool{}
	for _, e := range h.Excluded {
		excluded[e.Night] = true
	}
	nights, err := WindowNights(windowStart, date)
	if err != nil {
		return nil, err
	}
	var lines []SeriesLine
	for _, k := range append(keys, extra...) {
		p := strings.Split(k, "\x00")
		line := SeriesLine{Cohort: p[0], Metric: p[1], Variant: p[2]}
		for _, n := range nights {
			pt := SeriesPoint{Night: n, Status: "gap"}
			var v []string
			switch {
			case n == date:
				pt.Status, v = "tonight", now[k]
			case earlier[n] != nil:
				pt.Status, v = "released", earlier[n][k]
			case excluded[n]:
				pt.Status = "excluded"
			}
			if v == nil && pt.Status != "gap" && pt.Status != "excluded" {
				pt.Status = "not released"
			}
			if v != nil {
				line.Control = v[3]
				pt.NControl, pt.NVariant, pt.MeanControl, pt.AbsEffect, pt.AbsCILow, pt.AbsCIHigh, pt.Interval = v[4], v[5], v[6], v[7], v[8], v[9], v[10]
			}
			line.Points = append(line.Points, pt)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// WindowNights lists every day from the window's first day to date.
func WindowNights(windowStart, date string) ([]string, error) {
	first := windowStart
	if len(first) > 10 {
		first = first[:10]
	}
	d0, err := time.Parse(time.DateOnly, first)
	if err != nil {
		return nil, fmt.Errorf("time series: window start %q: %w", windowStart, err)
	}
	d1, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return nil, fmt.Errorf("time series: night %q: %w", date, err)
	}
	var out []string
	for d := d0; !d.After(d1); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out, nil
}

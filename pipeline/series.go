package pipeline

import (
	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// seriesHistory is the earlier nights the time series reads: the ones a
// replay pinned (opts.SeriesPinned: rebuilt from the replayed run's
// timeseries.csv, each night with its recorded hash, or an error), else every committed night of the window
// in expDir, a night whose results no longer match its manifest excluded
// and named.
func seriesHistory(opts Options, spec *expspec.Spec, expDir, date string) (*analysis.SeriesHistory, error) {
	if opts.SeriesPinned {
		return analysis.LoadPinnedSeries(opts.SeriesHistory, opts.SeriesCSV, opts.SeriesCSV != nil)
	}
	return analysis.ReadSeriesHistory(expDir, spec.Experiment, spec.Window.Start, date), nil
}

// nightly builds the time series and tonight's anomaly flags of an exact
// run (nil when no earlier night was committed) and puts the flags into
// the decisions.
func (j *job) nightly(opts Options, expDir string, rows []analysis.ResultRow, dec *analysis.Decisions) (*publish.Nightly, error) {
	hist, err := seriesHistory(opts, j.spec, expDir, j.date)
	if err != nil {
		return nil, err
	}
	n, err := publish.BuildNightly(j.spec, j.date, j.specHash, hist, rows)
	if err != nil || n == nil {
		return nil, err
	}
	dec.Anomalies = n.Anomalies
	return n, nil
}

package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// PreviousManifest reads the manifest of the night before date in an
// experiment's output folder, if it exists and parses.
func PreviousManifest(expDir, date string) *publish.Manifest {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return nil
	}
	b, err := diskio.ReadRegularFile(filepath.Join(expDir, d.AddDate(0, 0, -1).Format("2006-01-02"), "manifest.json"))
	if err != nil {
		return nil
	}
	var m publish.Manifest
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return &m
}

// passLogger is the logger of a shared pass: the run and the experiments
// it serves. A pass serving a private spec logs untimed, like the spec.
func passLogger(jobs []*job, opts Options) (log *slog.Logger, private bool) {
	var exps []string
	for _, j := range jobs {
		exps = append(exps, j.spec.Experiment)
		private = private || (j.spec.Privacy != nil && j.spec.Privacy.Enabled)
	}
	h := opts.Logger.Handler()
	if private {
		h = untimed{h}
	}
	return slog.New(h).With("run_id", opts.RunID, "experiments", exps), private
}

// passProgress prepares the progress report of a group's pass, with the
// previous night's timings of its first spec when every spec is exact.
func passProgress(ctx context.Context, jobs []*job, opts Options, st *groupState, inputBytes int64) *engine.SQLProgress {
	log, private := passLogger(jobs, opts)
	var (
		prevScan   *engine.Scan
		prevPhases []engine.Phase
	)
	if !private {
		if prev := PreviousManifest(filepath.Join(opts.OutDir, jobs[0].spec.OutputName()), jobs[0].date); prev != nil && prev.Volatile != nil {
			prevScan, prevPhases = prev.Volatile.Scan, prev.Volatile.Phases
		}
	}
	p := engine.NewSQLProgress(log, private, st.tmpls, inputBytes, prevScan, prevPhases)
	if private {
		// A private pass announces its statements once, up front: a line
		// per statement as it starts would let a log collector's
		// timestamps time each statement on the data.
		log.Info("sql pass", "phase", "sql", "of", len(p.Keys), "statements", p.Keys)
	}
	p.Attach(ctx, st.sess)
	return p
}

package pipeline

import (
	"errors"
	"io/fs"

	"github.com/verity-analytics/verity/pipeline/analysis"
	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/pipeline/publish"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// Exit codes, from PRODUCT.md. Only cmd/verity exits; pipeline returns
// errors and ExitCode maps them.
const (
	ExitOK         = 0
	ExitTransient  = 1  // transient failure: retry
	ExitData       = 65 // a blocking data-quality gate failed, or input data is malformed
	ExitNoInput    = 66 // an input is missing
	ExitMismatch   = 70 // a replay or golden mismatch
	ExitCantCreate = 73 // an output folder or file cannot be created or written (EX_CANTCREAT)
	ExitConfig     = 78 // configuration, usage or integrity error
)

// ExitCode maps an error returned by this package to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		specErr     *expspec.SpecError
		mismatch    *queries.MismatchError
		inputErr    *intake.InputError
		missingErr  *intake.MissingInputError
		transient   *diskio.TransientError
		overflowErr *engine.OverflowError
		gateErr     *analysis.GateError
		manifestErr *publish.ManifestError
		dataErr     *engine.DataError
		integrity   *expspec.IntegrityError
		hostErr     *ledgers.HostError
	)
	var shardErr *ShardError
	var seriesErr *analysis.SeriesIntegrityError
	switch {
	case errors.As(err, &shardErr) && shardErr.Missing:
		return ExitNoInput
	case errors.As(err, &shardErr):
		return ExitConfig
	case errors.As(err, &missingErr), errors.As(err, &seriesErr) && seriesErr.Missing:
		return ExitNoInput
	case errors.As(err, &seriesErr):
		return ExitMismatch // an earlier night's release changed under a replay
	case errors.Is(err, publish.ErrReplayMismatch):
		return ExitMismatch
	case errors.As(err, &manifestErr) && errors.Is(err, fs.ErrNotExist):
		return ExitNoInput // the manifest, or an output beside it, is missing
	case errors.As(err, &manifestErr):
		return ExitConfig
	case errors.As(err, &inputErr), errors.As(err, &overflowErr), errors.As(err, &gateErr), errors.As(err, &dataErr):
		return ExitData
	case errors.As(err, &specErr), errors.As(err, &mismatch), errors.As(err, &integrity), errors.As(err, &hostErr), errors.Is(err, queries.ErrNotLocked),
		errors.Is(err, queries.ErrUnknownTemplate), errors.Is(err, diskio.ErrNoOverwrite), errors.Is(err, expspec.ErrUsage):
		return ExitConfig
	case errors.Is(err, privacy.ErrNoKey), errors.Is(err, privacy.ErrBadKey), errors.Is(err, privacy.ErrKeyTooShort),
		errors.Is(err, privacy.ErrBudgetExhausted):
		return ExitConfig
	case errors.As(err, new(*diskio.OutputDirError)):
		return ExitCantCreate
	case errors.As(err, new(*engine.MemoryLimitError)), errors.As(err, new(*diskio.URLPathError)):
		return ExitConfig
	case errors.Is(err, diskio.ErrLocked):
		return ExitTransient
	case errors.As(err, &transient):
		return ExitTransient
	default:
		return ExitTransient
	}
}

// Package pipeline is Verity's flow, top to bottom: RunAll plans the specs
// (expspec), resolves and hashes their inputs (intake), checks private specs'
// custody (ledgers), runs each group's shared SQL pass (engine), privatizes
// private cells (privatize), analyses them (analysis) and commits each
// experiment's release (publish, diskio). It owns the options, the grouping
// of specs into passes and the exit-code contract (ExitCode). Replay and
// snapshot comparison, which rerun this flow, live in pipeline/replay.
package pipeline

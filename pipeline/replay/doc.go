// Package replay reruns a committed night from its manifest (pinned spec,
// inputs checked by hash, templates and settings as recorded) and compares
// every output byte for byte, naming the causes of a difference; it also
// compares a run with a dashboard snapshot (against) and exports one.
//
// replay.go is the flow, top to bottom; its steps live by concern in
// inputs.go (re-hashing the recorded inputs), diff.go (the outputs compared
// byte for byte, then number by number), causes.go (what differs between
// the two manifests) and report.go (the outcome, and its text for a
// person). against.go compares a run with a snapshot and exports one.
package replay

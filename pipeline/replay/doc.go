// Package replay reruns a committed night from its manifest (pinned spec,
// inputs checked by hash, templates and settings as recorded) and compares
// every output byte for byte, naming the causes of a difference; it also
// compares a run with a dashboard snapshot (against) and exports one.
package replay

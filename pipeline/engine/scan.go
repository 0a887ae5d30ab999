package engine

// Phase is the wall time of one phase of the run.
type Phase struct {
	Name   string  `json:"name"`
	Millis float64 `json:"ms"`
}

// Scan records how the data was read for a run: which experiments shared
// the pass and how many times the trace template ran. It is volatile: an
// experiment's numbers do not depend on its companions.
type Scan struct {
	Experiments  []string `json:"experiments"`
	TracesPasses int      `json:"traces_template_runs"`
	EventsPasses int      `json:"events_template_runs"`
	InputFiles   int      `json:"input_files"`
	InputBytes   int64    `json:"input_bytes"`
}

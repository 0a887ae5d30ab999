// Package expspec is the experiment spec: its types, strict YAML parsing,
// defaults, validation without I/O (Spec.Validate refuses what the pinned
// templates cannot compute), the metric library its metric refs resolve to,
// the quality-gate thresholds and the privacy section. Everything later in
// the flow reads a validated *Spec.
package expspec

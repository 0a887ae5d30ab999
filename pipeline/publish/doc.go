// Package publish writes a run's release: results (CSV, Parquet, schema),
// quality.json, decisions.json, the report's data, the manifest (build
// identity, effective settings, input and template hashes) and, for private
// specs, the public surface and the restricted record. It also reads and
// verifies manifests for replay.
package publish

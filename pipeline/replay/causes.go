package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/verity-analytics/verity/pipeline/engine"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/intake"
	"github.com/verity-analytics/verity/pipeline/publish"
)

// replayCauses compares the old manifest with the rerun's and names every
// recorded difference that can change a number, in a fixed order: inputs,
// templates, metric definitions, spec, code, DuckDB, other recorded
// settings; or, when none differs, why there is no recorded cause.
func replayCauses(old, cur *publish.Manifest, pinned []string) []string {
	pinnedSet := pinnedNames(pinned)
	var causes []string
	causes = append(causes, inputCauses(old, cur)...)
	causes = append(causes, templateCauses(old.Templates, cur.Templates, pinnedSet)...)
	// Metric definitions (a library version pinned with --pin metric:NAME=vN).
	causes = append(causes, expspec.MetricDefinitionCauses(old.MetricDefinitions, cur.MetricDefinitions, pinnedSet)...)
	causes = append(causes, specCauses(old, cur, pinned)...)
	causes = append(causes, buildCauses(old.Build, cur.Build)...)
	causes = append(causes, duckDBCauses(old.DuckDB, cur.DuckDB)...)
	causes = append(causes, otherManifestCauses(old, cur)...)
	if len(causes) == 0 && old.Volatile != nil && old.Volatile.Incremental == "incremental" {
		causes = append(causes, "the night ran incrementally (manifest volatile.incremental) from the host's incremental state, and the full rerun differs: the state did not account exactly for the earlier nights (edited or damaged state files, or a defect); rerun the night without --incremental and remove the state folder's incremental/ entry")
	}
	if len(causes) == 0 {
		causes = append(causes, noRecordedCause(old.Build, cur.Build))
	}
	return causes
}

// hashPrefix is the first 12 characters of a hash, as the causes show it.
func hashPrefix(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// pinnedNames is the set of template and metric names that --pin overrode
// (pinned holds name=version).
func pinnedNames(pinned []string) map[string]bool {
	set := map[string]bool{}
	for _, p := range pinned {
		name, _, _ := strings.Cut(p, "=")
		set[name] = true
	}
	return set
}

// inputCauses names the input files removed, changed or added when the
// input digests differ.
func inputCauses(old, cur *publish.Manifest) []string {
	if old.InputDigest == cur.InputDigest {
		return nil
	}
	o, n := map[string]intake.InputFile{}, map[string]intake.InputFile{}
	for _, f := range old.Inputs {
		o[f.Role+" "+f.Path] = f
	}
	for _, f := range cur.Inputs {
		n[f.Role+" "+f.Path] = f
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		nf, ok := n[k]
		switch {
		case !ok:
			parts = append(parts, k+" removed")
		case nf.SHA256 != o[k].SHA256:
			parts = append(parts, fmt.Sprintf("%s sha256 %s -> %s", k, hashPrefix(o[k].SHA256), hashPrefix(nf.SHA256)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n)) {
		if _, ok := o[k]; !ok {
			parts = append(parts, k+" added")
		}
	}
	return []string{fmt.Sprintf("input change: digest %s -> %s (%s)", hashPrefix(old.InputDigest), hashPrefix(cur.InputDigest), strings.Join(parts, ", "))}
}

// templateCauses names each template no longer or newly used, or whose
// version, source hash or rendered SQL changed, in the old run's order
// and then the rerun's new ones; a --pin is marked.
func templateCauses(oldT, curT []engine.TemplateRecord, pinnedSet map[string]bool) []string {
	ot, nt := map[string]engine.TemplateRecord{}, map[string]engine.TemplateRecord{}
	var names []string
	for _, t := range oldT {
		ot[t.Name] = t
		names = append(names, t.Name)
	}
	for _, t := range curT {
		nt[t.Name] = t
		if _, ok := ot[t.Name]; !ok {
			names = append(names, t.Name)
		}
	}
	var causes []string
	for _, name := range names {
		o, inO := ot[name]
		n, inN := nt[name]
		suffix := ""
		if pinnedSet[name] {
			suffix = " (--pin)"
		}
		switch {
		case !inN:
			causes = append(causes, fmt.Sprintf("template %s: %s no longer used", name, o.Version))
		case !inO:
			causes = append(causes, fmt.Sprintf("template %s: %s newly used%s", name, n.Version, suffix))
		case o.Version != n.Version:
			causes = append(causes, fmt.Sprintf("template version %s: %s -> %s (sha256 %s -> %s)%s", name, o.Version, n.Version, hashPrefix(o.SHA256), hashPrefix(n.SHA256), suffix))
		case o.SHA256 != n.SHA256:
			causes = append(causes, fmt.Sprintf("template hash %s@%s: sha256 %s -> %s (a released template changed)", name, o.Version, hashPrefix(o.SHA256), hashPrefix(n.SHA256)))
		case o.RenderedSHA256 != n.RenderedSHA256:
			causes = append(causes, fmt.Sprintf("template %s@%s: rendered SQL sha256 %s -> %s (the input columns or the renderer changed)", name, o.Version, hashPrefix(o.RenderedSHA256), hashPrefix(n.RenderedSHA256)))
		}
	}
	return causes
}

// specCauses names the top-level spec keys that differ when the spec
// hashes do, with the --pin overrides that explain them.
func specCauses(old, cur *publish.Manifest, pinned []string) []string {
	if old.SpecSHA256 == cur.SpecSHA256 {
		return nil
	}
	keys := diffTopLevel(old.Spec, cur.Spec, nil)
	suffix := ""
	if len(pinned) > 0 {
		suffix = " (--pin " + strings.Join(pinned, " --pin ") + ")"
	}
	return []string{fmt.Sprintf("spec change: sha256 %s -> %s; top-level keys that differ: %s%s", hashPrefix(old.SpecSHA256), hashPrefix(cur.SpecSHA256), strings.Join(keys, ", "), suffix)}
}

// buildCauses names what differs in the code version when both runs
// recorded their build: module, revision, Go, platform, executable hash.
func buildCauses(old, cur *publish.BuildInfo) []string {
	if old == nil || cur == nil {
		return nil
	}
	ob, nb := *old, *cur
	var parts []string
	if ob.Module != nb.Module || ob.Version != nb.Version {
		parts = append(parts, fmt.Sprintf("module %s %s -> %s %s", ob.Module, ob.Version, nb.Module, nb.Version))
	}
	if ob.Revision != nb.Revision || ob.Modified != nb.Modified {
		parts = append(parts, fmt.Sprintf("revision %s -> %s", publish.RevisionLabel(ob), publish.RevisionLabel(nb)))
	}
	if ob.GoVersion != nb.GoVersion {
		parts = append(parts, fmt.Sprintf("Go %s -> %s", ob.GoVersion, nb.GoVersion))
	}
	if ob.GOOS != nb.GOOS || ob.GOARCH != nb.GOARCH {
		parts = append(parts, fmt.Sprintf("platform %s/%s -> %s/%s", ob.GOOS, ob.GOARCH, nb.GOOS, nb.GOARCH))
	}
	if ob.ExecutableSHA256 != nb.ExecutableSHA256 {
		parts = append(parts, fmt.Sprintf("executable sha256 %s -> %s", hashPrefix(orUnknown(ob.ExecutableSHA256)), hashPrefix(orUnknown(nb.ExecutableSHA256))))
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{"code version: " + strings.Join(parts, ", ")}
}

// duckDBCauses names a changed DuckDB version and every setting that
// differs, by name.
func duckDBCauses(old, cur publish.DuckDBInfo) []string {
	var causes []string
	if old.Version != cur.Version {
		causes = append(causes, fmt.Sprintf("DuckDB version: %s -> %s", old.Version, cur.Version))
	}
	oset, nset := replaySettingsMap(old.Settings), replaySettingsMap(cur.Settings)
	for _, k := range replayUnionKeys(oset, nset) {
		if oset[k] != nset[k] {
			causes = append(causes, fmt.Sprintf("DuckDB setting %s: %q -> %q", k, oset[k], nset[k]))
		}
	}
	return causes
}

// otherManifestCauses names the other top-level fields of the stable
// manifests that differ (statistics, privacy, and fields added later),
// each with its first differing leaves.
func otherManifestCauses(old, cur *publish.Manifest) []string {
	ob, _ := json.Marshal(old.Stable())
	nb, _ := json.Marshal(cur.Stable())
	handled := []string{"format", "experiment", "nominal_date", "spec", "spec_sha256", "templates", "inputs", "input_digest", "duckdb", "checks", "outputs"}
	var om, nm map[string]json.RawMessage
	_ = json.Unmarshal(ob, &om)
	_ = json.Unmarshal(nb, &nm)
	var causes []string
	for _, k := range diffTopLevel(ob, nb, handled) {
		c := fmt.Sprintf("manifest %s differs", k)
		if d, err := diffJSON(replayOrNull(om[k]), replayOrNull(nm[k])); err == nil && len(d) > 0 {
			c += ": " + firstLeafDiffs(d, 5)
		}
		causes = append(causes, c)
	}
	return causes
}

// firstLeafDiffs lists the first n leaf differences as "path old -> new",
// then how many more there are.
func firstLeafDiffs(d []ValueDiff, n int) string {
	var parts []string
	for i, v := range d {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(d)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s -> %s", v.Path, v.Old, v.New))
	}
	return strings.Join(parts, ", ")
}

// noRecordedCause is the cause given when every recorded input of the
// numbers matches: a code change when the build cannot be told apart,
// else possibly non-deterministic output.
func noRecordedCause(old, cur *publish.BuildInfo) string {
	c := "no recorded cause: spec, templates, inputs, DuckDB and build all match"
	sameExe := old != nil && cur != nil && old.ExecutableSHA256 != "" && old.ExecutableSHA256 == cur.ExecutableSHA256
	if !sameExe && cur != nil && (cur.Revision == "unknown" || cur.Modified || old == nil || old.Modified) {
		return c + ", but the build revision is unknown or modified, so a code change is the likely cause"
	}
	return c + " (non-deterministic output?)"
}

// replayOrNull is b, or the JSON null for a field one manifest lacks.
func replayOrNull(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// orUnknown is s, or "unknown" when it is empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// replaySettingsMap indexes DuckDB settings by name.
func replaySettingsMap(s []engine.Setting) map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

// replayUnionKeys is the sorted union of the keys of a and b.
func replayUnionKeys(a, b map[string]string) []string {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return slices.Sorted(maps.Keys(u))
}

// diffTopLevel returns the sorted top-level keys whose values differ
// between two JSON objects, leaving out skip.
func diffTopLevel(a, b []byte, skip []string) []string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{"(unreadable)"}
	}
	all := map[string]bool{}
	for k := range ma {
		all[k] = true
	}
	for k := range mb {
		all[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		if slices.Contains(skip, k) {
			continue
		}
		var ca, cb bytes.Buffer
		va, okA := ma[k]
		vb, okB := mb[k]
		if okA {
			_ = json.Compact(&ca, va)
		}
		if okB {
			_ = json.Compact(&cb, vb)
		}
		if okA != okB || !bytes.Equal(ca.Bytes(), cb.Bytes()) {
			out = append(out, k)
		}
	}
	return out
}

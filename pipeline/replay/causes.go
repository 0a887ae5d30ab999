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
// recorded difference that can change a number.
func replayCauses(old, cur *publish.Manifest, pinned []string) []string {
	var causes []string
	short := func(h string) string {
		if len(h) > 12 {
			return h[:12]
		}
		return h
	}

	// Inputs.
	if old.InputDigest != cur.InputDigest {
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
				parts = append(parts, fmt.Sprintf("%s sha256 %s -> %s", k, short(o[k].SHA256), short(nf.SHA256)))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n)) {
			if _, ok := o[k]; !ok {
				parts = append(parts, k+" added")
			}
		}
		causes = append(causes, fmt.Sprintf("input change: digest %s -> %s (%s)", short(old.InputDigest), short(cur.InputDigest), strings.Join(parts, ", ")))
	}

	// Templates.
	ot, nt := map[string]engine.TemplateRecord{}, map[string]engine.TemplateRecord{}
	var names []string
	for _, t := range old.Templates {
		ot[t.Name] = t
		names = append(names, t.Name)
	}
	for _, t := range cur.Templates {
		nt[t.Name] = t
		if _, ok := ot[t.Name]; !ok {
			names = append(names, t.Name)
		}
	}
	pinnedSet := map[string]bool{}
	for _, p := range pinned {
		name, _, _ := strings.Cut(p, "=")
		pinnedSet[name] = true
	}
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
			causes = append(causes, fmt.Sprintf("template version %s: %s -> %s (sha256 %s -> %s)%s", name, o.Version, n.Version, short(o.SHA256), short(n.SHA256), suffix))
		case o.SHA256 != n.SHA256:
			causes = append(causes, fmt.Sprintf("template hash %s@%s: sha256 %s -> %s (a released template changed)", name, o.Version, short(o.SHA256), short(n.SHA256)))
		case o.RenderedSHA256 != n.RenderedSHA256:
			causes = append(causes, fmt.Sprintf("template %s@%s: rendered SQL sha256 %s -> %s (the input columns or the renderer changed)", name, o.Version, short(o.RenderedSHA256), short(n.RenderedSHA256)))
		}
	}

	// Metric definitions (a library version pinned with --pin metric:NAME=vN).
	causes = append(causes, expspec.MetricDefinitionCauses(old.MetricDefinitions, cur.MetricDefinitions, pinnedSet)...)

	// Spec.
	if old.SpecSHA256 != cur.SpecSHA256 {
		keys := diffTopLevel(old.Spec, cur.Spec, nil)
		suffix := ""
		if len(pinned) > 0 {
			suffix = " (--pin " + strings.Join(pinned, " --pin ") + ")"
		}
		causes = append(causes, fmt.Sprintf("spec change: sha256 %s -> %s; top-level keys that differ: %s%s", short(old.SpecSHA256), short(cur.SpecSHA256), strings.Join(keys, ", "), suffix))
	}

	// Code.
	if old.Build != nil && cur.Build != nil {
		ob, nb := *old.Build, *cur.Build
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
			parts = append(parts, fmt.Sprintf("executable sha256 %s -> %s", short(orUnknown(ob.ExecutableSHA256)), short(orUnknown(nb.ExecutableSHA256))))
		}
		if len(parts) > 0 {
			causes = append(causes, "code version: "+strings.Join(parts, ", "))
		}
	}

	// DuckDB.
	if old.DuckDB.Version != cur.DuckDB.Version {
		causes = append(causes, fmt.Sprintf("DuckDB version: %s -> %s", old.DuckDB.Version, cur.DuckDB.Version))
	}
	oset, nset := replaySettingsMap(old.DuckDB.Settings), replaySettingsMap(cur.DuckDB.Settings)
	for _, k := range replayUnionKeys(oset, nset) {
		if oset[k] != nset[k] {
			causes = append(causes, fmt.Sprintf("DuckDB setting %s: %q -> %q", k, oset[k], nset[k]))
		}
	}

	// Other recorded settings (statistics, privacy, and fields added later).
	ob, _ := json.Marshal(old.Stable())
	nb, _ := json.Marshal(cur.Stable())
	handled := []string{"format", "experiment", "nominal_date", "spec", "spec_sha256", "templates", "inputs", "input_digest", "duckdb", "checks", "outputs"}
	var om, nm map[string]json.RawMessage
	_ = json.Unmarshal(ob, &om)
	_ = json.Unmarshal(nb, &nm)
	for _, k := range diffTopLevel(ob, nb, handled) {
		c := fmt.Sprintf("manifest %s differs", k)
		if d, err := diffJSON(replayOrNull(om[k]), replayOrNull(nm[k])); err == nil && len(d) > 0 {
			var parts []string
			for i, v := range d {
				if i == 5 {
					parts = append(parts, fmt.Sprintf("and %d more", len(d)-5))
					break
				}
				parts = append(parts, fmt.Sprintf("%s %s -> %s", v.Path, v.Old, v.New))
			}
			c += ": " + strings.Join(parts, ", ")
		}
		causes = append(causes, c)
	}

	if len(causes) == 0 {
		c := "no recorded cause: spec, templates, inputs, DuckDB and build all match"
		sameExe := old.Build != nil && cur.Build != nil && old.Build.ExecutableSHA256 != "" && old.Build.ExecutableSHA256 == cur.Build.ExecutableSHA256
		if !sameExe && cur.Build != nil && (cur.Build.Revision == "unknown" || cur.Build.Modified || old.Build == nil || old.Build.Modified) {
			c += ", but the build revision is unknown or modified, so a code change is the likely cause"
		} else {
			c += " (non-deterministic output?)"
		}
		causes = append(causes, c)
	}
	return causes
}

func replayOrNull(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func replaySettingsMap(s []engine.Setting) map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

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

package analysis

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// FlattenJSON writes every leaf of the decoded JSON value v into out as
// JSON text, keyed by its path under prefix: object keys joined with ".",
// array elements as [name=...] when every element has a distinct
// identifying field (elementID), else by index.
func FlattenJSON(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			FlattenJSON(join(k), e, out)
		}
	case []any:
		ids := make([]string, len(x))
		seen := map[string]bool{}
		unique := true
		for i, e := range x {
			ids[i] = elementID(e)
			if ids[i] == "" || seen[ids[i]] {
				unique = false
			}
			seen[ids[i]] = true
		}
		for i, e := range x {
			idx := fmt.Sprintf("%s[%d]", prefix, i)
			if unique {
				idx = prefix + "[" + ids[i] + "]"
			}
			FlattenJSON(idx, e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}

// elementID names an array element by its identifying fields (name,
// cohort, metric, variant, matched without regard to case), or "".
func elementID(e any) string {
	m, ok := e.(map[string]any)
	if !ok {
		return ""
	}
	var parts []string
	for _, id := range []string{"name", "cohort", "metric", "variant"} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if s, ok := m[k].(string); ok && strings.EqualFold(k, id) {
				parts = append(parts, id+"="+s)
				break
			}
		}
	}
	return strings.Join(parts, ",")
}

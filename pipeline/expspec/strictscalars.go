package expspec

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// strictScalars finds a YAML scalar that yaml.v3 would decode into a
// plausible value other than the one written, and returns its key path
// and what is wrong, or "":
//   - a fraction (1.5, 2e-1) where the spec has an integer field: yaml.v3
//     truncates it (max_values: 1.5 became 1);
//   - a null element of a list (filter: {plan: [null]}, variants:
//     [control, ~]): yaml.v3 drops it without a word, so [null, pro]
//     became [pro] and [null] an empty list.
//
// It walks the document beside the Go type.
func strictScalars(n *yaml.Node, t reflect.Type, path string, inList bool) (string, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k, v := strictScalars(c, t, path, false); k != "" {
				return k, v
			}
		}
	case yaml.ScalarNode:
		if inList && n.Tag == "!!null" && t.Kind() != reflect.Interface {
			msg := fmt.Sprintf("%s is YAML's null, which the decoder would drop from the list; quote it (\"%s\") if you mean the text, or remove it", n.Value, n.Value)
			if strings.HasPrefix(path, "drilldowns.values.") {
				msg += " (NULL cannot be declared: units whose value is NULL are in the slice other)"
			}
			return path, msg
		}
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if n.Tag == "!!float" {
				return path, fmt.Sprintf("%s is not a whole number; want an integer here (a fraction would be truncated)", n.Value)
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, c := range n.Content {
				if k, v := strictScalars(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), true); k != "" {
					return k, v
				}
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			switch t.Kind() {
			case reflect.Map:
				if k, v := strictScalars(val, t.Elem(), sub, false); k != "" {
					return k, v
				}
			case reflect.Struct:
				if f, ok := yamlField(t, key); ok {
					if k, v := strictScalars(val, f.Type, sub, false); k != "" {
						return k, v
					}
				}
			}
		}
	}
	return "", ""
}

// yamlField finds the struct field (inline structs included) that yaml.v3
// decodes key into.
func yamlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if g, ok := yamlField(ft, key); ok {
					return g, true
				}
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

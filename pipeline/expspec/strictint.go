package expspec

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// fractionalInts finds a YAML scalar written as a fraction (1.5, 2e-1)
// where the spec has an integer field: yaml.v3 decodes it by truncation
// (max_values: 1.5 became 1), so a typo would become a plausible setting.
// It walks the document beside the Go type and returns the first such key
// path and value, or "".
func fractionalInts(n *yaml.Node, t reflect.Type, path string) (string, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k, v := fractionalInts(c, t, path); k != "" {
				return k, v
			}
		}
	case yaml.ScalarNode:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if n.Tag == "!!float" {
				return path, n.Value
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, c := range n.Content {
				if k, v := fractionalInts(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); k != "" {
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
				if k, v := fractionalInts(val, t.Elem(), sub); k != "" {
					return k, v
				}
			case reflect.Struct:
				if f, ok := yamlField(t, key); ok {
					if k, v := fractionalInts(val, f.Type, sub); k != "" {
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

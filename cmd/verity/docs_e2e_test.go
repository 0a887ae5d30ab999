package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The documents a user copies specs from. Every fenced ```yaml block in them
// is a whole spec; every inline `key: {...}` span that starts with a
// top-level spec key, and every template set `{traces: vN, ...}`, is a
// fragment that must hold when put into the README's example in place of
// that key.
var documented = []string{"README.md", "docs/PRODUCT.md", "deploy/README.md", "ARCHITECTURE.md"}

var (
	fencedYAML  = regexp.MustCompile("(?s)```ya?ml\n(.*?)```")
	fencedBlock = regexp.MustCompile("(?s)```.*?```")
	inlineSpan  = regexp.MustCompile("`([^`]+)`")
	// Top-level keys of a spec whose inline examples are checked.
	fragmentKey = regexp.MustCompile(`^(privacy|quality|cohorts|statistics|templates|window|inputs|variants|metrics): \{`)
)

// TestDocumentedSpecsValidate writes each documented spec where its
// relative input paths resolve (a folder beside a link to fixtures/data, as
// a spec in fixtures/specs sees them) and runs `verity validate --data` on
// it, as a new user who copied it would. A private fragment runs on a host
// with a registered data source and a key in the environment.
func TestDocumentedSpecsValidate(t *testing.T) {
	root := repoRoot(t)
	work := t.TempDir()
	specs := filepath.Join(work, "specs")
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "fixtures", "data"), filepath.Join(work, "data")); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(work, "state")
	if r := verity(t, work, "ledger", "init", "--state-dir", state, "--source", "fixtures",
		"--root", filepath.Join(root, "fixtures", "data"), "--epsilon", "40", "--delta", "1e-6"); r.code != 0 {
		t.Fatalf("ledger init: exit %d: %s", r.code, r.stderr)
	}
	env := []string{"VERITY_NOISE_KEY=hex:" + strings.Repeat("0123456789abcdef", 4), "VERITY_STATE_DIR=" + state}

	var base string
	blocks, fragments := 0, 0
	for _, doc := range documented {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for i, m := range fencedYAML.FindAllStringSubmatch(text, -1) {
			blocks++
			if doc == "README.md" && base == "" {
				base = m[1]
			}
			checkDocumentedSpec(t, work, env, fmt.Sprintf("%s block %d", doc, i+1), m[1])
		}
		prose := fencedBlock.ReplaceAllString(text, "")
		for _, m := range inlineSpan.FindAllStringSubmatch(prose, -1) {
			frag := strings.Join(strings.Fields(m[1]), " ") // a span may wrap over lines
			if strings.HasPrefix(frag, "{traces: v") {
				// A template set written alone is a templates: value.
				frag = "templates: " + frag
			}
			k := fragmentKey.FindStringSubmatch(frag)
			if k == nil {
				continue
			}
			if base == "" {
				t.Fatalf("%s: fragment %q before the README's example spec", doc, frag)
			}
			fragments++
			checkDocumentedSpec(t, work, env, fmt.Sprintf("%s fragment `%s`", doc, frag), replaceTopLevel(t, base, k[1], frag))
		}
	}
	// The README's spec example and its privacy and quality fragments at least.
	if blocks < 1 || fragments < 3 {
		t.Fatalf("found %d YAML blocks and %d fragments in %v; the documents lost their examples?", blocks, fragments, documented)
	}
}

func checkDocumentedSpec(t *testing.T, work string, env []string, what, yaml string) {
	t.Helper()
	path := filepath.Join(work, "specs", "example.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// Run from the specs folder: the default --out (".") must not hold
	// the state folder's restricted area.
	if r := verityEnv(t, filepath.Dir(path), env, "validate", "--data", path); r.code != 0 {
		t.Errorf("%s does not validate (exit %d):\n%s%s\n--- spec:\n%s", what, r.code, r.stdout, r.stderr, yaml)
	}
}

// replaceTopLevel puts the one-line fragment "key: {...}" in place of the
// spec's top-level key (its line and the indented or comment lines under
// it), or appends it when the spec has no such key.
func replaceTopLevel(t *testing.T, spec, key, fragment string) string {
	t.Helper()
	var out []string
	skipping, replaced := false, false
	for _, line := range strings.Split(spec, "\n") {
		top := line != "" && line[0] != ' ' && line[0] != '\t' && line[0] != '#' && line[0] != '-'
		if top {
			skipping = strings.HasPrefix(line, key+":")
			if skipping {
				out = append(out, fragment)
				replaced = true
				continue
			}
		}
		if skipping && !top {
			continue
		}
		out = append(out, line)
	}
	if !replaced {
		out = append(out, fragment)
	}
	return strings.Join(out, "\n")
}

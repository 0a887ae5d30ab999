package expspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"gopkg.in/yaml.v3"
)

// A metric library holds metric definitions written once and referenced
// by name and version from experiment specs, as templates are:
//
//	<library>/<name>/v<N>.yaml   one definition (strict YAML)
//	<library>/metrics.lock       "<name> v<N> <sha256>" per released version
//
// A spec lists its libraries (metric_library: [folders], relative to the
// spec) and references a definition with {ref: revenue@v2, role: goal}.
// Only released versions resolve, and only while their file still has its
// released hash: a changed definition is a new version (`verity metrics
// lock` releases new files and refuses a changed released one). The
// resolved definition is written into the spec (so the spec hash covers
// it) with its ref, and the manifest records each definition's file and
// SHA-256; `verity replay --pin metric:revenue=v3` tries another version
// and names the change as a cause.

// MetricLockFile is the name of a library's lock file.
const MetricLockFile = "metrics.lock"

// MetricDefinition is one library file: a metric's definition, without
// what each experiment decides for itself (role and guardrail margin).
type MetricDefinition struct {
	Name             string  `yaml:"name"`
	Description      string  `yaml:"description,omitempty"`
	Kind             string  `yaml:"kind"`
	Level            float64 `yaml:"level,omitempty"`
	Over             string  `yaml:"over,omitempty"`
	Event            string  `yaml:"event"`
	Aggregate        string  `yaml:"aggregate,omitempty"`
	Clamp            *Clamp  `yaml:"clamp,omitempty"`
	Denominator      *Part   `yaml:"denominator,omitempty"`
	Direction        string  `yaml:"direction,omitempty"`
	AttributionHours int     `yaml:"attribution_hours,omitempty"`
	// Filter is a filtered metric's property filter (filter.go); the
	// spec using the definition declares the property columns.
	Filter map[string][]string `yaml:"filter,omitempty"`
}

// MetricDefinitionRecord is what a manifest records of a definition used.
type MetricDefinitionRecord struct {
	Ref    string `json:"ref"`  // name@vN
	Path   string `json:"path"` // the file, relative to the spec's folder
	SHA256 string `json:"sha256"`
}

var (
	metricRefRE  = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})@(v[1-9][0-9]{0,5})$`)
	metricFileRE = regexp.MustCompile(`^v[1-9][0-9]{0,5}\.yaml$`)
)

// maxMetricFileBytes bounds a definition file and a lock file.
const maxMetricFileBytes = 1 << 20

// metricLock is a library's lock: name@version → SHA-256.
type metricLock map[string]string

func readMetricLock(lib string) (metricLock, error) {
	path := filepath.Join(lib, MetricLockFile)
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	l := metricLock{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !metricRefRE.MatchString(f[0]+"@"+f[1]) || !SHA256RE.MatchString(f[2]) {
			return nil, fmt.Errorf("%s line %d: want \"<name> v<N> <sha256>\", got %q", path, i+1, line)
		}
		if _, dup := l[f[0]+"@"+f[1]]; dup {
			return nil, fmt.Errorf("%s line %d: %s@%s listed twice", path, i+1, f[0], f[1])
		}
		l[f[0]+"@"+f[1]] = f[2]
	}
	return l, nil
}

// marshal writes the lock sorted by name and version number.
func (l metricLock) marshal() []byte {
	refs := make([]string, 0, len(l))
	for r := range l {
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refLess(refs[i], refs[j]) })
	var b bytes.Buffer
	b.WriteString("# Released metric definitions: name, version, SHA-256 of <name>/<version>.yaml.\n# Written by `verity metrics lock`; a released file never changes.\n")
	for _, r := range refs {
		n, v, _ := strings.Cut(r, "@")
		fmt.Fprintf(&b, "%s %s %s\n", n, v, l[r])
	}
	return b.Bytes()
}

func refLess(a, b string) bool {
	an, av, _ := strings.Cut(a, "@")
	bn, bv, _ := strings.Cut(b, "@")
	if an != bn {
		return an < bn
	}
	if len(av) != len(bv) {
		return len(av) < len(bv)
	}
	return av < bv
}

// libraryFiles lists a library's definition files as name@vN → path.
func libraryFiles(lib string) (map[string]string, error) {
	names, err := os.ReadDir(lib)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range names {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(lib, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			ref := d.Name() + "@" + strings.TrimSuffix(f.Name(), ".yaml")
			if !metricFileRE.MatchString(f.Name()) || !metricRefRE.MatchString(ref) {
				continue
			}
			out[ref] = filepath.Join(lib, d.Name(), f.Name())
		}
	}
	return out, nil
}

// LockMetricLibrary releases the library's new definition files into its
// lock and returns them (name@vN). A released file whose content changed,
// or a released version whose file is gone, is refused (exit 78): a
// changed definition must be a new version. Every file must decode as a
// definition whose name is its folder's.
func LockMetricLibrary(lib string) ([]string, error) {
	lock, err := readMetricLock(lib)
	if errors.Is(err, os.ErrNotExist) {
		lock, err = metricLock{}, nil
	}
	if err != nil {
		return nil, &IntegrityError{Err: err}
	}
	files, err := libraryFiles(lib)
	if err != nil {
		return nil, &IntegrityError{Err: fmt.Errorf("metric library %s: %w", lib, err)}
	}
	var problems, added []string
	for ref := range lock {
		if _, ok := files[ref]; !ok {
			problems = append(problems, fmt.Sprintf("%s is released but its file is gone", ref))
		}
	}
	refs := make([]string, 0, len(files))
	for r := range files {
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refLess(refs[i], refs[j]) })
	for _, ref := range refs {
		_, sum, err := readMetricDefinition(files[ref], ref)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		switch old, ok := lock[ref]; {
		case !ok:
			lock[ref] = sum
			added = append(added, ref)
		case old != sum:
			problems = append(problems, fmt.Sprintf("%s changed after its release (sha256 %.12s, released %.12s): write the change as a new version", ref, sum, old))
		}
	}
	if len(problems) > 0 {
		return nil, &IntegrityError{Err: fmt.Errorf("metric library %s: %s", lib, strings.Join(problems, "; "))}
	}
	if err := diskio.WriteAtomicMode(filepath.Join(lib, MetricLockFile), lock.marshal(), 0o644); err != nil {
		return nil, err
	}
	return added, nil
}

// readMetricDefinition reads and strictly decodes one definition file and
// returns it with the file's SHA-256.
func readMetricDefinition(path, ref string) (MetricDefinition, string, error) {
	b, err := readBounded(path)
	if err != nil {
		return MetricDefinition{}, "", err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var d MetricDefinition
	if err := dec.Decode(&d); err != nil && err != io.EOF {
		return MetricDefinition{}, "", fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil {
		if key, msg := strictScalars(&doc, reflect.TypeOf(d), "", false); key != "" {
			return MetricDefinition{}, "", fmt.Errorf("%s: %s: %s", path, key, msg)
		}
	}
	name, _, _ := strings.Cut(ref, "@")
	if d.Name != name {
		return MetricDefinition{}, "", fmt.Errorf("%s: name %q, but the file is under %s/", path, d.Name, name)
	}
	return d, diskio.SHA256Hex(b), nil
}

// resolveMetricRefs replaces each metric reference of a spec read from
// YAML by its released definition, keeping the ref and the spec's own
// role and guardrail, and records the files used.
func (s *Spec) resolveMetricRefs() error {
	for i := range s.Metrics {
		m := &s.Metrics[i]
		if m.Ref == "" {
			continue
		}
		key := fmt.Sprintf("metrics[%d]", i)
		if !metricRefRE.MatchString(m.Ref) {
			return s.errf(key+".ref", "want name@vN such as revenue@v2, got %q", m.Ref)
		}
		if m.Name != "" || m.Kind != "" || m.Level != 0 || m.Over != "" || m.Cap != nil || m.Event != "" || m.Aggregate != "" || m.Clamp != nil || m.Denominator != nil || m.Direction != "" || m.AttributionHours != 0 || m.Filter != nil {
			return s.errf(key, "ref %s takes the definition from the metric library: the spec may add only role and guardrail", m.Ref)
		}
		if len(s.MetricLibrary) == 0 {
			return s.errf(key+".ref", "%s refers to a metric library, but the spec lists none (metric_library: [folder])", m.Ref)
		}
		def, rec, err := s.findDefinition(m.Ref)
		if err != nil {
			return s.errf(key+".ref", "%v", err)
		}
		def.apply(m)
		s.MetricDefs = append(s.MetricDefs, rec)
	}
	return nil
}

// findDefinition looks a ref up in the spec's libraries, in order: the
// first library holding the name@version, which its lock must release
// with the file's current hash.
func (s *Spec) findDefinition(ref string) (MetricDefinition, MetricDefinitionRecord, error) {
	base := filepath.Dir(s.path)
	name, version, _ := strings.Cut(ref, "@")
	for _, lib := range s.MetricLibrary {
		if err := diskio.CheckLocalPath("metric library", lib); err != nil {
			return MetricDefinition{}, MetricDefinitionRecord{}, err
		}
		dir := lib
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(base, lib)
		}
		path := filepath.Join(dir, name, version+".yaml")
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		lock, err := readMetricLock(dir)
		if err != nil {
			return MetricDefinition{}, MetricDefinitionRecord{}, fmt.Errorf("metric library %s: %v", lib, err)
		}
		def, sum, err := readMetricDefinition(path, ref)
		if err != nil {
			return MetricDefinition{}, MetricDefinitionRecord{}, err
		}
		switch released, ok := lock[ref]; {
		case !ok:
			return MetricDefinition{}, MetricDefinitionRecord{}, fmt.Errorf("%s is not released in %s (verity metrics lock --dir %s)", ref, filepath.Join(lib, MetricLockFile), lib)
		case released != sum:
			return MetricDefinition{}, MetricDefinitionRecord{}, &IntegrityError{Err: fmt.Errorf("%s changed after its release (sha256 %.12s, released %.12s in %s): a changed definition must be a new version", path, sum, released, filepath.Join(lib, MetricLockFile))}
		}
		rel, err := filepath.Rel(base, path)
		if err != nil {
			rel = path
		}
		return def, MetricDefinitionRecord{Ref: ref, Path: filepath.ToSlash(rel), SHA256: sum}, nil
	}
	return MetricDefinition{}, MetricDefinitionRecord{}, fmt.Errorf("%s is in none of the metric libraries %v", ref, s.MetricLibrary)
}

// apply writes the definition into a spec's metric.
func (d MetricDefinition) apply(m *Metric) {
	m.Name, m.Kind, m.Event, m.Aggregate, m.Level, m.Over = d.Name, d.Kind, d.Event, d.Aggregate, d.Level, d.Over
	m.Clamp, m.Denominator, m.Direction, m.AttributionHours = d.Clamp, d.Denominator, d.Direction, d.AttributionHours
	m.Filter = d.Filter
}

// PinMetric re-resolves the spec's metric whose ref names metric to
// another released version of it (replay --pin metric:NAME=vN), so that a
// pinned analysis can be tried on a new definition.
func (s *Spec) PinMetric(metric, version string) error {
	for i := range s.Metrics {
		m := &s.Metrics[i]
		if name, _, ok := strings.Cut(m.Ref, "@"); !ok || name != metric {
			continue
		}
		ref := metric + "@" + version
		def, rec, err := s.findDefinition(ref)
		if err != nil {
			return err
		}
		m.Ref = ref
		def.apply(m)
		s.MetricDefs = append([]MetricDefinitionRecord(nil), s.MetricDefs...) // never the manifest's
		for j := range s.MetricDefs {
			if strings.HasPrefix(s.MetricDefs[j].Ref, metric+"@") {
				s.MetricDefs[j] = rec
			}
		}
		return nil
	}
	return fmt.Errorf("no metric of the spec refers to %s in a metric library", metric)
}

// MetricDefinitionCauses names each metric definition that differs
// between two runs' manifests.
func MetricDefinitionCauses(old, cur []MetricDefinitionRecord, pinned map[string]bool) []string {
	byName := func(rs []MetricDefinitionRecord) map[string]MetricDefinitionRecord {
		out := map[string]MetricDefinitionRecord{}
		for _, r := range rs {
			name, _, _ := strings.Cut(r.Ref, "@")
			out[name] = r
		}
		return out
	}
	o, n := byName(old), byName(cur)
	names := map[string]bool{}
	for k := range o {
		names[k] = true
	}
	for k := range n {
		names[k] = true
	}
	var causes []string
	for _, name := range slices.Sorted(maps.Keys(names)) {
		a, inO := o[name]
		b, inN := n[name]
		suffix := ""
		if pinned["metric:"+name] {
			suffix = " (--pin)"
		}
		switch {
		case !inN:
			causes = append(causes, fmt.Sprintf("metric definition %s: %s no longer used", name, a.Ref))
		case !inO:
			causes = append(causes, fmt.Sprintf("metric definition %s: %s newly used%s", name, b.Ref, suffix))
		case a.Ref != b.Ref || a.SHA256 != b.SHA256:
			causes = append(causes, fmt.Sprintf("metric definition %s: %s -> %s (sha256 %.12s -> %.12s)%s", name, a.Ref, b.Ref, a.SHA256, b.SHA256, suffix))
		}
	}
	return causes
}

// readBounded reads a regular file of at most maxMetricFileBytes.
func readBounded(path string) ([]byte, error) {
	f, _, err := diskio.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetricFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetricFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxMetricFileBytes)
	}
	return b, nil
}

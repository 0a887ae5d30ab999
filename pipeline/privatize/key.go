package privatize

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/verity-analytics/verity/pipeline/diskio"
	"github.com/verity-analytics/verity/pipeline/expspec"
	"github.com/verity-analytics/verity/pipeline/ledgers"
	"github.com/verity-analytics/verity/privacy"
	"github.com/verity-analytics/verity/queries"
)

// LoadKey reads the noise key of a private spec. A missing or malformed key
// is a configuration error (exit 78); the key never appears in a message.
func LoadKey(spec *expspec.Spec, host ledgers.Host) (privacy.Key, error) {
	p := spec.Privacy
	path := ""
	if p.KeyFile != "" {
		path = p.KeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(spec.Path()), filepath.FromSlash(path))
		}
	}
	k, err := privacy.LoadKey(p.KeyEnv, path, os.Getenv, diskio.ReadRegularFile)
	if err != nil {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("no usable noise key, so no private release: %w", err)}
	}
	if k.Fingerprint() == ledgers.TestKeyFingerprint && !host.AllowTestKey {
		return nil, &expspec.SpecError{File: spec.Path(), Key: "privacy", Err: fmt.Errorf("%w: this is the committed TEST-ONLY key, which is public and protects nothing; it is accepted only with --allow-test-key (tests)", privacy.ErrBadKey)}
	}
	return k, nil
}

// internalTemplates are the templates the code pins (not the spec).
var internalTemplates = []string{"session/v1.sql", "settings/v1.sql", "file_metadata/v1.sql", "file_schema/v1.sql", "file_check/v1.sql", "event_names/v1.sql"}

// ReleasedTemplatesOnly refuses, for a private spec, any template that is
// not byte for byte the one released in the binary's own lock: a template
// folder with its own lock (--queries-dir) could drop a clamp or a
// de-duplication key and so break the sensitivity the noise is calibrated
// for.
func ReleasedTemplatesOnly(fsys fs.FS, spec *expspec.Spec) error {
	lock, err := queries.ReadLock(queries.FS())
	if err != nil {
		return err
	}
	released := map[string]string{}
	for _, e := range lock.Entries {
		released[e.Path] = e.SHA256
	}
	paths := append([]string{}, internalTemplates...)
	for _, name := range expspec.TemplateNames {
		paths = append(paths, name+"/"+spec.Templates[name]+".sql")
	}
	for _, p := range paths {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return &expspec.SpecError{File: spec.Path(), Key: "templates", Err: fmt.Errorf("template %s: %w", p, err)}
		}
		if sum := queries.Sum(data); released[p] != sum {
			return &expspec.SpecError{File: spec.Path(), Key: "templates", Err: fmt.Errorf("a private run uses only the templates released in this binary: %s has sha256 %s, the binary's lock %q", p, sum, released[p])}
		}
	}
	return nil
}

// Package queries holds Verity's SQL templates: immutable, versioned files
// embedded in the binary, and the lock file that pins their SHA-256.
//
// Each template is queries/<name>/v<N>.sql. A released template is never
// edited; a change is a new version. queries.lock lists every released file
// with its SHA-256 (sorted, one per line) and ends with a digest line over all
// of them. Verify compares a file system of templates with its lock and
// returns a *MismatchError naming the file and both hashes when a released
// template's bytes changed.
//
// Templates are rendered with text/template, but only identifiers reach the
// text: the single template function, ident, quotes an identifier that the
// caller has already validated, and col returns the expression for a contract
// column (a quoted source column, or a typed NULL when the optional column is
// absent). Every value reaches SQL as a bound parameter.
package queries

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

//go:embed queries.lock */*.sql
var embedded embed.FS

// FS returns the templates and lock compiled into the binary.
func FS() fs.FS { return embedded }

// LockFile is the name of the lock file at the root of a template file system.
const LockFile = "queries.lock"

var (
	// ErrNotLocked is returned by Load and Verify for a template file that has
	// no entry in the lock: it was never released.
	ErrNotLocked = errors.New("template is not in queries.lock")
	// ErrUnknownTemplate is returned by Load for a name/version with no file.
	ErrUnknownTemplate = errors.New("no such template")
)

// MismatchError reports a released template whose bytes differ from the lock,
// or a lock whose digest line does not match its entries.
type MismatchError struct {
	File   string // path inside the template file system, e.g. "assignment/v1.sql"
	Locked string // SHA-256 recorded in queries.lock
	Actual string // SHA-256 of the bytes found
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("template %s was edited after release: queries.lock has sha256 %s, file has sha256 %s (a change must be a new version)", e.File, e.Locked, e.Actual)
}

// Template is one released, verified SQL template.
type Template struct {
	Name    string // e.g. "assignment"
	Version string // e.g. "v1"
	Path    string // e.g. "assignment/v1.sql"
	SHA256  string // hex SHA-256 of Text
	Text    string
}

// LockEntry is one line of queries.lock.
type LockEntry struct {
	Path   string
	SHA256 string
}

// Lock is the parsed content of queries.lock.
type Lock struct {
	Entries []LockEntry // sorted by Path
	Digest  string      // SHA-256 over the entry lines
}

var (
	pathRE    = regexp.MustCompile(`^([a-z][a-z0-9_]*)/(v[1-9][0-9]*)\.sql$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionRE = regexp.MustCompile(`^v[1-9][0-9]*$`)
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Sum returns the hex SHA-256 of b.
func Sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// digest is the SHA-256 over the canonical entry lines.
func digest(entries []LockEntry) string {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s\n", e.Path, e.SHA256)
	}
	return Sum(b.Bytes())
}

// Marshal renders the lock in its canonical form.
func (l Lock) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# queries.lock: SHA-256 of every released SQL template. Written by `verity queries lock`; never edit by hand.\n")
	for _, e := range l.Entries {
		fmt.Fprintf(&b, "%s %s\n", e.Path, e.SHA256)
	}
	fmt.Fprintf(&b, "digest %s\n", digest(l.Entries))
	return b.Bytes()
}

// ParseLock parses queries.lock, checking its order and its digest line.
func ParseLock(data []byte) (Lock, error) {
	var l Lock
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return Lock{}, fmt.Errorf("%s line %d: want \"<path> <sha256>\", got %q", LockFile, line, text)
		}
		if fields[0] == "digest" {
			if l.Digest != "" {
				return Lock{}, fmt.Errorf("%s line %d: second digest line", LockFile, line)
			}
			l.Digest = fields[1]
			continue
		}
		if l.Digest != "" {
			return Lock{}, fmt.Errorf("%s line %d: entry after the digest line", LockFile, line)
		}
		if !pathRE.MatchString(fields[0]) || !hexRE.MatchString(fields[1]) {
			return Lock{}, fmt.Errorf("%s line %d: want \"<name>/v<N>.sql <64 hex>\", got %q", LockFile, line, text)
		}
		if n := len(l.Entries); n > 0 && l.Entries[n-1].Path >= fields[0] {
			return Lock{}, fmt.Errorf("%s line %d: entries must be sorted and unique, %q after %q", LockFile, line, fields[0], l.Entries[n-1].Path)
		}
		l.Entries = append(l.Entries, LockEntry{Path: fields[0], SHA256: fields[1]})
	}
	if err := sc.Err(); err != nil {
		return Lock{}, fmt.Errorf("%s: %w", LockFile, err)
	}
	if l.Digest == "" {
		return Lock{}, fmt.Errorf("%s: missing digest line", LockFile)
	}
	if want := digest(l.Entries); want != l.Digest {
		return Lock{}, &MismatchError{File: LockFile + " (digest line)", Locked: l.Digest, Actual: want}
	}
	return l, nil
}

// ReadLock reads and parses the lock file of fsys.
func ReadLock(fsys fs.FS) (Lock, error) {
	data, err := fs.ReadFile(fsys, LockFile)
	if err != nil {
		return Lock{}, fmt.Errorf("read %s: %w", LockFile, err)
	}
	return ParseLock(data)
}

// files lists the template files of fsys, sorted.
func files(fsys fs.FS) ([]string, error) {
	matches, err := fs.Glob(fsys, "*/*.sql")
	if err != nil {
		return nil, err
	}
	for _, m := range matches {
		if !pathRE.MatchString(m) {
			return nil, fmt.Errorf("template file %s: want <name>/v<N>.sql with a lower-case name", m)
		}
	}
	sort.Strings(matches)
	return matches, nil
}

// Status is the state of one template file relative to the lock.
type Status struct {
	Path     string
	SHA256   string
	Released bool // listed in the lock with the same hash
}

// Verify checks every template file of fsys against its lock. It returns the
// first problem found, in path order: a *MismatchError for an edited released
// template, an error wrapping ErrNotLocked for a file never released, or an
// error for a lock entry whose file is gone.
func Verify(fsys fs.FS) ([]Status, error) {
	lock, err := ReadLock(fsys)
	if err != nil {
		return nil, err
	}
	paths, err := files(fsys)
	if err != nil {
		return nil, err
	}
	locked := make(map[string]string, len(lock.Entries))
	for _, e := range lock.Entries {
		locked[e.Path] = e.SHA256
	}
	present := make(map[string]bool, len(paths))
	var out []Status
	for _, p := range paths {
		present[p] = true
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		sum := Sum(data)
		want, ok := locked[p]
		if !ok {
			return nil, fmt.Errorf("template %s (sha256 %s): %w; run `verity queries lock` to release it", p, sum, ErrNotLocked)
		}
		if want != sum {
			return nil, &MismatchError{File: p, Locked: want, Actual: sum}
		}
		out = append(out, Status{Path: p, SHA256: sum, Released: true})
	}
	for _, e := range lock.Entries {
		if !present[e.Path] {
			return nil, fmt.Errorf("template %s is in %s but its file is missing: released templates are never deleted", e.Path, LockFile)
		}
	}
	return out, nil
}

// Relock computes the lock that releases every template file of fsys. It
// refuses, with a *MismatchError, when a template already in the current lock
// has changed: released templates are immutable. A missing lock file is
// treated as empty. It returns the new lock and the paths newly released.
func Relock(fsys fs.FS) (Lock, []string, error) {
	var current Lock
	if _, err := fs.Stat(fsys, LockFile); err == nil {
		current, err = ReadLock(fsys)
		if err != nil {
			return Lock{}, nil, err
		}
	}
	locked := make(map[string]string, len(current.Entries))
	for _, e := range current.Entries {
		locked[e.Path] = e.SHA256
	}
	paths, err := files(fsys)
	if err != nil {
		return Lock{}, nil, err
	}
	var next Lock
	var added []string
	present := map[string]bool{}
	for _, p := range paths {
		present[p] = true
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return Lock{}, nil, err
		}
		sum := Sum(data)
		if want, ok := locked[p]; ok && want != sum {
			return Lock{}, nil, &MismatchError{File: p, Locked: want, Actual: sum}
		} else if !ok {
			added = append(added, p)
		}
		next.Entries = append(next.Entries, LockEntry{Path: p, SHA256: sum})
	}
	for _, e := range current.Entries {
		if !present[e.Path] {
			return Lock{}, nil, fmt.Errorf("template %s is in %s but its file is missing: released templates are never deleted", e.Path, LockFile)
		}
	}
	next.Digest = digest(next.Entries)
	return next, added, nil
}

// Load returns the template name@version from fsys after checking its bytes
// against the lock (a run also verifies the whole file system first, with
// Verify, so it never starts with an edited template).
func Load(fsys fs.FS, name, version string) (Template, error) {
	if !nameRE.MatchString(name) || !versionRE.MatchString(version) {
		return Template{}, fmt.Errorf("template %s@%s: want a lower-case name and a version v<N>", name, version)
	}
	p := path.Join(name, version+".sql")
	data, err := fs.ReadFile(fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return Template{}, fmt.Errorf("template %s@%s: %w (have %s)", name, version, ErrUnknownTemplate, strings.Join(Versions(fsys, name), ", "))
	} else if err != nil {
		return Template{}, fmt.Errorf("template %s@%s: %w", name, version, err)
	}
	lock, err := ReadLock(fsys)
	if err != nil {
		return Template{}, err
	}
	sum := Sum(data)
	for _, e := range lock.Entries {
		if e.Path == p {
			if e.SHA256 != sum {
				return Template{}, &MismatchError{File: p, Locked: e.SHA256, Actual: sum}
			}
			return Template{Name: name, Version: version, Path: p, SHA256: sum, Text: string(data)}, nil
		}
	}
	return Template{}, fmt.Errorf("template %s (sha256 %s): %w; run `verity queries lock` to release it", p, sum, ErrNotLocked)
}

// Versions lists the versions of the named template present in fsys, in
// numeric order.
func Versions(fsys fs.FS, name string) []string {
	matches, _ := fs.Glob(fsys, name+"/v*.sql")
	var vs []int
	for _, m := range matches {
		if sm := pathRE.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(strings.TrimPrefix(sm[2], "v"))
			vs = append(vs, n)
		}
	}
	sort.Ints(vs)
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "v" + strconv.Itoa(v)
	}
	return out
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidIdent reports whether s is an identifier that may be quoted into SQL:
// ASCII letters, digits and underscores, not starting with a digit.
func ValidIdent(s string) bool { return len(s) <= 128 && identRE.MatchString(s) }

// Columns maps the contract's column names to the source columns present in
// the input files. A contract column absent from the map is rendered as a
// typed NULL, which is how optional columns that the files lack are handled.
type Columns struct {
	Source map[string]string // contract name -> source column name
	Types  map[string]string // contract name -> SQL type used for a NULL stand-in
}

// Render executes the template with data. The only functions available are
// ident, which quotes a validated identifier, and col, which returns the
// expression for a contract column from a Columns value. Both refuse anything
// that is not a valid identifier, so no value can reach the SQL text.
func (t Template) Render(data any) (string, error) {
	funcs := template.FuncMap{
		"ident": func(s string) (string, error) {
			if !ValidIdent(s) {
				return "", fmt.Errorf("not a valid SQL identifier: %q", s)
			}
			return `"` + s + `"`, nil
		},
		"col": func(c Columns, name string) (string, error) {
			src, ok := c.Source[name]
			if !ok {
				typ, ok := c.Types[name]
				if !ok {
					return "", fmt.Errorf("column %q is neither present nor typed", name)
				}
				if !ValidIdent(typ) {
					return "", fmt.Errorf("not a valid SQL type: %q", typ)
				}
				return "CAST(NULL AS " + typ + ")", nil
			}
			if !ValidIdent(src) {
				return "", fmt.Errorf("column %q maps to %q, not a valid SQL identifier", name, src)
			}
			return `"` + src + `"`, nil
		},
	}
	tmpl, err := template.New(t.Path).Funcs(funcs).Option("missingkey=error").Parse(t.Text)
	if err != nil {
		return "", fmt.Errorf("template %s@%s: %w", t.Name, t.Version, err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template %s@%s: %w", t.Name, t.Version, err)
	}
	return b.String(), nil
}

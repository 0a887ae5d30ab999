package queries

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestEmbeddedTemplatesMatchLock is the release guard: it fails when any
// released template's bytes change, naming the file and both hashes.
func TestEmbeddedTemplatesMatchLock(t *testing.T) {
	st, err := Verify(FS())
	if err != nil {
		t.Fatalf("embedded templates do not match queries.lock: %v", err)
	}
	if len(st) == 0 {
		t.Fatal("no templates embedded")
	}
	lock, err := ReadLock(FS())
	if err != nil {
		t.Fatal(err)
	}
	if len(lock.Entries) != len(st) {
		t.Fatalf("lock has %d entries, %d files verified", len(lock.Entries), len(st))
	}
}

func copyFS(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyDetects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(fstest.MapFS)
		check  func(t *testing.T, err error)
	}{
		{"one byte of a released template", func(m fstest.MapFS) {
			f := m["sufstats/v1.sql"]
			b := append([]byte(nil), f.Data...)
			b[len(b)-2] ^= 1
			m["sufstats/v1.sql"] = &fstest.MapFile{Data: b}
		}, func(t *testing.T, err error) {
			var mm *MismatchError
			if !errors.As(err, &mm) {
				t.Fatalf("want *MismatchError, got %v", err)
			}
			if mm.File != "sufstats/v1.sql" || mm.Locked == mm.Actual || len(mm.Locked) != 64 || len(mm.Actual) != 64 {
				t.Fatalf("mismatch does not name the file and both hashes: %+v", mm)
			}
			for _, want := range []string{"sufstats/v1.sql", mm.Locked, mm.Actual} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
		}},
		{"unreleased file", func(m fstest.MapFS) {
			m["sufstats/v9.sql"] = &fstest.MapFile{Data: []byte("SELECT 1")}
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrNotLocked) || !strings.Contains(err.Error(), "sufstats/v9.sql") {
				t.Fatalf("want ErrNotLocked naming the file, got %v", err)
			}
		}},
		{"released file deleted", func(m fstest.MapFS) {
			delete(m, "quality/v1.sql")
		}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "quality/v1.sql") {
				t.Fatalf("want an error naming the deleted file, got %v", err)
			}
		}},
		{"lock line edited", func(m fstest.MapFS) {
			lines := strings.Split(string(m[LockFile].Data), "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "quality/v1.sql ") {
					lines[i] = "quality/v1.sql " + strings.Repeat("0", 64)
				}
			}
			m[LockFile] = &fstest.MapFile{Data: []byte(strings.Join(lines, "\n"))}
		}, func(t *testing.T, err error) {
			var mm *MismatchError
			if !errors.As(err, &mm) || !strings.Contains(mm.File, "digest") {
				t.Fatalf("want a digest mismatch, got %v", err)
			}
		}},
		{"bad template file name", func(m fstest.MapFS) {
			m["Quality/v1.sql"] = &fstest.MapFile{Data: []byte("SELECT 1")}
		}, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "Quality/v1.sql") {
				t.Fatalf("want an error naming the file, got %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := copyFS(t)
			tc.mutate(m)
			_, err := Verify(m)
			tc.check(t, err)
		})
	}
}

func TestRelock(t *testing.T) {
	m := copyFS(t)
	m["sufstats/v99.sql"] = &fstest.MapFile{Data: []byte("SELECT 2\n")}
	lock, added, err := Relock(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0] != "sufstats/v99.sql" {
		t.Fatalf("added = %v, want [sufstats/v99.sql]", added)
	}
	m[LockFile] = &fstest.MapFile{Data: lock.Marshal()}
	if _, err := Verify(m); err != nil {
		t.Fatalf("verify after relock: %v", err)
	}
	// Editing a released template is refused, not recorded.
	m["sufstats/v99.sql"] = &fstest.MapFile{Data: []byte("SELECT 3\n")}
	var mm *MismatchError
	if _, _, err := Relock(m); !errors.As(err, &mm) || mm.File != "sufstats/v99.sql" {
		t.Fatalf("relock of an edited release: want *MismatchError, got %v", err)
	}
}

func TestParseLockRejects(t *testing.T) {
	good := string(Lock{Entries: []LockEntry{{"a/v1.sql", strings.Repeat("a", 64)}, {"b/v1.sql", strings.Repeat("b", 64)}}}.Marshal())
	if _, err := ParseLock([]byte(good)); err != nil {
		t.Fatalf("canonical lock rejected: %v", err)
	}
	tests := map[string]string{
		"unsorted":     strings.Replace(good, "a/v1.sql", "c/v1.sql", 1),
		"no digest":    good[:strings.Index(good, "digest")],
		"garbage line": good + "hello\n",
		"bad hash":     strings.Replace(good, strings.Repeat("a", 64), "xyz", 1),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseLock([]byte(text)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestLoadUnknownVersionListsVersions(t *testing.T) {
	_, err := Load(FS(), "sufstats", "v99")
	if !errors.Is(err, ErrUnknownTemplate) || !strings.Contains(err.Error(), "v1") {
		t.Fatalf("want ErrUnknownTemplate listing the versions, got %v", err)
	}
}

func TestRenderOnlyIdentifiers(t *testing.T) {
	tmpl := Template{Name: "t", Version: "v1", Path: "t/v1.sql", Text: `SELECT {{col .C "a"}}, {{col .C "b"}}, {{ident .X}} FROM x`}
	type data struct {
		C Columns
		X string
	}
	got, err := tmpl.Render(data{C: Columns{Source: map[string]string{"a": "src_a"}, Types: map[string]string{"b": "VARCHAR"}}, X: "ok_1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `SELECT "src_a", CAST(NULL AS VARCHAR), "ok_1" FROM x`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	bad := []data{
		{C: Columns{Source: map[string]string{"a": `x"; DROP TABLE t; --`}, Types: map[string]string{"b": "VARCHAR"}}, X: "ok"},
		{C: Columns{Source: map[string]string{"a": "a"}, Types: map[string]string{"b": "VARCHAR); DROP"}}, X: "ok"},
		{C: Columns{Source: map[string]string{"a": "a"}, Types: map[string]string{"b": "VARCHAR"}}, X: "1abc"},
		{C: Columns{Source: map[string]string{"a": "a"}}, X: "ok"},
	}
	for i, d := range bad {
		if s, err := tmpl.Render(d); err == nil {
			t.Errorf("case %d: rendered %q, want an error", i, s)
		}
	}
}

// FuzzRender checks that no input string reaches the SQL text except as a
// validated, quoted identifier.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"unit_id", `a"b`, "x y", "1x", "ü", "", "a;DROP"} {
		f.Add(s)
	}
	tmpl := Template{Name: "t", Version: "v1", Path: "t/v1.sql", Text: `SELECT {{ident .}} FROM x`}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := tmpl.Render(s)
		if ValidIdent(s) {
			if err != nil || got != `SELECT "`+s+`" FROM x` {
				t.Fatalf("valid identifier %q: got %q, %v", s, got, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("invalid identifier %q rendered as %q", s, got)
		}
	})
}

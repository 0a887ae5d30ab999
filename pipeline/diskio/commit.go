package diskio

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// StagedFile is one named output and its bytes.
type StagedFile struct {
	Name string
	Data []byte
}

// FolderLock is an exclusive advisory lock (flock) on a run folder's parent.
// The kernel releases it when the process dies, even by SIGKILL, so a killed
// run never leaves a stale lock.
type FolderLock struct{ f *os.File }

// ErrLocked is returned when another Verity process holds the lock on an
// experiment's output folder. It maps to exit code 1 (retry later).
var ErrLocked = errors.New("another verity run is writing this experiment's outputs")

func LockDir(dir string) (*FolderLock, error) {
	if err := os.MkdirAll(dir, publicDirMode); err != nil {
		return nil, outputError(dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, publicFileMode)
	if err != nil {
		return nil, outputError(dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &TransientError{Err: fmt.Errorf("%s: %w", dir, ErrLocked)}
		}
		return nil, err
	}
	return &FolderLock{f: f}, nil
}

func (l *FolderLock) Unlock() error {
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return errors.Join(err, l.f.Close())
}

// OutputDirError is an output folder (or file) that cannot be created or
// written for a reason no retry fixes: permission denied, a read-only file
// system, a file where a folder must be. Exit code 73 (EX_CANTCREAT).
// Other write failures (a full disk) stay transient.
type OutputDirError struct {
	Dir  string // the path that cannot be created or written
	Flag string // the flag that named it; "" means --out
	Err  error
}

func (e *OutputDirError) Error() string {
	flag := e.Flag
	if flag == "" {
		flag = "--out"
	}
	return fmt.Sprintf("cannot create output %s: %v; check %s", e.Dir, e.Err, flag)
}

func (e *OutputDirError) Unwrap() error { return e.Err }

// outputError classifies a failure to create or write in an output folder.
func outputError(dir string, err error) error {
	if cantCreate(err) {
		return &OutputDirError{Dir: dir, Err: err}
	}
	return &TransientError{Err: fmt.Errorf("output folder %s: %w", dir, err)}
}

// OutputFileError classifies a failure to write the output file path named
// by flag: an *OutputDirError (exit 73) when no retry fixes it, else
// transient.
func OutputFileError(path, flag string, err error) error {
	if cantCreate(err) {
		return &OutputDirError{Dir: path, Flag: flag, Err: err}
	}
	return &TransientError{Err: fmt.Errorf("%s %s: %w", flag, path, err)}
}

func cantCreate(err error) bool {
	for _, errno := range []error{fs.ErrPermission, syscall.ENOTDIR, syscall.EISDIR, syscall.EROFS, syscall.EEXIST, syscall.ENAMETOOLONG, syscall.ELOOP} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// CheckOutputDir checks, before any work, that dir can receive outputs: it
// is a folder, or can be created as one, and this process may create files
// in it (in its nearest existing ancestor when it does not exist yet). It
// leaves nothing behind. A problem no retry fixes is an *OutputDirError
// (exit 73) naming dir; flag names the flag that gave it ("" for --out).
func CheckOutputDir(dir, flag string) error {
	fail := func(err error) error {
		if cantCreate(err) {
			return &OutputDirError{Dir: dir, Flag: flag, Err: err}
		}
		return &TransientError{Err: fmt.Errorf("output folder %s: %w", dir, err)}
	}
	p := dir
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				kind := "regular file"
				if !st.Mode().IsRegular() {
					kind = fileKind(st.Mode())
				}
				return &OutputDirError{Dir: dir, Flag: flag, Err: fmt.Errorf("%s is a %s, not a folder", p, kind)}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fail(err)
		}
		p = parent
	}
	probe, err := os.CreateTemp(p, ".verity-probe-")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the probe's name means nothing to the reader
			if p != dir {
				err = fmt.Errorf("%s: %w", p, pe.Err)
			}
		}
		return fail(err)
	}
	name := probe.Name()
	probe.Close()
	return os.Remove(name)
}

// StagingPrefix and replacedPrefix name the hidden folders of an unfinished
// commit. A folder is complete only when it has its final name, and it gets
// its final name only after manifest.json, written last, is on disk.
const (
	StagingPrefix  = ".staging-"
	ReplacedPrefix = ".replaced-"
)

// CommitFolder writes files and then the manifest into a staging folder
// beside final, syncs them, and renames the staging folder to final. An
// existing final folder is replaced only if it is a completed Verity run
// (it has manifest.json). Leftovers of killed runs are removed first; the
// caller holds the lock on final's parent.
func CommitFolder(final string, files []StagedFile, manifest func([]OutputFile) ([]byte, error)) error {
	err := commitFolderSteps(final, files, manifest)
	var pe *fs.PathError
	var le *os.LinkError
	if err != nil && !errors.Is(err, ErrNoOverwrite) && (errors.As(err, &pe) || errors.As(err, &le)) {
		return outputError(filepath.Dir(final), err)
	}
	return err
}

func commitFolderSteps(final string, files []StagedFile, manifest func([]OutputFile) ([]byte, error)) error {
	parent, base := filepath.Dir(final), filepath.Base(final)
	if err := cleanInterrupted(parent, base, final); err != nil {
		return err
	}
	if st, err := os.Stat(final); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: %w", final, ErrNoOverwrite)
		}
		if _, err := os.Stat(filepath.Join(final, "manifest.json")); err != nil {
			return fmt.Errorf("%s: %w", final, ErrNoOverwrite)
		}
	}
	staging, err := mkdirStaging(parent, StagingPrefix+base+".")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	if err := stageFiles(staging, files, manifest); err != nil {
		return err
	}
	var replaced string
	if _, err := os.Stat(final); err == nil {
		replaced = filepath.Join(parent, ReplacedPrefix+base+"."+filepath.Base(staging)[len(StagingPrefix+base+"."):])
		if err := os.Rename(final, replaced); err != nil {
			return err
		}
	}
	if err := os.Rename(staging, final); err != nil {
		if replaced != "" {
			os.Rename(replaced, final)
		}
		return err
	}
	ok = true
	if err := syncDir(parent); err != nil {
		return err
	}
	if replaced != "" {
		return os.RemoveAll(replaced)
	}
	return nil
}

// cleanInterrupted removes what an interrupted commit of final left in
// parent — except a replaced run whose replacement never arrived, which is
// the last complete result and is put back.
func cleanInterrupted(parent, base, final string) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := filepath.Join(parent, e.Name())
		if strings.HasPrefix(e.Name(), ReplacedPrefix+base+".") {
			// A run that died between its two renames: the replaced run is
			// the last complete result; put it back rather than lose it.
			if _, err := os.Stat(final); errors.Is(err, os.ErrNotExist) {
				if _, err := os.Stat(filepath.Join(name, "manifest.json")); err == nil {
					if err := os.Rename(name, final); err != nil {
						return fmt.Errorf("restore the run an interrupted run was replacing: %w", err)
					}
					continue
				}
			}
		}
		if strings.HasPrefix(e.Name(), StagingPrefix+base+".") || strings.HasPrefix(e.Name(), ReplacedPrefix+base+".") {
			if err := os.RemoveAll(name); err != nil {
				return fmt.Errorf("remove leftover of an interrupted run: %w", err)
			}
		}
	}
	return nil
}

// stageFiles writes the outputs into staging, synced, then the manifest
// built from their records, last.
func stageFiles(staging string, files []StagedFile, manifest func([]OutputFile) ([]byte, error)) error {
	var recs []OutputFile
	for _, f := range files {
		if err := writeSynced(filepath.Join(staging, f.Name), f.Data); err != nil {
			return err
		}
		recs = append(recs, OutputFile{Name: f.Name, Size: len(f.Data), SHA256: SHA256Hex(f.Data)})
	}
	m, err := manifest(recs)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(staging, "manifest.json"), m); err != nil {
		return err
	}
	return syncDir(staging)
}

// Public outputs are created with modes 0777 (folders) and 0666 (files)
// less the process's umask, as mkdir(1) and a shell redirection would, so
// that a shared result store's umask (022, 002) decides who reads them. A
// private run's restricted record is written elsewhere, 0700/0600 whatever
// the umask (writeRestricted).
const (
	publicDirMode  = 0o777
	publicFileMode = 0o666
)

func writeSynced(path string, data []byte) error {
	return writeSyncedMode(path, data, publicFileMode)
}

// mkdirStaging creates a new folder in parent named prefix plus a random
// suffix, like os.MkdirTemp but with the public folder mode less the umask
// (os.MkdirTemp's 0700 would make every committed run private to its
// owner).
func mkdirStaging(parent, prefix string) (string, error) {
	for range 100 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		dir := filepath.Join(parent, prefix+hex.EncodeToString(b[:]))
		err := os.Mkdir(dir, publicDirMode)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: could not find an unused staging folder name", parent)
}

// writeSyncedMode creates path (it must not exist) with data and mode, and
// syncs it.
func writeSyncedMode(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OutputFile is one output's name, size and SHA-256.
type OutputFile struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

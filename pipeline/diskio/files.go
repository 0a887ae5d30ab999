package diskio

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// MarshalJSON writes v as indented JSON with a final newline. encoding/json
// writes struct fields in declaration order and floats in shortest
// round-trip form, so the bytes are canonical for a given value.
func MarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func SHA256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// RegularFile resolves path (following symlinks) and checks, without
// opening it, that it is a regular file. It returns the resolved absolute
// path, or an error saying what the path is instead.
func RegularFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if err := checkRegular(st); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return filepath.Abs(real)
}

// checkRegular returns an error naming the kind of a file that is not a
// regular file.
func checkRegular(st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("is a %s, not a regular file", fileKind(st.Mode()))
}

// NotRegularInput adds what an input must be to a checkRegular error.
func NotRegularInput(err error) error {
	return fmt.Errorf("%w; inputs must be regular Parquet files (or symlinks to them)", err)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

// OpenRegular opens path for reading only if it is a regular file (a
// symlink to one is fine). It never blocks or reads for ever on what is not
// one: the path is checked with Stat first, then opened with O_NONBLOCK (so
// a FIFO swapped in between cannot block open(2)) and checked again on the
// open descriptor. Inputs, specs, manifests, snapshots and key files are
// opened through it.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRegular(st); err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	// Go clears O_NONBLOCK again on a regular file (it cannot be polled).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err = f.Stat()
	if err == nil {
		err = checkRegular(st)
	}
	if err != nil {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return f, st, nil
}

// ReadRegularFile is os.ReadFile for regular files only (see OpenRegular).
func ReadRegularFile(path string) ([]byte, error) {
	f, _, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteAtomicMode replaces path with data through a synced temporary file
// with the given permissions.
func WriteAtomicMode(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeSyncedMode(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

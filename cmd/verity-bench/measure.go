package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// measurement is one subprocess run: its wall time (fork to exit, as a
// scheduler sees it) and its peak resident set size as the kernel reports it
// for the child (getrusage ru_maxrss).
type measurement struct {
	Wall   time.Duration
	MaxRSS int64 // bytes
	User   time.Duration
	Sys    time.Duration
	Stdout []byte
	Stderr []byte
}

// measure runs name with args and waits for it. Cancelling ctx interrupts
// the child (SIGINT, so that DuckDB closes and removes its spill files), and
// kills it if it has not exited 30 s later.
func measure(ctx context.Context, name string, args ...string) (measurement, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	m := measurement{Wall: time.Since(t0), Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if cmd.ProcessState != nil {
		m.User, m.Sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSS = int64(ru.Maxrss)
			if runtime.GOOS != "darwin" { // Linux reports KiB, macOS bytes
				m.MaxRSS *= 1024
			}
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(errb.Bytes(), 2000))
	}
	return m, nil
}

// tail returns at most the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// phase is one phase timing that `verity run` logs ("phase done").
type phase struct {
	Experiment string
	Name       string
	Millis     float64
}

// verityPhases extracts the phase timings from verity's JSON log lines.
func verityPhases(stderr []byte) []phase {
	var out []phase
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg        string  `json:"msg"`
			Experiment string  `json:"experiment"`
			Phase      string  `json:"phase"`
			MS         float64 `json:"ms"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "phase done" {
			out = append(out, phase{Experiment: rec.Experiment, Name: rec.Phase, Millis: rec.MS})
		}
	}
	return out
}

// phaseTotals sums the phase timings by phase name, keeping first-seen
// order.
func phaseTotals(ps []phase) (names []string, ms map[string]float64) {
	ms = map[string]float64{}
	for _, p := range ps {
		if _, ok := ms[p.Name]; !ok {
			names = append(names, p.Name)
		}
		ms[p.Name] += p.Millis
	}
	return names, ms
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// secs formats a duration in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

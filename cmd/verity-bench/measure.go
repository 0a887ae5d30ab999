package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measurement is one subprocess run: its wall time (fork to exit, as a
// scheduler sees it), its CPU time and its peak resident set size as the
// kernel reports it for the child (ru_maxrss from wait4).
//
// A child's ru_maxrss is not only its own: on Linux the kernel records, at
// exec, the high-water mark of the address space the child was forked from
// (the parent's) into the child's maxrss. A bench that had grown to 5 GiB
// writing data reported 5 GiB for every child it ran. So measure does not
// fork the measured program from the bench: it starts a small launcher (this
// binary's hidden subcommand _measure, a fresh address space after exec),
// which forks and waits for the program and reports its rusage. What the
// program can inherit is then the launcher's own high-water mark, which the
// launcher reads from /proc/self/status (VmHWM) and reports as Inherited.
type measurement struct {
	Wall   time.Duration
	MaxRSS int64 // bytes
	// Inherited is the peak RSS of the process the measured program was
	// forked from (the launcher): MaxRSS is max(Inherited, the program's own
	// peak), so a MaxRSS not well above it says nothing about the program.
	Inherited int64 // bytes
	User      time.Duration
	Sys       time.Duration
	Stdout    []byte
	Stderr    []byte
}

// PeakKnown reports whether MaxRSS is the measured program's own peak: it
// must be at least twice what the program can have inherited from its
// parent (the margin absorbs the kernel's lazily updated RSS counters).
func (m measurement) PeakKnown() bool { return m.MaxRSS > 0 && m.MaxRSS >= 2*m.Inherited }

// peak formats the peak RSS, or says why there is none: a figure that may be
// the parent's is never printed as the program's.
func peak(m measurement) string {
	if !m.PeakKnown() {
		if m.MaxRSS == 0 {
			return "not measured"
		}
		return fmt.Sprintf("not measured (≤ %s, within 2× of the launcher's %s)", mib(m.MaxRSS), mib(m.Inherited))
	}
	return mib(m.MaxRSS)
}

// measureCmdName is the hidden subcommand that runs one measured program
// (measureChildCmd).
const measureCmdName = "_measure"

// childReport is what the launcher reports about the program it ran.
type childReport struct {
	WallNS, UserNS, SysNS int64
	MaxRSS                int64 // bytes
	Inherited             int64 // bytes: the launcher's own VmHWM
}

// measure runs name with args, through the launcher, and waits for it.
// Cancelling ctx interrupts the child (SIGINT, so that DuckDB closes and
// removes its spill files), and kills it if it has not exited 30 s later.
func measure(ctx context.Context, name string, args ...string) (measurement, error) {
	self, err := os.Executable()
	if err != nil {
		return measurement{}, fmt.Errorf("measure %s: %w", name, err)
	}
	f, err := os.CreateTemp("", "verity-bench-measure-*.json")
	if err != nil {
		return measurement{}, fmt.Errorf("measure %s: %w", name, err)
	}
	report := f.Name()
	f.Close()
	defer os.Remove(report)
	cmd := exec.CommandContext(ctx, self, append([]string{measureCmdName, "--report", report, "--", name}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err = cmd.Run()
	m := measurement{Wall: time.Since(t0), Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var rep childReport
	if b, rerr := os.ReadFile(report); rerr == nil && len(b) > 0 {
		if jerr := json.Unmarshal(b, &rep); jerr == nil {
			m.Wall = time.Duration(rep.WallNS)
			m.User, m.Sys = time.Duration(rep.UserNS), time.Duration(rep.SysNS)
			m.MaxRSS, m.Inherited = rep.MaxRSS, rep.Inherited
		} else if err == nil {
			err = fmt.Errorf("launcher report: %w", jerr)
		}
	} else if err == nil {
		err = errors.New("the launcher wrote no report")
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(errb.Bytes(), 2000))
	}
	return m, nil
}

// measureChildCmd is the launcher: `verity-bench _measure --report FILE --
// NAME ARGS...` runs NAME with the launcher's stdin, stdout and stderr,
// waits for it, writes a childReport to FILE and exits with NAME's exit
// code (128 + the signal's number when a signal ended it). Cancelling ctx
// (SIGINT or SIGTERM to the launcher) interrupts NAME; if the launcher is
// killed, so is NAME (Linux).
func measureChildCmd(ctx context.Context, args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet(measureCmdName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	report := fs.String("report", "", "file to write the child's rusage to (JSON)")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if *report == "" || fs.NArg() == 0 {
		return exitUsage, errors.New("_measure: want --report FILE -- NAME [ARGS...]")
	}
	// Pdeathsig is sent when the thread that forked the child exits: keep
	// the launcher on one thread's lifetime.
	runtime.LockOSThread()
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = childProcAttr()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return exitFailed, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(os.Interrupt)
		case <-done:
		}
	}()
	werr := cmd.Wait()
	close(done)
	rep := childReport{WallNS: int64(time.Since(t0)), Inherited: selfHWM()}
	ps := cmd.ProcessState
	rep.UserNS, rep.SysNS = int64(ps.UserTime()), int64(ps.SystemTime())
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rep.MaxRSS = maxrssBytes(ru)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return exitFailed, err
	}
	if err := os.WriteFile(*report, b, 0o644); err != nil {
		return exitFailed, err
	}
	if werr != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		if code := ps.ExitCode(); code > 0 {
			return code, nil
		}
		return exitFailed, werr
	}
	return exitOK, nil
}

// maxrssBytes is ru_maxrss in bytes (Linux reports KiB, macOS bytes).
func maxrssBytes(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}

// selfHWM is the peak RSS of this process's own address space: VmHWM from
// /proc/self/status (Linux), which is what a child forked now inherits;
// elsewhere getrusage(RUSAGE_SELF), which can only be larger.
func selfHWM() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return maxrssBytes(&ru)
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

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// allocEnv makes the test binary, run as a measured child, allocate and
// touch that many MiB and exit.
const allocEnv = "VERITY_BENCH_TEST_ALLOC_MIB"

// TestMain lets the test binary play the bench's launcher (measure runs
// os.Executable(), which here is the test binary), the scan floor and a
// measured child of known size.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == measureCmdName {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code, err := measureChildCmd(ctx, os.Args[2:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "verity-bench:", err)
		}
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == prepareCmdName {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code, err := prepareCmd(ctx, os.Args[2:], os.Stdin, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "verity-bench:", err)
		}
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "scanfloor" {
		code, err := scanFloorCmd(context.Background(), os.Args[2:], os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "verity-bench:", err)
		}
		os.Exit(code)
	}
	if v := os.Getenv(allocEnv); v != "" && len(os.Args) > 1 && os.Args[1] == "alloc-child" {
		n, _ := strconv.Atoi(v)
		b := touch(n << 20)
		runtime.KeepAlive(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// touch allocates n bytes and writes every page, so that they are resident.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// A measured child's peak RSS is its own, however large the bench grew
// before starting it: a child forked straight from a 300 MiB parent reports
// at least 300 MiB on Linux (the kernel carries the parent's high-water
// mark across exec), which is what the bench printed for Verity and the
// reference at 10M after writing the sorted copy of the events in-process.
func TestMeasurePeakIsTheChilds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the inherited high-water mark is Linux's behaviour")
	}
	const parentMiB, childMiB = 300, 64
	big := touch(parentMiB << 20)
	if hwm := selfHWM(); hwm < parentMiB<<20 {
		t.Fatalf("the test process's own peak is %s, want at least %d MiB", mib(hwm), parentMiB)
	}
	t.Setenv(allocEnv, strconv.Itoa(childMiB))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := measure(context.Background(), exe, "alloc-child")
	runtime.KeepAlive(big)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child peak %s, inherited at most %s", mib(m.MaxRSS), mib(m.Inherited))
	// The child's own peak: its 64 MiB plus the Go runtime and the
	// binary's resident pages, far below the parent's 300 MiB.
	if m.MaxRSS < childMiB<<20 || m.MaxRSS > 150<<20 {
		t.Errorf("measured peak %s; want the child's own, between %d and 150 MiB (the parent holds %d MiB)", mib(m.MaxRSS), childMiB, parentMiB)
	}
	if !m.PeakKnown() {
		t.Errorf("peak %s flagged as unknown (inherited %s)", mib(m.MaxRSS), mib(m.Inherited))
	}
	if got := peak(m); got != mib(m.MaxRSS) {
		t.Errorf("peak(m) = %q", got)
	}
}

// A peak that may be the parent's is flagged, never printed as a figure.
func TestPeakFlagsInheritedRSS(t *testing.T) {
	for _, tc := range []struct {
		m    measurement
		want string
	}{
		{measurement{MaxRSS: 900 << 20, Inherited: 20 << 20}, "900 MiB"},
		{measurement{MaxRSS: 4906 << 20, Inherited: 4906 << 20}, "not measured (≤ 4906 MiB, within 2× of the launcher's 4906 MiB)"},
		{measurement{MaxRSS: 30 << 20, Inherited: 20 << 20}, "not measured (≤ 30 MiB, within 2× of the launcher's 20 MiB)"},
		{measurement{}, "not measured"},
	} {
		if got := peak(tc.m); got != tc.want {
			t.Errorf("peak(%d, inherited %d) = %q, want %q", tc.m.MaxRSS, tc.m.Inherited, got, tc.want)
		}
	}
}

// A failing child's exit code reaches the bench through the launcher.
func TestMeasureExitCode(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	m, err := measure(context.Background(), "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
	if err == nil {
		t.Fatal("exit 3 measured as success")
	}
	if string(m.Stdout) != "out\n" || string(m.Stderr) != "err\n" {
		t.Errorf("stdout %q, stderr %q", m.Stdout, m.Stderr)
	}
	if m.MaxRSS == 0 {
		t.Error("no rusage for a failed child")
	}
	t.Log(err)
}

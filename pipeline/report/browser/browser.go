// Package browser opens local HTML files in Debian's headless Chromium and
// reports what a person's browser would do with them: the DOM after load,
// console messages (a blocked fetch or CSP violation is logged there) and
// the network requests the page made. Tests of report.html use it; it
// never touches the network (every host lookup fails locally).
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Path is where Debian's chromium package installs the browser.
const Path = "/usr/bin/chromium"

// ErrMissing is returned by Available when Chromium is not installed.
var ErrMissing = errors.New("chromium is not installed (apt-get update && apt-get install -y chromium)")

// Available reports whether Chromium is installed.
func Available() error {
	if _, err := os.Stat(Path); err != nil {
		return fmt.Errorf("%s: %w", Path, ErrMissing)
	}
	return nil
}

// Args are the flags every run uses: headless, no sandbox (root in CI), no
// background traffic of Chromium's own, and host-resolver-rules that make
// every name lookup fail locally, so not even DNS leaves the machine.
func Args(profile string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + profile,
		"--enable-logging=stderr", "--v=0",
	}
}

// Run is what one Chromium run left behind.
type Run struct {
	DOM    string // stdout: the DOM with --dump-dom
	Stderr string
	NetLog string // path of the network log
}

// Open opens path (a local file) with the given action flags (--dump-dom,
// --screenshot=…), a fresh profile under tmp, and a 30-second limit.
func Open(path, tmp string, action ...string) (Run, error) {
	netlog := filepath.Join(tmp, "netlog.json")
	args := append(Args(filepath.Join(tmp, "profile")), "--log-net-log="+netlog)
	args = append(args, action...)
	args = append(args, "file://"+path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return Run{}, fmt.Errorf("chromium %s: %v (context: %v)\nstderr:\n%s", path, err, ctx.Err(), stderr.String())
	}
	return Run{DOM: stdout.String(), Stderr: stderr.String(), NetLog: netlog}, nil
}

// consoleRE matches Chromium's log line for a console message, e.g.
//
//	[4476:4476:1121/014723.292865:INFO:CONSOLE:0] "Loading the image 'https://…' violates the following Content Security Policy directive: …", source: file:///…/page.html (0)
//
// (older versions print CONSOLE(0)). The page has no scripts, so every
// console message is an error: a blocked fetch, a CSP violation, a bad
// resource.
var consoleRE = regexp.MustCompile(`:CONSOLE[:(]`)

// ConsoleErrors returns the stderr lines that report a console message,
// a Content-Security-Policy violation, or a failed page load.
func ConsoleErrors(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if consoleRE.MatchString(line) ||
			strings.Contains(line, "Content Security Policy") ||
			strings.Contains(line, "Content-Security-Policy") ||
			strings.Contains(line, "Page load failed") {
			out = append(out, line)
		}
	}
	return out
}

// PageRequests returns the URLs of network requests the page made, from
// Chromium's net log: URL_REQUEST_START_JOB events whose network isolation
// key is the file:// page. (Chromium's own background requests, if any,
// carry another key; the page file itself is not loaded through the
// network stack.) A log that cannot be read is an error, never "no
// requests".
func PageRequests(netlog string) ([]string, error) {
	b, err := os.ReadFile(netlog)
	if err != nil {
		return nil, err
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int             `json:"type"`
			Params json.RawMessage `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &log); err != nil {
		return nil, fmt.Errorf("net log %s: %w", netlog, err)
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, errors.New("net log has no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range log.Events {
		if e.Type != start || e.Params == nil {
			continue
		}
		var p struct {
			URL string `json:"url"`
			NIK string `json:"network_isolation_key"`
		}
		if err := json.Unmarshal(e.Params, &p); err != nil {
			return nil, fmt.Errorf("net log event: %w", err)
		}
		if strings.Contains(p.NIK, "file://") && !strings.HasPrefix(p.URL, "file:") {
			urls = append(urls, p.URL)
		}
	}
	return urls, nil
}

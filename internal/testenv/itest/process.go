package itest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/procgroup"
)

// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const stopGrace = 15 * time.Second

// logTailLines is how much of a server's log a failed test prints.
const logTailLines = 200

// Process is one running server process: a real OS process in its own
// process group, so signals reach everything it spawned. Its combined
// stdout and stderr go to a log file in Dir. A Process may be killed and
// started again on the same port and data directory.
type Process struct {
	// Name identifies the server in logs and failure messages.
	Name string
	// Host is the address the server listens on (always 127.0.0.1).
	Host string
	// Port is the TCP port the server serves on; 0 if it serves none.
	Port int
	// Dir holds the server's data, configuration and log file.
	Dir string

	bin          string
	args         []string
	env          []string // nil means the test process's environment
	ready        func() bool
	readyTimeout time.Duration
	logPath      string

	mu     sync.Mutex
	run    *procgroup.Run // the current (or last) run; nil before the first
	paused bool
}

// newProcess describes a server process without starting it. ready reports
// whether the server is serving; nil means as soon as it is started.
func newProcess(name string, port int, dir, bin string, args []string, ready func() bool, readyTimeout time.Duration) *Process {
	return &Process{
		Name: name, Host: "127.0.0.1", Port: port, Dir: dir,
		bin: bin, args: args, ready: ready, readyTimeout: readyTimeout,
		logPath: filepath.Join(dir, name+".log"),
	}
}

// Addr returns "127.0.0.1:port".
func (p *Process) Addr() string {
	return net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
}

// Pid returns the process id of the current (or last) run, 0 if never started.
func (p *Process) Pid() int {
	if r := p.current(); r != nil {
		return r.Pid()
	}
	return 0
}

func (p *Process) current() *procgroup.Run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run
}

// Running reports whether the process has been started and has not exited.
func (p *Process) Running() bool {
	r := p.current()
	return r != nil && r.Running()
}

// Start starts the process again with the same arguments, port and data
// directory and waits until it is ready. The test fails if it is running,
// exits during startup or is not ready in time.
func (p *Process) Start(tb testing.TB) {
	tb.Helper()
	if err := p.launch(); err != nil {
		tb.Fatalf("starting %s: %v", p.Name, err)
	}
	if err := p.awaitReady(); err != nil {
		tb.Fatalf("starting %s: %v", p.Name, err)
	}
}

// launch starts the OS process (internal/procgroup reaps it), killed if the test binary dies
// without running its cleanups (a -timeout panic, a kill), so no server outlives it holding ports.
func (p *Process) launch() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil && p.run.Running() {
		return errors.New("already running")
	}
	r, err := procgroup.Start(procgroup.Spec{Name: p.Name, Bin: p.bin, Args: p.args, Dir: p.Dir, Env: p.env,
		Log: p.logPath, Tag: "itest", DieWithParent: true})
	if err != nil {
		return err
	}
	p.run, p.paused = r, false
	return nil
}

// errExited reports a process that exited before it became ready.
var errExited = errors.New("exited during startup")

// awaitReady polls the ready probe, failing fast if the process exits. The
// error carries the tail of the log.
func (p *Process) awaitReady() error {
	if p.ready == nil {
		return nil
	}
	exited := false
	ok := Eventually(p.readyTimeout, func() bool {
		exited = !p.Running()
		return exited || p.ready()
	})
	switch {
	case exited:
		_, err := p.Wait(0)
		return fmt.Errorf("%w (%s); log:\n%s", errExited, procgroup.ExitText(err), p.logTail(logTailLines))
	case !ok:
		return fmt.Errorf("not ready on %s after %s; log:\n%s", p.Addr(), p.readyTimeout, p.logTail(logTailLines))
	}
	return nil
}

// signal sends sig to the process group of the current run; it reports
// false when there is no running process.
func (p *Process) signal(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil || !p.run.Signal(sig) {
		return false
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		p.paused = false
	}
	return true
}

// Kill sends SIGKILL to the process group and waits until the process has
// exited. Killing a process that is not running does nothing.
func (p *Process) Kill() {
	if p.signal(syscall.SIGKILL) {
		p.signal(syscall.SIGCONT) // harmless; wakes any stopped stragglers
		p.Wait(-1)
	}
}

// Stop sends SIGTERM (resuming a paused process so it can act on it), waits
// up to 15s for the process to exit, and then kills it.
func (p *Process) Stop() {
	if !p.signal(syscall.SIGTERM) {
		return
	}
	p.signal(syscall.SIGCONT)
	if exited, _ := p.Wait(stopGrace); !exited {
		p.Kill()
	}
}

// Pause stops the process group with SIGSTOP: the ports stay bound but
// nothing answers, as with a hung or partitioned server. It returns once
// every thread of the process has stopped (stopping is asynchronous: a
// running thread could otherwise still answer a request sent after Pause).
func (p *Process) Pause() {
	if p.signal(syscall.SIGSTOP) {
		pid := p.Pid()
		Eventually(2*time.Second, func() bool { return allThreadsStopped(pid) })
	}
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped) according to /proc; true if that cannot be read.
func allThreadsStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return true
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		// The state follows the parenthesised command name, which may contain spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		if st := b[i+2]; st != 'T' && st != 't' && st != 'Z' && st != 'X' {
			return false
		}
	}
	return true
}

// Resume continues a paused process group with SIGCONT.
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

// Wait waits up to timeout for the process to exit and reports whether it
// did and its exit error (nil for status 0, *exec.ExitError otherwise). A
// negative timeout waits forever; a process never started counts as exited.
func (p *Process) Wait(timeout time.Duration) (exited bool, err error) {
	r := p.current()
	if r == nil {
		return true, nil
	}
	if !r.Wait(timeout) {
		return false, nil
	}
	return true, r.Err()
}

// Log returns everything the process wrote to stdout and stderr so far,
// across restarts.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	return string(b)
}

func (p *Process) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanupOnEnd kills the process when the test ends and, if the test failed,
// logs the tail of the server's log.
func (p *Process) cleanupOnEnd(tb testing.TB) {
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("last %d lines of %s log (%s):\n%s", logTailLines, p.Name, p.logPath, p.logTail(logTailLines))
		}
	})
}

// portAttempts bounds startOnFreePort's retries.
const portAttempts = 3

// startOnFreePort builds a server process for a free port, registers its
// cleanup and starts it. If the server cannot bind because another process
// (say, another package's tests) took the port since FreePort, it tries again
// on another port.
func startOnFreePort(tb testing.TB, build func(port int) (*Process, error)) *Process {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		p, err := build(FreePort(tb))
		if err != nil {
			tb.Fatalf("preparing server: %v", err)
		}
		p.cleanupOnEnd(tb)
		if err := p.launch(); err != nil {
			tb.Fatalf("starting %s: %v", p.Name, err)
		}
		err = p.awaitReady()
		if err == nil {
			return p
		}
		if attempt == portAttempts || !errors.Is(err, errExited) || !strings.Contains(p.Log(), "Address already in use") {
			tb.Fatalf("starting %s: %v", p.Name, err)
		}
		tb.Logf("%s could not bind port %d; retrying on another port", p.Name, p.Port)
	}
}

package itest_test

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

const fakeDaemon = "./internal/testenv/itest/testdata/fakedaemon"

func TestDaemonReadyStopAndRestart(t *testing.T) {
	t.Parallel()
	bin := itest.BuildBinary(t, fakeDaemon)
	if again := itest.BuildBinary(t, fakeDaemon); again != bin {
		t.Fatalf("second BuildBinary: got %q, want cached %q", again, bin)
	}
	port := itest.FreePort(t)
	p := itest.StartDaemon(t, itest.DaemonSpec{
		Name:     "fake",
		Bin:      bin,
		Args:     []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port)},
		Env:      []string{"FAKEDAEMON_GREETING=hello"},
		Port:     port,
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
	})
	if !p.Running() || p.Pid() == 0 {
		t.Fatalf("after StartDaemon: Running=%v Pid=%d, want running", p.Running(), p.Pid())
	}
	if !strings.Contains(p.Log(), "FAKEDAEMON_GREETING = hello") {
		t.Fatalf("log lacks the env greeting:\n%s", p.Log())
	}

	p.Stop()
	exited, err := p.Wait(0)
	if !exited || err != nil {
		t.Fatalf("after Stop: exited=%v err=%v, want clean exit", exited, err)
	}
	if !strings.Contains(p.Log(), "fakedaemon stopped") {
		t.Fatalf("SIGTERM did not reach the daemon's handler; log:\n%s", p.Log())
	}

	oldPid := p.Pid()
	p.Start(t)
	if p.Pid() == oldPid || !p.Running() {
		t.Fatalf("after Start: pid %d (was %d), Running=%v", p.Pid(), oldPid, p.Running())
	}
}

func TestDaemonExitCode(t *testing.T) {
	t.Parallel()
	p := itest.StartDaemonNoWait(t, itest.DaemonSpec{
		Bin:  itest.BuildBinary(t, fakeDaemon),
		Args: []string{"--exit-code", "3"},
	})
	exited, err := p.Wait(20 * time.Second)
	if !exited {
		t.Fatal("daemon did not exit")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: got %v, want exit status 3", err)
	}
	if !strings.Contains(p.Log(), "exiting as asked") {
		t.Fatalf("stderr missing from log:\n%s", p.Log())
	}
}

func TestDaemonPauseBlocksRequests(t *testing.T) {
	t.Parallel()
	port := itest.FreePort(t)
	p := itest.StartDaemon(t, itest.DaemonSpec{
		Bin:  itest.BuildBinary(t, fakeDaemon),
		Args: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port)},
		Port: port,
	})
	p.Pause()
	if answered(p.Addr(), 300*time.Millisecond) {
		t.Fatal("paused daemon answered")
	}
	p.Resume()
	itest.WaitFor(t, 5*time.Second, "daemon to answer after Resume", func() bool {
		return answered(p.Addr(), time.Second)
	})
	p.Kill()
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Kill: got %v, want connection refused", err)
	}
}

// answered reports whether an HTTP GET at addr gets a status line in time.
func answered(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	buf := make([]byte, 12)
	n, _ := c.Read(buf)
	return strings.HasPrefix(string(buf[:n]), "HTTP/1.")
}

func TestWaitForAndEventually(t *testing.T) {
	t.Parallel()
	n := 0
	if !itest.Eventually(time.Second, func() bool { n++; return n == 3 }) {
		t.Fatal("Eventually: got false, want true on the third poll")
	}
	if itest.Eventually(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Eventually: got true for a condition that never holds")
	}
}

func TestFreePortIsFreshAndBindable(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p := itest.FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("binding FreePort's %d: %v", p, err)
		}
		l.Close()
	}
}

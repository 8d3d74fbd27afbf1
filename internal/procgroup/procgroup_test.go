package procgroup_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/procgroup"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

func start(t *testing.T, script string) (*procgroup.Run, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	r, err := procgroup.Start(procgroup.Spec{Name: "x", Bin: "/bin/sh", Args: []string{"-c", script}, Dir: dir, Log: log, Tag: "test",
		DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Signal(syscall.SIGKILL); r.Wait(-1) })
	return r, log
}

func TestExitStatusAndLog(t *testing.T) {
	r, log := start(t, "echo hello; exit 3")
	if !r.Wait(10 * time.Second) {
		t.Fatal("sh did not exit")
	}
	var ee *exec.ExitError
	if err := r.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Err: got %v, want exit status 3", err)
	}
	if r.Running() || r.Signal(syscall.SIGTERM) {
		t.Error("an exited run reports running or takes a signal")
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "=== test ") || !strings.Contains(lines[0], "starting /bin/sh -c") ||
		lines[1] != "hello" || !strings.HasSuffix(lines[2], "x exited: exit status 3") {
		t.Errorf("log:\n%s\nwant the start marker, hello, the exit marker", b)
	}
	if got := procgroup.ExitText(nil); got != "exit status 0" {
		t.Errorf("procgroup.ExitText(nil) = %q", got)
	}
}

// TestSignalReachesTheGroup: a signal reaches the process's children too, as a kill -9 of a
// server must (a JVM, a shell's children).
func TestSignalReachesTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	r, _ := start(t, "sleep 60 & echo $! > "+pidFile+"; wait")
	var child int
	itest.WaitFor(t, 10*time.Second, "the child's pid", func() bool {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return child != 0
	})
	if r.Wait(0) {
		t.Fatal("exited before the signal")
	}
	if !r.Signal(syscall.SIGKILL) || !r.Wait(10*time.Second) {
		t.Fatal("SIGKILL did not end the run")
	}
	itest.WaitFor(t, 10*time.Second, "the child killed with its group", func() bool { return gone(child) })
}

// gone reports whether pid has exited (or is a zombie awaiting its new parent).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// Package procgroup runs one OS process in a process group of its own, its output appended to a
// log file, and reaps it: the one way the test harness (internal/testenv/itest) and the local
// cluster (tools/devcluster) run a server or daemon. What each does around a run (a test's
// cleanup and pause, the supervisor's restarts) stays with it.
//
// The group is what makes kill -9 real: a signal reaches everything the process spawned (the
// JVM's threads, a shell's children), and a Ctrl-C in the terminal reaches none of it.
package procgroup

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec is one run of a command.
type Spec struct {
	Name string // names the process in the log's exit line
	Bin  string
	Args []string
	Dir  string   // working directory
	Env  []string // nil: this process's environment
	// Log is the file the run's stdout and stderr are appended to, between two marker lines
	// ("=== <Tag> <time>: starting …" and "… exited: …").
	Log string
	Tag string
	// DieWithParent kills the run (SIGKILL) when the process that started it dies: a test
	// binary killed by its -timeout must not leave servers holding ports. A supervisor whose
	// nodes must survive it leaves it unset.
	DieWithParent bool
}

// Run is one started process. Its methods are safe for concurrent use.
type Run struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

// Start starts s and a goroutine that reaps it.
func Start(s Spec) (*Run, error) {
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	cmd := exec.Command(s.Bin, s.Args...)
	cmd.Dir, cmd.Env = s.Dir, s.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	fmt.Fprintf(logf, "=== %s %s: starting %s %s\n", s.Tag, now(), s.Bin, strings.Join(s.Args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("exec %s: %w", s.Bin, err)
	}
	r := &Run{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s %s: %s exited: %s\n", s.Tag, now(), s.Name, ExitText(err))
		logf.Close()
		r.err = err
		close(r.done)
	}()
	return r, nil
}

func now() string { return time.Now().Format(time.RFC3339) }

// ExitText describes an exit error: "exit status 0" for nil.
func ExitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid is the process id, which is also the group's id.
func (r *Run) Pid() int { return r.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (r *Run) Done() <-chan struct{} { return r.done }

// Running reports whether the process has not exited.
func (r *Run) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Err is the exit error (nil for status 0, *exec.ExitError otherwise) once Done is closed.
func (r *Run) Err() error {
	<-r.done
	return r.err
}

// Signal sends sig to the whole process group; it reports false when the process has exited.
func (r *Run) Signal(sig syscall.Signal) bool {
	if !r.Running() {
		return false
	}
	// The negative pid addresses the group (Setpgid made the pid its id).
	_ = syscall.Kill(-r.Pid(), sig)
	return true
}

// Wait waits up to timeout (forever if negative) for the process to exit and reports whether it
// did.
func (r *Run) Wait(timeout time.Duration) bool {
	if !r.Running() { // checked first: a zero timer and a closed done would race
		return true
	}
	if timeout < 0 {
		<-r.done
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
		return false
	}
}

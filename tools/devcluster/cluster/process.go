package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Restart backoff of a crashed daemon: doubling from restartMin to restartMax, back to
// restartMin after a run that lasted restartReset.
const (
	restartMin   = 500 * time.Millisecond
	restartMax   = 10 * time.Second
	restartReset = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 20 * time.Second
)

// ownEnvPrefixes are our binaries' environment fallbacks (<BINARY>_<FLAG>); a developer's shell
// settings must not silently reconfigure the cluster, whose flags say everything.
var ownEnvPrefixes = []string{
	"GUIDD_", "SCRAPD_", "POSTSVCD_", "WRITEBACKD_", "ZOO_SETUP_", "REDISMON_", "WORKWEBUI_",
	"LOADGEN_", "DEVCLUSTER_",
}

// proc is one node's process across restarts.
type proc struct {
	c    *Cluster
	node Node
	spec spec
	log  string // log file path

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when the current run exited; nil before the first run
	wanted    bool          // the supervisor keeps it running
	startedAt time.Time
	restarts  int
	lastExit  string
	failures  int // consecutive short runs, for the backoff
}

// running reports whether the current run has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

func (p *proc) runningLocked() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.runningLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// launch prepares and starts the process; it does nothing if it already runs.
func (p *proc) launch(ctx context.Context) error {
	if p.spec.prepare != nil {
		if err := p.spec.prepare(ctx); err != nil {
			return fmt.Errorf("preparing %s: %w", p.node.Name, err)
		}
	}
	if err := p.start(); err != nil {
		return err
	}
	p.c.saveState() // not under p.mu: saveState takes every node's lock
	return nil
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p.log, err)
	}
	cmd := exec.Command(p.spec.bin, p.spec.args...)
	cmd.Dir = p.c.dataDir(p.node.Name)
	cmd.Env = cleanEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so signals reach everything it spawned and a Ctrl-C in the
	// terminal that ran `devcluster up` reaches none of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "=== devcluster %s: starting %s %s\n", time.Now().Format(time.RFC3339),
		p.spec.bin, strings.Join(p.spec.args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.node.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.wanted, p.startedAt = cmd, done, true, time.Now()
	go p.reap(cmd, logf, done)
	return nil
}

// reap waits for a run to end and, for a daemon of ours still wanted, restarts it.
func (p *proc) reap(cmd *exec.Cmd, logf *os.File, done chan struct{}) {
	err := cmd.Wait()
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	fmt.Fprintf(logf, "=== devcluster %s: %s exited: %s\n", time.Now().Format(time.RFC3339), p.node.Name, status)
	logf.Close()
	p.mu.Lock()
	p.lastExit = status
	close(done)
	restart := p.wanted && p.node.Kind == Daemon && !p.c.stopping()
	ran := time.Since(p.startedAt)
	if ran > restartReset {
		p.failures = 0
	}
	delay := min(restartMin<<min(p.failures, 10), restartMax)
	p.failures++
	p.mu.Unlock()
	p.c.saveState()
	if !restart {
		return
	}
	p.c.cfg.Log.Warn("node exited; restarting", "node", p.node.Name, "status", status, "delay", delay)
	select {
	case <-time.After(delay):
	case <-p.c.ctx.Done():
		return
	}
	p.mu.Lock()
	again := p.wanted && !p.runningLocked() && !p.c.stopping()
	if again {
		p.restarts++
	}
	p.mu.Unlock()
	if again {
		if err := p.launch(p.c.ctx); err != nil {
			p.c.cfg.Log.Error("restart failed", "node", p.node.Name, "err", err)
		}
	}
}

// signal sends sig to the process group of the current run; false if nothing runs.
func (p *proc) signal(sig syscall.Signal, stopWanting bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stopWanting {
		p.wanted = false
	}
	if !p.runningLocked() {
		return false
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	return true
}

// wait waits up to timeout for the current run to exit.
func (p *proc) wait(timeout time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// kill sends SIGKILL and waits for the exit; the supervisor will not restart it.
func (p *proc) kill() error {
	if p.signal(syscall.SIGKILL, true) && !p.wait(10*time.Second) {
		return fmt.Errorf("%s did not exit after SIGKILL", p.node.Name)
	}
	return nil
}

// stop sends SIGTERM, then SIGKILL after stopGrace; the supervisor will not restart it.
func (p *proc) stop() error {
	if !p.signal(syscall.SIGTERM, true) {
		return nil
	}
	if p.wait(stopGrace) {
		return nil
	}
	p.c.cfg.Log.Warn("node ignored SIGTERM; killing", "node", p.node.Name, "grace", stopGrace)
	return p.kill()
}

// exitedErr reports whether the current run exited, and how.
func (p *proc) exited() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil || p.runningLocked() {
		return false, ""
	}
	return true, p.lastExit
}

var errNotReady = errors.New("not ready")

// awaitReady polls the ready probe until it answers, the deadline passes, or (for a node that is
// not restarted) the process exits. A OneShot is ready when it exited with status 0.
func (p *proc) awaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		exited, status := p.exited()
		switch {
		case p.node.Kind == OneShot && exited && status == "exit status 0":
			return nil
		case exited && p.node.Kind != Daemon:
			return fmt.Errorf("%s exited (%s); see %s", p.node.Name, status, p.log)
		case !exited && p.node.Kind != OneShot && (p.spec.ready == nil || p.spec.ready(ctx)):
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s %w after %s (last exit: %q); see %s", p.node.Name, errNotReady,
					timeout, status, p.log)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func cleanEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		own := false
		for _, p := range ownEnvPrefixes {
			own = own || strings.HasPrefix(kv, p)
		}
		if !own {
			out = append(out, kv)
		}
	}
	return out
}

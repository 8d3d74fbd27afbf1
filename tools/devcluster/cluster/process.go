package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/the-red/zkpost/internal/procgroup"
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
	run       *procgroup.Run // the current (or last) run; nil before the first
	wanted    bool           // the supervisor keeps it running
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

func (p *proc) runningLocked() bool { return p.run != nil && p.run.Running() }

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pidLocked()
}

// pidLocked is the pid of the current run, 0 when nothing runs.
func (p *proc) pidLocked() int {
	if !p.runningLocked() {
		return 0
	}
	return p.run.Pid()
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

// start starts the process in its own process group (internal/procgroup), so signals reach
// everything it spawned and a Ctrl-C in the terminal that ran `devcluster up` reaches none of it;
// it outlives the supervisor, so `devcluster down` can still stop it.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	r, err := procgroup.Start(procgroup.Spec{Name: p.node.Name, Bin: p.spec.bin, Args: p.spec.args,
		Dir: p.c.dataDir(p.node.Name), Env: cleanEnv(os.Environ()), Log: p.log, Tag: "devcluster"})
	if err != nil {
		return fmt.Errorf("starting %s: %w", p.node.Name, err)
	}
	p.run, p.wanted, p.startedAt = r, true, time.Now()
	go p.reap(r)
	return nil
}

// reap waits for a run to end and, for a daemon of ours still wanted, restarts it.
func (p *proc) reap(r *procgroup.Run) {
	status := procgroup.ExitText(r.Err())
	p.mu.Lock()
	if p.run != r { // already started again (devcluster start after a kill): nothing to do
		p.mu.Unlock()
		return
	}
	p.lastExit = status
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
	return p.run != nil && p.run.Signal(sig)
}

// wait waits up to timeout for the current run to exit.
func (p *proc) wait(timeout time.Duration) bool {
	p.mu.Lock()
	r := p.run
	p.mu.Unlock()
	return r == nil || r.Wait(timeout)
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

// lastExitLocked describes how the last run ended: the current run's exit once it has exited
// (before reap records it), else the one reap recorded ("" if none has ended).
func (p *proc) lastExitLocked() string {
	if p.run != nil && !p.run.Running() {
		return procgroup.ExitText(p.run.Err())
	}
	return p.lastExit
}

// exited reports whether the current run exited, and how.
func (p *proc) exited() (bool, string) {
	p.mu.Lock()
	r := p.run
	p.mu.Unlock()
	if r == nil || r.Running() {
		return false, ""
	}
	return true, procgroup.ExitText(r.Err())
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

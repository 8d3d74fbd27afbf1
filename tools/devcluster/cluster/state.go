package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is what state.json records: enough for `devcluster down` to find and stop every
// process even when the supervisor itself is gone.
type State struct {
	SupervisorPid int         `json:"supervisor_pid"`
	Socket        string      `json:"socket,omitempty"`
	Updated       time.Time   `json:"updated"`
	Nodes         []NodeState `json:"nodes"`
}

// NodeState is one node in state.json.
type NodeState struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Pid    int    `json:"pid"` // 0 when not running
	Port   int    `json:"port"`
	Bin    string `json:"bin"`
	Wanted bool   `json:"wanted"`
	Log    string `json:"log"`
}

// StatePath returns where state.json lives under dir.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

// SetSocket records the supervisor's control socket in state.json.
func (c *Cluster) SetSocket(path string) {
	c.stateMu.Lock()
	c.cfg.socket = path
	c.stateMu.Unlock()
	c.saveState()
}

// saveState writes state.json atomically; failures are logged, not fatal.
func (c *Cluster) saveState() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	st := State{SupervisorPid: os.Getpid(), Socket: c.cfg.socket, Updated: time.Now()}
	for _, p := range c.nodes {
		p.mu.Lock()
		ns := NodeState{Name: p.node.Name, Kind: p.node.Kind.String(), Port: c.port(p.node.Name), Bin: p.spec.bin, Wanted: p.wanted, Log: p.log}
		ns.Pid = p.pidLocked()
		p.mu.Unlock()
		st.Nodes = append(st.Nodes, ns)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return
	}
	if err := ensureDir(c.cfg.Dir); err != nil {
		return
	}
	tmp := StatePath(c.cfg.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		if err := os.Rename(tmp, StatePath(c.cfg.Dir)); err != nil {
			c.cfg.Log.Error("writing state", "err", err)
		}
	}
}

// ReadState reads dir/state.json; a missing file is an empty State.
func ReadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(StatePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parsing %s: %w", StatePath(dir), err)
	}
	return st, nil
}

// Alive reports whether pid runs the executable bin (so a pid reused by another program after
// ours exited is never mistaken for ours). An empty bin matches any program.
func Alive(pid int, bin string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		// A zombie has exited; its parent just has not reaped it yet.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return false
		}
	}
	if bin == "" {
		return true
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return true // cannot tell (another user's process): assume it is ours
	}
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		bin = real // java is a chain of symlinks to the JVM's binary
	}
	return strings.TrimSuffix(exe, " (deleted)") == bin
}

// KillLeftovers stops every process state.json lists as running, for when the supervisor is
// gone: our daemons first (they deregister from ZooKeeper and drain into the servers they use),
// then the servers, ZooKeeper last. Each phase sends SIGTERM to the process groups and SIGKILL
// after grace. It returns what is still alive.
//
// The supervisor runs in a session of its own, which every node inherits, so any other member
// of that session (a process started after state.json was last written) is stopped as well.
func KillLeftovers(st State, grace time.Duration) []string {
	var phases [3][]NodeState
	seen := map[int]bool{}
	for _, n := range st.Nodes {
		if !Alive(n.Pid, n.Bin) {
			continue
		}
		seen[n.Pid] = true
		switch {
		case n.Kind == Daemon.String() || n.Kind == OneShot.String():
			phases[0] = append(phases[0], n)
		case n.Name == "zookeeper":
			phases[2] = append(phases[2], n)
		default:
			phases[1] = append(phases[1], n)
		}
	}
	for _, pid := range SessionMembers(st.SupervisorPid) {
		if !seen[pid] && pid != os.Getpid() {
			phases[1] = append(phases[1], NodeState{Name: "session member", Pid: pid})
		}
	}
	var left []string
	for _, phase := range phases {
		left = append(left, terminate(phase, grace)...)
	}
	return left
}

// terminate sends SIGTERM to each node's process group, SIGKILL to what is left after grace,
// and returns what survives even that.
func terminate(nodes []NodeState, grace time.Duration) []string {
	for _, n := range nodes {
		_ = syscall.Kill(-n.Pid, syscall.SIGTERM)
		_ = syscall.Kill(n.Pid, syscall.SIGTERM) // a session member may lead no group
	}
	waitAllGone(nodes, grace)
	for _, n := range nodes {
		if Alive(n.Pid, n.Bin) {
			_ = syscall.Kill(-n.Pid, syscall.SIGKILL)
			_ = syscall.Kill(n.Pid, syscall.SIGKILL)
		}
	}
	waitAllGone(nodes, 5*time.Second)
	var left []string
	for _, n := range nodes {
		if Alive(n.Pid, n.Bin) {
			left = append(left, fmt.Sprintf("%s (pid %d)", n.Name, n.Pid))
		}
	}
	return left
}

func waitAllGone(nodes []NodeState, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && anyAlive(nodes) {
		time.Sleep(50 * time.Millisecond) // polling processes we do not parent: no wait() possible
	}
}

func anyAlive(nodes []NodeState) bool {
	for _, n := range nodes {
		if Alive(n.Pid, n.Bin) {
			return true
		}
	}
	return false
}

// SessionMembers lists the live processes of session sid (0: none), from /proc.
func SessionMembers(sid int) []int {
	if sid <= 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state ppid pgrp session ...
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 3 && f[0] != "Z" && f[3] == strconv.Itoa(sid) {
			out = append(out, pid)
		}
	}
	return out
}

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // the database/sql driver of env.DB

	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// Env is the cluster a run measures, and the processes the run added to it.
type Env struct {
	Dir     string // the devcluster directory
	Bin     string // our binaries
	Work    string // scratch directory of this run
	State   cluster.State
	DB      *sql.DB // the services' account on the MariaDB primary
	Replica *sql.DB // the same account on its replica
	Log     io.Writer
	started bool // we brought the cluster up: bring it down at the end
	extra   []*extraProc
}

type extraProc struct {
	name string
	cmd  *exec.Cmd
}

// Node returns the state of a cluster node; ok is false when it is unknown or not running.
func (e *Env) Node(name string) (cluster.NodeState, bool) {
	for _, n := range e.State.Nodes {
		if n.Name == name && n.Pid > 0 {
			return n, true
		}
	}
	return cluster.NodeState{}, false
}

// Addr returns 127.0.0.1:<port> of a cluster node.
func (e *Env) Addr(name string) string {
	n, _ := e.Node(name)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port))
}

// groups maps a process group (a node's program, e.g. "postsvcd", or an extra process's group)
// to its pids, for per-process CPU.
func (e *Env) groups() map[string][]int {
	g := map[string][]int{}
	for _, n := range e.State.Nodes {
		if n.Pid > 0 {
			name := nodeGroup(n.Name)
			g[name] = append(g[name], n.Pid)
		}
	}
	for _, x := range e.extra {
		if x.cmd.Process != nil {
			g[x.name] = append(g[x.name], x.cmd.Process.Pid)
		}
	}
	return g
}

// nodeGroup names the group of a devcluster node: "postsvc-1" → "postsvcd".
func nodeGroup(node string) string {
	switch {
	case strings.HasSuffix(node, "-exporter") || node == "zkexporter":
		return "exporters" // before "redis": redis1-exporter is no cache shard
	case strings.HasPrefix(node, "postsvc-"):
		return "postsvcd"
	case strings.HasPrefix(node, "writeback-"):
		return "writebackd"
	case strings.HasPrefix(node, "guid-"):
		return "guidd"
	case strings.HasPrefix(node, "scrap-"):
		return "scrapd"
	case strings.HasPrefix(node, "redismon-"):
		return "redismon"
	case strings.HasPrefix(node, "redis"):
		return "cache redis"
	case node == "queue-primary":
		return "queue redis"
	case node == "queue-replica":
		return "queue replica"
	}
	return node
}

// openEnv uses the cluster running in dir, or brings one up with bin/devcluster.
func openEnv(ctx context.Context, o options, log io.Writer) (*Env, error) {
	e := &Env{Dir: o.dir, Bin: o.bin, Log: log}
	var err error
	if e.Work, err = os.MkdirTemp("", "benche2e."); err != nil {
		return nil, err
	}
	if !e.running() {
		if err := e.up(ctx, o); err != nil {
			return e, err
		}
	}
	if err := e.readState(); err != nil {
		return e, err
	}
	for _, n := range []string{"postsvc-1", "postsvc-2", "writeback-1", "mariadb-primary", "mariadb-replica", "queue-primary"} {
		if _, ok := e.Node(n); !ok {
			return e, fmt.Errorf("cluster in %s has no running %s (devcluster status shows why)", o.dir, n)
		}
	}
	dsn := func(node string) string {
		return fmt.Sprintf("zkpost:zkpost@tcp(%s)/zkpost?parseTime=true&timeout=5s", e.Addr(node))
	}
	if e.DB, err = sql.Open("mysql", dsn("mariadb-primary")); err != nil {
		return e, fmt.Errorf("opening the database: %w", err)
	}
	if e.Replica, err = sql.Open("mysql", dsn("mariadb-replica")); err != nil {
		return e, fmt.Errorf("opening the replica: %w", err)
	}
	if err := e.DB.PingContext(ctx); err != nil {
		return e, err
	}
	return e, e.Replica.PingContext(ctx)
}

func (e *Env) readState() error {
	st, err := cluster.ReadState(e.Dir)
	if err != nil {
		return fmt.Errorf("reading the cluster state: %w", err)
	}
	e.State = st
	return nil
}

// running reports whether a supervisor recorded in dir is alive.
func (e *Env) running() bool {
	st, err := cluster.ReadState(e.Dir)
	if err != nil || st.SupervisorPid <= 0 || syscall.Kill(st.SupervisorPid, 0) != nil {
		return false
	}
	for _, n := range st.Nodes {
		if n.Name == "postsvc-1" {
			return n.Pid > 0 && syscall.Kill(n.Pid, 0) == nil
		}
	}
	return false
}

func (e *Env) devcluster(ctx context.Context, o options, cmd string) error {
	bin := filepath.Join(o.bin, "devcluster")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run make build first", bin)
	}
	c := exec.CommandContext(ctx, bin, cmd, "--dir", o.dir, "--bin", o.bin,
		"--port-offset", strconv.Itoa(o.portOffset), "--no-prometheus")
	c.Stdout, c.Stderr = e.Log, e.Log
	if err := c.Run(); err != nil {
		return fmt.Errorf("devcluster %s: %w", cmd, err)
	}
	return nil
}

func (e *Env) up(ctx context.Context, o options) error {
	fmt.Fprintf(e.Log, "bringing up a cluster in %s (port offset %d)...\n", o.dir, o.portOffset)
	if err := e.devcluster(ctx, o, "up"); err != nil {
		return err
	}
	e.started = true
	return nil
}

// Close stops the extra processes and, when this run started the cluster, brings it down.
func (e *Env) Close(o options) {
	for _, x := range e.extra {
		if x.cmd.Process != nil {
			_ = x.cmd.Process.Signal(syscall.SIGTERM)
			_ = x.cmd.Wait()
		}
	}
	if e.DB != nil {
		e.DB.Close()
	}
	if e.Replica != nil {
		e.Replica.Close()
	}
	if e.started && !o.keep {
		_ = e.devcluster(context.Background(), o, "down")
	}
	os.RemoveAll(e.Work)
}

// StartLike starts another instance of a cluster node's program with the node's own command line,
// its --listen and --advertise moved to a free port and extra flags added, and waits until its
// /readyz answers 200. Its CPU is accounted under group.
func (e *Env) StartLike(ctx context.Context, node, group string, flags ...string) (string, error) {
	return e.StartLikeWith(ctx, node, group, "", flags...)
}

// NodeArgs returns the command line of a running cluster node.
func (e *Env) NodeArgs(node string) ([]string, error) {
	n, ok := e.Node(node)
	if !ok {
		return nil, fmt.Errorf("node %s not running", node)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.Pid))
	if err != nil {
		return nil, fmt.Errorf("reading %s's command line: %w", node, err)
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), nil
}

// StartLikeWith is StartLike running the program bin instead of the node's own ("" keeps it).
func (e *Env) StartLikeWith(ctx context.Context, node, group, bin string, flags ...string) (string, error) {
	args, err := e.NodeArgs(node)
	if err != nil {
		return "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	if bin != "" {
		args[0] = bin
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "--listen" || args[i] == "--advertise" {
			args[i+1] = addr
		}
	}
	logf, err := os.Create(filepath.Join(e.Work, fmt.Sprintf("%s-%d.log", group, len(e.extra))))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(args[0], append(args[1:], flags...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", args[0], err)
	}
	e.extra = append(e.extra, &extraProc{name: group, cmd: cmd})
	return addr, waitReady(ctx, "http://"+addr+"/readyz", logf.Name())
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, url, logPath string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within 60 s (log: %s): %w", url, logPath, errors.Join(err, ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

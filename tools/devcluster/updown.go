package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

func absPath(p string) (string, error) { return filepath.Abs(p) }

// up starts a background supervisor and waits until it reports the cluster ready or failed.
func up(ctx context.Context, o options, cl client, stdout io.Writer) error {
	var ph phase
	if err := cl.call(ctx, "GET", "/phase", 5*time.Second, &ph); err == nil {
		fmt.Fprintf(stdout, "devcluster is already running (%s).\n", ph.Phase)
		return status(ctx, o, cl, stdout)
	}
	// Fail here, in the terminal, on what can be checked before daemonizing.
	cfg, err := o.config(nil)
	if err != nil {
		return err
	}
	c, err := cluster.New(cfg)
	if err != nil {
		return err
	}
	if err := checkPorts(c); err != nil {
		return err
	}
	dir := c.Config().Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pid, err := spawnSupervisor(o, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "devcluster: supervisor started (pid %d, log %s); starting %d nodes...\n",
		pid, filepath.Join(dir, "supervisor.log"), len(c.Nodes()))
	if err := waitUp(ctx, cl, pid, o.upTimeout); err != nil {
		fmt.Fprintf(stdout, "devcluster up failed: %v\nsupervisor log: %s\n", err, filepath.Join(dir, "supervisor.log"))
		_ = down(context.Background(), o, cl, false, io.Discard)
		return err
	}
	if err := status(ctx, o, cl, stdout); err != nil {
		return err
	}
	printWelcome(ctx, stdout, c)
	return nil
}

// checkPorts fails when a port of the topology is already taken.
func checkPorts(c *cluster.Cluster) error {
	var busy []string
	for _, name := range c.Nodes() {
		port := c.Port(name)
		if port == 0 {
			continue
		}
		l, err := net.Listen("tcp", c.Addr(name))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%s)", port, name))
			continue
		}
		l.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("ports already in use: %s; is another cluster (or docker compose) running?",
			strings.Join(busy, ", "))
	}
	return nil
}

// spawnSupervisor re-executes this binary as `devcluster supervise` in a new session, so it
// outlives the terminal, with its output in dir/supervisor.log.
func spawnSupervisor(o options, dir string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding my own executable: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	o.dir, o.bin = absDir(o.dir), absDir(o.bin)
	cmd := exec.Command(self, append(o.args(), "supervise")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reaps it should it exit while we wait; it is not our child for long
	return pid, nil
}

func waitUp(ctx context.Context, cl client, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ph phase
		err := cl.call(ctx, "GET", "/phase", 5*time.Second, &ph)
		switch {
		case err == nil && ph.Phase == "ready":
			return nil
		case err == nil && ph.Phase == "failed":
			return errors.New(ph.Error)
		case err != nil && !cluster.Alive(pid, ""):
			return errors.New("the supervisor exited")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("cluster not ready after %s", timeout)
}

// down asks the supervisor to stop everything, then stops whatever state.json still lists as
// alive (a supervisor that was killed leaves its children running) and checks nothing is left.
func down(ctx context.Context, o options, cl client, purge bool, stdout io.Writer) error {
	dir := absDir(o.dir)
	st, _ := cluster.ReadState(dir)
	err := cl.call(ctx, "POST", "/down", 4*time.Minute, nil)
	switch {
	case errors.Is(err, errNoSupervisor):
		fmt.Fprintln(stdout, "devcluster: no supervisor running; stopping any leftovers from state.json")
	case err != nil:
		fmt.Fprintln(stdout, "devcluster: supervisor reported:", err)
	}
	waitGone(st.SupervisorPid, 30*time.Second)
	if left := cluster.KillLeftovers(st, 20*time.Second); len(left) > 0 {
		return fmt.Errorf("still running: %s", strings.Join(left, ", "))
	}
	if cluster.Alive(st.SupervisorPid, "") && isDevcluster(st.SupervisorPid) {
		_ = syscall.Kill(st.SupervisorPid, syscall.SIGKILL)
	}
	os.Remove(socketPath(dir))
	if purge {
		if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "devcluster: data deleted")
	}
	fmt.Fprintln(stdout, "devcluster: down; nothing left running")
	return nil
}

func waitGone(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for pid > 0 && cluster.Alive(pid, "") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // not our child: no wait() to block on
	}
}

func isDevcluster(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "supervise")
}

// printLog prints the last n lines of path (all if n is 0) and, with follow, what is appended.
func printLog(ctx context.Context, path string, n int, follow bool, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w (is the node name right? devcluster status lists them)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if n > 0 && len(lines) > n {
			lines = lines[1:]
		}
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if !follow {
		return sc.Err()
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			fmt.Fprint(w, line)
		}
		if err == io.EOF {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

func printWelcome(ctx context.Context, w io.Writer, c *cluster.Cluster) {
	post := c.Addr("postsvc-1")
	fmt.Fprintf(w, `
The cluster is ready.
  demo page:      http://%[1]s/demo?user_id=1
  write a post:   curl -sS -X POST http://%[1]s/api/v1/posts -d '{"user_id":1,"contents":"hello","url":"https://example.com/"}'
  read a page:    curl -sS 'http://%[1]s/api/v1/posts/1?limit=10'
  an id:          curl -sS http://%[2]s/api/v1/guid
  queue UI:       http://%[3]s/
`, post, c.Addr("guid-1"), c.Addr("workwebui"))
	if _, ok := c.Node("prometheus"); ok {
		fmt.Fprintf(w, "  Prometheus:     %s\n", prometheusTargetsURL(ctx, c.Addr("prometheus")))
		fmt.Fprintf(w, "  key graphs:     http://%s/consoles/zkpost.html (docs/monitoring.md)\n", c.Addr("prometheus"))
	}
	cfg := c.Config()
	fmt.Fprintf(w, `  MariaDB:        mariadb -h127.0.0.1 -P%d -u%s -p%s %s
  ZooKeeper tree: bin/zoo_setup --zk %s --list
  node state:     bin/devcluster status | kill <node> | start <node> | logs <node>
  stop it all:    make down
`, c.Port("mariadb-primary"), cfg.DBUser, cfg.DBPassword, cfg.DBName, c.ZKAddr())
}

// prometheusTargetsPaths are the pages listing Prometheus' targets, best first: the React UI's
// /targets (upstream builds), then the classic UI's /classic/targets. Debian's package (2.42)
// ships no React UI assets, so /targets answers 404 there and only /classic/targets works.
var prometheusTargetsPaths = []string{"/targets", "/classic/targets"}

// prometheusTargetsURL returns the link to the targets page the Prometheus on addr really serves,
// or, when neither page answers 200, its API (/api/v1/targets), which every version serves.
func prometheusTargetsURL(ctx context.Context, addr string) string {
	client := &http.Client{Timeout: 3 * time.Second}
	for _, p := range prometheusTargetsPaths {
		u := "http://" + addr + p
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return u
		}
	}
	return "http://" + addr + "/api/v1/targets"
}

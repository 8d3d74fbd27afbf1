package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// TestCLI drives the devcluster binary as a user would: up (a background supervisor), status,
// kill, start, logs, then down after the supervisor itself was SIGKILLed — which must still
// leave nothing running.
func TestCLI(t *testing.T) {
	itest.SkipShort(t, "the whole cluster: skipped in -short")
	for _, bin := range []string{"java", "redis-server", "mariadbd", "mariadb-install-db"} {
		itest.Require(t, bin)
	}
	devcluster := itest.BuildBinary(t, "./tools/devcluster")
	for _, pkg := range daemons {
		itest.BuildBinary(t, pkg)
	}
	dir := t.TempDir()
	ports, err := cluster.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for name, p := range ports {
		list = append(list, name+"="+strconv.Itoa(p))
	}
	base := []string{"--dir", dir, "--bin", filepath.Dir(devcluster), "--ports", strings.Join(list, ","), "--no-prometheus"}
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(devcluster, append(append([]string{}, base...), args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// cliAfter puts the flags after the command, as `devcluster kill guid-1 --dir x` must work too.
	cliAfter := func(args ...string) (string, error) {
		cmd := exec.Command(devcluster, append(append([]string{args[0]}, base...), args[1:]...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := cli("down"); err != nil {
			t.Errorf("cleanup down: %v\n%s", err, out)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "supervisor.log"))
			t.Logf("supervisor.log:\n%s", b)
		}
	})

	out, err := cli("up")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	guid1 := fmt.Sprintf("127.0.0.1:%d", ports["guid-1"])
	for _, want := range []string{"The cluster is ready", "http://127.0.0.1:" + strconv.Itoa(ports["postsvc-1"]) + "/demo"} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed:\n%s\nwant it to contain %q", out, want)
		}
	}
	if got := statusLine(t, cli, "guid-1"); !strings.Contains(got, " ready ") || !strings.Contains(got, "registered") {
		t.Errorf("status of guid-1: got %q, want ready and registered", got)
	}
	if out, err := cli("up"); err != nil || !strings.Contains(out, "already running") {
		t.Errorf("second up: got %v\n%s\nwant it to report the running cluster", err, out)
	}

	if out, err := cliAfter("kill", "guid-1"); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	itest.WaitFor(t, 20*time.Second, "guid-1 stopped and gone from ZooKeeper", func() bool {
		l := statusLine(t, cliAfter, "guid-1")
		return strings.Contains(l, "stopped") && strings.Contains(l, "not registered")
	})
	if out, err := cli("start", "guid-1"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	itest.WaitFor(t, 20*time.Second, "guid-1 ready and registered again", func() bool {
		l := statusLine(t, cli, "guid-1")
		return strings.Contains(l, " ready ") && strings.Contains(l, " registered")
	})
	if out, err := cliAfter("logs", "guid-1", "-n", "5"); err != nil || !strings.Contains(out, guid1) && !strings.Contains(out, "devcluster") {
		t.Errorf("logs guid-1: %v\n%s", err, out)
	}

	// A supervisor that dies leaves its nodes running; down must still stop them all.
	st, err := cluster.ReadState(dir)
	if err != nil || st.SupervisorPid == 0 {
		t.Fatalf("reading state: %+v, %v", st, err)
	}
	if err := syscall.Kill(st.SupervisorPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("down"); err != nil || !strings.Contains(out, "nothing left running") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if left := cluster.SessionMembers(st.SupervisorPid); len(left) > 0 {
		t.Errorf("after down, processes of the cluster's session remain: %v", left)
	}
	for _, n := range st.Nodes {
		if cluster.Alive(n.Pid, n.Bin) {
			t.Errorf("after down, %s (pid %d) is still running", n.Name, n.Pid)
		}
	}
}

// statusLine returns the `devcluster status` line of node.
func statusLine(t *testing.T, cli func(...string) (string, error), node string) string {
	t.Helper()
	out, err := cli("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, node+" ") {
			return l + " "
		}
	}
	t.Fatalf("status lists no %s:\n%s", node, out)
	return ""
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEVCLUSTER_") {
			out = append(out, kv)
		}
	}
	return out
}

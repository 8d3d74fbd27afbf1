// Command devcluster runs the whole zkpost topology (DESIGN §2) as local processes, without
// Docker: ZooKeeper, three cache Redis, the queue Redis primary and replica, a MariaDB primary
// and GTID replica, zoo_setup, three guidd, two scrapd, two postsvcd, two writebackd, two
// redismon, workwebui and (when installed) Prometheus.
//
//	devcluster up                 start everything in the background and wait until it is ready
//	devcluster status             every node: pid, port, ready or not, what ZooKeeper lists
//	devcluster kill <node>        SIGKILL a node (not restarted until start)
//	devcluster stop <node>        SIGTERM a node (not restarted until start)
//	devcluster start <node>       start a stopped or killed node
//	devcluster logs [-f] <node>   print (or follow) a node's log
//	devcluster down [--purge]     stop everything and check nothing is left (--purge: delete data)
//
// `up` re-executes itself as a background supervisor (`devcluster supervise`, in its own session,
// logging to .devcluster/supervisor.log), which restarts crashed daemons of ours and takes the
// other commands over a unix socket. State, logs and data live under --dir (.devcluster).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "devcluster:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: devcluster [flags] up|down|status|kill <node>|stop <node>|start <node>|logs [-f] <node>

flags (environment fallback DEVCLUSTER_<FLAG>):
`

// options are devcluster's global flags.
type options struct {
	dir, bin, zkRoot, allowCIDR string
	noPrometheus                bool
	portOffset                  int
	ports                       string
	readyTimeout, upTimeout     time.Duration
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.dir, "dir", ".devcluster", "directory for state, logs and data")
	fs.StringVar(&o.bin, "bin", "bin", "directory holding our built binaries (guidd, scrapd, ...)")
	fs.StringVar(&o.zkRoot, "zk-root", "/the_red/my_service", "ZooKeeper root of the service tree")
	fs.StringVar(&o.allowCIDR, "scrap-allow-cidr", "", "scrapd --allow-cidr (dev only), e.g. 127.0.0.0/8 to preview local pages")
	fs.IntVar(&o.portOffset, "port-offset", 0, "added to every default port, to run a second cluster beside the first")
	fs.StringVar(&o.ports, "ports", "", "explicit ports by node, e.g. guid-1=18010,zookeeper=12181 (beats --port-offset)")
	fs.BoolVar(&o.noPrometheus, "no-prometheus", false, "do not run Prometheus even if installed")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 90*time.Second, "how long one node may take to become ready")
	fs.DurationVar(&o.upTimeout, "up-timeout", 5*time.Minute, "how long up waits for the whole cluster")
}

// args renders the options back into flags, for the supervisor's command line.
func (o options) args() []string {
	return []string{
		"--dir", o.dir, "--bin", o.bin, "--zk-root", o.zkRoot, "--scrap-allow-cidr", o.allowCIDR,
		fmt.Sprintf("--no-prometheus=%v", o.noPrometheus), "--ready-timeout", o.readyTimeout.String(),
		"--up-timeout", o.upTimeout.String(), "--port-offset", strconv.Itoa(o.portOffset), "--ports", o.ports,
	}
}

func (o options) config(log *slog.Logger) (cluster.Config, error) {
	ports, err := parsePorts(o.ports)
	if err != nil {
		return cluster.Config{}, err
	}
	cfg := cluster.Config{
		Dir: o.dir, BinDir: o.bin, ZKRoot: o.zkRoot, ScrapAllowCIDR: o.allowCIDR,
		ReadyTimeout: o.readyTimeout, PortOffset: o.portOffset, Ports: ports, Log: log,
	}
	if o.noPrometheus {
		cfg.Skip = []string{"prometheus"}
	}
	return cfg, nil
}

// parsePorts reads "node=port,node=port".
func parsePorts(s string) (map[string]int, error) {
	ports := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, p, ok := strings.Cut(kv, "=")
		port, err := strconv.Atoi(p)
		if !ok || err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("--ports: %q: want node=port", kv)
		}
		ports[name] = port
	}
	return ports, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var o options
	o.register(fs)
	if err := flagenv.Parse(fs, "devcluster", args, getenv); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	cl := newClient(absDir(o.dir))
	switch cmd {
	case "up":
		return up(ctx, o, cl, stdout)
	case "supervise":
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		cfg, err := o.config(log)
		if err != nil {
			return err
		}
		return supervise(cfg, log)
	case "down":
		return down(ctx, o, cl, rest, stdout)
	case "status":
		return status(ctx, o, cl, stdout)
	case "kill", "stop", "start":
		if len(rest) != 1 {
			return fmt.Errorf("usage: devcluster %s <node>", cmd)
		}
		return nodeAction(ctx, cl, cmd, rest[0], o.readyTimeout, stdout)
	case "logs":
		return logs(ctx, o, rest, stdout)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

func absDir(dir string) string {
	if abs, err := absPath(dir); err == nil {
		return abs
	}
	return dir
}

func nodeAction(ctx context.Context, cl client, action, node string, readyTimeout time.Duration, stdout io.Writer) error {
	var res struct{ Pid int }
	if err := cl.call(ctx, "POST", "/node/"+action+"/"+node, readyTimeout+30*time.Second, &res); err != nil {
		return fmt.Errorf("%s %s: %w", action, node, err)
	}
	switch action {
	case "start":
		fmt.Fprintf(stdout, "%s started (pid %d) and ready\n", node, res.Pid)
	case "kill":
		fmt.Fprintf(stdout, "%s killed (SIGKILL); it stays down until: devcluster start %s\n", node, node)
	default:
		fmt.Fprintf(stdout, "%s stopped (SIGTERM); it stays down until: devcluster start %s\n", node, node)
	}
	return nil
}

func status(ctx context.Context, o options, cl client, stdout io.Writer) error {
	var nodes []cluster.NodeStatus
	err := cl.call(ctx, "GET", "/status", 15*time.Second, &nodes)
	if errors.Is(err, errNoSupervisor) {
		fmt.Fprintln(stdout, "devcluster is not running.")
		st, _ := cluster.ReadState(absDir(o.dir))
		for _, n := range st.Nodes {
			if cluster.Alive(n.Pid, n.Bin) {
				fmt.Fprintf(stdout, "left over: %s pid %d (devcluster down stops it)\n", n.Name, n.Pid)
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	printStatus(stdout, nodes)
	return nil
}

func printStatus(w io.Writer, nodes []cluster.NodeStatus) {
	fmt.Fprintf(w, "%-16s %-8s %7s %6s %-9s %-8s %s\n", "NODE", "KIND", "PID", "PORT", "STATE", "RESTARTS", "ZOOKEEPER")
	for _, n := range nodes {
		state := "down"
		switch {
		case n.Kind == "oneshot" && n.Ready:
			state = "done"
		case n.Ready:
			state = "ready"
		case n.Running:
			state = "not ready"
		case !n.Wanted && n.LastExit != "":
			state = "stopped"
		}
		pid, port := "-", "-"
		if n.Pid != 0 {
			pid = fmt.Sprint(n.Pid)
		}
		if n.Port != 0 {
			port = fmt.Sprint(n.Port)
		}
		fmt.Fprintf(w, "%-16s %-8s %7s %6s %-9s %-8d %s\n", n.Name, n.Kind, pid, port, state, n.Restarts, n.ZK)
	}
}

func logs(ctx context.Context, o options, rest []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow the log")
	lines := fs.Int("n", 200, "lines to print (0: all)")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: devcluster logs [-f] [-n lines] <node>")
	}
	name := fs.Arg(0)
	path := absDir(o.dir) + "/logs/" + name + ".log"
	if name == "supervisor" {
		path = absDir(o.dir) + "/supervisor.log"
	}
	return printLog(ctx, path, *lines, *follow, stdout)
}

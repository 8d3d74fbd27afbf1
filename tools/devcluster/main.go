// Command devcluster runs the whole zkpost topology (docs/architecture.md#the-processes) as local
// processes, without Docker: ZooKeeper, three cache Redis, the queue Redis primary and replica, a
// MariaDB primary and GTID replica, zoo_setup, three guidd, two scrapd, two postsvcd, two
// writebackd, two redismon, workwebui and (when installed) Prometheus.
//
//	devcluster up                 start everything in the background and wait until it is ready
//	devcluster status             every node: pid, port, ready or not, what ZooKeeper lists
//	devcluster kill <node>        SIGKILL a node (not restarted until start)
//	devcluster stop <node>        SIGTERM a node (not restarted until start)
//	devcluster start <node>       start a stopped or killed node
//	devcluster logs [-f] <node>   print (or follow) a node's log
//	devcluster down [--purge]     stop everything and check nothing is left (--purge: delete data)
//
// Flags may go before or after the command: `devcluster up --scrap-allow-cidr 127.0.0.0/8` and
// `devcluster --scrap-allow-cidr 127.0.0.0/8 up` are the same.
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
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

const usage = `usage: devcluster [flags] <command> [flags]

commands:
  up                        start everything in the background; wait until ready
  status                    every node: pid, port, ready or not, what ZooKeeper lists
  kill <node>               SIGKILL a node (not restarted until start)
  stop <node>               SIGTERM a node (not restarted until start)
  start <node>              start a stopped or killed node and wait until it is ready
  logs [-f] [-n N] <node>   print (or follow) a node's log; "supervisor" for the supervisor's
  down [--purge]            stop everything (--purge: also delete the data)

flags go before or after the command (environment fallback DEVCLUSTER_<FLAG>):
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

// command is a parsed command line: the command, its positional arguments and its own flags.
type command struct {
	name   string
	args   []string // positional arguments after the command
	follow bool     // logs -f
	lines  int      // logs -n
	purge  bool     // down --purge
}

// commandArgs is how many positional arguments each command takes.
var commandArgs = map[string]int{
	"up": 0, "supervise": 0, "status": 0, "down": 0, "kill": 1, "stop": 1, "start": 1, "logs": 1,
}

// parseCommandLine parses devcluster's global flags, the command, and the command's arguments.
// Global flags may come before or after the command (`devcluster up --scrap-allow-cidr X` and
// `devcluster --scrap-allow-cidr X up` are the same), mixed with the command's own flags
// (logs -f -n, down --purge) and its positional arguments; anything else is an error.
// -h/--help returns flag.ErrHelp after printing the usage.
func parseCommandLine(args []string, getenv func(string) string, output io.Writer) (options, command, error) {
	var o options
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	o.register(fs)
	if err := flagenv.Parse(fs, "devcluster", args, getenv); err != nil {
		return o, command{}, err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return o, command{}, errors.New("missing command (see devcluster -h)")
	}
	cmd := command{name: fs.Arg(0)}
	want, ok := commandArgs[cmd.name]
	if !ok {
		fs.Usage()
		return o, command{}, fmt.Errorf("unknown command %q", cmd.name)
	}
	// The command's flags: every global flag (sharing its value, so what the environment or the
	// flags before the command set stays unless given again) plus the command's own.
	cfs := flag.NewFlagSet("devcluster "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(output)
	fs.VisitAll(func(f *flag.Flag) {
		cfs.Var(f.Value, f.Name, f.Usage)
		cfs.Lookup(f.Name).DefValue = f.DefValue // the default, not what was set before the command
	})
	switch cmd.name {
	case "logs":
		cfs.BoolVar(&cmd.follow, "f", false, "logs: follow the log")
		cfs.IntVar(&cmd.lines, "n", 200, "logs: lines to print (0: all)")
	case "down":
		cfs.BoolVar(&cmd.purge, "purge", false, "down: also delete the data")
	}
	cfs.Usage = func() {
		fmt.Fprint(cfs.Output(), usage)
		cfs.PrintDefaults()
	}
	var err error
	if cmd.args, err = parseInterspersed(cfs, fs.Args()[1:]); err != nil {
		return o, command{}, err
	}
	if len(cmd.args) != want {
		switch {
		case want == 0:
			return o, command{}, fmt.Errorf("%s: unexpected argument %q", cmd.name, cmd.args[0])
		case cmd.name == "logs":
			return o, command{}, errors.New("usage: devcluster logs [-f] [-n lines] <node>")
		default:
			return o, command{}, fmt.Errorf("usage: devcluster %s <node>", cmd.name)
		}
	}
	return o, cmd, nil
}

// parseInterspersed parses args into fs, letting flags and positional arguments mix (the flag
// package stops at the first positional one); it returns the positional arguments in order.
// Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, cmd, err := parseCommandLine(args, getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cl := newClient(absDir(o.dir))
	switch cmd.name {
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
		return down(ctx, o, cl, cmd.purge, stdout)
	case "status":
		return status(ctx, o, cl, stdout)
	case "kill", "stop", "start":
		return nodeAction(ctx, cl, cmd.name, cmd.args[0], o.readyTimeout, stdout)
	case "logs":
		return logs(ctx, o, cmd, stdout)
	}
	return fmt.Errorf("unknown command %q", cmd.name)
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
	fmt.Fprintf(w, "%-24s %-8s %7s %6s %-9s %-8s %s\n", "NODE", "KIND", "PID", "PORT", "STATE", "RESTARTS", "ZOOKEEPER")
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
		fmt.Fprintf(w, "%-24s %-8s %7s %6s %-9s %-8d %s\n", n.Name, n.Kind, pid, port, state, n.Restarts, n.ZK)
	}
}

func logs(ctx context.Context, o options, cmd command, stdout io.Writer) error {
	name := cmd.args[0]
	path := absDir(o.dir) + "/logs/" + name + ".log"
	if name == "supervisor" {
		path = absDir(o.dir) + "/supervisor.log"
	}
	return printLog(ctx, path, cmd.lines, cmd.follow, stdout)
}

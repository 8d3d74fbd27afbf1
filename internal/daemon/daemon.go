// Package daemon is the one life cycle every zkpost daemon follows
// (docs/architecture.md#process-lifecycle). A daemon's cmd main fills in only what is its own; this package owns the
// rest, in the same order for every binary:
//
//   - flags with the environment fallback <BINARY>_<FLAG> (internal/flagenv), the resolved
//     configuration logged once with secrets masked;
//   - the slog logger (internal/logging) and the signal context (Main);
//   - the metrics registry, and the ZooKeeper session with its metrics on it;
//   - registrations in ZooKeeper, each taken back first on shutdown;
//   - one ordered shutdown: deregister from ZooKeeper → stop accepting → drain with a deadline →
//     close dependencies in reverse order of opening (Shutdown, Serve).
//
// Every daemon serves its own /healthz, /readyz and /metrics on its own listener, so the package
// gives them the registry and the ZooKeeper readiness checks instead of a second server.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
)

// RunFunc is a daemon's run: it wires everything top to bottom and returns when the daemon has
// stopped. Tests call it directly with their own args, environment and output.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// DefaultGCPercent is the garbage collector's target when the environment sets no GOGC. Go's
// default, 100, collects whenever the heap doubles; our daemons keep small heaps (tens of MB) and
// allocate on every request, so at 100 they collect several times a second under load, and on a
// machine whose cores are all busy each collection's mark phase delays requests. 400 collects
// about four times less often for a few tens of MB more memory
// (docs/benchmarks.md#garbage-collection).
const DefaultGCPercent = 400

// Main is a daemon's func main: it runs run under a context that SIGINT or SIGTERM cancels and
// exits non-zero, with the error on stderr, when run fails.
func Main(name string, run RunFunc) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Spec is what a daemon tells the life cycle about itself.
type Spec struct {
	// Name is the binary's name: the log tag and the prefix of its environment variables.
	Name string
	// Flags registers the daemon's own flags; --zk*, --log-* come from the life cycle.
	Flags func(fs *flag.FlagSet)
	// Secrets names flags whose values the configuration log masks.
	Secrets []string
	// NeedsZooKeeper, if set, tells after parsing whether this run needs a ZooKeeper session
	// (workwebui given a fixed --queue does not). Unset: it always does.
	NeedsZooKeeper func() bool
}

// Process is one run of a daemon: the parts every daemon shares, and the shutdown it builds up
// as the daemon opens things.
type Process struct {
	Name    string
	Log     *slog.Logger
	ZK      discovery.Config
	Layout  discovery.Layout
	Conn    *discovery.Conn // nil when Spec.NeedsZooKeeper said no
	Metrics *prometheus.Registry
	*Shutdown
}

// Run parses the flags, builds the logger, the registry and the ZooKeeper session, and calls
// body with them. Whatever body leaves open through Defer is closed, in reverse order, before
// Run returns; the ZooKeeper session, opened first, is closed last. --help is no error.
func Run(ctx context.Context, spec Spec, args []string, getenv func(string) string, stdout io.Writer,
	body func(ctx context.Context, p *Process) error) error {
	p, err := start(spec, args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer p.finish()
	if err := p.dial(spec); err != nil {
		return err
	}
	return body(ctx, p)
}

// start parses the flags and builds the logger and the registry.
func start(spec Spec, args []string, getenv func(string) string, stdout io.Writer) (*Process, error) {
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var zk discovery.Config
	var logCfg logging.Config
	if spec.Flags != nil {
		spec.Flags(fs)
	}
	zk.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, spec.Name, args, getenv); err != nil {
		return nil, err
	}
	log, err := logging.New(stdout, logCfg, spec.Name)
	if err != nil {
		return nil, err
	}
	log.Info("config", flagenv.Describe(fs, spec.Secrets...)...)
	return &Process{
		Name: spec.Name, Log: log, ZK: zk, Layout: discovery.Layout{Root: zk.Root},
		Metrics: metrics.NewRegistry(), Shutdown: NewShutdown(log),
	}, nil
}

// dial opens the ZooKeeper session (it returns at once: a daemon starts while ZooKeeper is down)
// and puts its metrics on the registry.
func (p *Process) dial(spec Spec) error {
	if spec.NeedsZooKeeper != nil && !spec.NeedsZooKeeper() {
		return nil
	}
	conn, err := discovery.Dial(p.ZK, p.Log)
	if err != nil {
		return err
	}
	p.Conn = conn
	p.Defer("zookeeper session", func() error { conn.Close(); return nil })
	if err := conn.RegisterMetrics(p.Metrics); err != nil {
		return fmt.Errorf("registering ZooKeeper metrics: %w", err)
	}
	return nil
}

// Register keeps the serverset node of service for advertise under R/<service>/nodes for as long
// as the process runs, and takes it back first on shutdown. It needs the ZooKeeper session.
func (p *Process) Register(service, advertise string) (*discovery.Registration, error) {
	data, err := discovery.NewServerSet(advertise, 0)
	if err != nil {
		return nil, err
	}
	reg := p.Conn.Register(p.Layout.Nodes(service), advertise, data)
	p.Deregister("zookeeper node "+reg.Path(), reg.Close)
	return reg, nil
}

// SessionCheck fails while the process holds no ZooKeeper session: a readiness condition.
func (p *Process) SessionCheck() error {
	if _, ok := p.Conn.Session(); !ok {
		return errors.New("no ZooKeeper session")
	}
	return nil
}

// RegisteredCheck fails while reg's node is not in place: a readiness condition.
func RegisteredCheck(reg *discovery.Registration) func() error {
	return func() error {
		if !reg.Registered() {
			return errors.New("not registered in ZooKeeper")
		}
		return nil
	}
}

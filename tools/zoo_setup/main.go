// Command zoo_setup registers the cache shards, the queue Redis and the database endpoints in
// ZooKeeper (docs/zookeeper.md, docs/operations.md#zoo_setup), creates the service directories, and
// lists the tree with its live members.
//
//	zoo_setup --cache redis1:127.0.0.1:16380,redis2:127.0.0.1:16381 \
//	          --queue-primary 127.0.0.1:16379 --queue-secondary 127.0.0.1:16383 \
//	          --db-primary 127.0.0.1:13306 --db-replicas 127.0.0.1:13307
//	zoo_setup --file tools/zoo_setup/example.json
//	zoo_setup --remove-cache redis3
//	zoo_setup --list [--json]
//
// It is idempotent: running it again changes nothing. A cache shard that exists keeps its data
// (redismon's ALIVE/DOWN status); the queue node keeps its order when it already lists the same
// endpoints (redismon may have promoted a secondary); persistent nodes are removed only by
// --remove-cache. The --file shape is documented on Setup; every flag has the environment fallback
// ZOO_SETUP_<FLAG>.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
)

const binary = "zoo_setup"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", binary, err)
		os.Exit(1)
	}
}

// run is main with its dependencies passed in; logs go to stderr so stdout stays parseable.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return runWith(ctx, args, getenv, stdout, os.Stderr)
}

// options are zoo_setup's own flags.
type options struct {
	setup  flagSetup
	remove string
	list   bool
	json   bool
	wait   time.Duration
}

func (o *options) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.setup.file, "file", "", "JSON file with cache, queue and db (see tools/zoo_setup/example.json)")
	fs.StringVar(&o.setup.cache, "cache", "", "cache shards to register, comma separated name:host:port")
	fs.StringVar(&o.setup.queuePrimary, "queue-primary", "", "queue Redis primary host:port")
	fs.StringVar(&o.setup.queueSecondary, "queue-secondary", "", "queue Redis secondaries, comma separated host:port")
	fs.StringVar(&o.setup.dbPrimary, "db-primary", "", "database primary host:port")
	fs.StringVar(&o.setup.dbReplicas, "db-replicas", "", "database replicas, comma separated host:port")
	fs.StringVar(&o.remove, "remove-cache", "", "cache shards to deregister, comma separated names (redis3) or node names")
	fs.BoolVar(&o.list, "list", false, "print the tree with its live members and exit")
	fs.BoolVar(&o.json, "json", false, "with --list, print JSON")
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "how long to keep trying ZooKeeper before failing")
}

func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(binary, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		zkCfg  discovery.Config
		logCfg logging.Config
		opts   options
	)
	zkCfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	// A command-line tool talks to people: quiet text logs unless asked otherwise.
	logCfg.Format, logCfg.Level = "text", "warn"
	fs.Lookup("log-format").DefValue, fs.Lookup("log-level").DefValue = "text", "warn"
	opts.registerFlags(fs)
	if err := flagenv.Parse(fs, binary, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := logging.New(stderr, logCfg, binary)
	if err != nil {
		return err
	}
	log.Debug("config", flagenv.Describe(fs)...)
	setup, err := opts.setup.setup(readFile)
	if err != nil {
		return err
	}
	conn, err := discovery.Dial(zkCfg, log)
	if err != nil {
		return fmt.Errorf("dialing ZooKeeper: %w", err)
	}
	defer conn.Close()
	if err := waitSession(ctx, conn, zkCfg, opts.wait); err != nil {
		return err
	}
	layout := discovery.Layout{Root: zkCfg.Root}
	return bounded(ctx, conn, opts.wait, func() error { return execute(conn, layout, opts, setup, stdout) })
}

// execute lists the tree, or removes and registers what the flags name.
func execute(conn *discovery.Conn, layout discovery.Layout, opts options, setup Setup, stdout io.Writer) error {
	if opts.list {
		return list(conn, layout, opts.json, stdout)
	}
	a := applier{zk: conn, ensure: conn.EnsurePath, layout: layout, out: stdout}
	// Removal first, so one run can move a shard: --remove-cache redis1 --cache redis1:new:6379.
	if opts.remove != "" {
		if err := a.ensure(layout.CacheNodes()); err != nil {
			return err
		}
		if err := a.removeCache(splitList(opts.remove)); err != nil {
			return err
		}
	}
	return a.apply(setup)
}

// waitSession waits up to d for a ZooKeeper session; the client retries the servers meanwhile.
func waitSession(ctx context.Context, conn *discovery.Conn, cfg discovery.Config, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if _, err := conn.WaitSession(wctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("ZooKeeper unreachable at %s: no session after %s (--wait)", cfg.Servers, d)
	}
	return nil
}

// bounded runs f, giving up after d: a ZooKeeper call made while the connection is down waits for
// it to come back, and a command-line tool must not hang. Closing the client fails such calls.
func bounded(ctx context.Context, conn *discovery.Conn, d time.Duration, f func() error) error {
	res := make(chan error, 1)
	go func() { res <- f() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		conn.Close()
		<-res
		return ctx.Err()
	case <-t.C:
		conn.Close()
		err := <-res
		return fmt.Errorf("ZooKeeper stopped answering (gave up after %s): %w", d, err)
	}
}

func list(c *discovery.Conn, l discovery.Layout, asJSON bool, out io.Writer) error {
	t, err := readTree(c, l)
	if err != nil {
		return err
	}
	if !asJSON {
		return printTree(out, t)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(t); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// Command workwebui serves gocraft/work's web UI for the write-back queue, following the queue
// primary that ZooKeeper names (R/queue/sidekiq), so the UI keeps working after redismon fails
// the queue over.
//
// gocraft/work's UI has no authentication and, left to itself, binds every interface: workwebui
// binds 127.0.0.1 by default and serves the UI through its own listener, beside /healthz,
// /readyz and /metrics, behind HTTP basic authentication when a user and password are set
// (auth.go). Every error it gives, whichever layer gives it, is the JSON envelope (errors.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workwebui:", err)
		os.Exit(1)
	}
}

// config holds workwebui's own flags.
type config struct {
	Listen    string
	Namespace string
	Queue     string // a fixed queue Redis host:port instead of ZooKeeper's
	User      string // basic-auth user; with Password, required for the UI
	Password  string
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:5040", "host:port to serve the UI on (without --user and --password, keep it on loopback)")
	fs.StringVar(&c.User, "user", "", "basic-auth user the UI requires (with --password; prefer the env WORKWEBUI_USER)")
	fs.StringVar(&c.Password, "password", "", "basic-auth password the UI requires (prefer the env WORKWEBUI_PASSWORD: a flag shows in ps)")
	fs.StringVar(&c.Namespace, "queue-namespace", "the_red", "gocraft/work namespace of the write-back queue")
	fs.StringVar(&c.Queue, "queue", "", "queue Redis host:port; default: the primary named in ZooKeeper (R/queue/sidekiq)")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("workwebui", flag.ContinueOnError)
	var cfg config
	var zkCfg discovery.Config
	var logCfg logging.Config
	cfg.registerFlags(fs)
	zkCfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, "workwebui", args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := logging.New(stdout, logCfg, "workwebui")
	if err != nil {
		return err
	}
	log.Info("config", flagenv.Describe(fs, "password")...)
	if !loopback(cfg.Listen) && cfg.User == "" {
		log.Warn("serving the queue UI beyond loopback without authentication (set WORKWEBUI_USER and WORKWEBUI_PASSWORD)", "listen", cfg.Listen)
	}

	reg := metrics.NewRegistry()
	primary := func() string { return cfg.Queue }
	if cfg.Queue == "" {
		conn, err := discovery.Dial(zkCfg, log)
		if err != nil {
			return fmt.Errorf("dialing ZooKeeper: %w", err)
		}
		defer conn.Close()
		if err := conn.RegisterMetrics(reg); err != nil {
			return fmt.Errorf("registering ZooKeeper metrics: %w", err)
		}
		w := conn.WatchData(discovery.Layout{Root: zkCfg.Root}.Queue(), discovery.WatchOptions{
			OnChange: func(s discovery.Snapshot) { log.Info("queue node", "data", string(s.Data)) },
		})
		defer w.Stop()
		primary = func() string {
			q, err := discovery.ParseQueue(w.Current().Data)
			if err != nil {
				return ""
			}
			return q.Primary
		}
	}
	srv, err := newServer(cfg, primary, log, reg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// loopback reports whether hostport names a loopback address.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// shutdownTimeout bounds the drain of in-flight UI requests.
const shutdownTimeout = 5 * time.Second

var _ http.Handler = (*server)(nil)

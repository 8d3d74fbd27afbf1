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
	"flag"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/daemon"
)

func main() { daemon.Main(binary, run) }

const binary = "workwebui"

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
	var cfg config
	spec := daemon.Spec{Name: binary, Flags: cfg.registerFlags, Secrets: []string{"password"},
		NeedsZooKeeper: func() bool { return cfg.Queue == "" }}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		if !loopback(cfg.Listen) && cfg.User == "" {
			p.Log.Warn("serving the queue UI beyond loopback without authentication (set WORKWEBUI_USER and WORKWEBUI_PASSWORD)", "listen", cfg.Listen)
		}
		primary := func() string { return cfg.Queue }
		if p.Conn != nil {
			primary = followPrimary(p)
		}
		srv, err := newServer(cfg, primary, p.Log, p.Metrics)
		if err != nil {
			return err
		}
		// The server drains within shutdownTimeout on its own once ctx ends; it registers nowhere.
		return p.Serve(ctx, daemon.ServiceFunc(srv.Run), shutdownTimeout)
	})
}

// followPrimary follows the queue node and returns the primary it names ("" until one is known).
func followPrimary(p *daemon.Process) func() string {
	var cur atomic.Pointer[string]
	w := p.Conn.FollowQueue(p.Layout.Queue(), func(q discovery.QueueEndpoints) {
		p.Log.Info("queue primary", "primary", q.Primary)
		cur.Store(&q.Primary)
	}, p.Log)
	p.Defer("queue watch", func() error { w.Stop(); return nil })
	return func() string {
		if s := cur.Load(); s != nil {
			return *s
		}
		return ""
	}
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

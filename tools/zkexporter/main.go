// Command zkexporter exports ZooKeeper to Prometheus and the other exporters to ZooKeeper
// (docs/monitoring.md):
//   - its /metrics carries every numeric figure of each ZooKeeper server's mntr, read at scrape
//     time (zookeeper_num_alive_connections{server}, zookeeper_up{server}, …), and it registers
//     itself as a serverset node under R/zookeeper_exporter/nodes;
//   - for each --announce service=host:port (the Debian packages' Redis, MySQL and node
//     exporters, which know nothing of ZooKeeper) it keeps a serverset node under
//     R/<service>/nodes while that exporter answers HTTP.
//
// So Prometheus discovers every exporter from ZooKeeper, like the daemons, with no static target.
// Its life cycle is internal/daemon's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/daemon"
	"github.com/the-red/zkpost/internal/httpapi"
)

const binary = "zkexporter"

// drainLimit bounds the HTTP server's drain on shutdown: a scrape in flight reads mntr within
// --mntr-timeout per server.
const drainLimit = 5 * time.Second

func main() { daemon.Main(binary, run) }

// config holds zkexporter's own flags.
type config struct {
	listen, advertise string
	mntr              string // ZooKeeper servers to read mntr from; default: --zk
	announce          string
	interval          time.Duration
	timeout           time.Duration
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "listen", "0.0.0.0:9141", "host:port for /metrics, /healthz and /readyz")
	fs.StringVar(&c.advertise, "advertise", "", "host:port registered under R/zookeeper_exporter/nodes (default: the bound address)")
	fs.StringVar(&c.mntr, "mntr", "", "ZooKeeper servers whose mntr to export, comma separated host:port (default: --zk)")
	fs.StringVar(&c.announce, "announce", "", "exporters to register in ZooKeeper while they answer, comma separated service=host:port")
	fs.DurationVar(&c.interval, "announce-interval", 2*time.Second, "how often each announced exporter is checked")
	fs.DurationVar(&c.timeout, "mntr-timeout", 2*time.Second, "how long one server's mntr may take")
}

// run is zkexporter's life cycle, internal/daemon's: on shutdown the announced exporters are
// withdrawn first, then zkexporter's own node, then the HTTP server drains.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg config
	spec := daemon.Spec{Name: binary, Flags: cfg.registerFlags}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		targets, err := parseTargets(cfg.announce)
		if err != nil {
			return err
		}
		srv, err := listen(cfg.listen, p.Metrics)
		if err != nil {
			return err
		}
		adv, err := discovery.AdvertiseAddr(cfg.advertise, srv.ln.Addr())
		if err != nil {
			srv.ln.Close()
			return err
		}
		p.Metrics.MustRegister(newMntrCollector(mntrServers(cfg, p.ZK), cfg.timeout))
		announce(p, targets, cfg.interval)
		if _, err := p.Register("zookeeper_exporter", adv); err != nil {
			srv.ln.Close()
			return err
		}
		p.Log.Info("listening", "addr", srv.ln.Addr().String(), "advertise", adv)
		return p.Serve(ctx, srv, drainLimit)
	})
}

// mntrServers are the ZooKeeper servers whose mntr is exported: --mntr, or else --zk.
func mntrServers(cfg config, zk discovery.Config) []string {
	if cfg.mntr != "" {
		return discovery.Config{Servers: cfg.mntr}.ServerList()
	}
	return zk.ServerList()
}

func newMntrCollector(servers []string, timeout time.Duration) *mntrCollector {
	var d net.Dialer
	return &mntrCollector{servers: servers, timeout: timeout, dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}}
}

// announce keeps a node for each target while it answers, until the first shutdown step
// withdraws them all.
func announce(p *daemon.Process, targets []target, interval time.Duration) {
	actx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: interval}
	for _, t := range targets {
		a := &announcer{t: t, conn: p.Conn, layout: p.Layout, client: client, interval: interval, log: p.Log}
		wg.Go(func() { a.run(actx) })
	}
	p.Deregister("announced exporters", func() error {
		stop()
		wg.Wait() // each announcer withdraws its node as actx ends
		return nil
	})
}

// server is zkexporter's HTTP server as internal/daemon drives it.
type server struct {
	ln  net.Listener
	srv *http.Server
}

var _ daemon.Drainer = (*server)(nil)

func listen(addr string, reg *prometheus.Registry) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return &server{ln: ln, srv: &http.Server{Handler: routes(reg), ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Run serves until ctx ends; the drain is Shutdown's.
func (s *server) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return fmt.Errorf("serving HTTP: %w", err)
	}
}

// Shutdown stops accepting and waits for the scrapes in flight until ctx ends.
func (s *server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping HTTP server: %w", err)
	}
	return nil
}

func routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	}
	// Ready as soon as it serves: without ZooKeeper, /metrics still says so (zookeeper_up 0).
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	// Anything else gets the JSON error envelope of every zkpost daemon (internal/httpapi).
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(httpapi.ErrNotFound)
	})
	return mux
}

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
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
)

const binary = "zkexporter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", binary, err)
		os.Exit(1)
	}
}

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

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(binary, flag.ContinueOnError)
	var (
		zkCfg  discovery.Config
		logCfg logging.Config
		cfg    config
	)
	zkCfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	cfg.registerFlags(fs)
	if err := flagenv.Parse(fs, binary, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := logging.New(stdout, logCfg, binary)
	if err != nil {
		return err
	}
	log.Info("config", flagenv.Describe(fs)...)
	targets, err := parseTargets(cfg.announce)
	if err != nil {
		return err
	}
	servers := zkCfg.ServerList()
	if cfg.mntr != "" {
		servers = discovery.Config{Servers: cfg.mntr}.ServerList()
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.listen, err)
	}
	adv, err := discovery.AdvertiseAddr(cfg.advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	conn, err := discovery.Dial(zkCfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer conn.Close()
	reg := metrics.NewRegistry()
	if err := conn.RegisterMetrics(reg); err != nil {
		ln.Close()
		return err
	}
	var d net.Dialer
	reg.MustRegister(&mntrCollector{servers: servers, timeout: cfg.timeout, dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}})
	log.Info("listening", "addr", ln.Addr().String())
	return serve(ctx, ln, adv, conn, zkCfg.Root, reg, targets, cfg.interval, log)
}

// serve registers and announces, serves HTTP until ctx ends, then deregisters everything before
// the HTTP server stops.
func serve(ctx context.Context, ln net.Listener, adv string, conn *discovery.Conn, root string,
	reg *prometheus.Registry, targets []target, interval time.Duration, log *slog.Logger) error {
	layout := discovery.Layout{Root: root}
	data, err := discovery.NewServerSet(adv, 0)
	if err != nil {
		ln.Close()
		return err
	}
	self := conn.Register(layout.Nodes("zookeeper_exporter"), adv, data)
	srv := &http.Server{Handler: routes(reg), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: interval}
	for _, t := range targets {
		a := &announcer{t: t, conn: conn, layout: layout, client: client, interval: interval, log: log}
		wg.Go(func() { a.run(ctx) })
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serving HTTP: %w", err)
	}
	wg.Wait() // announcers withdraw their nodes as ctx ends
	if err := self.Close(); err != nil {
		log.Warn("zk deregister failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("stopping HTTP server: %w", err)
	}
	log.Info("stopped")
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

// Command scrapd is the link-preview server (docs/api.md#scrapd): GET /api/v1/scrap?url=… fetches a page
// under the SSRF guard and limits and returns its Open Graph preview. It registers under
// <zk-root>/scrap/nodes/<host:port> so postsvcd finds it.
package main

import (
	"context"
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
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/scrap"
)

const binary = "scrapd"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scrapd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(binary, flag.ContinueOnError)
	fs.SetOutput(stdout)
	listen := fs.String("listen", "0.0.0.0:8020", "host:port to bind")
	advertise := fs.String("advertise", "", "host:port written to ZooKeeper (default: the bound address)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	var zkCfg discovery.Config
	zkCfg.RegisterFlags(fs)
	var logCfg logging.Config
	logCfg.RegisterFlags(fs)
	var cfg scrap.Config
	cfg.RegisterFlags(fs)
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
	if cfg.AllowCIDR != "" {
		log.Warn("ssrf guard relaxed", "allow_cidr", cfg.AllowCIDR, "note", "development and tests only")
	}

	conn, err := discovery.Dial(zkCfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := metrics.NewRegistry()
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}
	svc, err := scrap.NewService(cfg, scrap.Deps{Log: log, Metrics: reg})
	if err != nil {
		return err
	}
	defer svc.Close()
	srv, err := scrap.NewServer(scrap.ServerConfig{Listen: *listen, Wait: cfg.Timeout + time.Second}, svc, log, reg)
	if err != nil {
		return err
	}
	name, err := discovery.AdvertiseAddr(*advertise, srv.Addr())
	if err != nil {
		return err
	}
	data, err := discovery.NewServerSet(name, 0)
	if err != nil {
		return err
	}

	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- srv.Run(serveCtx, *drain) }()
	registration := conn.Register(discovery.Layout{Root: zkCfg.Root}.Nodes("scrap"), name, data)
	log.Info("serving", "addr", srv.Addr().String(), "advertise", name)

	select {
	case <-ctx.Done():
	case err := <-served:
		registration.Close()
		return err
	}
	log.Info("shutting down")
	if err := registration.Close(); err != nil { // first, so callers stop routing here at once
		log.Warn("zk deregister failed", "err", err)
	}
	stopServing()
	err = <-served
	log.Info("stopped")
	return err
}

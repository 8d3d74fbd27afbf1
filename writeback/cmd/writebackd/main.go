// Command writebackd consumes the write-back queue and persists posts to the MySQL primary.
// See package writeback.
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
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/writeback"
)

const binary = "writebackd"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", binary, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(binary, flag.ContinueOnError)
	var (
		cfg       writeback.Config
		zkCfg     discovery.Config
		logCfg    logging.Config
		advertise string
	)
	cfg.RegisterFlags(fs)
	zkCfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	fs.StringVar(&advertise, "advertise", "", "host:port written to ZooKeeper (default: the bound address, or the host's primary IP)")
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
	log.Info("config", flagenv.Describe(fs, "db-password")...)
	// The driver's logger is process-wide; main is the one place allowed to set it.
	if err := mysql.SetLogger(driverLogger{log}); err != nil {
		return err
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
	svc, err := writeback.New(cfg, log, reg)
	if err != nil {
		return err
	}
	layout := discovery.Layout{Root: zkCfg.Root}
	dbWatch := conn.WatchData(layout.DB(), discovery.WatchOptions{OnChange: func(s discovery.Snapshot) {
		applyDB(log, svc, s)
	}})
	defer dbWatch.Stop()
	queueWatch := conn.WatchData(layout.Queue(), discovery.WatchOptions{OnChange: func(s discovery.Snapshot) {
		applyQueue(log, svc, s)
	}})
	defer queueWatch.Stop()

	addr, err := discovery.AdvertiseAddr(advertise, svc.Addr())
	if err != nil {
		svc.Close()
		return err
	}
	data, err := discovery.NewServerSet(addr, 0)
	if err != nil {
		svc.Close()
		return err
	}
	registration := conn.Register(layout.Nodes("writeback"), addr, data)
	svc.SetRegistered(registration.Registered)
	log.Info("serving", "addr", svc.Addr().String(), "advertise", addr)

	runErr := svc.Run(ctx)
	log.Info("shutting down", "timeout", svc.ShutdownTimeout())
	sctx, cancel := context.WithTimeout(context.Background(), svc.ShutdownTimeout())
	defer cancel()
	if err := deregister(sctx, registration); err != nil {
		log.Warn("zk deregister failed", "err", err)
	}
	if err := svc.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return runErr
}

// deregister deletes our node within the shutdown deadline, which the rest of the shutdown
// shares.
func deregister(ctx context.Context, reg *discovery.Registration) error {
	done := make(chan error, 1)
	go func() { done <- reg.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("deregistering: %w", ctx.Err())
	}
}

// applyDB hands a changed R/db node to the service; an unreadable or missing node keeps the
// endpoints we have.
func applyDB(log *slog.Logger, svc *writeback.Service, s discovery.Snapshot) {
	if !s.Exists {
		log.Warn("db node missing; keeping endpoints")
		return
	}
	e, err := discovery.ParseDB(s.Data)
	if err != nil {
		log.Warn("db node unreadable; keeping endpoints", "err", err)
		return
	}
	svc.SetDBEndpoints(e)
}

// applyQueue hands a changed R/queue/sidekiq node to the service, under the same rules.
func applyQueue(log *slog.Logger, svc *writeback.Service, s discovery.Snapshot) {
	if !s.Exists {
		log.Warn("queue node missing; keeping endpoints")
		return
	}
	q, err := discovery.ParseQueue(s.Data)
	if err != nil {
		log.Warn("queue node unreadable; keeping endpoints", "err", err)
		return
	}
	svc.SetQueueEndpoints(q)
}

// driverLogger sends go-sql-driver/mysql's messages ("closing bad idle connection: EOF" after a
// database restart, and the like) to slog instead of stderr.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Info("mysql driver", "msg", fmt.Sprint(v...)) }

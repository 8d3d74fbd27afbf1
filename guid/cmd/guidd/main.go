// Command guidd is the Snowflake ID server: it leases a worker id in ZooKeeper, registers itself
// under R/guid/nodes and serves IDs over HTTP (see package guid).
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

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "guidd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("guidd", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		cfg  guid.Config
		zcfg discovery.Config
		lcfg logging.Config
	)
	cfg.RegisterFlags(fs)
	zcfg.RegisterFlags(fs)
	lcfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, "guidd", args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := logging.New(stdout, lcfg, "guidd")
	if err != nil {
		return err
	}
	log.Info("config", flagenv.Describe(fs)...)

	conn, err := discovery.Dial(zcfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := metrics.NewRegistry()
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}
	cfg.SessionTimeout = zcfg.SessionTimeout
	srv, err := guid.New(cfg, guid.Deps{
		Conn:     conn,
		Layout:   discovery.Layout{Root: zcfg.Root},
		Registry: reg,
		Log:      log,
	})
	if err != nil {
		return err
	}
	// Run registers once a worker id is leased (the serverset carries it) and deregisters first
	// on shutdown; conn.Close then ends the session.
	return srv.Run(ctx)
}

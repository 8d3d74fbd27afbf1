// Command writebackd consumes the write-back queue and persists posts to the MySQL primary.
// See package writeback.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/go-sql-driver/mysql"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/daemon"
	"github.com/the-red/zkpost/writeback"
)

const binary = "writebackd"

func main() { daemon.Main(binary, run) }

// flags are writebackd's own flags beside writeback.Config's.
type flags struct {
	cfg       writeback.Config
	advertise string
}

func (f *flags) register(fs *flag.FlagSet) {
	f.cfg.RegisterFlags(fs)
	fs.StringVar(&f.advertise, "advertise", "", "host:port written to ZooKeeper (default: the bound address, or the host's primary IP)")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var f flags
	spec := daemon.Spec{Name: binary, Flags: f.register, Secrets: []string{"db-password"}}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		// The driver's logger is process-wide; main is the one place allowed to set it.
		if err := mysql.SetLogger(driverLogger{p.Log}); err != nil {
			return err
		}
		return serve(ctx, p, f)
	})
}

// serve builds the service, follows the database and queue nodes, registers, and runs until ctx
// ends. The deregistration and the service's Shutdown share the one --shutdown-timeout, so a
// shutdown with every dependency dead still ends by it.
func serve(ctx context.Context, p *daemon.Process, f flags) error {
	svc, err := writeback.New(f.cfg, p.Log, p.Metrics)
	if err != nil {
		return err
	}
	p.Defer("writeback service", svc.Close) // a no-op once Serve has drained it
	db := p.Conn.FollowDB(p.Layout.DB(), svc.SetDBEndpoints, p.Log)
	p.Defer("db watch", func() error { db.Stop(); return nil })
	queue := p.Conn.FollowQueue(p.Layout.Queue(), svc.SetQueueEndpoints, p.Log)
	p.Defer("queue watch", func() error { queue.Stop(); return nil })

	addr, err := discovery.AdvertiseAddr(f.advertise, svc.Addr())
	if err != nil {
		return err
	}
	registration, err := p.Register("writeback", addr)
	if err != nil {
		return err
	}
	svc.SetRegistered(registration.Registered)
	p.Log.Info("serving", "addr", svc.Addr().String(), "advertise", addr)
	return p.Serve(ctx, svc, svc.ShutdownTimeout())
}

// driverLogger sends go-sql-driver/mysql's messages ("closing bad idle connection: EOF" after a
// database restart, and the like) to slog instead of stderr.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Info("mysql driver", "msg", fmt.Sprint(v...)) }

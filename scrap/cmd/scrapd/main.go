// Command scrapd is the link-preview server (docs/api.md#scrapd): GET /api/v1/scrap?url=… fetches a page
// under the SSRF guard and limits and returns its Open Graph preview. It registers under
// <zk-root>/scrap/nodes/<host:port> so postsvcd finds it. Its life cycle is internal/daemon's.
package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/daemon"
	"github.com/the-red/zkpost/scrap"
)

const binary = "scrapd"

func main() { daemon.Main(binary, run) }

// flags are scrapd's own flags beside scrap.Config's.
type flags struct {
	listen, advertise string
	drain             time.Duration
	scrap             scrap.Config
}

func (f *flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "0.0.0.0:8020", "host:port to bind")
	fs.StringVar(&f.advertise, "advertise", "", "host:port written to ZooKeeper (default: the bound address)")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	f.scrap.RegisterFlags(fs)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var f flags
	spec := daemon.Spec{Name: binary, Flags: f.register}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		if f.scrap.AllowCIDR != "" {
			p.Log.Warn("ssrf guard relaxed", "allow_cidr", f.scrap.AllowCIDR, "note", "development and tests only")
		}
		svc, err := scrap.NewService(f.scrap, scrap.Deps{Log: p.Log, Metrics: p.Metrics})
		if err != nil {
			return err
		}
		p.Defer("scrap service", func() error { svc.Close(); return nil })
		srv, err := scrap.NewServer(scrap.ServerConfig{Listen: f.listen, Wait: f.scrap.Timeout + time.Second}, svc, p.Log, p.Metrics)
		if err != nil {
			return err
		}
		advertise, err := discovery.AdvertiseAddr(f.advertise, srv.Addr())
		if err != nil {
			return err
		}
		if _, err := p.Register("scrap", advertise); err != nil {
			return err
		}
		p.Log.Info("serving", "addr", srv.Addr().String(), "advertise", advertise)
		// scrap's Server stops accepting and drains for up to drain once its context ends.
		return p.Serve(ctx, daemon.ServiceFunc(func(ctx context.Context) error { return srv.Run(ctx, f.drain) }), f.drain)
	})
}

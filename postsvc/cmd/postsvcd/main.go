// Command postsvcd serves the post API and the demo page (see package postsvc). It finds guidd and
// scrapd instances, the cache shards, the queue and the database in ZooKeeper, registers itself
// under R/postsvc/nodes, and follows every change without a restart.
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

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/post"
	"github.com/the-red/zkpost/internal/postdb"
	"github.com/the-red/zkpost/internal/postqueue"
	"github.com/the-red/zkpost/postsvc"
	"github.com/the-red/zkpost/scrap"
)

const binary = "postsvcd"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, binary+":", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(binary, flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		cfg  postsvc.Config
		zcfg discovery.Config
		dcfg postdb.Config
		qcfg postqueue.Config
		lcfg logging.Config
	)
	cfg.RegisterFlags(fs)
	zcfg.RegisterFlags(fs)
	dcfg.RegisterFlags(fs)
	qcfg.RegisterFlags(fs)
	qcfg.RegisterEnqueueFlags(fs)
	lcfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, binary, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := logging.New(stdout, lcfg, binary)
	if err != nil {
		return err
	}
	log.Info("config", flagenv.Describe(fs, "db-password")...)
	// go-redis logs every failed dial to a dead shard on stderr through a process-wide logger;
	// main owns the process, so it routes those lines to slog at debug level.
	redis.SetLogger(redisLogger{log})

	conn, err := discovery.Dial(zcfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	layout := discovery.Layout{Root: zcfg.Root}
	reg := metrics.NewRegistry()
	if err := conn.RegisterMetrics(reg); err != nil {
		return err
	}

	guids := conn.NewBalancer(layout.Nodes("guid"))
	defer guids.Stop()
	scraps := conn.NewBalancer(layout.Nodes("scrap"))
	defer scraps.Stop()
	ids := guid.NewClient(guids, guid.ClientOptions{Block: cfg.IDBlock, MaxAge: cfg.IDMaxAge})
	defer ids.Close()
	router := postdb.NewRouter(dcfg, log, reg)
	defer router.Close()
	queue := postqueue.NewEnqueuer(qcfg, log)
	defer queue.Close()

	srv, err := postsvc.New(cfg, postsvc.Deps{
		IDs:       ids,
		Previewer: scrap.NewClient(scraps, nil),
		Queue:     queue,
		Store:     readerStore{router},
		Primary:   primaryStore{router},
		Log:       log,
		Registry:  reg,
	})
	if err != nil {
		return err
	}
	watches := postsvc.Watch(conn, layout, srv.Cache(), queue, router, log)
	defer watches.Stop()

	advertise, err := discovery.AdvertiseAddr(cfg.Advertise, srv.Addr())
	if err != nil {
		return err
	}
	data, err := discovery.NewServerSet(advertise, 0)
	if err != nil {
		return err
	}
	registration := conn.Register(layout.Nodes("postsvc"), advertise, data)
	srv.AddReady(readiness(conn, registration, guids)...)
	srv.AddReady(watches.Checks()...)
	log.Info("serving", "addr", srv.Addr().String(), "advertise", advertise)

	runErr := srv.Run(ctx)
	// Deregister first so no new request is routed here, then drain, then close (deferred, in
	// reverse order of opening).
	if err := registration.Close(); err != nil {
		log.Warn("deregister failed", "err", err)
	}
	drain, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return runErr
}

func readiness(conn *discovery.Conn, reg *discovery.Registration, guids *discovery.Balancer) []postsvc.Check {
	return []postsvc.Check{
		{Name: "zookeeper", OK: func() error {
			if _, ok := conn.Session(); !ok {
				return errors.New("no ZooKeeper session")
			}
			return nil
		}},
		{Name: "registered", OK: func() error {
			if !reg.Registered() {
				return errors.New("not registered in ZooKeeper")
			}
			return nil
		}},
		{Name: "guid", OK: func() error {
			if len(guids.Candidates()) == 0 {
				return errors.New("no guid server known")
			}
			return nil
		}},
	}
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, args ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, args...))
}

// readerStore reads through the router's current reader (a healthy replica, else the primary,
// else — while the primary is unreachable — the most advanced reachable replica) and maps
// postdb's not-found to postsvc's.
type readerStore struct{ r *postdb.Router }

// The concrete types main wires in satisfy the interfaces postsvc declares.
var (
	_ postsvc.Store          = readerStore{}
	_ postsvc.Primary        = primaryStore{}
	_ postsvc.IDSource       = (*guid.Client)(nil)
	_ postsvc.Previewer      = (*scrap.Client)(nil)
	_ postsvc.Queue          = (*postqueue.Enqueuer)(nil)
	_ postsvc.QueueEndpoints = (*postqueue.Enqueuer)(nil)
	_ postsvc.DBEndpoints    = (*postdb.Router)(nil)
)

// primaryStore writes through the router's current primary (--write-mode=through).
type primaryStore struct{ r *postdb.Router }

func (s primaryStore) Upsert(ctx context.Context, posts []post.Post) error {
	st, err := s.r.Primary()
	if err != nil {
		return err
	}
	return st.Upsert(ctx, posts)
}

func (s readerStore) List(ctx context.Context, userID, maxID uint64, limit int) ([]post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return nil, err
	}
	return st.List(ctx, userID, maxID, limit)
}

func (s readerStore) Get(ctx context.Context, postID uint64) (post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return post.Post{}, err
	}
	p, err := st.Get(ctx, postID)
	if errors.Is(err, postdb.ErrNotFound) {
		return post.Post{}, postsvc.ErrNotFound
	}
	return p, err
}

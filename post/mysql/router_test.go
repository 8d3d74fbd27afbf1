package mysql_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/mysql"
)

func TestRouterNoEndpoints(t *testing.T) {
	r := mysql.NewRouter(testConfig(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	defer r.Close()
	if _, err := r.Primary(); !errors.Is(err, mysql.ErrNoDatabase) {
		t.Errorf("Primary() err = %v, want ErrNoDatabase", err)
	}
	if _, err := r.Reader(); !errors.Is(err, mysql.ErrNoDatabase) {
		t.Errorf("Reader() err = %v, want ErrNoDatabase", err)
	}
}

func TestRouterFailover(t *testing.T) {
	primary := itest.StartMariaDB(t)
	replica := itest.StartMariaDBReplica(t, primary)
	primary.DB(t, "zkpost")
	replica.DB(t, "zkpost")

	r := mysql.NewRouter(testConfig(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	defer r.Close()
	r.SetEndpoints(discovery.DBEndpoints{Primary: primary.Addr(), Replicas: []string{replica.Addr()}})

	readerIs := func(want string) func() bool {
		return func() bool {
			s, err := r.Reader()
			return err == nil && s.Addr() == want
		}
	}
	if s, err := r.Primary(); err != nil || s.Addr() != primary.Addr() {
		t.Fatalf("Primary() = %v, %v; want %s", s, err, primary.Addr())
	}
	itest.WaitFor(t, 10*time.Second, "reads to go to the replica", readerIs(replica.Addr()))

	replica.StopReplication(t)
	itest.WaitFor(t, 10*time.Second, "reads to fall back to the primary (lag NULL)", readerIs(primary.Addr()))
	if st := r.Status(); len(st) != 2 || st[1].Healthy || st[1].Err == "" {
		t.Errorf("Status() = %+v; want the replica unhealthy with a reason", st)
	}

	replica.StartReplication(t)
	itest.WaitFor(t, 10*time.Second, "reads back on the replica", readerIs(replica.Addr()))

	replica.Kill()
	itest.WaitFor(t, 10*time.Second, "reads to fall back to the primary (replica down)", readerIs(primary.Addr()))

	replica.Start(t)
	itest.WaitFor(t, 30*time.Second, "reads back on the restarted replica", readerIs(replica.Addr()))

	// The endpoint list changes without a restart: dropping the replica routes reads to the primary.
	r.SetEndpoints(discovery.DBEndpoints{Primary: primary.Addr()})
	if s, err := r.Reader(); err != nil || s.Addr() != primary.Addr() {
		t.Errorf("Reader() after removing the replica = %v, %v; want %s", s, err, primary.Addr())
	}
}

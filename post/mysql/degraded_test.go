package mysql_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
)

// gaugeValue reads an unlabelled gauge from reg; ok is false when it is not there.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestRouterDegradedReads: with the primary dead its replica's lag is NULL (the IO thread cannot
// connect), so it is unhealthy; reads must still go to it rather than to the dead primary, and
// go back to normal routing (docs/architecture.md#the-database) once the primary is back.
func TestRouterDegradedReads(t *testing.T) {
	primary := itest.StartMariaDB(t)
	primaryStore := openStore(t, primary) // database and schema, replicated
	replica := itest.StartMariaDBReplica(t, primary)
	ctx := context.Background()
	const user = 77
	want := []post.Post{mkPost(3, user, "c"), mkPost(2, user, "b"), mkPost(1, user, "a")}
	if err := primaryStore.Upsert(ctx, want); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	replica.WaitReplicated(t, primary)

	reg := prometheus.NewRegistry()
	r := mysql.NewRouter(testConfig(), slog.New(slog.DiscardHandler), reg)
	defer r.Close()
	r.SetEndpoints(discovery.DBEndpoints{Primary: primary.Addr(), Replicas: []string{replica.Addr()}})

	readerIs := func(addr string) bool {
		s, err := r.Reader()
		return err == nil && s.Addr() == addr
	}
	degraded := func() float64 {
		v, ok := gaugeValue(t, reg, "db_read_degraded")
		if !ok {
			t.Fatal("db_read_degraded not registered")
		}
		return v
	}
	itest.WaitFor(t, 10*time.Second, "reads to go to the healthy replica", func() bool { return readerIs(replica.Addr()) })
	if r.ReadDegraded() || degraded() != 0 {
		t.Errorf("ReadDegraded() = %v, db_read_degraded = %v with everything healthy; want false, 0", r.ReadDegraded(), degraded())
	}

	primary.Kill()
	itest.WaitFor(t, 15*time.Second, "the router to notice the dead primary and degrade reads", func() bool {
		st := r.Status()
		return len(st) == 2 && st[0].Checked && !st[0].Healthy && !st[1].Healthy && r.ReadDegraded()
	})
	itest.WaitFor(t, 5*time.Second, "db_read_degraded = 1", func() bool { return degraded() == 1 })
	st := r.Status()
	if st[0].Role != "primary" || st[0].Err == "" || st[0].ReadFallback {
		t.Errorf("Status()[0] = %+v; want the primary, unhealthy with a reason", st[0])
	}
	if st[1].Role != "replica" || !st[1].Reachable || !st[1].ReadFallback || st[1].Err == "" {
		t.Errorf("Status()[1] = %+v; want the replica reachable, unhealthy with a reason, taking reads", st[1])
	}
	s, err := r.Reader()
	if err != nil || s.Addr() != replica.Addr() {
		t.Fatalf("Reader() with the primary dead = %v, %v; want the replica %s", s, err, replica.Addr())
	}
	got, err := s.List(ctx, user, ^uint64(0), 10)
	if err != nil {
		t.Fatalf("List on the degraded reader: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("List on the degraded reader = %d posts, want %d", len(got), len(want))
	}
	for i := range want {
		assertPost(t, got[i], want[i])
	}
	if p, err := s.Get(ctx, 2); err != nil || p.ID != 2 {
		t.Errorf("Get(2) on the degraded reader = %v, %v; want post 2", p.ID, err)
	}
	if w, err := r.Primary(); err != nil || w.Addr() != primary.Addr() {
		t.Errorf("Primary() with the primary dead = %v, %v; want %s still (writes are never redirected)", w, err, primary.Addr())
	}

	primary.Start(t)
	itest.WaitFor(t, 15*time.Second, "reads no longer degraded once the primary answers", func() bool {
		return !r.ReadDegraded() && degraded() == 0
	})
	// Until the replica's IO thread reconnects, the normal rule sends reads to the primary;
	// afterwards the replica is healthy and takes them again.
	itest.WaitFor(t, 30*time.Second, "the replica healthy again after replication reconnects", func() bool {
		st := r.Status()
		return len(st) == 2 && st[1].Healthy && !st[1].ReadFallback && readerIs(replica.Addr())
	})
	if err := primaryStore.Upsert(ctx, []post.Post{mkPost(4, user, "d")}); err != nil {
		t.Fatalf("Upsert after the primary's restart: %v", err)
	}
}

// TestRouterDegradedNeedsReachableReplica: with the primary and the only replica both dead,
// reads are not degraded and Reader returns the primary (its queries fail fast; there is
// nothing better).
func TestRouterDegradedNeedsReachableReplica(t *testing.T) {
	primary := itest.StartMariaDB(t)
	primary.DB(t, "zkpost")
	replica := itest.StartMariaDBReplica(t, primary)
	replica.DB(t, "zkpost")

	r := mysql.NewRouter(testConfig(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	defer r.Close()
	r.SetEndpoints(discovery.DBEndpoints{Primary: primary.Addr(), Replicas: []string{replica.Addr()}})
	itest.WaitFor(t, 10*time.Second, "reads to go to the replica", func() bool {
		s, err := r.Reader()
		return err == nil && s.Addr() == replica.Addr()
	})
	replica.Kill()
	primary.Kill()
	itest.WaitFor(t, 15*time.Second, "both endpoints seen down", func() bool {
		st := r.Status()
		return len(st) == 2 && st[0].Checked && !st[0].Healthy && !st[1].Healthy && !st[1].Reachable
	})
	if r.ReadDegraded() {
		t.Error("ReadDegraded() = true with no reachable replica; want false")
	}
	if s, err := r.Reader(); err != nil || s.Addr() != primary.Addr() {
		t.Errorf("Reader() = %v, %v; want the primary %s", s, err, primary.Addr())
	}
}

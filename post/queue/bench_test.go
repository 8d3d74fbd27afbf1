package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/queue"
)

// BenchmarkEnqueue measures what waiting for a replica costs a write: the same primary (AOF,
// appendfsync always) with an attached replica, once with no secondary listed (LPUSH alone) and
// once listed (LPUSH + WAIT 1 in one round trip), serially and with 16 writers.
func BenchmarkEnqueue(b *testing.B) {
	primary := itest.StartRedis(b, itest.RedisOptions{AOF: true})
	replica := itest.StartRedis(b, itest.RedisOptions{AOF: true, ReplicaOf: primary.Addr()})
	itest.WaitFor(b, 20*time.Second, "replica attached", func() bool {
		n, err := primary.Client(b).Info(context.Background(), "replication").Result()
		return err == nil && queue.CountAttached(n) == 1
	})
	for _, mode := range []struct {
		name string
		q    discovery.QueueEndpoints
	}{
		{"push-only", discovery.QueueEndpoints{Primary: primary.Addr()}},
		{"push+wait", discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}}},
	} {
		cfg := queue.Config{Namespace: "bench", ReplicaWait: 250 * time.Millisecond}
		e := queue.NewEnqueuer(cfg, quiet)
		e.SetEndpoints(mode.q)
		var id atomic.Uint64
		b.Run(mode.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if err := e.Enqueue(context.Background(), samplePost(id.Add(1))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/parallel16", func(b *testing.B) {
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := e.Enqueue(context.Background(), samplePost(id.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		e.Close()
	}
}

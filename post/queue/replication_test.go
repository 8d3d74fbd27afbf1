package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/queue"
)

const jobsKey = "test_ns:jobs:" + queue.JobName

// replicatedQueue starts a queue primary (AOF) and a replica of it, and waits until the replica
// acknowledges a write within the tests' 250 ms replica wait.
func replicatedQueue(t *testing.T) (primary, replica *itest.Redis) {
	t.Helper()
	primary = itest.StartRedis(t, itest.RedisOptions{AOF: true})
	replica = itest.StartRedis(t, itest.RedisOptions{AOF: true, ReplicaOf: primary.Addr()})
	// The replica reports its link up before the primary counts it online (its first ACK), and
	// even once online it may still be rewriting its AOF after the initial sync, answering WAIT
	// late on a loaded machine: the condition the tests need is a write acknowledged in time.
	pc := primary.Client(t)
	ctx := context.Background()
	itest.WaitFor(t, 20*time.Second, "replica acknowledging writes", func() bool {
		info, err := pc.Info(ctx, "replication").Result()
		if err != nil || queue.CountAttached(info) != 1 || pc.Incr(ctx, "replication_test:probe").Err() != nil {
			return false
		}
		n, err := pc.Do(ctx, "WAIT", 1, 250).Int()
		return err == nil && n == 1
	})
	return primary, replica
}

// newWaitingEnqueuer is an enqueuer with a 250 ms replica wait on q.
func newWaitingEnqueuer(t *testing.T, q discovery.QueueEndpoints) *queue.Enqueuer {
	t.Helper()
	cfg := testConfig()
	cfg.ReplicaWait = 250 * time.Millisecond
	e := queue.NewEnqueuer(cfg, quiet)
	t.Cleanup(func() { e.Close() })
	e.SetEndpoints(q)
	return e
}

func queued(t *testing.T, r *itest.Redis) int64 {
	t.Helper()
	n, err := r.Client(t).LLen(context.Background(), jobsKey).Result()
	if err != nil {
		t.Fatalf("LLEN on %s: %v", r.Addr(), err)
	}
	return n
}

// TestEnqueueReplicatedSurvivesFailover: with a replica attached, an acknowledged job is on the
// replica when Enqueue returns, so killing the primary and promoting the replica (what redismon
// does) keeps every acknowledged job.
func TestEnqueueReplicatedSurvivesFailover(t *testing.T) {
	primary, replica := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}})
	const n = 50
	for i := range n {
		if err := e.Enqueue(context.Background(), samplePost(uint64(i+1))); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
		if got := queued(t, replica); got != int64(i+1) {
			t.Fatalf("jobs on the replica right after ack %d: got %d, want %d", i, got, i+1)
		}
	}
	primary.Kill()
	if err := replica.Client(t).Do(context.Background(), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if got := queued(t, replica); got != n {
		t.Fatalf("jobs on the promoted replica: got %d, want %d", got, n)
	}
}

// TestEnqueueRefusedWhenReplicaHung: a hung replica acknowledges nothing, so Enqueue fails
// within about the replica wait and withdraws its job; after the replica resumes, writes go
// through again.
func TestEnqueueRefusedWhenReplicaHung(t *testing.T) {
	primary, replica := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}})
	if err := e.Enqueue(context.Background(), samplePost(1)); err != nil {
		t.Fatalf("Enqueue with the replica up: %v", err)
	}
	replica.Pause()
	err := enqueueBounded(t, e, samplePost(2))
	got := queued(t, primary)
	replica.Resume()
	if !errors.Is(err, queue.ErrNotReplicated) {
		t.Fatalf("Enqueue with the replica hung: err = %v, want ErrNotReplicated", err)
	}
	if got != 1 {
		t.Fatalf("jobs on the primary after the refused enqueue: got %d, want 1 (the refused job withdrawn)", got)
	}
	itest.WaitFor(t, 10*time.Second, "Enqueue to work after the replica resumed", func() bool {
		return e.Enqueue(context.Background(), samplePost(3)) == nil
	})
}

// TestEnqueueStopsWaitingForAHungReplica: once a hung replica's last acknowledgement is more
// than 3 s old, the primary no longer counts it as attached and writes go on single-copy
// (failure-semantics.md §1), rather than every write being refused until repl-timeout (60 s).
func TestEnqueueStopsWaitingForAHungReplica(t *testing.T) {
	primary, replica := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}})
	replica.Pause()
	defer replica.Resume()
	if err := enqueueBounded(t, e, samplePost(1)); !errors.Is(err, queue.ErrNotReplicated) {
		t.Fatalf("Enqueue right after the replica hung: err = %v, want ErrNotReplicated", err)
	}
	id := uint64(2)
	itest.WaitFor(t, 15*time.Second, "Enqueue to go on without the hung replica", func() bool {
		id++
		return enqueueBounded(t, e, samplePost(id)) == nil
	})
	if got := queued(t, primary); got != 1 {
		t.Fatalf("jobs on the primary: got %d, want 1 (the refused ones withdrawn, the last one queued)", got)
	}
}

// TestEnqueueTakenBeforeReplication: when a worker takes the job while Enqueue waits for the
// (hung) replica, the job is on its way to the database, so the write is acknowledged.
func TestEnqueueTakenBeforeReplication(t *testing.T) {
	primary, replica := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}})
	replica.Pause()
	defer replica.Resume()
	taken := make(chan error, 1)
	go func() { // a worker's fetch, as gocraft does it: move the job to an in-progress list
		taken <- primary.Client(t).BRPopLPush(context.Background(), jobsKey, jobsKey+":w:inprogress", 10*time.Second).Err()
	}()
	if err := enqueueBounded(t, e, samplePost(1)); err != nil {
		t.Fatalf("Enqueue of a job a worker took: %v, want nil", err)
	}
	if err := <-taken; err != nil {
		t.Fatalf("worker fetch: %v", err)
	}
}

// TestEnqueueWithoutListedReplicaDoesNotWait: when the queue node lists no secondary, the push
// alone acknowledges the job, even though a (hung) replica is attached.
func TestEnqueueWithoutListedReplicaDoesNotWait(t *testing.T) {
	primary, replica := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr()})
	replica.Pause()
	defer replica.Resume()
	if err := enqueueBounded(t, e, samplePost(1)); err != nil {
		t.Fatalf("Enqueue with no secondary listed: %v", err)
	}
	if got := queued(t, primary); got != 1 {
		t.Fatalf("jobs on the primary: got %d, want 1", got)
	}
}

// TestEnqueueListedReplicaDetached: a listed secondary that is not attached (down, or the old
// primary after a failover) does not block writes once the primary is seen to have no replica.
func TestEnqueueListedReplicaDetached(t *testing.T) {
	primary := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{"127.0.0.1:1"}})
	itest.WaitFor(t, 10*time.Second, "Enqueue acknowledged without an attached replica", func() bool {
		return e.Enqueue(context.Background(), samplePost(1)) == nil
	})
	if got := queued(t, primary); got != 1 {
		t.Fatalf("jobs on the primary: got %d, want 1 (refused attempts withdrawn)", got)
	}
}

// TestEnqueueHungPrimaryMaybeQueued: when the primary hangs after taking the push, nothing can
// prove the job gone, and the error says so.
func TestEnqueueHungPrimaryMaybeQueued(t *testing.T) {
	primary := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, primary.Addr())
	if err := e.Enqueue(context.Background(), samplePost(1)); err != nil {
		t.Fatal(err)
	}
	primary.Pause()
	defer primary.Resume()
	err := enqueueBounded(t, e, samplePost(2))
	if !errors.Is(err, queue.ErrMaybeQueued) {
		t.Fatalf("Enqueue to a hung primary: err = %v, want ErrMaybeQueued", err)
	}
}

func TestCountAttached(t *testing.T) {
	tests := []struct {
		name string
		info string
		want int
	}{
		{"none", "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n", 0},
		{"one online", "role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0\r\n", 1},
		{"acknowledged this second", "slave0:ip=127.0.0.1,port=7001,state=online,offset=66,lag=-1\r\n", 1},
		{"lag not a number", "slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=x\r\n", 0},
		{"lagging", "slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=9\r\n", 0},
		{"syncing", "slave0:ip=127.0.0.1,port=7001,state=wait_bgsave,offset=0,lag=0\r\n", 0},
		{"no lag field", "slave0:ip=127.0.0.1,port=7001,state=online,offset=42\r\n", 0},
		{"two, one current", "slave0:ip=a,port=1,state=online,offset=1,lag=1\r\nslave1:ip=b,port=2,state=online,offset=1,lag=4\r\n", 1},
		{"not a replica line", "slave_read_only:1\r\nslave_repl_offset:5\r\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queue.CountAttached(tt.info); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// FuzzCountAttached: any INFO text parses without panicking, counts at most one replica per line,
// and a well-formed online replica line added to it counts exactly when its lag is at most 3 s
// (negative included: Redis's cached clock can print lag=-1).
func FuzzCountAttached(f *testing.F) {
	f.Add("role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0\r\n", 0)
	f.Add("slave0:ip=a,port=1,state=online,offset=1,lag=-1\r\nslave1:state=online,lag=4", -1)
	f.Add("slave0:state=wait_bgsave,lag=0\nslave_repl_offset:5\n", 9)
	f.Fuzz(func(t *testing.T, info string, lag int) {
		n := queue.CountAttached(info)
		if lines := strings.Count(info, "\n") + 1; n < 0 || n > lines {
			t.Fatalf("CountAttached = %d for %d lines", n, lines)
		}
		line := fmt.Sprintf("\r\nslave99:ip=127.0.0.1,port=7001,state=online,offset=1,lag=%d\r\n", lag)
		want := n
		if lag <= 3 {
			want++
		}
		if got := queue.CountAttached(info + line); got != want {
			t.Fatalf("with an online replica at lag %d added: got %d, want %d", lag, got, want)
		}
	})
}

// TestWorkerFollowsPromotionFromDeadPrimary: after the primary died and redismon promoted
// another Redis, the worker must move to it promptly, not first wait out its paced dials to the
// dead one while stopping the old pool.
func TestWorkerFollowsPromotionFromDeadPrimary(t *testing.T) {
	a := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	b := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rec := newRecorder()
	w := newWorker(t, rec.handle, a.Addr())
	ea, eb := newEnqueuer(t, a.Addr()), newEnqueuer(t, b.Addr())
	ctx := context.Background()
	if err := ea.Enqueue(ctx, samplePost(1)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "post 1 handled from the first Redis", func() bool { return rec.count(1) == 1 })
	a.Kill()
	itest.WaitFor(t, 10*time.Second, "the worker's dials to the dead Redis paced", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return errors.Is(w.Ping(pctx), context.DeadlineExceeded)
	})
	w.SetEndpoints(discovery.QueueEndpoints{Primary: b.Addr()})
	if err := eb.Enqueue(ctx, samplePost(2)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 4*time.Second, "post 2 handled from the promoted Redis", func() bool { return rec.count(2) == 1 })
}

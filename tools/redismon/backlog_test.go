package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	postqueue "github.com/the-red/zkpost/post/queue"
)

// TestLeaderExportsQueueBacklog: with no writer running, the leader exports the queue's depth and
// the age of its oldest job; the standby exports neither until it takes over.
func TestLeaderExportsQueueBacklog(t *testing.T) {
	r := newRig(t)
	primary := itest.StartRedis(t, itest.RedisOptions{})
	b, _ := json.Marshal(discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{}})
	if _, err := r.conn.Create(r.layout.Queue(), b, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc := primary.Client(t)
	queued := time.Now().Add(-90 * time.Second).Unix()
	for i := range 3 {
		job := fmt.Sprintf(`{"name":%q,"id":"j%d","t":%d,"args":{}}`, postqueue.JobName, i, queued+int64(i))
		if err := pc.LPush(ctx, "the_red:jobs:"+postqueue.JobName, job).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := pc.SAdd(ctx, "the_red:known_jobs", postqueue.JobName).Err(); err != nil {
		t.Fatal(err)
	}

	first := r.start(t, "first", testCfg)
	itest.WaitFor(t, 10*time.Second, "first instance leading", first.m.IsLeader)
	second := r.start(t, "second", testCfg)
	itest.WaitFor(t, 10*time.Second, "second instance in the election", second.m.election.joined.Load)
	reports := func(in *instance) bool {
		return in.metric(t, "queue_backlog_jobs") == 3 && in.metric(t, "queue_oldest_job_age_seconds") >= 89
	}
	itest.WaitFor(t, 10*time.Second, "the leader reporting 3 jobs, the oldest 90s old", func() bool { return reports(first) })
	if has(t, second, "queue_backlog_jobs") || has(t, second, "queue_oldest_job_age_seconds") {
		t.Error("the standby exports the backlog gauges, want only the leader")
	}

	first.stop(t)
	itest.WaitFor(t, 10*time.Second, "the new leader reporting the backlog", func() bool { return reports(second) })
	if has(t, first, "queue_backlog_jobs") {
		t.Error("the stopped leader still exports the backlog gauges")
	}
}

// has reports whether the instance exports any series of the named family.
func has(t *testing.T, in *instance, name string) bool {
	t.Helper()
	fams, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return true
		}
	}
	return false
}

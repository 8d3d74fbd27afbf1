package discovery_test

import (
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestFollowQueueKeepsLastReadableValue: a value is handed over only when it parses; an
// unreadable or deleted node keeps the last one, and Known says whether any arrived.
func TestFollowQueueKeepsLastReadableValue(t *testing.T) {
	z := itest.StartZooKeeper(t)
	c := dial(t, z)
	p := discovery.Layout{Root: "/t"}.Queue()
	var mu sync.Mutex
	var got []string
	applied := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
	f := c.FollowQueue(p, func(q discovery.QueueEndpoints) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, q.Primary)
	}, quietLog())
	defer f.Stop()
	if _, err := c.WaitSession(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePath(path.Dir(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ZK().Create(p, []byte(`{"primary":""}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	set := func(data string) {
		t.Helper()
		if _, err := c.ZK().Set(p, []byte(data), -1); err != nil {
			t.Fatal(err)
		}
	}
	set(`{"primary":"q1:6379"}`)
	itest.WaitFor(t, 10*time.Second, "first primary applied", func() bool { return len(applied()) == 1 })
	if !f.Known() {
		t.Fatalf("Known after a readable value: got false, want true")
	}
	set(`not json`)
	set(`{"primary":"q2:6379"}`)
	itest.WaitFor(t, 10*time.Second, "second primary applied", func() bool { return len(applied()) == 2 })
	if err := c.ZK().Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ZK().Create(p, []byte(`{"primary":"q3:6379"}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "third primary applied", func() bool { return len(applied()) == 3 })
	if want := []string{"q1:6379", "q2:6379", "q3:6379"}; !slices.Equal(applied(), want) {
		t.Fatalf("applied: got %v, want %v (the empty and the unreadable values skipped)", applied(), want)
	}
}

package main

import (
	"context"
	"fmt"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// TestRestartedShardNeverServesStaleKeys is docs/failure-semantics.md §6 end to end, with real
// processes: a cache shard restarted with stale keys in it (AOF) is flushed before it is ALIVE
// again, and no postsvcd ever reads a stale key from it — neither after an outage long enough for
// redismon to mark it DOWN, nor after a kill -9 and immediate restart that only the run_id check
// can notice (redismon marks it DOWN at its next probe; postsvcd refuses connections to a process
// other than the one redismon vouches for until then).
//
// The stale data is planted by hand on the shard owning pl:<U>: a post id an hour newer than U's
// real ones (so any page of U would show it first), its body carrying a marker no real post has,
// and a canary key postsvc never touches. While the shard is up, both postsvcd serve the planted
// post (the control that proves the detector works); every read started after the kill must not.
func TestRestartedShardNeverServesStaleKeys(t *testing.T) {
	itest.SkipShort(t, "a stack of real processes")
	s := newStaleStack(t)
	aof, node := s.Shards[0], s.Nodes[0]
	c := aof.Client(t)
	uid := s.userOn(t, s.Names[0])
	watch := watchShard(t, s, 0, c)
	ctx := context.Background()

	// prepare writes posts for U, reads a page through both postsvcd (so redis1 holds U's list),
	// plants stale entries there and checks both postsvcd serve them while the shard is up.
	prepare := func(t *testing.T, label string) planted {
		t.Helper()
		var newest uint64
		for i := range 4 {
			newest = s.MustWrite(t, i, uid, fmt.Sprintf("%s %d", label, i)).ID
		}
		for i := range s.Addrs {
			s.MustPage(t, i, uid, 0, 10)
		}
		if n, err := c.ZCard(ctx, fmt.Sprintf("pl:%d", uid)).Result(); err != nil || n == 0 {
			t.Fatalf("pl:%d on redis1: %d members (%v); want U's list there (ring mapping differs from postsvcd's?)", uid, n, err)
		}
		p := plant(t, c, uid, newest, label)
		watch.setPlanted(p)
		for i := range s.Addrs {
			pg := s.MustPage(t, i, uid, 0, 10)
			if len(pg.Posts) == 0 || pg.Posts[0].ID != p.id || pg.Posts[0].Contents != p.marker {
				t.Fatalf("control: postsvcd %d does not serve the planted post first while redis1 is up (got %d posts); the test would prove nothing",
					i+1, len(pg.Posts))
			}
		}
		return p
	}

	t.Run("DownThenRestarted", func(t *testing.T) {
		p := prepare(t, "down")
		epoch := s.r.shard(t, node).Epoch

		aof.Kill()
		killed := time.Now()
		rd := startReaders(s, p)
		down := watch.wait(t, killed, "redis1 DOWN", func(ev shardEvent) bool { return ev.doc.Status == discovery.StatusDown })
		t.Logf("redis1 DOWN (%s) %s after kill -9", down.doc.Reason, down.at.Sub(killed).Round(time.Millisecond))
		s.WaitRing(t, 2)
		// Writes and reads go on through both postsvcd; the author sees the posts once persisted.
		var last uint64
		for i := range 4 {
			last = s.MustWrite(t, i, uid, fmt.Sprintf("during the outage %d", i)).ID
		}
		s.WaitPersisted(t, uid)
		for i := range s.Addrs {
			if pg := s.MustPage(t, i, uid, 0, 10); len(pg.Posts) == 0 || pg.Posts[0].ID != last {
				t.Fatalf("postsvcd %d: newest post during the outage is not %d", i+1, last)
			}
		}

		// The AOF brings the stale keys back. redismon is frozen across the restart so the test can
		// see them before its flush; the readers keep going.
		s.monitor.Pause()
		aof.Start(t)
		restarted := time.Now()
		back := p.present(c)
		s.monitor.Resume()
		if len(back) != 3 {
			t.Fatalf("after the restart redis1 holds %v of the planted keys, want all 3 back from the AOF (else the test proves nothing)", back)
		}

		alive := watch.wait(t, restarted, "redis1 ALIVE with the next epoch", func(ev shardEvent) bool {
			return ev.doc.Status == discovery.StatusAlive && ev.doc.Epoch > epoch
		})
		t.Logf("redis1 ALIVE (epoch %d, %s) %s after the restart; at that moment DBSIZE %d, planted keys left %v",
			alive.doc.Epoch, alive.doc.Reason, alive.at.Sub(restarted).Round(time.Millisecond), alive.dbsize, alive.left)
		if len(alive.left) != 0 {
			t.Errorf("planted keys %v still on redis1 when it turned ALIVE: not flushed first", alive.left)
		}
		if alive.dbsize != 0 {
			// Possible without a fault: a postsvcd that already saw ALIVE may write before this
			// watch's callback ran. The planted keys are the check that matters.
			t.Logf("DBSIZE %d at ALIVE (writes of postsvcd that saw ALIVE first)", alive.dbsize)
		}
		s.WaitRing(t, 3)
		rd.waitMore(t, 200, "reads after ALIVE")
		reads := rd.finish()
		checkReads(t, reads, killed, true)

		s.CheckWalks(t, "stale read", uid)
		if got, want := s.r.shard(t, node).Epoch, epoch+1; got != want {
			t.Errorf("epoch %d after one outage, want %d", got, want)
		}
	})

	t.Run("FastRestart", func(t *testing.T) {
		s.WaitRing(t, 3)
		p := prepare(t, "fast")
		before := s.r.shard(t, node)
		rd := startReaders(s, p)
		rd.waitMore(t, 20, "reads before the restart")

		aof.Kill()
		killed := time.Now()
		aof.Start(t) // waits until it answers PING, i.e. the AOF is loaded
		restarted := time.Now()
		back := p.present(c) // may already be flushed: redismon is not frozen here
		down := watch.wait(t, killed, "redis1 DOWN after the fast restart", func(ev shardEvent) bool {
			return ev.doc.Status == discovery.StatusDown
		})
		alive := watch.wait(t, killed, "redis1 ALIVE with the next epoch", func(ev shardEvent) bool {
			return ev.doc.Status == discovery.StatusAlive && ev.doc.Epoch > before.Epoch
		})
		t.Logf("kill -9 + restart took %s; planted keys seen back right after: %v", restarted.Sub(killed).Round(time.Millisecond), back)
		t.Logf("redis1 DOWN (%s) %s after the restart; ALIVE (epoch %d) %s after; at ALIVE DBSIZE %d, planted keys left %v",
			down.doc.Reason, down.at.Sub(restarted).Round(time.Millisecond), alive.doc.Epoch,
			alive.at.Sub(restarted).Round(time.Millisecond), alive.dbsize, alive.left)
		if down.doc.Reason != "restarted" {
			t.Logf("the restart outlasted %d failed probes, so the run_id path was not what caught it this time", 3)
		}
		if len(alive.left) != 0 {
			t.Errorf("planted keys %v still on redis1 when it turned ALIVE: not flushed first", alive.left)
		}
		if alive.doc.RunID == before.RunID {
			t.Errorf("run_id %s unchanged after a restart", alive.doc.RunID)
		}
		s.WaitRing(t, 3)
		rd.waitMore(t, 200, "reads after ALIVE")
		reads := rd.finish()
		// postsvc checks every new shard connection's run_id against the one redismon vouches for
		// (postsvc/cache.go newClient), so not even the window until DOWN reaches postsvcd — up to
		// a probe interval plus the watch delivery, which served the planted post dozens of times
		// per run before that check — may leak.
		stale := checkReads(t, reads, killed, true)
		if len(stale) > 0 {
			first, last := stale[0], stale[len(stale)-1]
			t.Logf("STALE READS: %d of %d reads started after the kill returned the planted post; the first started %s and the last ended %s after the restart (DOWN seen by the test %s after it); by postsvcd and kind: %s",
				len(stale), countAfter(reads, killed), first.start.Sub(restarted).Round(time.Millisecond),
				last.end.Sub(restarted).Round(time.Millisecond), down.at.Sub(restarted).Round(time.Millisecond), breakdown(stale))
		} else {
			t.Logf("no stale read in %d reads started after the kill", countAfter(reads, killed))
		}
		s.CheckWalks(t, "stale read", uid)
	})
}

// checkReads fails the test for any read started at or after since that errored, returned a
// status other than the expected one (200 for pages; 404 for the planted post, which exists
// nowhere but in the stale cache, or 200 when it was served stale), and — when strict — for any
// read that returned the planted post. It returns those stale reads in start order.
func checkReads(t *testing.T, reads []read, since time.Time, strict bool) []read {
	t.Helper()
	var stale, bad []read
	for _, r := range reads {
		if r.start.Before(since) {
			continue
		}
		if r.stale {
			stale = append(stale, r)
		}
		switch {
		case r.err != nil:
			bad = append(bad, r)
		case r.kind == "page" && r.status != http.StatusOK:
			bad = append(bad, r)
		case r.kind == "post" && r.status != http.StatusNotFound && !(r.status == http.StatusOK && r.stale):
			bad = append(bad, r)
		}
	}
	for i, r := range bad {
		if i == 5 {
			t.Errorf("... and %d more failed reads", len(bad)-5)
			break
		}
		t.Errorf("%s read via postsvcd %d at +%s: status %d, err %v", r.kind, r.via+1, r.start.Sub(since).Round(time.Millisecond), r.status, r.err)
	}
	slices.SortFunc(stale, func(a, b read) int { return a.start.Compare(b.start) })
	if strict {
		for i, r := range stale {
			if i == 5 {
				t.Errorf("... %d stale reads in all", len(stale))
				break
			}
			t.Errorf("STALE %s read via postsvcd %d started %s after the kill: it returned the planted post",
				r.kind, r.via+1, r.start.Sub(since).Round(time.Millisecond))
		}
	}
	return stale
}

func countAfter(reads []read, since time.Time) int {
	n := 0
	for _, r := range reads {
		if !r.start.Before(since) {
			n++
		}
	}
	return n
}

func breakdown(reads []read) string {
	n := map[string]int{}
	for _, r := range reads {
		n[fmt.Sprintf("postsvcd%d/%s", r.via+1, r.kind)]++
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

package discovery_test

import (
	"net"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// registrationFollowBound is how soon a registration must follow ZooKeeper's return. The aim
// (docs/zookeeper.md) is about 2 s; the bound is generous for a loaded 2-core machine and still
// far below the 10 s and more that a stuck reconnect used to take.
const registrationFollowBound = 6 * time.Second

// TestRegistrationFollowsZooKeeper: a registrant started while ZooKeeper is down, and one whose
// ZooKeeper is killed and restarted (twice), has its node back soon after ZooKeeper serves again.
// Each session timeout the daemons use is tried: the client's handshake deadline grows with it.
func TestRegistrationFollowsZooKeeper(t *testing.T) {
	for _, timeout := range []time.Duration{1200 * time.Millisecond, 4 * time.Second, 10 * time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			z := itest.StartZooKeeper(t)
			z.Kill()
			conn, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: timeout}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(conn.Close)
			reg := conn.Register("/t/scrap/nodes", "127.0.0.1:8020", []byte(`{"status":"ALIVE"}`))
			defer reg.Close()
			for round := range 3 {
				if round > 0 {
					z.Kill()
					itest.WaitFor(t, 20*time.Second, "registrant to notice ZooKeeper is gone", func() bool { return !reg.Registered() })
				}
				z.Start(t) // returns once ZooKeeper serves requests
				up := time.Now()
				itest.WaitFor(t, registrationFollowBound, "registration after ZooKeeper came back", reg.Registered)
				checker := dial(t, z)
				itest.WaitFor(t, 10*time.Second, "node visible to another session", func() bool {
					ok, _, err := checker.ZK().Exists("/t/scrap/nodes/127.0.0.1:8020")
					return err == nil && ok
				})
				t.Logf("round %d: registered %v after ZooKeeper served again", round, time.Since(up).Round(10*time.Millisecond))
			}
		})
	}
}

// TestRegistrationAfterSilentListener: while ZooKeeper is down, something else takes its port,
// accepts the client's connection and never answers (a stray process, a server hung after
// accepting). Once ZooKeeper serves on that port again the registration must follow within the
// bound: the client must give up the silent connection, not wait out its 6.7× session timeout
// handshake deadline (27 s at the 4 s the daemons' tests use).
func TestRegistrationAfterSilentListener(t *testing.T) {
	z := itest.StartZooKeeper(t)
	z.Kill()
	silent, err := net.Listen("tcp", z.Addr())
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held <- c // kept open, never answered
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	})

	conn, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: 4 * time.Second}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	reg := conn.Register("/t/scrap/nodes", "127.0.0.1:8021", nil)
	defer reg.Close()
	itest.WaitFor(t, 10*time.Second, "client to connect to the silent listener", func() bool { return len(held) > 0 })
	silent.Close() // the port is free for ZooKeeper; the accepted connection stays open and silent

	z.Start(t)
	up := time.Now()
	itest.WaitFor(t, registrationFollowBound, "registration after ZooKeeper came back", reg.Registered)
	t.Logf("registered %v after ZooKeeper served again", time.Since(up).Round(10*time.Millisecond))
}

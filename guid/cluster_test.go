package guid_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// Short timings so kill and pause tests are quick; the test ZooKeeper's tickTime is 200 ms.
const (
	sessionTimeout = 2 * time.Second
	clockRefresh   = 500 * time.Millisecond
)

var layout = discovery.Layout{Root: discovery.DefaultRoot}

type cluster struct {
	t   *testing.T
	zk  *itest.ZooKeeper
	bin string
	zc  *zk.Conn
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	z := itest.StartZooKeeper(t)
	bin := itest.BuildBinary(t, "./guid/cmd/guidd")
	zc, _, err := zk.Connect(z.Servers(), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatalf("zk.Connect: %v", err)
	}
	t.Cleanup(zc.Close)
	return &cluster{t: t, zk: z, bin: bin, zc: zc}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func (c *cluster) spec(name string) itest.DaemonSpec {
	port := itest.FreePort(c.t)
	return itest.DaemonSpec{
		Name: name, Bin: c.bin, Port: port,
		Args: []string{
			"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--zk", c.zk.Addr(),
			"--zk-session-timeout", sessionTimeout.String(), "--clock-refresh", clockRefresh.String(),
			"--log-format", "text", "--log-level", "debug",
		},
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
	}
}

func (c *cluster) start(name string) *itest.Process { return itest.StartDaemon(c.t, c.spec(name)) }

func (c *cluster) leasePath(worker int) string {
	return path.Join(layout.GuidWorkers(0), strconv.Itoa(worker))
}

// exists takes the calling (sub)test: FailNow on the parent's t from a subtest panics.
func (c *cluster) exists(tb testing.TB, p string) bool {
	tb.Helper()
	ok, _, err := c.zc.Exists(p)
	if err != nil {
		tb.Fatalf("Exists(%s): %v", p, err)
	}
	return ok
}

var httpc = &http.Client{Timeout: 15 * time.Second}

func getJSON(tb testing.TB, url string, v any) int {
	tb.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			tb.Fatalf("GET %s: body %q: %v", url, b, err)
		}
	}
	return resp.StatusCode
}

func readiness(tb testing.TB, p *itest.Process) guid.Readiness {
	tb.Helper()
	var r guid.Readiness
	getJSON(tb, "http://"+p.Addr()+"/readyz", &r)
	return r
}

// batch fetches count IDs from p; it returns nil and the status on a non-200 answer.
func batch(hc *http.Client, p *itest.Process, count int) ([]uint64, int, string, error) {
	resp, err := hc.Get(fmt.Sprintf("http://%s/api/v1/guid?count=%d", p.Addr(), count))
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	var body struct {
		GUIDs []string `json:"guids"`
		Error string   `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, resp.StatusCode, "", err
	}
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, body.Error, nil
	}
	ids := make([]uint64, len(body.GUIDs))
	for i, s := range body.GUIDs {
		if ids[i], err = guid.ParseID(s); err != nil {
			return nil, resp.StatusCode, "", fmt.Errorf("id %q: %w", s, err)
		}
	}
	return ids, 200, "", nil
}

// batchRiding503 fetches count IDs from p, asking again while p answers 503 for up to 10 s.
// Saturating three race-built guidds can starve ZooKeeper on a small host until a session ping
// times out; the guidd then rightly refuses until it holds its lease again. What is under test
// is that the IDs it does issue are unique, so only a 503 is waited out, and only for a while.
func batchRiding503(p *itest.Process, count int) ([]uint64, error) {
	var (
		ids    []uint64
		status int
		name   string
		err    error
	)
	itest.Eventually(10*time.Second, func() bool {
		ids, status, name, err = batch(httpc, p, count)
		return err != nil || status != http.StatusServiceUnavailable
	})
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d %s: %v", p.Name, status, name, err)
	}
	return ids, nil
}

func assertUnique(tb testing.TB, ids []uint64) {
	tb.Helper()
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			d := guid.Decode(sorted[i])
			tb.Fatalf("duplicate id %d (%+v) among %d", sorted[i], d, len(ids))
		}
	}
}

func TestClusterOfThree(t *testing.T) {
	c := newCluster(t)
	nodes := []*itest.Process{c.start("guidd-a"), c.start("guidd-b"), c.start("guidd-c")}
	workers := map[int]*itest.Process{}
	for _, p := range nodes {
		r := readiness(t, p)
		if r.Worker < 0 || workers[r.Worker] != nil {
			t.Fatalf("%s leased worker %d; workers so far %v", p.Name, r.Worker, workers)
		}
		workers[r.Worker] = p
	}

	t.Run("registered with the worker id as shard", func(t *testing.T) {
		for w, p := range workers {
			data, _, err := c.zc.Get(path.Join(layout.Nodes("guid"), p.Addr()))
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			var ss discovery.ServerSet
			if err := json.Unmarshal(data, &ss); err != nil || ss.Shard != w || ss.ServiceEndpoint.String() != p.Addr() {
				t.Fatalf("%s serverset %s (%v), want shard %d at %s", p.Name, data, err, w, p.Addr())
			}
		}
	})

	t.Run("a million ids through the batch endpoint, no duplicate", func(t *testing.T) {
		const total, per = 1_000_000, guid.MaxBatch
		reqs := (total + per - 1) / per
		results := make([][]uint64, len(nodes))
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, p := range nodes {
			wg.Go(func() {
				for r := i; r < reqs; r += len(nodes) {
					ids, err := batchRiding503(p, per)
					if err != nil {
						errs[i] = err
						return
					}
					if !slices.IsSorted(ids) || len(ids) != per {
						errs[i] = fmt.Errorf("%s: batch of %d not increasing", p.Name, len(ids))
						return
					}
					results[i] = append(results[i], ids...)
				}
			})
		}
		wg.Wait()
		var all []uint64
		for i := range nodes {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			all = append(all, results[i]...)
		}
		if len(all) < total {
			t.Fatalf("got %d ids, want at least %d", len(all), total)
		}
		assertUnique(t, all)
	})

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := discovery.Dial(discovery.Config{Servers: c.zk.Addr(), Root: layout.Root, SessionTimeout: 4 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	bal := conn.NewBalancer(layout.Nodes("guid"))
	t.Cleanup(bal.Stop)
	client := guid.NewClient(bal, guid.ClientOptions{CallTimeout: time.Second})
	t.Cleanup(client.Close)
	itest.WaitFor(t, 10*time.Second, "the balancer to see three guid servers", func() bool { return len(bal.Candidates()) == 3 })
	// After the load above a guidd may still be taking its lease back (see batchRiding503); the
	// client tests below start from three ready servers.
	itest.WaitFor(t, 10*time.Second, "three ready guid servers", func() bool {
		for _, p := range nodes {
			if readiness(t, p).Status != "ready" {
				return false
			}
		}
		return true
	})
	var clientIDs []uint64
	next := func(t *testing.T, n int) {
		t.Helper()
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			id, err := client.Next(ctx)
			cancel()
			if err != nil {
				t.Fatalf("client.Next: %v", err)
			}
			clientIDs = append(clientIDs, id)
		}
	}
	t.Run("client round robin", func(t *testing.T) { next(t, 300) })

	victim := nodes[2]
	victimWorker := readiness(t, victim).Worker
	t.Run("kill -9: the lease goes within the session timeout, the client fails over", func(t *testing.T) {
		killed := time.Now()
		victim.Kill()
		next(t, 200) // the balancer still lists the dead node: every third call fails over
		itest.WaitFor(t, sessionTimeout+3*time.Second-time.Since(killed), "the killed node's lease to vanish", func() bool {
			return !c.exists(t, c.leasePath(victimWorker))
		})
		itest.WaitFor(t, 5*time.Second, "the killed node's registration to vanish", func() bool {
			return !c.exists(t, path.Join(layout.Nodes("guid"), victim.Addr()))
		})
	})

	t.Run("a restarted node leases again", func(t *testing.T) {
		victim.Start(t)
		r := readiness(t, victim)
		if r.Worker < 0 || !c.exists(t, c.leasePath(r.Worker)) {
			t.Fatalf("restarted node: %+v, want a held lease", r)
		}
		next(t, 100)
		assertUnique(t, clientIDs)
	})

	t.Run("SIGTERM deregisters and releases the lease before exit", func(t *testing.T) {
		p := nodes[0]
		w := readiness(t, p).Worker
		p.Stop()
		if exited, err := p.Wait(0); !exited || err != nil {
			t.Fatalf("after SIGTERM: exited %v, err %v; want a clean exit", exited, err)
		}
		// Well under the session timeout: the nodes were deleted, not expired.
		itest.WaitFor(t, sessionTimeout/2, "lease and registration to be deleted", func() bool {
			return !c.exists(t, c.leasePath(w)) && !c.exists(t, path.Join(layout.Nodes("guid"), p.Addr()))
		})
		// The exact clock bound was stored, so a restart serves at once on the same id.
		p.Start(t)
		if got := readiness(t, p).Worker; got != w {
			t.Logf("restarted node leased worker %d (was %d)", got, w)
		}
	})
}

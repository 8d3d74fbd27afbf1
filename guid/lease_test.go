package guid_test

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

type answer struct {
	node   string
	at     time.Time
	status int
	name   string
	ids    []uint64
}

// hammerClient waits out any pause of the server: a request sent while it is stopped must be
// answered after it resumes, which is the case under test.
var hammerClient = &http.Client{Timeout: time.Minute}

// hammer fetches batches from p until stop closes, recording every answer.
type hammer struct {
	mu      sync.Mutex
	answers []answer
	wg      sync.WaitGroup
	stop    chan struct{}
}

func newHammer() *hammer { return &hammer{stop: make(chan struct{})} }

func (h *hammer) run(p *itest.Process) {
	h.wg.Go(func() {
		for {
			select {
			case <-h.stop:
				return
			default:
			}
			ids, status, name, err := batch(hammerClient, p, 16)
			if err != nil {
				status, name = 0, err.Error()
			}
			h.mu.Lock()
			h.answers = append(h.answers, answer{node: p.Name, at: time.Now(), status: status, name: name, ids: ids})
			h.mu.Unlock()
		}
	})
}

func (h *hammer) finish() []answer {
	close(h.stop)
	h.wg.Wait()
	return h.answers
}

// okCount counts the 200 answers of node after since.
func (h *hammer) okCount(node string, since time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, a := range h.answers {
		if a.node == node && a.status == 200 && a.at.After(since) {
			n++
		}
	}
	return n
}

// TestPausedServerIssuesNothingUntilReleased pauses a guidd (SIGSTOP) past its session timeout
// while clients hammer it, lets another guidd take its worker id, and resumes it: it must answer
// 503 until it holds a new lease, and no ID may ever be issued twice.
func TestPausedServerIssuesNothingUntilReleased(t *testing.T) {
	c := newCluster(t)
	a := c.start("guidd-a")
	b := c.start("guidd-b")
	oldWorker := readiness(t, a).Worker
	h := newHammer()
	h.run(a)
	h.run(b)
	start := time.Now()
	itest.WaitFor(t, 10*time.Second, "ids from both servers", func() bool {
		return h.okCount(a.Name, start) > 10 && h.okCount(b.Name, start) > 10
	})

	a.Pause()
	paused := time.Now() // a is stopped: no id it issued can be later than this
	itest.WaitFor(t, sessionTimeout+5*time.Second, "the paused server's lease to expire", func() bool {
		return !c.exists(t, c.leasePath(oldWorker))
	})
	d := c.start("guidd-d")
	if got := readiness(t, d).Worker; got != oldWorker {
		t.Fatalf("new server leased worker %d, want the paused server's %d", got, oldWorker)
	}
	h.run(d)
	dStart := time.Now()
	itest.WaitFor(t, 10*time.Second, "ids from the new server", func() bool { return h.okCount(d.Name, dStart) > 10 })

	resumed := time.Now()
	a.Resume()
	itest.WaitFor(t, 15*time.Second, "the resumed server to be ready again", func() bool {
		return readiness(t, a).Status == "ready"
	})
	newWorker := readiness(t, a).Worker
	readyAt := time.Now()
	itest.WaitFor(t, 10*time.Second, "ids from the resumed server", func() bool { return h.okCount(a.Name, readyAt) > 10 })
	answers := h.finish()

	if newWorker == oldWorker || newWorker < 0 {
		t.Fatalf("resumed server's worker %d, want a new one (old %d is the new server's)", newWorker, oldWorker)
	}
	var all []uint64
	var afterResume []answer
	for _, ans := range answers {
		all = append(all, ans.ids...)
		if ans.node == a.Name && ans.at.After(resumed) && !issuedBefore(ans, oldWorker, paused) {
			afterResume = append(afterResume, ans)
		}
	}
	assertUnique(t, all)
	slices.SortFunc(afterResume, func(x, y answer) int { return x.at.Compare(y.at) })
	if len(afterResume) == 0 || afterResume[0].status != 503 {
		t.Fatalf("first answer after resume: %+v, want a 503 (the request queued during the pause)", afterResume[:min(1, len(afterResume))])
	}
	sawOK := false
	for _, ans := range afterResume {
		switch {
		case ans.status == 200:
			sawOK = true
			for _, id := range ans.ids {
				if w := guid.Decode(id).Worker; w != newWorker {
					t.Fatalf("resumed server issued id %d with worker %d, want only its new worker %d", id, w, newWorker)
				}
			}
		case sawOK:
			t.Fatalf("resumed server answered %d %s after serving again", ans.status, ans.name)
		case ans.status != 503:
			t.Fatalf("resumed server answered %d %s, want 503 until it is ready", ans.status, ans.name)
		}
	}
	t.Logf("%d answers, %d ids; after resume: %d answers from the resumed server, first 200 after %d refusals",
		len(answers), len(all), len(afterResume), slices.IndexFunc(afterResume, func(x answer) bool { return x.status == 200 }))
}

// TestFutureStoredClockKeepsServerUnready stores a clock bound an hour ahead for worker 0: a
// starting guidd leases it but stays unready until the bound is passed.
func TestFutureStoredClockKeepsServerUnready(t *testing.T) {
	c := newCluster(t)
	clockPath := layout.GuidClock(0, 0)
	createPath(t, c.zc, clockPath, strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))

	spec := c.spec("guidd")
	p := itest.StartDaemonNoWait(t, spec)
	base := "http://" + p.Addr()
	itest.WaitFor(t, 20*time.Second, "the server to lease worker 0", func() bool { return c.exists(t, c.leasePath(0)) })
	itest.WaitFor(t, 5*time.Second, "readiness to name the clock", func() bool {
		r := readiness(t, p)
		return r.Worker == 0 && strings.Contains(strings.Join(r.Reasons, ","), "clock_behind")
	})
	regPath := path.Join(layout.Nodes("guid"), p.Addr())
	if c.exists(t, regPath) {
		t.Fatalf("%s registered while its clock is behind the stored bound", regPath)
	}
	var e envelope
	if status := getJSON(t, base+"/readyz", nil); status != 503 {
		t.Fatalf("/readyz %d, want 503", status)
	}
	if status := getJSON(t, base+"/api/v1/guid", &e); status != 503 || e.Error != "clock_behind" {
		t.Fatalf("GET /api/v1/guid: %d %+v, want 503 clock_behind", status, e)
	}

	stored := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	if _, err := c.zc.Set(clockPath, []byte(strconv.FormatInt(stored, 10)), -1); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "the server to be ready once its clock passed the bound", func() bool {
		return readiness(t, p).Status == "ready"
	})
	if !c.exists(t, regPath) {
		t.Fatalf("%s not registered although ready", regPath)
	}
	var one struct {
		GUID    uint64 `json:"guid"`
		GUIDStr string `json:"guid_str"`
	}
	if status := getJSON(t, base+"/api/v1/guid", &one); status != 200 || fmt.Sprint(one.GUID) != one.GUIDStr {
		t.Fatalf("GET /api/v1/guid: %d %+v", status, one)
	}
	if got := guid.Decode(one.GUID).UnixMs(); got < stored {
		t.Fatalf("first id's timestamp %d is before the stored bound %d", got, stored)
	}
}

func createPath(tb testing.TB, zc *zk.Conn, p, data string) {
	tb.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		var d []byte
		if i == len(parts)-1 {
			d = []byte(data)
		}
		if _, err := zc.Create(cur, d, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			tb.Fatalf("creating %s: %v", cur, err)
		}
	}
}

// issuedBefore reports whether ans is a 200 whose ids were all issued under worker before t: an
// answer the server produced before it was stopped, whose response reached the client only after
// it resumed. Such an answer is not one the paused server served after the pause.
func issuedBefore(ans answer, worker int, t time.Time) bool {
	if ans.status != 200 || len(ans.ids) == 0 {
		return false
	}
	for _, id := range ans.ids {
		d := guid.Decode(id)
		if d.Worker != worker || d.Ms+guid.EpochMs > t.UnixMilli() {
			return false
		}
	}
	return true
}

// Package discovery is how every daemon meets ZooKeeper: it keeps a session alive, registers the
// daemon's ephemeral node again on every new session, watches paths as streams of full snapshots,
// and maps keys to cache shards on a consistent-hash ring.
//
// go-zookeeper/zk gives none of the rules of docs/zookeeper.md#the-rules for free. After a session
// expires the library reconnects with a NEW session and forgets the ephemeral nodes and watches of
// the old one; watches fire once; a path that does not exist cannot be watched for children; and
// the library's event channel is small and drops events. So this package:
//   - takes session events from the event callback and broadcasts every change (Conn.Changed),
//   - re-creates registrations whenever the session id changes, deleting a stale node of ours only
//     after checking its ephemeralOwner,
//   - re-arms watches in a loop, reading a full snapshot each time, waits on ExistsW while a path is
//     missing, keeps the last snapshot while ZooKeeper is unreachable and resyncs periodically.
//
// Readers never call ZooKeeper on a request path: they read Watcher.Current, an in-memory snapshot.
package discovery

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Config holds the ZooKeeper flags every daemon shares.
type Config struct {
	Servers        string        // comma list of host:port
	Root           string        // the service root, e.g. /the_red/my_service
	SessionTimeout time.Duration // asked of the server, which clamps it to 2–20 × tickTime
}

// DefaultRoot is the reference's service root (docs/zookeeper.md#the-tree).
const DefaultRoot = "/the_red/my_service"

// RegisterFlags adds --zk, --zk-root and --zk-session-timeout to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Servers, "zk", "127.0.0.1:2181", "ZooKeeper servers, comma separated host:port")
	fs.StringVar(&c.Root, "zk-root", DefaultRoot, "ZooKeeper root of the service tree")
	fs.DurationVar(&c.SessionTimeout, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout")
}

// ServerList splits Servers into host:port entries.
func (c Config) ServerList() []string {
	var out []string
	for _, s := range strings.Split(c.Servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Conn is a ZooKeeper connection that outlives sessions: the underlying client reconnects by itself,
// and Conn tells its users when the session changed so they can re-register and re-watch.
type Conn struct {
	zk  *zk.Conn
	log *slog.Logger

	mu          sync.Mutex
	sessionID   int64 // of the current session, 0 while there is none
	connected   bool  // true while the client holds a live session
	changed     chan struct{}
	closed      bool
	closing     bool   // Close has begun
	sessions    uint64 // sessions established (new session ids), for metrics
	disconnects uint64 // losses of a live session, for metrics

	watchers map[*Watcher]struct{} // live watchers, for metrics
}

// Dial starts connecting to ZooKeeper and returns at once: a daemon must start, and serve what it
// can, while ZooKeeper is down. Host names are resolved at each connection attempt rather than once
// at start, so a server whose name does not resolve yet (a container not up) is no error.
func Dial(cfg Config, log *slog.Logger) (*Conn, error) {
	servers := cfg.ServerList()
	if len(servers) == 0 {
		return nil, errors.New("no ZooKeeper servers given")
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	c := &Conn{log: log, changed: make(chan struct{}), watchers: map[*Watcher]struct{}{}}
	// Hold the lock until c.zk is set: the client's first events may arrive before Connect returns.
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, _, err := zk.Connect(servers, cfg.SessionTimeout,
		zk.WithHostProvider(&lazyHosts{}),
		zk.WithDialer(dialHandshakeBounded),
		zk.WithEventCallback(c.onEvent),
		zk.WithLogger(zkLogger{log}),
		zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	c.zk = conn
	return c, nil
}

// onEvent runs on the client's goroutines, so it only records state and wakes waiters.
func (c *Conn) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		id := c.zk.SessionID()
		if id != c.sessionID {
			c.sessions++
		}
		c.connected = true
		c.sessionID = id
		c.log.Info("zk session", "session", fmt.Sprintf("%#x", c.sessionID), "server", ev.Server)
	case zk.StateDisconnected, zk.StateConnecting:
		if !c.connected {
			return // reconnect attempts while down: nothing new to tell anyone
		}
		c.connected = false
		c.disconnects++
		c.log.Warn("zk disconnected", "server", ev.Server)
	case zk.StateExpired:
		if c.connected {
			c.disconnects++
		}
		c.connected = false
		c.sessionID = 0
		c.log.Warn("zk session expired")
	default:
		return
	}
	c.broadcast()
}

func (c *Conn) broadcast() {
	if !c.closed {
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// ZK returns the underlying client, for tests that set up or break ZooKeeper state by hand.
// Production code uses Conn's own operations (nodes.go); TestNoProductionCallerOfZK keeps it so.
func (c *Conn) ZK() *zk.Conn { return c.zk }

// Session reports the current session id and whether the client is connected with it.
func (c *Conn) Session() (id int64, connected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID, c.connected
}

// Changed returns a channel closed at the next change of connection state or session.
func (c *Conn) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitSession blocks until the client holds a live session and returns its id.
func (c *Conn) WaitSession(ctx context.Context) (int64, error) {
	for {
		ch := c.Changed()
		if id, ok := c.Session(); ok {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// Close ends the session, so the server deletes every ephemeral node of ours at once.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closing = true // the disconnect Close causes is no news: do not log or count it
	c.mu.Unlock()
	c.zk.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected = false
	c.broadcast()
	c.closed = true
}

// handshakeTimeout bounds the wait for a server's answer to the session handshake. The client
// library waits 10× its receive timeout (6.7× the session timeout: 27 s at 4 s) for that answer.
// A connection that some process accepted and never answers — a port taken over while ZooKeeper
// was down, a server hung after accepting — then held every reconnect, and with it registration,
// that long after ZooKeeper served again. A live server answers in milliseconds; after this bound
// the client drops the connection and dials again, so registration follows ZooKeeper's return
// within about two seconds (docs/zookeeper.md).
const handshakeTimeout = 2 * time.Second

// dialHandshakeBounded is the client's dialer: net.DialTimeout with the handshake bounded.
func dialHandshakeBounded(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: c}, nil
}

// handshakeConn caps the read deadlines set before the server first answers at handshakeTimeout
// from now; once it has answered, deadlines pass through (the library's receive loop sets its own).
type handshakeConn struct {
	net.Conn
	answered atomic.Bool
}

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	if limit := time.Now().Add(handshakeTimeout); !c.answered.Load() && !t.IsZero() && t.After(limit) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.answered.Store(true)
	}
	return n, err
}

// lazyHosts hands the client its servers unresolved; the dialer resolves them on every attempt.
// The library's default provider resolves once in Connect and fails when no name resolves yet.
type lazyHosts struct {
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

func (h *lazyHosts) Init(servers []string) error {
	h.servers = servers
	return nil
}

func (h *lazyHosts) Len() int { return len(h.servers) }

func (h *lazyHosts) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	h.tried++
	retryStart := h.tried > len(h.servers)
	if retryStart {
		h.tried = 1
	}
	return s, retryStart
}

func (h *lazyHosts) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tried = 0
}

// zkLogger sends the client's printf-style logs to slog at debug level: they are chatty
// (every reconnect attempt) and the state changes that matter are logged by onEvent.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zk client", "msg", fmt.Sprintf(format, args...))
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// clients keeps one small go-redis client per address redismon talks to.
type clients struct {
	timeout time.Duration // dial timeout; per-call deadlines come from contexts

	mu sync.Mutex
	m  map[string]*redis.Client
}

func newClients(timeout time.Duration) *clients {
	return &clients{timeout: timeout, m: map[string]*redis.Client{}}
}

func (c *clients) get(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[addr]; ok {
		return cl
	}
	cl := redis.NewClient(&redis.Options{
		Addr:        addr,
		DialTimeout: c.timeout,
		// Long enough for FLUSHALL of a big shard; probes bound themselves with their context.
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          c.timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a probe must see the failure, not a retry
		DialerRetries:         1,
		PoolSize:              2,
		Protocol:              2,
		DisableIdentity:       true,
	})
	c.m[addr] = cl
	return cl
}

// drop forgets addr's client after a failure. A fresh client per attempt while a server is down
// keeps go-redis' dial circuit breaker (which retries only once a second) from delaying the
// moment redismon sees the server back.
func (c *clients) drop(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[addr]; ok {
		cl.Close()
		delete(c.m, addr)
	}
}

func (c *clients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.m {
		cl.Close()
	}
	c.m = map[string]*redis.Client{}
}

// info parses the "key:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// serverInfo is what a probe learns from INFO: that the server answers, and which run of it
// answered (run_id changes on every restart).
type serverInfo struct {
	RunID string
}

func (c *clients) probeServer(ctx context.Context, addr string, timeout time.Duration) (serverInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.get(addr).Info(ctx, "server").Result()
	if err != nil {
		c.drop(addr)
		return serverInfo{}, fmt.Errorf("INFO server on %s: %w", addr, err)
	}
	id := parseInfo(s)["run_id"]
	if id == "" {
		return serverInfo{}, fmt.Errorf("INFO server on %s: no run_id", addr)
	}
	return serverInfo{RunID: id}, nil
}

// replication is the part of INFO replication failover decisions need.
type replication struct {
	Role       string // "master" or "slave"
	MasterAddr string // host:port the replica follows ("" on a master)
	Offset     int64  // replication offset: how much of the stream this server holds
}

func (c *clients) probeReplication(ctx context.Context, addr string, timeout time.Duration) (replication, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.get(addr).Info(ctx, "replication").Result()
	if err != nil {
		c.drop(addr)
		return replication{}, fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	return parseReplication(s)
}

func parseReplication(s string) (replication, error) {
	kv := parseInfo(s)
	r := replication{Role: kv["role"]}
	switch r.Role {
	case "master":
		r.Offset, _ = strconv.ParseInt(kv["master_repl_offset"], 10, 64)
	case "slave":
		r.Offset, _ = strconv.ParseInt(kv["slave_repl_offset"], 10, 64)
		if kv["master_host"] != "" {
			r.MasterAddr = net.JoinHostPort(kv["master_host"], kv["master_port"])
		}
	default:
		return r, fmt.Errorf("INFO replication: unknown role %q", r.Role)
	}
	return r, nil
}

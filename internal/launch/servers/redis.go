package servers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Redis is a redis-server in the foreground, logging to stdout, its files in Dir. Cache shards
// keep nothing on disk; the queue runs with AOF.
type Redis struct {
	Dir  string
	Port int
	// AOF turns on the append-only file with an fsync on every write, so data survives a
	// SIGKILL: the queue's, since a post is acknowledged once its job is queued
	// (docs/failure-semantics.md §1). Without it nothing is persisted.
	AOF bool
	// ReplicaOf ("host:port") starts the server as a replica of that primary.
	ReplicaOf string
}

// Addr returns the server's address.
func (r Redis) Addr() string { return Addr(r.Port) }

// Args returns redis-server's flags.
func (r Redis) Args() ([]string, error) {
	args := []string{
		"--port", strconv.Itoa(r.Port),
		"--bind", Host,
		"--dir", r.Dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", "", // stdout, which the runner sends to the server's log file
		// A replica's first sync would otherwise wait 5s for more replicas.
		"--repl-diskless-sync-delay", "0",
	}
	if r.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	if r.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(r.ReplicaOf)
		if err != nil {
			return nil, fmt.Errorf("redis replica of %q: %w", r.ReplicaOf, err)
		}
		args = append(args, "--replicaof", host, port)
	}
	return args, nil
}

// Command returns the redis-server command line, or an *ErrMissing when it is not installed.
func (r Redis) Command() (Command, error) {
	bin, err := LookPath("redis-server")
	if err != nil {
		return Command{}, err
	}
	args, err := r.Args()
	if err != nil {
		return Command{}, err
	}
	return Command{Bin: bin, Args: args}, nil
}

// Prepare creates the server's directory.
func (r Redis) Prepare() error { return ensureDir(r.Dir) }

// Ready reports whether the server answers PING.
func (r Redis) Ready(context.Context) bool { return Pong(r.Addr()) }

// Pong reports whether the Redis at addr answers PING with PONG.
func Pong(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}

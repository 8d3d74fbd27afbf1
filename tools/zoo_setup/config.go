package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/the-red/zkpost/discovery"
)

// Setup is what zoo_setup registers. It is also the shape of the --file document:
//
//	{
//	  "cache": ["redis1:127.0.0.1:16380", "redis2:127.0.0.1:16381"],
//	  "queue": {"primary": "127.0.0.1:16379", "secondary": ["127.0.0.1:16383"]},
//	  "db":    {"primary": "127.0.0.1:13306", "replicas": ["127.0.0.1:13307"]}
//	}
//
// Every key is optional; what is absent is left as it is in ZooKeeper. The queue and db objects
// are exactly the data their ZooKeeper nodes hold (docs/zookeeper.md).
type Setup struct {
	Cache []string                  `json:"cache,omitempty"`
	Queue *discovery.QueueEndpoints `json:"queue,omitempty"`
	DB    *discovery.DBEndpoints    `json:"db,omitempty"`
}

// flagSetup holds the flag forms of a Setup.
type flagSetup struct {
	file           string
	cache          string
	queuePrimary   string
	queueSecondary string
	dbPrimary      string
	dbReplicas     string
}

// setup builds the Setup from --file, then lets each given flag replace its part.
func (f flagSetup) setup(readFile func(string) ([]byte, error)) (Setup, error) {
	var s Setup
	if f.file != "" {
		b, err := readFile(f.file)
		if err != nil {
			return s, fmt.Errorf("reading --file: %w", err)
		}
		if s, err = ParseSetup(b); err != nil {
			return s, fmt.Errorf("--file %s: %w", f.file, err)
		}
	}
	if f.cache != "" {
		s.Cache = splitList(f.cache)
	}
	if f.queuePrimary != "" || f.queueSecondary != "" {
		s.Queue = &discovery.QueueEndpoints{Primary: f.queuePrimary, Secondary: splitList(f.queueSecondary)}
	}
	if f.dbPrimary != "" || f.dbReplicas != "" {
		s.DB = &discovery.DBEndpoints{Primary: f.dbPrimary, Replicas: splitList(f.dbReplicas)}
	}
	return s, s.Validate()
}

func readFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ParseSetup reads a --file document, rejecting unknown keys (a typo must not silently register
// nothing) and validating every endpoint.
func ParseSetup(b []byte) (Setup, error) {
	var s Setup
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Setup{}, fmt.Errorf("parsing setup JSON: %w", err)
	}
	if dec.More() {
		return Setup{}, errors.New("parsing setup JSON: trailing data after the object")
	}
	return s, s.Validate()
}

// Validate checks every shard and endpoint, and that nothing is listed twice.
func (s Setup) Validate() error {
	names, addrs := map[string]bool{}, map[string]bool{}
	for _, node := range s.Cache {
		n, err := parseShard(node)
		if err != nil {
			return err
		}
		if names[n.Name] || addrs[n.Addr] {
			return fmt.Errorf("cache shard %q: name or address listed twice", node)
		}
		names[n.Name], addrs[n.Addr] = true, true
	}
	if s.Queue != nil {
		if err := validateEndpoints("queue", s.Queue.Primary, s.Queue.Secondary); err != nil {
			return err
		}
	}
	if s.DB != nil {
		if err := validateEndpoints("db", s.DB.Primary, s.DB.Replicas); err != nil {
			return err
		}
	}
	if s.Queue != nil {
		// redismon flushes a returning cache shard and repoints queue secondaries: one server in
		// both roles would lose its queue or its cache.
		for _, ep := range append([]string{s.Queue.Primary}, s.Queue.Secondary...) {
			if addrs[ep] {
				return fmt.Errorf("queue server %s is also a cache shard: give the queue its own Redis", ep)
			}
		}
	}
	return nil
}

// parseShard checks a "name:host:port" shard as readers will parse it. A "/" in the name would
// make a deeper path, not a node name.
func parseShard(node string) (discovery.CacheNode, error) {
	n, err := discovery.ParseCacheNode(node, nil)
	if err != nil {
		return n, err
	}
	if strings.ContainsAny(n.Name, "/ \t") {
		return n, fmt.Errorf("cache shard %q: name must not contain '/' or spaces", node)
	}
	return n, nil
}

func validateEndpoints(what, primary string, others []string) error {
	if primary == "" {
		return fmt.Errorf("%s: a primary is required", what)
	}
	seen := map[string]bool{}
	for _, ep := range append([]string{primary}, others...) {
		if _, err := discovery.ParseEndpoint(ep); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if seen[ep] {
			return fmt.Errorf("%s: %s listed twice", what, ep)
		}
		seen[ep] = true
	}
	return nil
}

// splitList splits a comma list, dropping blanks; "" is an empty (non-nil) list.
func splitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// sameMembers reports whether two endpoint lists name the same set.
func sameMembers(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

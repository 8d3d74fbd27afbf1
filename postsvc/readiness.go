package postsvc

import (
	"sort"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

// Readiness says what the daemon can do, not only whether everything it knows of is in place
// (docs/operations.md). On a tree without R/db (the reference's layout) postsvcd serves writes and
// cached timelines; /readyz must not keep it out of a load balancer for the reads it cannot do.
//
//	write      POST /api/v1/posts, write_post: an id source, the cache ring and the queue
//	read       timelines and posts from the cache ring
//	read_db    reads past the cache (misses, older pages, repairs): the database endpoints
//	discovery  a ZooKeeper session and our own registration in it
//
// /readyz answers 200 while write and read hold ("ready", or "degraded" naming what is missing),
// else 503 ("not_ready").
var capabilityOf = map[string][]string{
	"guid":        {"write"},
	"cache_nodes": {"write", "read"},
	"queue":       {"write"},
	"db":          {"read_db"},
	"zookeeper":   {"discovery"},
	"registered":  {"discovery"},
}

// essential are the capabilities without which the daemon should get no traffic; a check of a
// name capabilityOf does not know counts against them too.
var essential = []string{"write", "read"}

// ReadinessDoc is the /readyz body.
type ReadinessDoc struct {
	Status       string          `json:"status"`
	Capabilities map[string]bool `json:"capabilities"`
	Reasons      []string        `json:"reasons"`
}

// readiness evaluates checks.
func readiness(checks []Check) (ReadinessDoc, bool) {
	doc := ReadinessDoc{Capabilities: map[string]bool{"discovery": true, "read_db": true}, Reasons: []string{}}
	for _, c := range essential {
		doc.Capabilities[c] = true
	}
	for _, c := range checks {
		err := c.OK()
		if err == nil {
			continue
		}
		doc.Reasons = append(doc.Reasons, c.Name+": "+err.Error())
		caps, known := capabilityOf[c.Name]
		if !known {
			caps = essential
		}
		for _, cp := range caps {
			doc.Capabilities[cp] = false
		}
	}
	sort.Strings(doc.Reasons)
	serving := true
	for _, c := range essential {
		serving = serving && doc.Capabilities[c]
	}
	switch {
	case !serving:
		doc.Status = "not_ready"
	case len(doc.Reasons) > 0:
		doc.Status = "degraded"
	default:
		doc.Status = "ready"
	}
	return doc, serving
}

func (s *Server) handleReadyz(ctx *fasthttp.RequestCtx) {
	doc, serving := readiness(s.ready)
	status := fasthttp.StatusOK
	if !serving {
		status = fasthttp.StatusServiceUnavailable
	}
	httpapi.WriteJSON(ctx, status, doc)
}

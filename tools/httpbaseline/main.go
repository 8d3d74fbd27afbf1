// Command httpbaseline is the ceiling of the HTTP stack: a bare fasthttp server answering every
// request with a constant JSON body, so the difference to a real daemon is what its own work
// costs. For guidd's benchmark (tools/bench/guid.sh) the bodies have the size guidd sends:
//
//	GET /        {"guid":…,"guid_str":"…"} (the single-ID response)
//	GET /batch   {"guids":[…4096 ids…]}     (the size of a full batch response)
//
// With --body-file, every path but /batch answers that file's bytes instead: benche2e's read
// scenarios serve a real timeline page of postsvcd that way (the same bytes, nothing computed).
// With --redis, each such answer first reads one key (GET) from that Redis and waits for the
// reply: the ceiling of any page that checks one value in Redis before it answers, as
// read-your-writes across postsvcds needs (a per-user version).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httpbaseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("httpbaseline", flag.ContinueOnError)
	fs.SetOutput(stdout)
	listen := fs.String("listen", "127.0.0.1:8090", "host:port to serve on")
	bodyFile := fs.String("body-file", "", "serve this file's bytes on every path but /batch")
	redisAddr := fs.String("redis", "", "before each answer but /batch, GET one key from the Redis at this host:port")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	single, batch := bodies()
	if *bodyFile != "" {
		if single, err = os.ReadFile(*bodyFile); err != nil {
			return fmt.Errorf("reading --body-file: %w", err)
		}
	}
	var rdb *redis.Client
	if *redisAddr != "" {
		// As postsvcd's cache clients: RESP2, no CLIENT SETINFO (postsvc/cache.go).
		rdb = redis.NewClient(&redis.Options{Addr: *redisAddr, Protocol: 2, DisableIdentity: true})
		defer rdb.Close()
	}
	srv := &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			c.SetContentType("application/json; charset=utf-8")
			if string(c.Path()) == "/batch" {
				c.SetBody(batch)
				return
			}
			if rdb != nil {
				if err := rdb.Get(c, redisKey).Err(); err != nil && !errors.Is(err, redis.Nil) {
					c.SetStatusCode(fasthttp.StatusServiceUnavailable)
					c.SetBodyString(`{"error":"unavailable","message":"the redis read failed"}`)
					return
				}
			}
			c.SetBody(single)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "httpbaseline serving on %s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.ShutdownWithContext(sctx)
}

// redisKey is the key --redis reads: absent or not, a GET costs one round trip.
const redisKey = "httpbaseline:version"

// bodies returns responses shaped and sized like guidd's, with realistic 18-digit ids.
func bodies() (single, batch []byte) {
	const id = uint64(725054616198184960)
	single = fmt.Appendf(nil, `{"guid":%d,"guid_str":"%d"}`, id, id)
	batch = []byte(`{"guids":[`)
	for i := range uint64(4096) {
		if i > 0 {
			batch = append(batch, ',')
		}
		batch = append(batch, '"')
		batch = strconv.AppendUint(batch, id+i, 10)
		batch = append(batch, '"')
	}
	return single, append(batch, "]}"...)
}

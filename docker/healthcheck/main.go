// Command healthcheck is the compose file's container healthcheck for our daemons: the runtime
// image is distroless, with no curl or wget. It GETs each URL given and exits 0 only if every
// one answered 200 within the timeout.
//
//	healthcheck http://127.0.0.1:8010/readyz
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// checkTimeout bounds each URL; compose's own healthcheck timeout is the outer bound.
const checkTimeout = 3 * time.Second

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// run checks every URL in turn and returns the first failure.
func run(ctx context.Context, urls []string) error {
	if len(urls) == 0 {
		return errors.New("usage: healthcheck URL...")
	}
	for _, url := range urls {
		if err := check(ctx, url); err != nil {
			return err
		}
	}
	return nil
}

func check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: got %s, want 200", url, resp.Status)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// getCalls is how many GETs rdb has served (INFO commandstats).
func getCalls(t *testing.T, r *itest.Redis) int {
	info, err := r.Client(t).Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		var n int
		if _, err := fmt.Sscanf(line, "cmdstat_get:calls=%d", &n); err == nil {
			return n
		}
	}
	return 0
}

func TestRedisFlagReadsOneKeyPerAnswer(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{})
	body := filepath.Join(t.TempDir(), "page.json")
	if err := os.WriteFile(body, []byte(`{"posts":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", itest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", addr, "--body-file", body, "--redis", r.Addr()}, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	get := func() (int, []byte) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	itest.WaitFor(t, 10*time.Second, "httpbaseline to answer", func() bool { code, _ := get(); return code != 0 })

	before := getCalls(t, r)
	for range 5 {
		if code, b := get(); code != http.StatusOK || !bytes.Equal(b, []byte(`{"posts":[]}`)) {
			t.Fatalf("answer %d %q, want 200 and the body file", code, b)
		}
	}
	if n := getCalls(t, r) - before; n != 5 {
		t.Fatalf("Redis served %d GETs for 5 answers, want 5", n)
	}

	r.Kill()
	if code, b := get(); code != http.StatusServiceUnavailable || !bytes.Contains(b, []byte(`"error":"unavailable"`)) {
		t.Fatalf("with Redis down: %d %q, want 503 in the error envelope", code, b)
	}
}

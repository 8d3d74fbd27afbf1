package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// writer writes and reads posts through the project's postsvcd instances, over the project
// network.
type writer struct {
	hc     *http.Client
	addrs  []string // host:port of each postsvcd, in service-name order
	names  []string
	user   uint64 // a user of its own, so a rerun on kept data sees only its own posts
	dbName string
	n      int
}

// postRef is a post as the write answered it.
type postRef struct {
	ID       string `json:"post_id_str"`
	UserID   uint64 `json:"user_id"`
	Contents string `json:"contents"`
}

func newWriter(ctx context.Context, s *stack) (*writer, error) {
	w := &writer{hc: &http.Client{Timeout: 10 * time.Second}, user: uint64(time.Now().Unix() % 1_000_000_000)}
	w.names = servicesRunning(s.project, "postsvcd")
	if len(w.names) < 2 {
		return nil, fmt.Errorf("found %d postsvcd services, want at least 2", len(w.names))
	}
	for _, name := range w.names {
		svc := s.project.Services[name]
		_, port, err := net.SplitHostPort(svc.env("POSTSVCD_LISTEN"))
		if err != nil {
			return nil, fmt.Errorf("%s: POSTSVCD_LISTEN: %w", name, err)
		}
		p, _ := strconv.Atoi(port)
		addr, err := s.addr(ctx, name, p)
		if err != nil {
			return nil, err
		}
		w.addrs = append(w.addrs, addr)
		w.dbName = svc.env("POSTSVCD_DB_NAME")
	}
	return w, nil
}

// write posts one post on the i-th postsvcd (modulo their number) and wants 201.
func (w *writer) write(ctx context.Context, i int, contents string) (postRef, error) {
	var p postRef
	body, _ := json.Marshal(map[string]any{"user_id": w.user, "contents": contents})
	addr := w.addrs[i%len(w.addrs)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/posts", bytes.NewReader(body))
	if err != nil {
		return p, err
	}
	req.Header.Set("Content-Type", "application/json")
	b, status, err := w.do(req)
	if err != nil {
		return p, err
	}
	if status != http.StatusCreated {
		return p, fmt.Errorf("POST on %s: got %d %s, want 201", w.names[i%len(w.names)], status, b)
	}
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		return p, fmt.Errorf("POST on %s: answer %s: %v", w.names[i%len(w.names)], b, err)
	}
	return p, nil
}

// list returns the ids of the user's newest posts, as the i-th postsvcd lists them.
func (w *writer) list(ctx context.Context, i int) ([]string, error) {
	url := fmt.Sprintf("http://%s/api/v1/posts/%d?limit=100", w.addrs[i%len(w.addrs)], w.user)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	b, status, err := w.do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET on %s: got %d %s, want 200", w.names[i%len(w.names)], status, b)
	}
	var page struct {
		Posts []postRef `json:"posts"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("GET on %s: %w", w.names[i%len(w.names)], err)
	}
	var ids []string
	for _, p := range page.Posts {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

func (w *writer) do(req *http.Request) ([]byte, int, error) {
	resp, err := w.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: reading: %w", req.Method, req.URL, err)
	}
	return b, resp.StatusCode, nil
}

// next writes one more post, on the postsvcd after the last one written on.
func (w *writer) next(ctx context.Context, what string) (postRef, error) {
	w.n++
	return w.write(ctx, w.n, fmt.Sprintf("compose-check %s #%d", what, w.n))
}

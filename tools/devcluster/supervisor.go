package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// socketPath returns the supervisor's control socket for dir: dir/supervisor.sock, or a name
// under the temp dir when that path passes the 107-byte limit of unix socket paths.
func socketPath(dir string) string {
	p := filepath.Join(dir, "supervisor.sock")
	if len(p) < 100 {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(dir))
	return filepath.Join(os.TempDir(), "devcluster-"+strconv.FormatUint(h.Sum64(), 36)+".sock")
}

// phase is the supervisor's progress, as `devcluster up` polls it.
type phase struct {
	Phase string `json:"phase"` // starting, ready, failed, stopping
	Error string `json:"error,omitempty"`
}

// supervisor owns the cluster's processes and serves the CLI's commands on a unix socket.
type supervisor struct {
	c   *cluster.Cluster
	log *slog.Logger

	mu    sync.Mutex
	phase phase

	downOnce sync.Once
	downErr  error
	quit     chan struct{}
}

func (s *supervisor) setPhase(p phase) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// supervise runs in the background process `devcluster up` starts: it brings the cluster up,
// serves commands, keeps daemons running, and brings everything down on SIGTERM or `down`.
func supervise(cfg cluster.Config, log *slog.Logger) error {
	c, err := cluster.New(cfg)
	if err != nil {
		return err
	}
	s := &supervisor{c: c, log: log, quit: make(chan struct{}), phase: phase{Phase: "starting"}}
	sock := socketPath(c.Config().Dir)
	os.Remove(sock) // a stale socket from a supervisor that was killed
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sock, err)
	}
	defer os.Remove(sock)
	c.SetSocket(sock)
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	defer func() {
		// Lets the answer to `down` reach the CLI before the process exits.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		log.Info("signal; bringing the cluster down", "signal", sig.String())
		s.down()
	}()

	log.Info("bringing the cluster up", "dir", c.Config().Dir, "nodes", c.Nodes())
	if err := c.Up(context.Background()); err != nil {
		log.Error("up failed; bringing the cluster down", "err", err)
		s.setPhase(phase{Phase: "failed", Error: err.Error()})
		s.down()
		<-s.quit
		return err
	}
	s.setPhase(phase{Phase: "ready"})
	log.Info("cluster ready")
	<-s.quit
	return s.downErr
}

// down stops the cluster once and then lets supervise return.
func (s *supervisor) down() error {
	s.downOnce.Do(func() {
		s.mu.Lock()
		if s.phase.Phase != "failed" {
			s.phase = phase{Phase: "stopping"}
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s.downErr = s.c.Down(ctx)
		if s.downErr != nil {
			s.log.Error("down", "err", s.downErr)
		} else {
			s.log.Info("cluster down; nothing left running")
		}
		close(s.quit)
	})
	<-s.quit
	return s.downErr
}

func (s *supervisor) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /phase", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p := s.phase
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.c.Status(r.Context()))
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		if err := s.down(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{})
	})
	mux.HandleFunc("POST /node/{action}/{name}", s.handleNode)
	return mux
}

// handleNode kills, stops or starts one node; start answers once the node is ready.
func (s *supervisor) handleNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "kill":
		err = s.c.Kill(name)
	case "stop":
		err = s.c.Stop(name)
	case "start":
		ctx, cancel := context.WithTimeout(r.Context(), s.c.Config().ReadyTimeout+10*time.Second)
		defer cancel()
		err = s.c.Start(ctx, name)
	default:
		err = fmt.Errorf("unknown action %q", r.PathValue("action"))
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": name, "pid": s.c.Pid(name)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// client talks to a supervisor over its socket.
type client struct {
	http *http.Client
}

func newClient(dir string) client {
	sock := socketPath(dir)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return client{http: &http.Client{Transport: tr}}
}

var errNoSupervisor = errors.New("no supervisor is running (devcluster up starts one)")

// call sends a request and decodes the JSON answer into out; a non-2xx answer's "error" becomes
// the error.
func (cl client) call(ctx context.Context, method, path string, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, nil)
	if err != nil {
		return err
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return errNoSupervisor
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

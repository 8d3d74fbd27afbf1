package main

import (
	"context"
	"io"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"datacenter flag out of range", []string{"--dc", "32"}, nil, "--dc 32"},
		{"datacenter from the environment", nil, map[string]string{"GUIDD_DC": "40"}, "--dc 40"},
		{"flag beats environment", []string{"--dc", "33"}, map[string]string{"GUIDD_DC": "1"}, "--dc 33"},
		{"bad env value", nil, map[string]string{"GUIDD_CLOCK_REFRESH": "soon"}, "GUIDD_CLOCK_REFRESH"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "log format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--zk", "127.0.0.1:1"}, tt.args...)
			err := run(context.Background(), args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

// TestLifecycle: guidd starts with ZooKeeper down (alive, not ready, no lease), leases worker 0
// and registers once ZooKeeper is up, serves IDs with its metrics, and on SIGTERM deletes its
// node and releases its lease before it exits.
func TestLifecycle(t *testing.T) {
	z := itest.StartZooKeeper(t)
	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	base := "http://" + addr
	layout := discovery.Layout{Root: "/guidd_lifecycle"}
	lease := path.Join(layout.GuidWorkers(0), "0")
	daemontest.Lifecycle{
		ZK: z, Base: base, Root: layout.Root, NodeDir: layout.Nodes("guid"), Node: addr,
		Spec: itest.Launch(t, launch.Guidd, launch.Instance{Listen: addr, ZK: z.Addr(), ZKRoot: layout.Root,
			ZKSessionTimeout: 4 * time.Second}, "--log-format", "text"),
		WhileDown: func(t *testing.T) {
			m := daemontest.Metrics(t, base)
			if m["guid_lease_held"] != "0" || m["guid_worker_id"] != "-1" {
				t.Errorf("without ZooKeeper: guid_lease_held %s, guid_worker_id %s; want 0 and -1", m["guid_lease_held"], m["guid_worker_id"])
			}
			if code, body := daemontest.Get(t, base+"/api/v1/guid"); code != 503 || !strings.Contains(body, "no_lease") {
				t.Errorf("an id without ZooKeeper: got %d %s, want 503 no_lease", code, body)
			}
		},
		WhileReady: func(t *testing.T) {
			if code, body := daemontest.Get(t, base+"/api/v1/guid"); code != 200 {
				t.Fatalf("an id: got %d %s, want 200", code, body)
			}
			if code, _ := daemontest.Get(t, base+"/api/v1/guid?count=0"); code != 400 {
				t.Fatalf("count=0: got %d, want 400", code)
			}
			m := daemontest.Metrics(t, base)
			for series, want := range map[string]string{
				"guid_lease_held": "1", "guid_worker_id": "0", "guid_datacenter_id": "0", "guid_ids_issued_total": "1",
				`http_requests_total{route="guid",status="200"}`:                 "1",
				`http_requests_total{route="guid",status="400"}`:                 "1",
				`http_requests_total{route="guid",status="503"}`:                 "1",
				`http_errors_total{error="invalid_argument",route="guid"}`:       "1",
				`http_errors_total{error="no_lease",route="guid"}`:               "1",
				`http_request_duration_seconds_count{route="guid",status="200"}`: "1",
				`http_request_duration_seconds_count{route="guid",status="503"}`: "1",
			} {
				if got := m[series]; got != want {
					t.Errorf("%s: got %q, want %q", series, got, want)
				}
			}
			if _, dup := m["guid_zk_session_connected"]; dup {
				t.Errorf("guid_zk_session_connected duplicates zk_session_connected")
			}
		},
		AfterStop: func(t *testing.T, conn *discovery.Conn) {
			if ok, _, err := conn.ZK().Exists(lease); err != nil || ok {
				t.Errorf("lease %s after SIGTERM: exists=%v err=%v, want it released", lease, ok, err)
			}
		},
	}.Run(t)
}

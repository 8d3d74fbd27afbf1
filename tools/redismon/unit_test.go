package main

import (
	"strings"
	"testing"
)

func TestParseReplication(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want replication
		err  bool
	}{
		{"master", "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_repl_offset:1234\r\n",
			replication{Role: "master", Offset: 1234}, false},
		{"replica", "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:16379\r\nslave_repl_offset:99\r\nmaster_repl_offset:120\r\n",
			replication{Role: "slave", MasterAddr: "127.0.0.1:16379", Offset: 99}, false},
		{"ipv6 primary", "role:slave\nmaster_host:::1\nmaster_port:6379\nslave_repl_offset:5\n",
			replication{Role: "slave", MasterAddr: "[::1]:6379", Offset: 5}, false},
		{"no role", "connected_slaves:0\n", replication{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReplication(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if !tc.err && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPickSecondary(t *testing.T) {
	tests := []struct {
		name      string
		order     []string
		reachable map[string]replication
		want      string
	}{
		{"none reachable", []string{"a", "b"}, map[string]replication{}, ""},
		{"only one up", []string{"a", "b"}, map[string]replication{"b": {Role: "slave", Offset: 1}}, "b"},
		{"highest offset wins", []string{"a", "b", "c"}, map[string]replication{"a": {Offset: 10}, "b": {Offset: 30}, "c": {Offset: 20}}, "b"},
		{"tie goes to the first listed", []string{"a", "b"}, map[string]replication{"a": {Offset: 7}, "b": {Offset: 7}}, "a"},
		{"offset zero still counts", []string{"a"}, map[string]replication{"a": {}}, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickSecondary(tc.order, tc.reachable); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSameAddr(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:1", "127.0.0.1:1", true},
		{"localhost:1", "127.0.0.1:1", true},
		{"127.0.0.1:1", "127.0.0.1:2", false},
		{"redis-queue:6379", "redis-queue:6379", true},
	}
	for _, tc := range tests {
		if got := sameAddr(tc.a, tc.b); got != tc.want {
			t.Errorf("sameAddr(%q, %q): got %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestParseShardDoc(t *testing.T) {
	tests := []struct {
		name string
		data string
		want shardDoc
		err  bool
	}{
		{"reference's empty node", "", shardDoc{Status: "ALIVE"}, false},
		{"down", `{"status":"DOWN","since":"x","epoch":2,"run_id":"r","reason":"unreachable"}`,
			shardDoc{Status: "DOWN", Since: "x", Epoch: 2, RunID: "r", Reason: "unreachable"}, false},
		{"lower-case status", `{"status":"down"}`, shardDoc{Status: "DOWN"}, false},
		{"no status", `{"epoch":3}`, shardDoc{Status: "ALIVE", Epoch: 3}, false},
		{"garbage", `{`, shardDoc{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := parseShardDoc("redis1:127.0.0.1:1", []byte(tc.data))
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if !tc.err && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{ProbeInterval: 0, ProbeTimeout: 1, FailThreshold: 1, RiseThreshold: 1},
		{ProbeInterval: 1, ProbeTimeout: 1, FailThreshold: 0, RiseThreshold: 1},
		{ProbeInterval: 1, ProbeTimeout: 1, FailThreshold: 1, RiseThreshold: 0},
	}
	for _, c := range bad {
		if err := c.validate(); err == nil {
			t.Errorf("%+v: got no error, want one", c)
		}
	}
}

func FuzzParseReplication(f *testing.F) {
	f.Add("role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:1\r\nslave_repl_offset:9\r\n")
	f.Add("role:master\nmaster_repl_offset:-1\n")
	f.Add("#\n:\nrole\n")
	f.Fuzz(func(t *testing.T, s string) {
		rep, err := parseReplication(s)
		if err == nil && rep.Role != "master" && rep.Role != "slave" {
			t.Fatalf("accepted role %q", rep.Role)
		}
		if rep.Role == "master" && rep.MasterAddr != "" {
			t.Fatalf("a master follows %q", rep.MasterAddr)
		}
	})
}

func FuzzParseShardDoc(f *testing.F) {
	f.Add("redis1:127.0.0.1:1", []byte(""))
	f.Add("redis1:127.0.0.1:1", []byte(`{"status":"DOWN","epoch":1}`))
	f.Add("x:y", []byte(`null`))
	f.Fuzz(func(t *testing.T, node string, data []byte) {
		n, doc, err := parseShardDoc(node, data)
		if err != nil {
			return
		}
		if doc.Status != strings.ToUpper(doc.Status) || doc.Status == "" || n.Status != doc.Status {
			t.Fatalf("got status %q (node %q)", doc.Status, n.Status)
		}
	})
}

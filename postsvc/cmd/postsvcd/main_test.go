package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"flag validated", []string{"--max-contents", "0", "--zk", "127.0.0.1:1"}, nil, "--max-contents"},
		{"env fallback", []string{"--zk", "127.0.0.1:1"}, map[string]string{"POSTSVCD_LIST_MAX": "5"}, "--list-max"},
		{"flag beats env", []string{"--list-max", "7", "--zk", "127.0.0.1:1"}, map[string]string{"POSTSVCD_LIST_MAX": "500"}, "--list-max"},
		{"bad env value", nil, map[string]string{"POSTSVCD_SCRAP_TIMEOUT": "soon"}, "POSTSVCD_SCRAP_TIMEOUT"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			err := run(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"), getenv, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error naming %q", err, tc.wantErr)
			}
			if strings.Contains(out.String(), "hunter2") {
				t.Fatalf("password logged: %s", out.String())
			}
		})
	}
	t.Run("password masked", func(t *testing.T) {
		var out bytes.Buffer
		run(context.Background(), []string{"--db-password", "hunter2", "--max-contents", "0", "--zk", "127.0.0.1:1"}, func(string) string { return "" }, &out)
		if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), `"config"`) {
			t.Fatalf("config log: %s", out.String())
		}
	})
}

package main

import (
	"context"
	"io"
	"strings"
	"testing"
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

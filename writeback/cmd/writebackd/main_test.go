package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestRunRejectsBadConfig(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
		{"bad duration", []string{"--commit-timeout", "soon"}, nil, "invalid value"},
		{"bad env", nil, map[string]string{"WRITEBACKD_CONCURRENCY": "many"}, "WRITEBACKD_CONCURRENCY"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "log format"},
		{"bad listen", []string{"--listen", "127.0.0.1:99999", "--zk", "127.0.0.1:1"}, nil, "listening"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := noenv
			if tt.env != nil {
				getenv = func(k string) string { return tt.env[k] }
			}
			err := run(context.Background(), tt.args, getenv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("run(%v) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard); err != nil {
		t.Errorf("run(--help) = %v, want nil", err)
	}
}

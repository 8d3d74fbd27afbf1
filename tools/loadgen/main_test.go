package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

func noEnv(string) string { return "" }

// TestHelp: -h and --help print the usage and succeed, like every other binary's.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"--duration", "1s", "-h"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, noEnv, &out); err != nil {
			t.Errorf("run(%q): got %v, want nil", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote a report:\n%s\nwant nothing but the usage (on stderr)", args, out.String())
		}
	}
}

// TestRejectsBadArgs: a bad flag or a stray argument fails before any load is generated.
func TestRejectsBadArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--targets", "127.0.0.1:1", "30s"}, `unexpected argument "30s"`},
		{[]string{"--verify"}, "--verify needs --dsn"},
	} {
		err := run(context.Background(), tc.args, noEnv, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q): got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestHelpExitCode runs the binary: -h exits 0 and prints the usage; a bad flag exits 1.
func TestHelpExitCode(t *testing.T) {
	bin := itest.BuildBinary(t, "./tools/loadgen")
	for _, tc := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"-h"}, true, "Usage of loadgen"},
		{[]string{"--help"}, true, "-concurrency"},
		{[]string{"--no-such-flag"}, false, "flag provided but not defined"},
	} {
		cmd := exec.Command(bin, tc.args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LOADGEN_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("loadgen %q: got %v, want success %v\n%s", tc.args, err, tc.ok, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("loadgen %q printed:\n%s\nwant it to contain %q", tc.args, out, tc.want)
		}
	}
}

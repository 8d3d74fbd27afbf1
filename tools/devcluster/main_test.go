package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

func noEnv(string) string { return "" }

// TestParseCommandLine: global flags work before and after the command, mixed with the
// command's own flags and arguments; anything unexpected is an error, never silently ignored.
func TestParseCommandLine(t *testing.T) {
	type want struct {
		cmd, allowCIDR, dir string
		args                []string
		follow, purge       bool
		lines, portOffset   int
	}
	def := func(w want) want {
		if w.dir == "" {
			w.dir = ".devcluster"
		}
		return w
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{"flag after up", []string{"up", "--scrap-allow-cidr", "127.0.0.0/8"},
			nil, want{cmd: "up", allowCIDR: "127.0.0.0/8"}},
		{"flag before up", []string{"--scrap-allow-cidr", "127.0.0.0/8", "up"},
			nil, want{cmd: "up", allowCIDR: "127.0.0.0/8"}},
		{"flags on both sides", []string{"--dir", "/tmp/a", "up", "--port-offset=100", "--scrap-allow-cidr=10.0.0.0/8"},
			nil, want{cmd: "up", dir: "/tmp/a", portOffset: 100, allowCIDR: "10.0.0.0/8"}},
		{"after the command beats before it", []string{"--dir", "/tmp/a", "status", "--dir", "/tmp/b"},
			nil, want{cmd: "status", dir: "/tmp/b"}},
		{"after the command beats the environment", []string{"status", "--dir", "/tmp/b"},
			map[string]string{"DEVCLUSTER_DIR": "/tmp/env"}, want{cmd: "status", dir: "/tmp/b"}},
		{"environment kept when not given", []string{"status"},
			map[string]string{"DEVCLUSTER_DIR": "/tmp/env"}, want{cmd: "status", dir: "/tmp/env"}},
		{"kill node", []string{"kill", "guid-2"}, nil, want{cmd: "kill", args: []string{"guid-2"}}},
		{"kill node then flag", []string{"kill", "guid-2", "--dir", "/tmp/c"},
			nil, want{cmd: "kill", dir: "/tmp/c", args: []string{"guid-2"}}},
		{"start flag then node", []string{"start", "--dir", "/tmp/c", "guid-2"},
			nil, want{cmd: "start", dir: "/tmp/c", args: []string{"guid-2"}}},
		{"logs -f node", []string{"logs", "-f", "guid-2"},
			nil, want{cmd: "logs", args: []string{"guid-2"}, follow: true, lines: 200}},
		{"logs node -f", []string{"logs", "guid-2", "-f"},
			nil, want{cmd: "logs", args: []string{"guid-2"}, follow: true, lines: 200}},
		{"logs -n 5 node --dir", []string{"logs", "-n", "5", "guid-1", "--dir", "/tmp/d"},
			nil, want{cmd: "logs", dir: "/tmp/d", args: []string{"guid-1"}, lines: 5}},
		{"logs -- node", []string{"logs", "--", "-odd-name"},
			nil, want{cmd: "logs", args: []string{"-odd-name"}, lines: 200}},
		{"down --purge", []string{"down", "--purge"}, nil, want{cmd: "down", purge: true}},
		{"down -purge with a flag", []string{"--dir", "/tmp/e", "down", "-purge"},
			nil, want{cmd: "down", dir: "/tmp/e", purge: true}},
		{"down", []string{"down"}, nil, want{cmd: "down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, cmd, err := parseCommandLine(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("parseCommandLine(%q): %v", tc.args, err)
			}
			w := def(tc.want)
			got := want{cmd: cmd.name, allowCIDR: o.allowCIDR, dir: o.dir, args: cmd.args,
				follow: cmd.follow, purge: cmd.purge, lines: cmd.lines, portOffset: o.portOffset}
			if got.cmd != w.cmd || got.allowCIDR != w.allowCIDR || got.dir != w.dir || !slices.Equal(got.args, w.args) ||
				got.follow != w.follow || got.purge != w.purge || got.lines != w.lines || got.portOffset != w.portOffset {
				t.Errorf("parseCommandLine(%q):\ngot  %+v\nwant %+v", tc.args, got, w)
			}
		})
	}
}

// TestParseCommandLineRejects: what was silently ignored before is an error now.
func TestParseCommandLineRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{}, "missing command"},
		{[]string{"upp"}, `unknown command "upp"`},
		{[]string{"up", "extra"}, `unexpected argument "extra"`},
		{[]string{"up", "--scrap-alow-cidr", "127.0.0.0/8"}, "flag provided but not defined: -scrap-alow-cidr"},
		{[]string{"status", "guid-1"}, `unexpected argument "guid-1"`},
		{[]string{"down", "--prge"}, "flag provided but not defined: -prge"},
		{[]string{"down", "now"}, `unexpected argument "now"`},
		{[]string{"kill"}, "usage: devcluster kill <node>"},
		{[]string{"kill", "guid-1", "guid-2"}, "usage: devcluster kill <node>"},
		{[]string{"logs"}, "usage: devcluster logs"},
		{[]string{"logs", "-x", "guid-1"}, "flag provided but not defined: -x"},
		{[]string{"up", "-f"}, "flag provided but not defined: -f"},
		{[]string{"up", "--port-offset", "x"}, "invalid value"},
	} {
		_, _, err := parseCommandLine(tc.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseCommandLine(%q): got error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// TestHelp: -h and --help, before or after a command, print the usage and succeed.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"up", "-h"}, {"logs", "--help"}, {"--dir", "x", "down", "-h"}} {
		var usage strings.Builder
		_, _, err := parseCommandLine(args, noEnv, &usage)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseCommandLine(%q): got %v, want flag.ErrHelp", args, err)
		}
		for _, want := range []string{"usage: devcluster", "-scrap-allow-cidr", "before or after the command"} {
			if !strings.Contains(usage.String(), want) {
				t.Errorf("usage for %q: got\n%s\nwant it to contain %q", args, usage.String(), want)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"up", "--help"}} { // usage on stderr
		if err := run(context.Background(), args, noEnv, io.Discard); err != nil {
			t.Errorf("run(%q): got %v, want nil", args, err)
		}
	}
	for _, args := range [][]string{{"--dir", "/tmp/x", "-h"}, {"--dir", "/tmp/x", "up", "-h"}} {
		var usage strings.Builder
		parseCommandLine(args, noEnv, &usage)
		if !strings.Contains(usage.String(), `(default ".devcluster")`) {
			t.Errorf("usage for %q: got\n%s\nwant the default of --dir, not what was given", args, usage.String())
		}
	}
	var usage strings.Builder
	parseCommandLine([]string{"logs", "-h"}, noEnv, &usage)
	if !strings.Contains(usage.String(), "follow the log") {
		t.Errorf("logs -h: got\n%s\nwant logs' own flags listed", usage.String())
	}
}

// TestHelpExitCode runs the binary: -h exits 0, a bad flag exits non-zero.
func TestHelpExitCode(t *testing.T) {
	bin := itest.BuildBinary(t, "./tools/devcluster")
	for _, tc := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"-h"}, true, "usage: devcluster"},
		{[]string{"--help"}, true, "usage: devcluster"},
		{[]string{"up", "--help"}, true, "usage: devcluster"},
		{[]string{"--no-such-flag"}, false, "flag provided but not defined"},
		{[]string{"up", "unexpected"}, false, `devcluster: up: unexpected argument "unexpected"`},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = cleanEnv()
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("devcluster %q: got %v, want success %v\n%s", tc.args, err, tc.ok, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("devcluster %q printed:\n%s\nwant it to contain %q", tc.args, out, tc.want)
		}
	}
}

// TestPrometheusTargetsURL: the printed link is a page the Prometheus really serves.
func TestPrometheusTargetsURL(t *testing.T) {
	serve := func(paths ...string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !slices.Contains(paths, r.URL.Path) {
				http.NotFound(w, r) // as Debian's 2.42 answers /targets
				return
			}
			fmt.Fprint(w, "<html>targets</html>")
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	debian := serve("/classic/targets", "/api/v1/targets")
	upstream := serve("/targets", "/api/v1/targets")
	closed := serve()
	for _, tc := range []struct{ name, addr, want string }{
		{"Debian's Prometheus (classic UI only)", debian, "http://" + debian + "/classic/targets"},
		{"upstream Prometheus (React UI)", upstream, "http://" + upstream + "/targets"},
		{"neither page", closed, "http://" + closed + "/api/v1/targets"},
	} {
		if got := prometheusTargetsURL(context.Background(), tc.addr); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}

	t.Run("installed prometheus", func(t *testing.T) {
		itest.SkipShort(t, "starts Prometheus: skipped in -short")
		bin := itest.Require(t, "prometheus")
		dir := t.TempDir()
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\nscrape_configs: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		port := itest.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		itest.StartDaemon(t, itest.DaemonSpec{
			Name: "prometheus", Bin: bin, Port: port, ReadyURL: "http://" + addr + "/-/ready",
			Args: []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
				"--web.listen-address=" + addr},
		})
		u := prometheusTargetsURL(context.Background(), addr)
		if strings.HasSuffix(u, "/api/v1/targets") {
			t.Errorf("got %s, want a targets page (the installed Prometheus serves neither /targets nor /classic/targets?)", u)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html") {
			t.Errorf("GET %s: got %d\n%.300s\nwant 200 and a page", u, resp.StatusCode, body)
		}
	})
}

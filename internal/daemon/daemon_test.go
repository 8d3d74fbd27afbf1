package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func noZooKeeper() bool { return false }

func TestRunFlagsEnvAndConfigLog(t *testing.T) {
	var name, password string
	spec := Spec{Name: "testd", Secrets: []string{"password"}, NeedsZooKeeper: noZooKeeper,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "default", "a name")
			fs.StringVar(&password, "password", "", "a secret")
		}}
	env := map[string]string{"TESTD_NAME": "from-env", "TESTD_PASSWORD": "hunter2", "TESTD_ZK_ROOT": "/r"}
	var out bytes.Buffer
	var got *Process
	err := Run(context.Background(), spec, []string{"--log-format", "text"}, func(k string) string { return env[k] }, &out,
		func(_ context.Context, p *Process) error { got = p; return nil })
	if err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	if name != "from-env" || password != "hunter2" {
		t.Fatalf("flags: got name=%q password=%q, want the environment's", name, password)
	}
	if got.Layout.Root != "/r" || got.Conn != nil || got.Metrics == nil || got.Log == nil {
		t.Fatalf("process: got root %q conn %v metrics %v, want /r, no session, a registry", got.Layout.Root, got.Conn, got.Metrics)
	}
	if log := out.String(); strings.Contains(log, "hunter2") || !strings.Contains(log, "name=from-env") {
		t.Fatalf("config log: got %q, want the name shown and the password masked", log)
	}
}

func TestRunHelpAndBadFlags(t *testing.T) {
	called := false
	body := func(context.Context, *Process) error { called = true; return nil }
	spec := Spec{Name: "testd", NeedsZooKeeper: noZooKeeper}
	none := func(string) string { return "" }
	if err := Run(context.Background(), spec, []string{"--help"}, none, &bytes.Buffer{}, body); err != nil || called {
		t.Fatalf("--help: got err %v, body called %v; want nil and not called", err, called)
	}
	err := Run(context.Background(), spec, []string{"--nope"}, none, &bytes.Buffer{}, body)
	if err == nil || called {
		t.Fatalf("--nope: got err %v, body called %v; want an error and not called", err, called)
	}
	bad := map[string]string{"TESTD_LOG_LEVEL": "loud"}
	err = Run(context.Background(), spec, nil, func(k string) string { return bad[k] }, &bytes.Buffer{}, body)
	if err == nil || !strings.Contains(err.Error(), "loud") || called {
		t.Fatalf("bad log level: got err %v, body called %v; want an error naming it", err, called)
	}
}

// What body opened is deregistered and closed even when body fails before serving.
func TestRunFinishesAfterFailedSetUp(t *testing.T) {
	rec := &recorder{}
	boom := errors.New("bad config")
	err := Run(context.Background(), Spec{Name: "testd", NeedsZooKeeper: noZooKeeper}, nil,
		func(string) string { return "" }, &bytes.Buffer{}, func(_ context.Context, p *Process) error {
			p.Defer("first", rec.step("close first"))
			p.Deregister("node", rec.step("deregister"))
			p.Defer("second", rec.step("close second"))
			return boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("Run: got %v, want %v", err, boom)
	}
	want := []string{"deregister", "close second", "close first"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("order: got %v, want %v", got, want)
	}
}

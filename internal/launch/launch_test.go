package launch_test

import (
	"os/exec"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

var full = launch.Instance{
	Listen: "127.0.0.1:8000", Advertise: "host:8000", ZK: "zk:2181", ZKRoot: "/r",
	ZKSessionTimeout: 4 * time.Second, DB: launch.Account{User: "u", Password: "p", Name: "n"},
}

func TestArgsAndEnv(t *testing.T) {
	tests := []struct {
		prog     launch.Program
		in       launch.Instance
		wantArgs []string
		wantEnv  string // one variable that must be set
	}{
		{launch.Postsvcd, full, []string{"--advertise", "host:8000", "--db-name", "n", "--db-password", "p",
			"--db-user", "u", "--listen", "127.0.0.1:8000", "--zk", "zk:2181", "--zk-root", "/r",
			"--zk-session-timeout", "4s"}, "POSTSVCD_DB_PASSWORD"},
		{launch.Guidd, full, []string{"--advertise", "host:8000", "--listen", "127.0.0.1:8000", "--zk", "zk:2181",
			"--zk-root", "/r", "--zk-session-timeout", "4s"}, "GUIDD_ZK_SESSION_TIMEOUT"},
		// workwebui registers nowhere, so it takes no --advertise; empty settings are left out.
		{launch.WorkWebUI, launch.Instance{Listen: "127.0.0.1:5040", Advertise: "x:1", ZK: "zk:2181"},
			[]string{"--listen", "127.0.0.1:5040", "--zk", "zk:2181"}, "WORKWEBUI_LISTEN"},
	}
	for _, tc := range tests {
		t.Run(tc.prog.Binary, func(t *testing.T) {
			if got := tc.prog.Args(tc.in); !slices.Equal(got, tc.wantArgs) {
				t.Fatalf("Args: got %q, want %q", got, tc.wantArgs)
			}
			env := tc.prog.Env(tc.in)
			if len(env) != len(tc.wantArgs)/2 || env[tc.wantEnv] == "" {
				t.Fatalf("Env: got %v, want %d variables with %s set", env, len(tc.wantArgs)/2, tc.wantEnv)
			}
		})
	}
}

var flagLine = regexp.MustCompile(`^\s+-([a-z0-9-]+)`)

// TestEveryFlagIsAccepted: each daemon, built from its Package, lists every flag launch gives
// it, so a renamed flag fails here instead of at a cluster's start.
func TestEveryFlagIsAccepted(t *testing.T) {
	for _, prog := range launch.Daemons {
		t.Run(prog.Binary, func(t *testing.T) {
			out, _ := exec.Command(itest.BuildBinary(t, prog.Package), "-h").CombinedOutput()
			accepted := map[string]bool{}
			for _, line := range regexp.MustCompile(`\n`).Split(string(out), -1) {
				if m := flagLine.FindStringSubmatch(line); m != nil {
					accepted[m[1]] = true
				}
			}
			for name := range prog.Flags(full) {
				if !accepted[name] {
					t.Errorf("%s does not accept --%s (its -h lists %d flags)", prog.Binary, name, len(accepted))
				}
			}
		})
	}
}

func TestByBinary(t *testing.T) {
	for _, prog := range launch.Daemons {
		if got, ok := launch.ByBinary(prog.Binary); !ok || got != prog {
			t.Errorf("ByBinary(%q): got %+v %v, want %+v", prog.Binary, got, ok, prog)
		}
	}
	if _, ok := launch.ByBinary("nope"); ok {
		t.Errorf("ByBinary(nope): found, want not found")
	}
}

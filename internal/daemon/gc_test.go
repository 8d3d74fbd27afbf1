package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMainSetsGCPercentUnlessGOGC runs Main in a child process (this test binary) and reads the
// GC target its run sees: DefaultGCPercent with no GOGC in the environment, GOGC's value with it.
func TestMainSetsGCPercentUnlessGOGC(t *testing.T) {
	if os.Getenv("DAEMON_TEST_MAIN") == "1" {
		Main("gctest", func(context.Context, []string, func(string) string, io.Writer) error {
			fmt.Printf("gc-percent=%d\n", debug.SetGCPercent(-1))
			return nil
		})
		return
	}
	for _, tc := range []struct{ gogc, want string }{
		{"", fmt.Sprint(DefaultGCPercent)},
		{"150", "150"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMainSetsGCPercentUnlessGOGC$")
		cmd.Env = append(os.Environ(), "DAEMON_TEST_MAIN=1", "GOGC="+tc.gogc)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GOGC=%q: %v\n%s", tc.gogc, err, out)
		}
		if !strings.Contains(string(out), "gc-percent="+tc.want+"\n") {
			t.Errorf("GOGC=%q: child printed %q, want gc-percent=%s", tc.gogc, out, tc.want)
		}
	}
}

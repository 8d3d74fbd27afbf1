package itest

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch"
)

const defaultDaemonReadyTimeout = 20 * time.Second

// ownEnvPrefixes are the environment fallbacks of our binaries
// (<BINARY>_<FLAG>); a developer's shell settings must not leak into tests.
var ownEnvPrefixes = []string{
	"GUIDD_", "SCRAPD_", "POSTSVCD_", "WRITEBACKD_", "ZOO_SETUP_", "REDISMON_",
	"DEVCLUSTER_", "WORKWEBUI_", "LOADGEN_",
}

// DaemonSpec describes one of our daemons for StartDaemon.
type DaemonSpec struct {
	// Name identifies the daemon in logs; also the log file name.
	Name string
	// Bin is the executable, usually from BuildBinary.
	Bin string
	// Args are the command-line arguments.
	Args []string
	// Env is appended to the test's environment, minus our binaries' own
	// <BINARY>_* variables.
	Env []string
	// Port is the port it serves on; 0 if none.
	Port int
	// ReadyURL is polled until it answers HTTP 200. If empty, readiness is
	// the TCP port accepting connections (or just having started, if Port is 0).
	ReadyURL string
	// ReadyTimeout bounds the readiness wait; 0 means 20s.
	ReadyTimeout time.Duration
}

// StartDaemon starts one of our daemons in a temp directory and waits until
// it is ready. It is killed when the test ends.
func StartDaemon(tb testing.TB, spec DaemonSpec) *Process {
	tb.Helper()
	p := newDaemon(tb, spec)
	p.cleanupOnEnd(tb)
	p.Start(tb)
	return p
}

// StartDaemonNoWait starts a daemon without waiting for it to become ready,
// for tests of daemons that must refuse to serve or must exit. A later
// p.Start after Kill does wait for readiness.
func StartDaemonNoWait(tb testing.TB, spec DaemonSpec) *Process {
	tb.Helper()
	p := newDaemon(tb, spec)
	p.cleanupOnEnd(tb)
	if err := p.launch(); err != nil {
		tb.Fatalf("starting %s: %v", p.Name, err)
	}
	return p
}

func newDaemon(tb testing.TB, spec DaemonSpec) *Process {
	tb.Helper()
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Bin)
	}
	if spec.ReadyTimeout == 0 {
		spec.ReadyTimeout = defaultDaemonReadyTimeout
	}
	p := newProcess(spec.Name, spec.Port, tb.TempDir(), spec.Bin, spec.Args, daemonProbe(spec), spec.ReadyTimeout)
	p.env = append(daemonEnv(os.Environ()), spec.Env...)
	return p
}

func daemonProbe(spec DaemonSpec) func() bool {
	switch {
	case spec.ReadyURL != "":
		return func() bool { return launch.Ready(context.Background(), spec.ReadyURL) }
	case spec.Port != 0:
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(spec.Port))
		return func() bool { return dialable(addr) }
	}
	return nil
}

func daemonEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !hasAnyPrefix(kv, ownEnvPrefixes) {
			out = append(out, kv)
		}
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// builds caches BuildBinary results per package for the test process; each
// package builds once, and different packages build concurrently.
var builds = struct {
	sync.Mutex
	byPkg map[string]*build
}{byPkg: map[string]*build{}}

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds the main package pkg (a path relative to the module
// root, like "./guid/cmd/guidd") once per test process and returns the
// binary's path. Binaries are built with -race when the test binary is.
func BuildBinary(tb testing.TB, pkg string) string {
	tb.Helper()
	goBin := Require(tb, "go")
	builds.Lock()
	b := builds.byPkg[pkg]
	if b == nil {
		b = &build{}
		builds.byPkg[pkg] = b
	}
	builds.Unlock()
	b.once.Do(func() { b.path, b.err = buildBinary(goBin, pkg) })
	if b.err != nil {
		tb.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.path
}

// buildBinary builds into a directory per module checkout and build mode,
// shared by test processes: each builds to a unique name and renames it into
// place, so a binary another process is running is never overwritten.
func buildBinary(goBin, pkg string) (string, error) {
	root, err := moduleRoot(goBin)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("itest-bin-%d-%s", os.Getuid(), buildKey(root)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating bin dir: %w", err)
	}
	final := filepath.Join(dir, filepath.Base(pkg))
	tmp := fmt.Sprintf("%s.tmp%d", final, os.Getpid())
	args := []string{"build", "-o", tmp}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("moving binary into place: %w", err)
	}
	return final, nil
}

func moduleRoot(goBin string) (string, error) {
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func buildKey(root string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s race=%v", root, raceEnabled)
	return strconv.FormatUint(h.Sum64(), 36)
}

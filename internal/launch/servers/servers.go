// Package servers is the one description of how the machine's servers that zkpost runs but does
// not own are started: ZooKeeper, Redis (cache shards, the queue primary and its replica) and
// MariaDB (primary and replica). For each it says which executable runs, with which
// configuration file or flags, in which data directory, how readiness is checked and how
// replication is set up. internal/testenv/itest (the test harness) and tools/devcluster (the
// local cluster) both start these servers from it, and run them through internal/procgroup;
// each keeps only what it does around a run (a test's cleanup and pause, a supervisor's restarts
// and state file). Our own daemons are described beside it, in internal/launch.
//
// Nothing here starts a process: a description gives a Command to run and the checks to make
// around it. Every server binds 127.0.0.1 only.
package servers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Command is an executable and its arguments.
type Command struct {
	Bin  string
	Args []string
}

// Host is the address every server binds.
const Host = "127.0.0.1"

// Addr returns "127.0.0.1:port".
func Addr(port int) string { return net.JoinHostPort(Host, strconv.Itoa(port)) }

// Packages names the Debian package that provides each executable or file the tests and the
// local cluster run.
var Packages = map[string]string{
	"java":                       "zookeeper",
	"zookeeper.jar":              "zookeeper",
	"redis-server":               "redis-server",
	"redis-cli":                  "redis-tools",
	"mariadbd":                   "mariadb-server",
	"mariadb-install-db":         "mariadb-server",
	"mariadb":                    "mariadb-client",
	"go":                         "golang-go",
	"chromium":                   "chromium",
	"promtool":                   "prometheus",
	"prometheus":                 "prometheus",
	"prometheus-redis-exporter":  "prometheus-redis-exporter",
	"prometheus-mysqld-exporter": "prometheus-mysqld-exporter",
	"prometheus-node-exporter":   "prometheus-node-exporter",
}

// ErrMissing reports an executable or file that is not installed.
type ErrMissing struct {
	// Name is the executable's name or the file's path.
	Name string
	// Package is the Debian package that provides it; "" when it is not one of Packages.
	Package string
}

func (e *ErrMissing) Error() string {
	if e.Package != "" {
		return fmt.Sprintf("%s not found; install it with: sudo apt-get install -y %s", e.Name, e.Package)
	}
	return fmt.Sprintf("%s not found", e.Name)
}

// binDirs are searched after PATH: a non-login PATH often lacks the sbin directories, and
// mariadbd lives in /usr/sbin.
var binDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

// LookPath returns the absolute path of the executable name, looked up in PATH and then in the
// sbin and bin directories. A missing executable is an *ErrMissing naming its package.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range binDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &ErrMissing{Name: name, Package: Packages[name]}
}

// requireFile returns path if it exists, or an *ErrMissing naming key's package.
func requireFile(path, key string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", &ErrMissing{Name: path, Package: Packages[key]}
	}
	return path, nil
}

// IsMissing reports whether err says something is not installed.
func IsMissing(err error) bool {
	var m *ErrMissing
	return errors.As(err, &m)
}

// ensureDir creates dir and its parents.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return nil
}

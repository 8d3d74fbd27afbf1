package servers

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestZooKeeperConfig(t *testing.T) {
	tests := []struct {
		name      string
		longLived bool
		want, not []string
	}{
		{"test server skips fsync", false, []string{"forceSync=no"}, []string{"autopurge.purgeInterval=1"}},
		{"long-lived server fsyncs and purges", true, []string{"autopurge.purgeInterval=1", "autopurge.snapRetainCount=3"},
			[]string{"forceSync=no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := ZooKeeper{Dir: "/d", Port: 1234, Tick: 200 * time.Millisecond, LongLived: tt.longLived}
			lines := strings.Split(z.Config(), "\n")
			common := []string{"tickTime=200", "dataDir=/d/data", "clientPort=1234", "clientPortAddress=127.0.0.1",
				"4lw.commands.whitelist=*", "admin.enableServer=false"}
			for _, w := range append(common, tt.want...) {
				if !slices.Contains(lines, w) {
					t.Errorf("zoo.cfg lacks %q:\n%s", w, z.Config())
				}
			}
			for _, n := range tt.not {
				if slices.Contains(lines, n) {
					t.Errorf("zoo.cfg has %q:\n%s", n, z.Config())
				}
			}
		})
	}
}

func TestRedisArgs(t *testing.T) {
	tests := []struct {
		name      string
		r         Redis
		want, not []string
	}{
		{"cache shard keeps nothing", Redis{Dir: "/d", Port: 7}, []string{"--save ", "--appendonly no"},
			[]string{"--appendonly yes", "--replicaof"}},
		{"queue fsyncs every write", Redis{Dir: "/d", Port: 7, AOF: true}, []string{"--appendonly yes", "--appendfsync always"},
			[]string{"--save "}},
		{"replica follows its primary", Redis{Dir: "/d", Port: 7, AOF: true, ReplicaOf: "127.0.0.1:9"},
			[]string{"--replicaof 127.0.0.1 9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := tt.r.Args()
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range append([]string{"--port 7", "--bind 127.0.0.1", "--dir /d"}, tt.want...) {
				if !strings.Contains(line, w) {
					t.Errorf("args %q lack %q", line, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(line, n) {
					t.Errorf("args %q have %q", line, n)
				}
			}
		})
	}
	if _, err := (Redis{ReplicaOf: "no-port"}).Args(); err == nil {
		t.Error("ReplicaOf without a port: got nil error")
	}
}

// TestMariaDBInstallMatchesServer: mariadb-install-db and mariadbd must be given the same InnoDB
// sizes, and --no-defaults must come first for both.
func TestMariaDBInstallMatchesServer(t *testing.T) {
	for _, in := range []InnoDB{TestInnoDB, ClusterInnoDB} {
		m := MariaDB{Dir: "/d", Socket: "/d/s", Port: 3, ServerID: 2, InnoDB: in}
		server, install := m.Args(), InstallArgs(m.DataDir(), in)
		for _, args := range [][]string{server, install} {
			if args[0] != "--no-defaults" {
				t.Errorf("first flag %q, want --no-defaults", args[0])
			}
		}
		for _, f := range in.flags() {
			if !slices.Contains(server, f) || !slices.Contains(install, f) {
				t.Errorf("%s: server %q, install %q: want both", f, server, install)
			}
		}
		for _, f := range []string{"--datadir=/d/data", "--port=3", "--server-id=2", "--log-bin=mysql-bin",
			"--gtid-strict-mode=ON", "--bind-address=127.0.0.1", "--socket=/d/s"} {
			if !slices.Contains(server, f) {
				t.Errorf("mariadbd args %q lack %q", server, f)
			}
		}
	}
}

// TestMariaDBParallelApply: a server given ParallelApply applies replicated transactions on that
// many threads; one without it keeps MariaDB's single SQL thread.
func TestMariaDBParallelApply(t *testing.T) {
	m := MariaDB{Dir: "/d", Socket: "/d/s", Port: 3, ServerID: 2, InnoDB: ClusterInnoDB, ParallelApply: 4}
	if !slices.Contains(m.Args(), "--slave-parallel-threads=4") {
		t.Errorf("ParallelApply 4: args %q lack --slave-parallel-threads=4", m.Args())
	}
	m.ParallelApply = 0
	for _, a := range m.Args() {
		if strings.HasPrefix(a, "--slave-parallel-threads") {
			t.Errorf("ParallelApply 0: args have %q", a)
		}
	}
}

func TestSocketPathFitsTheLimit(t *testing.T) {
	short := "/tmp/x"
	if got, want := SocketPath(short), filepath.Join(short, "mysqld.sock"); got != want {
		t.Errorf("SocketPath(%q) = %q, want %q", short, got, want)
	}
	long := "/tmp/" + strings.Repeat("TestSomethingWithAVeryLongName/", 5) + "001"
	got := SocketPath(long)
	if len(got) >= 108 || strings.HasPrefix(got, long) {
		t.Errorf("SocketPath(long) = %q (%d bytes), want a short path outside the dir", got, len(got))
	}
	if again := SocketPath(long); again != got {
		t.Errorf("SocketPath is not stable: %q then %q", got, again)
	}
	if other := SocketPath(long + "2"); other == got {
		t.Errorf("two dirs share the socket %q", got)
	}
}

func TestLookPathNamesThePackage(t *testing.T) {
	_, err := LookPath("zkpost-no-such-binary")
	var m *ErrMissing
	if !errors.As(err, &m) || !IsMissing(err) {
		t.Fatalf("got %v, want an *ErrMissing", err)
	}
	Packages["zkpost-no-such-binary"] = "zkpost-pkg"
	defer delete(Packages, "zkpost-no-such-binary")
	_, err = LookPath("zkpost-no-such-binary")
	if !strings.Contains(err.Error(), "apt-get install -y zkpost-pkg") {
		t.Errorf("got %q, want the apt-get command", err)
	}
}

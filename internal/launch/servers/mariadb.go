package servers

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
)

// The replication account, created on every server; a replica connects to its primary with it.
const (
	ReplUser     = "repl"
	ReplPassword = "repl"
)

// InnoDB is the size of InnoDB's buffer pool and redo log. mariadb-install-db and mariadbd must
// be given the same.
type InnoDB struct{ BufferPool, LogFile string }

// The sizes in use. A test starts many servers at once, and each copies a data directory that
// holds the preallocated redo log, so it takes the smaller one. A cluster's are MariaDB's own
// defaults, or more: its posts table outgrows a smaller pool within minutes of load, and each
// insert then reads and later writes a random page of the (user_id, post_id) index
// (docs/benchmarks.md, "The database's buffer pool"). The pool's memory is taken as pages are
// read, not at start; a data directory made with another redo log size is resized on start.
var (
	TestInnoDB    = InnoDB{BufferPool: "32M", LogFile: "16M"}
	ClusterInnoDB = InnoDB{BufferPool: "256M", LogFile: "256M"}
)

func (in InnoDB) flags() []string {
	return []string{"--innodb-buffer-pool-size=" + in.BufferPool, "--innodb-log-file-size=" + in.LogFile}
}

// MariaDB is a mariadbd with binary logging and GTIDs on, so any server can be a replication
// primary: its data in Dir/data, root with no password over its Socket and (once CreateAccounts
// ran) over TCP from 127.0.0.1.
type MariaDB struct {
	Dir      string
	Socket   string // see SocketPath
	Port     int
	ServerID int // unique among servers that replicate from one another
	InnoDB   InnoDB
	// ParallelApply is how many threads apply a primary's transactions when the server is a
	// replica (slave_parallel_threads, in-order commit); 0 applies them on the one SQL thread.
	ParallelApply int
}

// ClusterParallelApply is a cluster's ParallelApply: MariaDB's usual remedy for a replica behind
// a primary that commits many small transactions at once (group commit), as write-through's does.
// Our interleaved measurement of its effect was within the VM's noise (docs/benchmarks.md, "The
// replica"). Commits stay in the primary's order, so the replica always holds a prefix of the
// primary's history.
const ClusterParallelApply = 4

// Addr returns the server's TCP address.
func (m MariaDB) Addr() string { return Addr(m.Port) }

// DataDir is where the databases live.
func (m MariaDB) DataDir() string { return filepath.Join(m.Dir, "data") }

// Args returns mariadbd's flags.
func (m MariaDB) Args() []string {
	args := []string{
		"--no-defaults", // must come first: ignore /etc/mysql
		"--datadir=" + m.DataDir(),
		"--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(m.Dir, "mariadbd.pid"),
		"--tmpdir=" + m.Dir,
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=" + Host,
		"--server-id=" + strconv.Itoa(m.ServerID),
		"--log-bin=mysql-bin",
		"--relay-log=relay-bin", // not named after the host, so restarts find it
		"--binlog-format=ROW",
		"--gtid-strict-mode=ON",
		"--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=2", // survives SIGKILL; only an OS crash loses commits
		"--slave-net-timeout=10",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
	}
	if m.ParallelApply > 0 {
		args = append(args, "--slave-parallel-threads="+strconv.Itoa(m.ParallelApply))
	}
	return append(append(args, asRoot()...), m.InnoDB.flags()...)
}

// asRoot is the flag mariadbd and mariadb-install-db need to run as root, which they otherwise
// refuse to do.
func asRoot() []string {
	if os.Getuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// Command returns the mariadbd command line, or an *ErrMissing when it is not installed.
func (m MariaDB) Command() (Command, error) {
	bin, err := LookPath("mariadbd")
	if err != nil {
		return Command{}, err
	}
	return Command{Bin: bin, Args: m.Args()}, nil
}

// Prepare creates the directories and, the first time, the data directory (Install).
func (m MariaDB) Prepare(ctx context.Context) error {
	if err := ensureDir(filepath.Dir(m.Socket)); err != nil {
		return err
	}
	if err := ensureDir(m.Dir); err != nil {
		return err
	}
	return Install(ctx, m.InnoDB, m.DataDir())
}

// SocketPath returns the unix socket path for a server in dir: in dir when that fits the
// 107-byte limit on socket paths, else in a directory of the system's temp dir named after dir.
// The caller creates its directory (Prepare does).
func SocketPath(dir string) string {
	p := filepath.Join(dir, "mysqld.sock")
	if len(p) < 100 {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(p))
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	return filepath.Join(base, "zkpost-mariadb-"+strconv.FormatUint(h.Sum64(), 36), "mysqld.sock")
}

// InstallArgs returns mariadb-install-db's flags for datadir.
func InstallArgs(datadir string, in InnoDB) []string {
	args := []string{"--no-defaults", "--datadir=" + datadir, "--auth-root-authentication-method=normal",
		"--skip-test-db"}
	return append(append(args, asRoot()...), in.flags()...)
}

// Install initialises datadir with mariadb-install-db unless it already is. The directory is
// built beside its final name and renamed into place, so a half-initialised one is never used;
// when two processes race, the one that loses uses the winner's.
func Install(ctx context.Context, in InnoDB, datadir string) error {
	if installed(datadir) {
		return nil
	}
	bin, err := LookPath("mariadb-install-db")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(datadir), filepath.Base(datadir)+".init")
	if err != nil {
		return fmt.Errorf("creating a work dir for mariadb-install-db: %w", err)
	}
	defer os.RemoveAll(work)
	data := filepath.Join(work, "data")
	if out, err := exec.CommandContext(ctx, bin, InstallArgs(data, in)...).CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	if err := os.Rename(data, datadir); err != nil && !installed(datadir) {
		return fmt.Errorf("moving the initialised datadir into place: %w", err)
	}
	return nil
}

func installed(datadir string) bool {
	_, err := os.Stat(filepath.Join(datadir, "mysql"))
	return err == nil
}

// open returns a handle for root over the server's socket.
func (m MariaDB) open() (*sql.DB, error) {
	db, err := sql.Open("mysql", "root@unix("+m.Socket+")/?timeout=2s&readTimeout=30s&writeTimeout=30s")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", m.Socket, err)
	}
	return db, nil
}

// Ready reports whether SELECT 1 works over the socket.
func (m MariaDB) Ready(ctx context.Context) bool {
	db, err := m.open()
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one) == nil && one == 1
}

// CreateAccounts lets root log in over TCP from 127.0.0.1 without a password and creates the
// replication account. It is not binlogged: a replica replays its primary's binlog from the
// start, and under gtid_strict_mode its own local GTIDs would conflict. It is idempotent.
func (m MariaDB) CreateAccounts(ctx context.Context) error {
	return m.Exec(ctx, []string{
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", ReplUser, ReplPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", ReplUser),
	}, nil)
}

// Replicate points the server at primary ("host:port") by GTID (MASTER_USE_GTID=slave_pos, as
// ReplUser), unless it already replicates (a restart keeps its settings), and starts both
// replication threads. It is not read_only: root would bypass that anyway.
func (m MariaDB) Replicate(ctx context.Context, primary string) error {
	host, port, err := net.SplitHostPort(primary)
	if err != nil {
		return fmt.Errorf("replicating from %q: %w", primary, err)
	}
	configured, err := m.replicating(ctx)
	if err != nil {
		return err
	}
	var stmts []string
	if !configured {
		stmts = append(stmts, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, "+
			"MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			SQLString(host), port, ReplUser, ReplPassword))
	}
	return m.Exec(ctx, nil, append(stmts, "START SLAVE"))
}

// replicating reports whether SHOW SLAVE STATUS has a row: replication is configured.
func (m MariaDB) replicating(ctx context.Context) (bool, error) {
	db, err := m.open()
	if err != nil {
		return false, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return false, fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	defer rows.Close()
	return rows.Next(), rows.Err()
}

// Exec runs unlogged statements with the binlog off, then logged ones, as root over the socket,
// on one connection, within 30s.
func (m MariaDB) Exec(ctx context.Context, unlogged, logged []string) error {
	db, err := m.open()
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", m.Socket, err)
	}
	defer conn.Close()
	run := func(stmts []string) error {
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	if err := run(append([]string{"SET SESSION sql_log_bin = 0"}, unlogged...)); err != nil {
		return err
	}
	return run(append([]string{"SET SESSION sql_log_bin = 1"}, logged...))
}

// QuoteIdent quotes s as an SQL identifier.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// SQLString escapes s for a single-quoted SQL string.
func SQLString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

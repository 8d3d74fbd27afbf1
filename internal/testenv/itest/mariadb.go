package itest

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
)

const mariaDBReadyLimit = 60 * time.Second

// Replication account created on every server; replicas connect with it.
const (
	ReplUser     = "repl"
	ReplPassword = "repl"
)

// MariaDB is a mariadbd server with binary logging and GTIDs on, so any
// server can be a replication primary. root has no password over TCP.
type MariaDB struct {
	*Process
	// ServerID is the server's server_id, unique within the test process.
	ServerID int

	socket  string
	primary *MariaDB // set on replicas
}

// innoDBSmall keeps InnoDB's memory and files small; the same sizes must be
// used by mariadb-install-db and mariadbd.
var innoDBSmall = []string{"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"}

var lastServerID atomic.Int64

// StartMariaDB starts a mariadbd in a fresh data directory (copied from a
// template initialised once per machine and MariaDB version), creates the
// root@127.0.0.1 and repl@% accounts, and waits until SELECT 1 over TCP works.
func StartMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	m := startMariaDB(tb)
	m.createAccounts(tb)
	return m
}

func startMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	bin := Require(tb, "mariadbd")
	tmpl := mariaDBTemplate(tb)
	m := &MariaDB{ServerID: int(lastServerID.Add(1))}
	m.Process = startOnFreePort(tb, func(port int) (*Process, error) {
		dir := tb.TempDir()
		if err := copyDir(tmpl, filepath.Join(dir, "data")); err != nil {
			return nil, fmt.Errorf("copying MariaDB template datadir: %w", err)
		}
		m.socket = shortSocketPath(tb)
		args := mariaDBArgs(dir, m.socket, port, m.ServerID)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ready := func() bool { return selectOne(addr) }
		return newProcess("mariadb", port, dir, bin, args, ready, mariaDBReadyLimit), nil
	})
	return m
}

func mariaDBArgs(dir, socket string, port, serverID int) []string {
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + filepath.Join(dir, "data"),
		"--socket=" + socket,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--tmpdir=" + dir,
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--user=root",
		"--server-id=" + strconv.Itoa(serverID),
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
	return append(args, innoDBSmall...)
}

// shortSocketPath returns a socket path in a fresh directory short enough for
// the 107-byte limit on unix socket paths, which tb.TempDir() paths (named
// after the test) can exceed.
func shortSocketPath(tb testing.TB) string {
	tb.Helper()
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	d, err := os.MkdirTemp(base, "itmy")
	if err != nil {
		tb.Fatalf("creating socket dir: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "mysqld.sock")
}

// createAccounts makes sure root may log in over TCP without a password and
// that the replication account exists. It is not binlogged: a replica replays
// the primary's binlog from the start, and with gtid_strict_mode its own
// local GTIDs would conflict.
func (m *MariaDB) createAccounts(tb testing.TB) {
	tb.Helper()
	db, err := sql.Open("mysql", "root@unix("+m.socket+")/")
	if err != nil {
		tb.Fatalf("opening MariaDB socket: %v", err)
	}
	defer db.Close()
	stmts := []string{
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", ReplUser, ReplPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", ReplUser),
	}
	if err := execUnlogged(db, stmts...); err != nil {
		tb.Fatalf("creating MariaDB accounts: %v", err)
	}
}

// execUnlogged runs stmts on one connection with the binlog off.
func execUnlogged(db *sql.DB, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close()
	for _, s := range append([]string{"SET SESSION sql_log_bin = 0"}, stmts...) {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// DSN returns a go-sql-driver/mysql data source name for root over TCP on
// database db ("" for none).
func (m *MariaDB) DSN(db string) string { return dsn(m.Addr(), db, 5*time.Second) }

func dsn(addr, db string, dialTimeout time.Duration) string {
	return fmt.Sprintf("root@tcp(%s)/%s?parseTime=true&multiStatements=false&charset=utf8mb4"+
		"&collation=utf8mb4_unicode_ci&timeout=%s&readTimeout=30s&writeTimeout=30s", addr, db, dialTimeout)
}

// DB returns a handle on database db, closed when the test ends. On a
// primary the database is created if missing. On a replica it is not created
// (a local CREATE DATABASE would break replication of the primary's); DB
// waits for it to arrive by replication instead.
func (m *MariaDB) DB(tb testing.TB, db string) *sql.DB {
	tb.Helper()
	if db != "" {
		m.ensureDatabase(tb, db)
	}
	h, err := sql.Open("mysql", m.DSN(db))
	if err != nil {
		tb.Fatalf("opening %s: %v", m.DSN(db), err)
	}
	tb.Cleanup(func() { h.Close() })
	if err := pingCtx(h); err != nil {
		tb.Fatalf("connecting to MariaDB %s database %q: %v", m.Addr(), db, err)
	}
	return h
}

func (m *MariaDB) ensureDatabase(tb testing.TB, db string) {
	tb.Helper()
	if m.primary != nil {
		WaitFor(tb, 20*time.Second, "database "+db+" to replicate to "+m.Addr(), func() bool {
			var n int
			err := m.queryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", []any{db}, &n)
			return err == nil && n == 1
		})
		return
	}
	if err := m.exec("CREATE DATABASE IF NOT EXISTS " + quoteIdent(db)); err != nil {
		tb.Fatalf("creating database %q: %v", db, err)
	}
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// exec runs statements as root with no default database, on one connection.
func (m *MariaDB) exec(stmts ...string) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// queryRow runs one single-row query as root and scans it into dest.
func (m *MariaDB) queryRow(query string, args []any, dest ...any) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, query, args...).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}

// selectOne is the readiness probe: a real SELECT 1 over TCP.
func selectOne(addr string) bool {
	db, err := sql.Open("mysql", dsn(addr, "", 500*time.Millisecond))
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one) == nil && one == 1
}

func pingCtx(db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// The template data directory, initialised once per test process (or found
// ready from an earlier one) and copied for every server: copying is
// cheaper than mariadb-install-db and needs no lock between processes.
var mariaTemplate struct {
	once sync.Once
	dir  string
	err  error
}

func mariaDBTemplate(tb testing.TB) string {
	tb.Helper()
	install := Require(tb, "mariadb-install-db")
	server := Require(tb, "mariadbd")
	mariaTemplate.once.Do(func() {
		mariaTemplate.dir, mariaTemplate.err = ensureTemplate(install, server)
	})
	if mariaTemplate.err != nil {
		tb.Fatalf("initialising MariaDB template datadir: %v", mariaTemplate.err)
	}
	return mariaTemplate.dir
}

func installArgs(datadir string) []string {
	args := []string{"--no-defaults", "--datadir=" + datadir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--user=root"}
	return append(args, innoDBSmall...)
}

// ensureTemplate returns the template datadir for this mariadbd binary,
// creating it if needed. It is built beside its final name and renamed into
// place, so a half-written template is never used.
func ensureTemplate(install, server string) (string, error) {
	final := filepath.Join(os.TempDir(), fmt.Sprintf("itest-mariadb-%d-%s", os.Getuid(), templateKey(server)))
	if _, err := os.Stat(filepath.Join(final, "mysql")); err == nil {
		return final, nil
	}
	work, err := os.MkdirTemp(os.TempDir(), filepath.Base(final)+".tmp")
	if err != nil {
		return "", fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(work)
	data := filepath.Join(work, "data")
	out, err := exec.Command(install, installArgs(data)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	if err := os.Rename(data, final); err != nil {
		if _, statErr := os.Stat(filepath.Join(final, "mysql")); statErr == nil {
			return final, nil // another test process won the race
		}
		return "", fmt.Errorf("moving template into place: %w", err)
	}
	return final, nil
}

// templateKey identifies the server binary and install options, so an
// upgraded MariaDB or changed options get a fresh template.
func templateKey(server string) string {
	h := fnv.New64a()
	if fi, err := os.Stat(server); err == nil {
		fmt.Fprintf(h, "%s %d %d ", server, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprint(h, strings.Join(installArgs(""), " "))
	return strconv.FormatUint(h.Sum64(), 36)
}

// copyDir copies the regular files and directories of src into a new dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o660)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

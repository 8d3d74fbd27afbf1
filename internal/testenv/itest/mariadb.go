package itest

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver

	"github.com/the-red/zkpost/internal/launch/servers"
)

const mariaDBReadyLimit = 60 * time.Second

// Replication account created on every server; replicas connect with it.
const (
	ReplUser     = servers.ReplUser
	ReplPassword = servers.ReplPassword
)

// MariaDB is a mariadbd server with binary logging and GTIDs on, so any
// server can be a replication primary. root has no password over TCP.
type MariaDB struct {
	*Process
	// ServerID is the server's server_id, unique within the test process.
	ServerID int

	server  servers.MariaDB
	primary *MariaDB // set on replicas
}

var lastServerID atomic.Int64

// StartMariaDB starts a mariadbd as internal/launch/servers describes it, in a
// fresh data directory (copied from a template initialised once per machine
// and MariaDB version), waits until SELECT 1 works, and creates the
// root@127.0.0.1 and repl@% accounts.
func StartMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	m := startMariaDB(tb)
	m.createAccounts(tb)
	return m
}

func startMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	tmpl := mariaDBTemplate(tb)
	m := &MariaDB{ServerID: int(lastServerID.Add(1))}
	m.Process = startOnFreePort(tb, func(port int) (*Process, error) {
		dir := tb.TempDir()
		m.server = servers.MariaDB{Dir: dir, Socket: servers.SocketPath(dir), Port: port,
			ServerID: m.ServerID, InnoDB: servers.TestInnoDB}
		if err := copyDir(tmpl, m.server.DataDir()); err != nil {
			return nil, fmt.Errorf("copying MariaDB template datadir: %w", err)
		}
		if err := socketDir(tb, m.server); err != nil {
			return nil, err
		}
		return serverProcess(tb, "mariadb", dir, port, m.server, mariaDBReadyLimit), nil
	})
	return m
}

// socketDir creates the directory of the server's socket, removed when the test ends if it is
// not in the server's own directory (a long temp dir puts it elsewhere: servers.SocketPath).
func socketDir(tb testing.TB, m servers.MariaDB) error {
	d := filepath.Dir(m.Socket)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("creating socket dir: %w", err)
	}
	if d != m.Dir {
		tb.Cleanup(func() { os.RemoveAll(d) })
	}
	return nil
}

// createAccounts makes sure root may log in over TCP without a password and
// that the replication account exists.
func (m *MariaDB) createAccounts(tb testing.TB) {
	tb.Helper()
	if err := m.server.CreateAccounts(context.Background()); err != nil {
		tb.Fatalf("creating MariaDB accounts: %v", err)
	}
}

// DSN returns a go-sql-driver/mysql data source name for root over TCP on
// database db ("" for none).
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("root@tcp(%s)/%s?parseTime=true&multiStatements=false&charset=utf8mb4"+
		"&collation=utf8mb4_unicode_ci&timeout=5s&readTimeout=30s&writeTimeout=30s", m.Addr(), db)
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
	if err := m.exec("CREATE DATABASE IF NOT EXISTS " + servers.QuoteIdent(db)); err != nil {
		tb.Fatalf("creating database %q: %v", db, err)
	}
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

func pingCtx(db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// The template data directory, initialised once per test process (or found
// ready from an earlier one) and copied for every server: copying is
// cheaper than mariadb-install-db, and servers.Install needs no lock between
// processes.
var mariaTemplate struct {
	once sync.Once
	dir  string
	err  error
}

func mariaDBTemplate(tb testing.TB) string {
	tb.Helper()
	server := Require(tb, "mariadbd")
	Require(tb, "mariadb-install-db")
	mariaTemplate.once.Do(func() {
		mariaTemplate.dir = filepath.Join(os.TempDir(), fmt.Sprintf("itest-mariadb-%d-%s", os.Getuid(), templateKey(server)))
		mariaTemplate.err = servers.Install(context.Background(), servers.TestInnoDB, mariaTemplate.dir)
	})
	if mariaTemplate.err != nil {
		tb.Fatalf("initialising MariaDB template datadir: %v", mariaTemplate.err)
	}
	return mariaTemplate.dir
}

// templateKey identifies the server binary and install options, so an
// upgraded MariaDB or changed options get a fresh template.
func templateKey(server string) string {
	h := fnv.New64a()
	if fi, err := os.Stat(server); err == nil {
		fmt.Fprintf(h, "%s %d %d ", server, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprint(h, strings.Join(servers.InstallArgs("", servers.TestInnoDB), " "))
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

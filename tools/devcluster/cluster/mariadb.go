package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
)

// Replication account on every server; the replica connects with it.
const (
	replUser     = "repl"
	replPassword = "repl"
)

// innoDBSmall keeps InnoDB's memory and files small; mariadb-install-db and mariadbd must agree.
var innoDBSmall = []string{"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M"}

func (c *Cluster) mariadbSpec(n Node) (spec, error) {
	server, err := lookPath("mariadbd")
	if err != nil {
		return spec{}, err
	}
	install, err := lookPath("mariadb-install-db")
	if err != nil {
		return spec{}, err
	}
	dir := c.dataDir(n.Name)
	sock := c.mariadbSocket(n.Name)
	serverID := 1
	if n.Of != "" {
		serverID = 2
	}
	return spec{
		bin:  server,
		args: mariadbArgs(dir, sock, c.port(n.Name), serverID),
		prepare: func(ctx context.Context) error {
			if err := ensureDir(filepath.Dir(sock)); err != nil {
				return err
			}
			return installDB(ctx, install, filepath.Join(dir, "data"))
		},
		ready: func(ctx context.Context) bool { return socketSelectOne(ctx, sock) },
		setup: func(ctx context.Context) error {
			if n.Of != "" {
				return c.setupReplica(ctx, sock, c.port(n.Of))
			}
			return c.setupPrimary(ctx, sock)
		},
	}, nil
}

// mariadbSocket returns a unix socket path for node, short enough for the 107-byte limit.
func (c *Cluster) mariadbSocket(node string) string {
	p := filepath.Join(c.dataDir(node), "mysqld.sock")
	if len(p) < 100 {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(p))
	return filepath.Join(os.TempDir(), "devcluster-"+strconv.FormatUint(h.Sum64(), 36), "mysqld.sock")
}

func mariadbArgs(dir, socket string, port, serverID int) []string {
	args := []string{
		"--no-defaults", // must come first: ignore /etc/mysql
		"--datadir=" + filepath.Join(dir, "data"),
		"--socket=" + socket,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--tmpdir=" + dir,
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--server-id=" + strconv.Itoa(serverID),
		"--log-bin=mysql-bin",
		"--relay-log=relay-bin",
		"--binlog-format=ROW",
		"--gtid-strict-mode=ON",
		"--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=2", // survives SIGKILL; only an OS crash loses commits
		"--slave-net-timeout=10",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
	}
	if os.Getuid() == 0 {
		args = append(args, "--user=root") // mariadbd refuses to run as root otherwise
	}
	return append(args, innoDBSmall...)
}

// installDB initialises datadir once; a half-initialised directory is never left in place.
func installDB(ctx context.Context, install, datadir string) error {
	if _, err := os.Stat(filepath.Join(datadir, "mysql")); err == nil {
		return nil
	}
	work := datadir + ".init"
	os.RemoveAll(work)
	args := []string{"--no-defaults", "--datadir=" + work, "--auth-root-authentication-method=normal",
		"--skip-test-db"}
	if os.Getuid() == 0 {
		args = append(args, "--user=root")
	}
	out, err := exec.CommandContext(ctx, install, append(args, innoDBSmall...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	if err := os.Rename(work, datadir); err != nil {
		return fmt.Errorf("moving the initialised datadir into place: %w", err)
	}
	return nil
}

func openSocket(sock string) (*sql.DB, error) {
	return sql.Open("mysql", "root@unix("+sock+")/?timeout=2s&readTimeout=30s&writeTimeout=30s")
}

func socketSelectOne(ctx context.Context, sock string) bool {
	db, err := openSocket(sock)
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one) == nil && one == 1
}

// localAccounts are created on every server with the binlog off: a replica replays the
// primary's binlog from its start, and under gtid_strict_mode local GTIDs would conflict.
func localAccounts() []string {
	return []string{
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", replUser, replPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", replUser),
	}
}

// setupPrimary creates the local accounts and, binlogged so the replica gets them, the
// services' database and user.
func (c *Cluster) setupPrimary(ctx context.Context, sock string) error {
	user := fmt.Sprintf("'%s'@'%%'", sqlString(c.cfg.DBUser))
	logged := []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(c.cfg.DBName) +
			" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s'", user, sqlString(c.cfg.DBPassword)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO %s", quoteIdent(c.cfg.DBName), user),
		// writebackd and postsvcd read the replica's lag.
		fmt.Sprintf("GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO %s", user),
	}
	return execSocket(ctx, sock, localAccounts(), logged)
}

// setupReplica creates the local accounts and points the server at the primary by GTID, unless
// it already replicates (a restart keeps its replication settings).
func (c *Cluster) setupReplica(ctx context.Context, sock string, primaryPort int) error {
	if err := execSocket(ctx, sock, localAccounts(), nil); err != nil {
		return err
	}
	db, err := openSocket(sock)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	configured := rows.Next()
	rows.Close()
	var stmts []string
	if !configured {
		stmts = append(stmts, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, "+
			"MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			primaryPort, replUser, replPassword))
	}
	stmts = append(stmts, "START SLAVE")
	return execSocket(ctx, sock, nil, stmts)
}

// execSocket runs unlogged statements with the binlog off, then logged ones, as root over the
// unix socket, on one connection.
func execSocket(ctx context.Context, sock string, unlogged, logged []string) error {
	db, err := openSocket(sock)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", sock, err)
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

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func sqlString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// DSN returns a go-sql-driver DSN for the services' user on node (a MariaDB node name).
func (c *Cluster) DSN(node string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&charset=utf8mb4&timeout=5s",
		c.cfg.DBUser, c.cfg.DBPassword, c.addr(node), c.cfg.DBName)
}

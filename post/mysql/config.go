// Package mysql is the posts table: its schema (schema.sql, the one source of truth), a Store
// that reads and writes it over one *sql.DB, and a Router that sends writes to the primary and
// reads to a healthy, caught-up replica (docs/architecture.md#the-database).
//
// The SQL is MySQL 8 compatible; tests and the compose file run MariaDB. Post ids are Snowflake
// ids above 2^53: they travel as uint64 end to end (BIGINT UNSIGNED, never a float).
//
// The Router never calls ZooKeeper or a health check on the request path: endpoints arrive through
// SetEndpoints (from the watched R/db node) and replica health and lag are measured by a
// background loop; Primary and Reader only read that in-memory state.
package mysql

import (
	"flag"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Config holds the database flags shared by every daemon that uses the posts table.
type Config struct {
	User     string
	Password string // from flags or the environment only, never ZooKeeper; masked in logs
	Name     string // database (schema) name
	// MaxLag is the replication lag past which a replica stops taking reads.
	MaxLag time.Duration
	// CheckInterval is how often replica health and lag (and primary reachability) are measured.
	CheckInterval time.Duration
	// DialTimeout bounds connecting; IOTimeout bounds each network read or write.
	DialTimeout time.Duration
	IOTimeout   time.Duration
	// MaxOpenConns bounds each endpoint's connection pool.
	MaxOpenConns int
}

// RegisterFlags adds the --db-* flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.User, "db-user", "zkpost", "database user")
	fs.Var((*secretFlag)(&c.Password), "db-password", "database password (flags or environment only; never stored in ZooKeeper)")
	fs.StringVar(&c.Name, "db-name", "zkpost", "database name")
	fs.DurationVar(&c.MaxLag, "db-max-lag", 5*time.Second, "replication lag past which a replica takes no reads")
	fs.DurationVar(&c.CheckInterval, "db-check-interval", time.Second, "how often replica health and lag are checked")
	fs.DurationVar(&c.DialTimeout, "db-dial-timeout", 2*time.Second, "database connect timeout")
	fs.DurationVar(&c.IOTimeout, "db-io-timeout", 10*time.Second, "database network read/write timeout")
	fs.IntVar(&c.MaxOpenConns, "db-max-conns", 32, "connections per database endpoint")
}

func (c Config) withDefaults() Config {
	if c.MaxLag <= 0 {
		c.MaxLag = 5 * time.Second
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 10 * time.Second
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 32
	}
	return c
}

// DSN returns the go-sql-driver/mysql data source name for the endpoint hostport.
//
// Times are read and written in UTC. interpolateParams makes a multi-row upsert one round trip
// instead of prepare, execute and close; it is safe with the utf8mb4 connection charset.
func DSN(cfg Config, hostport string) string {
	cfg = cfg.withDefaults()
	m := driver.NewConfig()
	m.User = cfg.User
	m.Passwd = cfg.Password
	m.Net = "tcp"
	m.Addr = hostport
	m.DBName = cfg.Name
	m.ParseTime = true
	m.Loc = time.UTC
	m.InterpolateParams = true
	m.Timeout = cfg.DialTimeout
	m.ReadTimeout = cfg.IOTimeout
	m.WriteTimeout = cfg.IOTimeout
	m.Params = map[string]string{"charset": "utf8mb4", "time_zone": "'+00:00'"}
	m.Collation = "utf8mb4_unicode_ci"
	return m.FormatDSN()
}

// secretFlag is the --db-password flag value: flagenv.Describe masks it when the config is logged.
type secretFlag string

func (s *secretFlag) String() string {
	if s == nil {
		return ""
	}
	return string(*s)
}

func (s *secretFlag) Set(v string) error { *s = secretFlag(v); return nil }

func (s *secretFlag) IsSecret() bool { return true }

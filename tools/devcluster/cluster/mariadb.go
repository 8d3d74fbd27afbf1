package cluster

import (
	"context"
	"fmt"

	"github.com/the-red/zkpost/internal/launch/servers"
)

// mariadbSpec starts a MariaDB as internal/launch/servers describes it: the primary (server id
// 1) or, for a node with Of, its replica (server id 2).
func (c *Cluster) mariadbSpec(n Node) (spec, error) {
	dir := c.dataDir(n.Name)
	m := servers.MariaDB{Dir: dir, Socket: servers.SocketPath(dir), Port: c.port(n.Name), ServerID: 1,
		InnoDB: servers.ClusterInnoDB, ParallelApply: servers.ClusterParallelApply}
	if n.Of != "" {
		m.ServerID = 2
	}
	cmd, err := m.Command()
	if err != nil {
		return spec{}, err
	}
	if _, err := servers.LookPath("mariadb-install-db"); err != nil {
		return spec{}, err
	}
	return spec{
		bin: cmd.Bin, args: cmd.Args,
		prepare: m.Prepare,
		ready:   m.Ready,
		setup: func(ctx context.Context) error {
			if err := m.CreateAccounts(ctx); err != nil {
				return err
			}
			if n.Of != "" {
				return m.Replicate(ctx, c.addr(n.Of))
			}
			return m.Exec(ctx, nil, c.serviceAccount())
		},
	}, nil
}

// serviceAccount creates the services' database and user on the primary, binlogged so the
// replica gets them.
func (c *Cluster) serviceAccount() []string {
	user := fmt.Sprintf("'%s'@'%%'", servers.SQLString(c.cfg.DBUser))
	db := servers.QuoteIdent(c.cfg.DBName)
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + db + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s'", user, servers.SQLString(c.cfg.DBPassword)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO %s", db, user),
		// writebackd and postsvcd read the replica's lag.
		fmt.Sprintf("GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO %s", user),
	}
}

// DSN returns a go-sql-driver DSN for the services' user on node (a MariaDB node name).
func (c *Cluster) DSN(node string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&charset=utf8mb4&timeout=5s",
		c.cfg.DBUser, c.cfg.DBPassword, c.addr(node), c.cfg.DBName)
}

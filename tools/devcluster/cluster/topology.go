package cluster

// Kind says how the supervisor treats a node's process.
type Kind int

const (
	// Infra is a server we do not own (ZooKeeper, Redis, MariaDB, Prometheus): started and
	// stopped, but not restarted when it dies, so a crash stays visible.
	Infra Kind = iota
	// Daemon is one of our long-running daemons: restarted with backoff when it exits, unless
	// it was stopped or killed through the supervisor.
	Daemon
	// OneShot runs to completion (zoo_setup); Up waits for it to exit 0.
	OneShot
)

func (k Kind) String() string {
	switch k {
	case Daemon:
		return "daemon"
	case OneShot:
		return "oneshot"
	}
	return "infra"
}

// Program names what a node runs; each has a builder in programs.go.
type Program string

// The programs of the topology.
const (
	ProgZooKeeper  Program = "zookeeper"
	ProgRedisCache Program = "redis-cache"
	ProgRedisQueue Program = "redis-queue" // AOF on; the replica follows Node.Of
	ProgMariaDB    Program = "mariadb"     // a replica follows Node.Of by GTID
	ProgZooSetup   Program = "zoo_setup"
	ProgGuidd      Program = "guidd"
	ProgScrapd     Program = "scrapd"
	ProgPostsvcd   Program = "postsvcd"
	ProgWritebackd Program = "writebackd"
	ProgRedismon   Program = "redismon"
	ProgWorkWebUI  Program = "workwebui"
	ProgPrometheus Program = "prometheus"
)

// Node is one process of the topology.
type Node struct {
	Name    string
	Program Program
	Kind    Kind
	// Port is the default port (docs/operations.md#ports); Config.Ports overrides it. 0: serves none.
	Port int
	// Of names the primary a replica follows.
	Of string
	// Service is the ZooKeeper service directory the node registers in (R/<Service>/nodes).
	Service string
	// Deps must be ready (or, for a OneShot, finished) before the node starts.
	Deps []string
	// Optional nodes are skipped when their executable is not installed.
	Optional bool
}

// Topology is the whole cluster of docs/architecture.md#the-processes, in start order (every node
// after its Deps).
var Topology = []Node{
	{Name: "zookeeper", Program: ProgZooKeeper, Kind: Infra, Port: 2181},
	{Name: "redis1", Program: ProgRedisCache, Kind: Infra, Port: 16380},
	{Name: "redis2", Program: ProgRedisCache, Kind: Infra, Port: 16381},
	{Name: "redis3", Program: ProgRedisCache, Kind: Infra, Port: 16382},
	{Name: "queue-primary", Program: ProgRedisQueue, Kind: Infra, Port: 16379},
	{Name: "queue-replica", Program: ProgRedisQueue, Kind: Infra, Port: 16383, Of: "queue-primary",
		Deps: []string{"queue-primary"}},
	{Name: "mariadb-primary", Program: ProgMariaDB, Kind: Infra, Port: 13306},
	{Name: "mariadb-replica", Program: ProgMariaDB, Kind: Infra, Port: 13307, Of: "mariadb-primary",
		Deps: []string{"mariadb-primary"}},
	{Name: "zoo_setup", Program: ProgZooSetup, Kind: OneShot,
		Deps: []string{"zookeeper", "redis1", "redis2", "redis3", "queue-primary", "queue-replica",
			"mariadb-primary", "mariadb-replica"}},
	{Name: "guid-1", Program: ProgGuidd, Kind: Daemon, Port: 8010, Service: "guid", Deps: []string{"zoo_setup"}},
	{Name: "guid-2", Program: ProgGuidd, Kind: Daemon, Port: 8011, Service: "guid", Deps: []string{"zoo_setup"}},
	{Name: "guid-3", Program: ProgGuidd, Kind: Daemon, Port: 8012, Service: "guid", Deps: []string{"zoo_setup"}},
	{Name: "scrap-1", Program: ProgScrapd, Kind: Daemon, Port: 8020, Service: "scrap", Deps: []string{"zoo_setup"}},
	{Name: "scrap-2", Program: ProgScrapd, Kind: Daemon, Port: 8021, Service: "scrap", Deps: []string{"zoo_setup"}},
	{Name: "redismon-1", Program: ProgRedismon, Kind: Daemon, Port: 8040, Service: "redismon", Deps: []string{"zoo_setup"}},
	{Name: "redismon-2", Program: ProgRedismon, Kind: Daemon, Port: 8041, Service: "redismon", Deps: []string{"zoo_setup"}},
	{Name: "writeback-1", Program: ProgWritebackd, Kind: Daemon, Port: 8030, Service: "writeback",
		Deps: []string{"zoo_setup"}},
	{Name: "writeback-2", Program: ProgWritebackd, Kind: Daemon, Port: 8031, Service: "writeback",
		Deps: []string{"zoo_setup"}},
	{Name: "postsvc-1", Program: ProgPostsvcd, Kind: Daemon, Port: 8000, Service: "postsvc",
		Deps: []string{"guid-1", "guid-2", "guid-3", "scrap-1", "scrap-2", "writeback-1", "writeback-2"}},
	{Name: "postsvc-2", Program: ProgPostsvcd, Kind: Daemon, Port: 8001, Service: "postsvc",
		Deps: []string{"guid-1", "guid-2", "guid-3", "scrap-1", "scrap-2", "writeback-1", "writeback-2"}},
	{Name: "workwebui", Program: ProgWorkWebUI, Kind: Daemon, Port: 5040, Deps: []string{"zoo_setup"}},
	// Exporters (docs/monitoring.md): each Debian one beside the server it exports; zkexporter
	// after them all, since it announces those that run.
	{Name: "redis1-exporter", Program: ProgRedisExporter, Kind: Infra, Port: 9121, Of: "redis1", Optional: true,
		Deps: []string{"redis1"}},
	{Name: "redis2-exporter", Program: ProgRedisExporter, Kind: Infra, Port: 9122, Of: "redis2", Optional: true,
		Deps: []string{"redis2"}},
	{Name: "redis3-exporter", Program: ProgRedisExporter, Kind: Infra, Port: 9123, Of: "redis3", Optional: true,
		Deps: []string{"redis3"}},
	{Name: "queue-primary-exporter", Program: ProgRedisExporter, Kind: Infra, Port: 9124, Of: "queue-primary",
		Optional: true, Deps: []string{"queue-primary"}},
	{Name: "queue-replica-exporter", Program: ProgRedisExporter, Kind: Infra, Port: 9125, Of: "queue-replica",
		Optional: true, Deps: []string{"queue-replica"}},
	// After zoo_setup: the services' database user is created by mariadb-primary's setup.
	{Name: "mariadb-primary-exporter", Program: ProgMySQLExporter, Kind: Infra, Port: 9104, Of: "mariadb-primary",
		Optional: true, Deps: []string{"mariadb-primary", "zoo_setup"}},
	{Name: "mariadb-replica-exporter", Program: ProgMySQLExporter, Kind: Infra, Port: 9105, Of: "mariadb-replica",
		Optional: true, Deps: []string{"mariadb-replica", "zoo_setup"}},
	{Name: "node-exporter", Program: ProgNodeExporter, Kind: Infra, Port: 9100, Optional: true},
	// Infra like the other exporters: not restarted, so a crash shows (ExporterDown, ServiceDown's
	// absent series); and not one of internal/launch's daemons, since it takes --announce.
	{Name: "zkexporter", Program: ProgZKExporter, Kind: Infra, Port: 9141, Deps: []string{"zoo_setup"}},
	// After zoo_setup, which creates the service directories: Prometheus' discovery retries a
	// missing path only every 10s.
	{Name: "prometheus", Program: ProgPrometheus, Kind: Infra, Port: 9090, Optional: true,
		Deps: []string{"zoo_setup"}},
}

// ServiceDirs are the ZooKeeper service directories Prometheus discovers targets from. redismon
// registers under R/redismon/nodes too (an addition to the reference's layout:
// docs/zookeeper.md#additions-to-the-reference-layout); workwebui, an unauthenticated admin UI
// kept on loopback, registers nowhere.
var ServiceDirs = []string{"guid", "scrap", "postsvc", "writeback", "redismon"}

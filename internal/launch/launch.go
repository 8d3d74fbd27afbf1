// Package launch is the one description of how each zkpost daemon is started: its binary, the
// package it is built from, the flags every instance is given, and the HTTP path that says it is
// ready. internal/testenv/itest (the test harness) and tools/devcluster start daemons from it, and
// docker/'s tests check docker-compose.yml against it, so the four places that used to spell a
// daemon's flags out (the flag definitions, devcluster, the compose file, the docs) cannot
// drift apart.
package launch

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/the-red/zkpost/internal/flagenv"
)

// Program is how one of our daemons is started.
type Program struct {
	// Binary is the executable's name, also the prefix of its environment variables.
	Binary string
	// Package is the main package, relative to the module root.
	Package string
	// Service is the ZooKeeper service directory it registers in (R/<Service>/nodes); "" when
	// it registers nowhere.
	Service string
	// ReadyPath answers 200 once the daemon is ready to be depended on. redismon's is /healthz:
	// only the elected leader calls itself ready, and a standby is a healthy node too.
	ReadyPath string
	// Database says whether it takes the --db-user, --db-password and --db-name flags.
	Database bool
}

// The daemons, by binary.
var (
	Guidd      = Program{Binary: "guidd", Package: "./guid/cmd/guidd", Service: "guid", ReadyPath: "/readyz"}
	Scrapd     = Program{Binary: "scrapd", Package: "./scrap/cmd/scrapd", Service: "scrap", ReadyPath: "/readyz"}
	Postsvcd   = Program{Binary: "postsvcd", Package: "./postsvc/cmd/postsvcd", Service: "postsvc", ReadyPath: "/readyz", Database: true}
	Writebackd = Program{Binary: "writebackd", Package: "./writeback/cmd/writebackd", Service: "writeback", ReadyPath: "/readyz", Database: true}
	Redismon   = Program{Binary: "redismon", Package: "./tools/redismon", Service: "redismon", ReadyPath: "/healthz"}
	// WorkWebUI, an unauthenticated admin UI kept on loopback, registers nowhere.
	WorkWebUI = Program{Binary: "workwebui", Package: "./tools/workwebui", ReadyPath: "/readyz"}
)

// Daemons lists every daemon.
var Daemons = []Program{Guidd, Scrapd, Postsvcd, Writebackd, Redismon, WorkWebUI}

// ByBinary returns the daemon whose binary is name.
func ByBinary(name string) (Program, bool) {
	i := slices.IndexFunc(Daemons, func(p Program) bool { return p.Binary == name })
	if i < 0 {
		return Program{}, false
	}
	return Daemons[i], true
}

// Instance is what differs between two instances of a program.
type Instance struct {
	Listen    string // host:port to bind
	Advertise string // host:port written to ZooKeeper; "" for the bound address
	ZK        string // ZooKeeper servers
	ZKRoot    string // "" for the default root
	// ZKSessionTimeout is 0 for the default.
	ZKSessionTimeout time.Duration
	DB               Account // for a program with Database
}

// Account is a database login.
type Account struct{ User, Password, Name string }

// Flags returns the flags of one instance by name (without the leading --), the empty ones
// left out.
func (p Program) Flags(in Instance) map[string]string {
	f := map[string]string{"listen": in.Listen, "zk": in.ZK, "zk-root": in.ZKRoot}
	if p.Service != "" {
		f["advertise"] = in.Advertise
	}
	if in.ZKSessionTimeout > 0 {
		f["zk-session-timeout"] = in.ZKSessionTimeout.String()
	}
	if p.Database {
		f["db-user"], f["db-password"], f["db-name"] = in.DB.User, in.DB.Password, in.DB.Name
	}
	maps.DeleteFunc(f, func(_, v string) bool { return v == "" })
	return f
}

// Args returns the command line of one instance, in flag-name order.
func (p Program) Args(in Instance) []string {
	f := p.Flags(in)
	var args []string
	for _, name := range slices.Sorted(maps.Keys(f)) {
		args = append(args, "--"+name, f[name])
	}
	return args
}

// Env returns the same settings as environment variables (<BINARY>_<FLAG>), as a compose file
// or a systemd unit gives them.
func (p Program) Env(in Instance) map[string]string {
	env := map[string]string{}
	for name, v := range p.Flags(in) {
		env[flagenv.EnvName(p.Binary, name)] = v
	}
	return env
}

// ReadyURL is the readiness URL of an instance listening on hostport.
func (p Program) ReadyURL(hostport string) string { return "http://" + hostport + p.ReadyPath }

// readyClient is the client of Ready; each probe has its own deadline too.
var readyClient = &http.Client{Timeout: 2 * time.Second}

// Ready reports whether GET url answers 200 within 2 s (or ctx's end): the readiness probe of a
// daemon (ReadyURL) and of the other HTTP servers a local cluster runs.
func Ready(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

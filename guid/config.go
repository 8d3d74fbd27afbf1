package guid

import (
	"flag"
	"fmt"
	"time"
)

// Config holds guidd's own settings (the ZooKeeper ones live in discovery.Config).
type Config struct {
	Listen           string        // host:port to bind
	Advertise        string        // host:port written to ZooKeeper; "" = derived from the bound address
	Datacenter       int           // 0–31
	ClockRefresh     time.Duration // how often the stored clock bound is pushed ahead
	MaxClockStepBack time.Duration // backwards clock steps up to this are waited out
	ShutdownTimeout  time.Duration // drain deadline on shutdown

	// SessionTimeout is the ZooKeeper session timeout (from discovery.Config): it sets the lease
	// heartbeat (1/4 of it) and how long a confirmation stays good (1/2 of it).
	SessionTimeout time.Duration
}

// RegisterFlags adds guidd's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "0.0.0.0:8010", "host:port to serve HTTP on")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port to register in ZooKeeper (default: the bound address, or the primary IP when bound to 0.0.0.0)")
	fs.IntVar(&c.Datacenter, "dc", 0, "datacenter id, 0-31")
	fs.DurationVar(&c.ClockRefresh, "clock-refresh", 2*time.Second, "how often the stored clock bound is refreshed (it is kept 2x this ahead of now)")
	fs.DurationVar(&c.MaxClockStepBack, "max-clock-step-back", DefaultMaxStepBack, "backwards clock steps up to this are waited out; larger ones answer 503")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
}

// validate checks the settings and fills defaults for the ones tests may leave zero.
func (c *Config) validate() error {
	if c.Datacenter < 0 || c.Datacenter > DatacenterMask {
		return fmt.Errorf("--dc %d: want 0-%d", c.Datacenter, DatacenterMask)
	}
	if c.ClockRefresh <= 0 {
		c.ClockRefresh = 2 * time.Second
	}
	if c.MaxClockStepBack == 0 {
		c.MaxClockStepBack = DefaultMaxStepBack
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	return nil
}

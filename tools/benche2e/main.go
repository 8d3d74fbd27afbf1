// Command benche2e is `make bench-e2e`: end-to-end benchmarks of a whole local cluster, each an
// honest A/B comparison run in one command, interleaved A B A B at every connection count.
//
// The write scenario compares write-back (postsvcd acknowledges once the job is durably queued and
// replicated; writebackd drains it to MariaDB) with write-through (postsvcd upserts into the
// MariaDB primary inside the request), with the same wrk script, the same cluster and the same
// number of postsvcds. A write-back round ends only when every acknowledged post is in MariaDB,
// so its CPU accounting includes the drain. It reports per arm: writes/s, p50 and p99, machine
// CPU per persisted post (/proc/stat), CPU per post of every process group (/proc/<pid>/stat),
// and the median of the per-pair ratios. See docs/benchmarks.md.
//
// It uses the cluster running in --dir, or brings one up with bin/devcluster (and down at the
// end). sched_autogroup_enabled is 0 for the run and restored afterwards.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	dir        string
	bin        string
	portOffset int
	conns      []int
	pairs      int
	sameLoad   []float64 // parts of write-through's saturation rate both write arms are offered
	duration   time.Duration
	warmup     time.Duration
	threads    int
	scenarios  []string
	keep       bool
	durable    bool
	fitPool    bool
	maxSteal   float64 // host steal, in % of a round's CPU time, above which a pair runs again (runPair)
}

// scenarios are the benchmarks by name; read scenarios join this list.
var scenarios = map[string]func() Scenario{
	"write":     writeScenario,
	"read-warm": readWarmScenario,
	"read-cold": readColdScenario,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(1)
	}
}

func parse(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benche2e", flag.ContinueOnError)
	fs.SetOutput(out)
	var conns, names, sameLoad string
	fs.StringVar(&o.dir, "dir", "/tmp/zkpost-bench-dc", "devcluster directory: the cluster running there is used, or one is brought up there")
	fs.StringVar(&o.bin, "bin", "bin", "directory of our built binaries (devcluster, postsvcd, ...)")
	fs.IntVar(&o.portOffset, "port-offset", 20000, "devcluster --port-offset for a cluster this run brings up")
	fs.StringVar(&conns, "conns", "16,64", "wrk connection counts")
	fs.IntVar(&o.pairs, "pairs", 3, "A/B pairs per connection count (at least 3)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "wrk run per round")
	fs.StringVar(&sameLoad, "same-load", "0.5,0.75,0.9", "after the write pairs, offer both write arms these parts of write-through's saturation rate (comma-separated, each in (0, 1]; empty: none)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured run of each arm before the first pair")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads (spread over the arm's servers)")
	fs.StringVar(&names, "scenarios", "write,read-warm,read-cold", "comma-separated scenarios to run (write, read-warm, read-cold)")
	fs.BoolVar(&o.keep, "keep", false, "leave a cluster this run brought up running")
	fs.BoolVar(&o.fitPool, "fit-buffer-pool", true, "for the run, grow each MariaDB's InnoDB buffer pool to hold its posts table, and read the table into it; false: the cluster's own size")
	fs.Float64Var(&o.maxSteal, "max-steal", 15, "run a pair again (up to twice) when the host's steal exceeds this % of either round's CPU time; 0: never")
	fs.BoolVar(&o.durable, "durable-db", true, "run with an fsync on every MariaDB commit (innodb_flush_log_at_trx_commit=1, sync_binlog=1), as the queue fsyncs every write; false: the cluster's own setting")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if q, _ := strconv.ParseBool(getenv("QUICK")); q {
		o.duration, o.warmup = 4*time.Second, time.Second
	}
	for _, s := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("--conns: bad count %q", s)
		}
		o.conns = append(o.conns, n)
	}
	for s := range strings.SplitSeq(sameLoad, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f > 0 && f <= 1) {
			return o, fmt.Errorf("--same-load: %q is not a part of the saturation rate in (0, 1]", s)
		}
		o.sameLoad = append(o.sameLoad, f)
	}
	for _, s := range strings.Split(names, ",") {
		if _, ok := scenarios[s]; !ok {
			return o, fmt.Errorf("--scenarios: unknown %q", s)
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.pairs < 3 {
		return o, errors.New("--pairs must be at least 3")
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parse(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: apt-get install -y wrk")
	}
	restore, err := disableAutogroup()
	if err != nil {
		return err
	}
	defer restore()
	env, err := openEnv(ctx, o, stdout)
	if env != nil {
		defer env.Close(o)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "benche2e: %d CPUs, wrk %d threads, %s per round, %d pairs, connections %v\n",
		runtime.NumCPU(), o.threads, o.duration, o.pairs, o.conns)
	if o.durable {
		undo, err := makeDurable(ctx, []string{env.Addr("mariadb-primary"), env.Addr("mariadb-replica")}, stdout)
		if err != nil {
			return err
		}
		defer undo()
	}
	if o.fitPool {
		undo, err := fitBufferPool(ctx, []string{env.Addr("mariadb-primary"), env.Addr("mariadb-replica")}, stdout)
		if err != nil {
			return err
		}
		defer undo()
	}
	for _, name := range o.scenarios {
		if err := runScenario(ctx, env, o, scenarios[name](), stdout); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func runScenario(ctx context.Context, env *Env, o options, sc Scenario, out io.Writer) error {
	a, err := sc.A(ctx, env)
	if err != nil {
		return err
	}
	b, err := sc.B(ctx, env)
	if err != nil {
		return err
	}
	conns := sc.Conns
	if len(conns) == 0 {
		conns = o.conns
	}
	res := map[int][2][]Round{}
	for _, arm := range []Arm{a, b} {
		if _, err := runRound(ctx, env, o, arm, slices.Max(conns), o.warmup); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for _, c := range conns {
		var rs [2][]Round
		arms := [2]Arm{a, b}
		for p := range o.pairs {
			pair, err := runPair(out, o.maxSteal, func(i int) (Round, error) {
				return runRound(ctx, env, o, arms[i], c, o.duration)
			}, func(i int, r Round) {
				fmt.Fprintf(out, "  %s c=%d pair %d %-14s %8.0f ops/s  p99 %-8s %6.0f µs machine CPU/op  steal %2.0f %%\n",
					sc.Name, c, p+1, arms[i].Name, float64(r.Ops)/r.Wrk.Duration.Seconds(), r.Wrk.P99, perOp(r.Machine, r.Ops), stealShare(r))
			})
			if err != nil {
				return err
			}
			for i, r := range pair {
				rs[i] = append(rs[i], r)
			}
		}
		res[c] = rs
		report(out, sc, a.Name, b.Name, c, rs)
	}
	if sc.After != nil {
		return sc.After(ctx, env, o, res)
	}
	return nil
}

func perOp(d time.Duration, ops int64) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(ops)
}

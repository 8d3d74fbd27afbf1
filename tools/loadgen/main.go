// Command loadgen writes and reads posts against a running zkpost cluster at a given rate or
// concurrency, reports throughput and latency percentiles, records every acknowledged post id,
// and with --verify checks at the end that each one is in MySQL exactly once.
//
//	loadgen --duration 30s --concurrency 16 --read-ratio 0.5 --verify --dsn 'zkpost:zkpost@tcp(127.0.0.1:13306)/zkpost'
//
// Targets come from --targets or, by default, from ZooKeeper (R/postsvc/nodes). It only ever
// talks to loopback addresses, and always stops by itself (--duration and/or --count).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/internal/logging"
	"github.com/the-red/zkpost/tools/loadgen/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	targets    string
	load       load.Config
	verify     bool
	verifyOnly bool
	dsn        string
	verifyWait time.Duration
	idsFile    string
	jsonOut    bool
	zk         discovery.Config
	log        logging.Config
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.targets, "targets", "", "postsvcd host:port list (comma separated); default: R/postsvc/nodes in ZooKeeper")
	fs.DurationVar(&o.load.Duration, "duration", 10*time.Second, "how long to run (0: until --count writes)")
	fs.IntVar(&o.load.Count, "count", 0, "stop after this many writes (0: until --duration)")
	fs.Float64Var(&o.load.Rate, "rate", 0, "operations per second (0: as fast as --concurrency allows)")
	fs.IntVar(&o.load.Concurrency, "concurrency", 8, "concurrent workers")
	fs.Float64Var(&o.load.ReadRatio, "read-ratio", 0.5, "fraction of operations that read a timeline (0-1)")
	fs.IntVar(&o.load.Users, "users", 100, "distinct users")
	fs.Int64Var(&o.load.UserBase, "user-base", 0, "first user id minus one (separates runs)")
	fs.StringVar(&o.load.URL, "url", "", "URL attached to some posts (needs scrapd to reach it)")
	fs.IntVar(&o.load.URLEvery, "url-every", 4, "attach --url to every Nth post")
	fs.DurationVar(&o.load.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&o.verify, "verify", false, "after the run, check every acknowledged post is in MySQL exactly once")
	fs.BoolVar(&o.verifyOnly, "verify-only", false, "generate no load; verify the posts listed in --ids-file")
	fs.StringVar(&o.dsn, "dsn", "", "MySQL DSN for --verify, e.g. zkpost:zkpost@tcp(127.0.0.1:13306)/zkpost")
	fs.DurationVar(&o.verifyWait, "verify-wait", 60*time.Second, "how long --verify waits for write-back to catch up")
	fs.StringVar(&o.idsFile, "ids-file", "", "file recording every acknowledged post (post_id user_id per line)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	o.zk.RegisterFlags(fs)
	o.log.RegisterFlags(fs)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o options
	o.register(fs)
	if err := flagenv.Parse(fs, "loadgen", args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h/--help: the usage is printed; not a failure
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (loadgen takes only flags)", fs.Arg(0))
	}
	if (o.verify || o.verifyOnly) && o.dsn == "" {
		return errors.New("--verify needs --dsn")
	}
	if o.verifyOnly {
		if o.idsFile == "" {
			return errors.New("--verify-only needs --ids-file")
		}
		acks, err := readIDs(o.idsFile)
		if err != nil {
			return err
		}
		return verify(ctx, o, acks, stdout)
	}
	targets, stop, err := o.targetSource()
	if err != nil {
		return err
	}
	defer stop()
	o.load.Targets = targets
	record, closeIDs, err := idsWriter(o.idsFile)
	if err != nil {
		return err
	}
	o.load.OnAck = record
	rep, err := load.Run(ctx, o.load)
	if cerr := closeIDs(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	printReport(stdout, rep, o.jsonOut)
	if o.verify {
		return verify(ctx, o, rep.Acks, stdout)
	}
	return nil
}

// targetSource returns the postsvcd list: fixed, or followed in ZooKeeper.
func (o *options) targetSource() (func() []string, func(), error) {
	if o.targets != "" {
		var ts []string
		for _, t := range strings.Split(o.targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		return func() []string { return ts }, func() {}, nil
	}
	log, err := logging.New(os.Stderr, o.log, "loadgen")
	if err != nil {
		return nil, nil, err
	}
	conn, err := discovery.Dial(o.zk, log)
	if err != nil {
		return nil, nil, fmt.Errorf("dialing ZooKeeper: %w", err)
	}
	w := conn.WatchChildren(discovery.Layout{Root: o.zk.Root}.Nodes("postsvc"), discovery.WatchOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.Wait(ctx, func(s discovery.Snapshot) bool { return len(s.Children) > 0 }); err != nil {
		w.Stop()
		conn.Close()
		return nil, nil, fmt.Errorf("no postsvcd registered under %s: %w", discovery.Layout{Root: o.zk.Root}.Nodes("postsvc"), err)
	}
	return func() []string { return w.Current().Names() }, func() { w.Stop(); conn.Close() }, nil
}

// idsWriter returns a recorder appending every ack to path ("" records nothing).
func idsWriter(path string) (func(load.Ack), func() error, error) {
	if path == "" {
		return nil, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	bw := bufio.NewWriter(f)
	record := func(a load.Ack) {
		mu.Lock()
		fmt.Fprintf(bw, "%s %d\n", a.PostID, a.UserID)
		mu.Unlock()
	}
	return record, func() error {
		mu.Lock()
		defer mu.Unlock()
		if err := bw.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}, nil
}

func readIDs(path string) ([]load.Ack, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var acks []load.Ack
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"post_id user_id\"", path, n)
		}
		uid, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		acks = append(acks, load.Ack{PostID: fields[0], UserID: uid})
	}
	return acks, sc.Err()
}

func verify(ctx context.Context, o options, acks []load.Ack, stdout io.Writer) error {
	v, err := load.Verify(ctx, o.dsn, acks, o.verifyWait)
	if err != nil {
		return err
	}
	if o.jsonOut {
		json.NewEncoder(stdout).Encode(map[string]any{"verify": v})
	} else {
		fmt.Fprintf(stdout, "verify: %d acknowledged, %d in MySQL exactly once, %d missing, %d duplicated, %d under the wrong user (waited %s)\n",
			v.Acked, v.Found, len(v.Missing), len(v.Duplicated), len(v.WrongUser), v.Waited.Round(time.Millisecond))
		if len(v.Missing) > 0 {
			fmt.Fprintf(stdout, "missing (first %d): %s\n", min(20, len(v.Missing)), strings.Join(v.Missing[:min(20, len(v.Missing))], " "))
		}
	}
	if !v.OK() {
		return fmt.Errorf("LOST OR CORRUPT POSTS: %d missing, %d duplicated, %d wrong user",
			len(v.Missing), len(v.Duplicated), len(v.WrongUser))
	}
	return nil
}

func printReport(w io.Writer, r *load.Report, asJSON bool) {
	if asJSON {
		json.NewEncoder(w).Encode(r)
		return
	}
	fmt.Fprintf(w, "ran %s: %.1f ops/s; %d writes acknowledged, %d failed; %d reads, %d failed\n",
		r.Elapsed.Round(time.Millisecond), r.OpsPerSecond, r.Writes, r.WriteErrors, r.Reads, r.ReadErrors)
	lat := func(name string, l load.Latency) {
		if l.Count > 0 {
			fmt.Fprintf(w, "%s latency: p50 %s  p90 %s  p99 %s  max %s\n", name, l.P50.Round(time.Microsecond),
				l.P90.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond))
		}
	}
	lat("write", r.WriteLatency)
	lat("read ", r.ReadLatency)
	for k, n := range r.Errors {
		fmt.Fprintf(w, "errors %s: %d\n", k, n)
	}
}

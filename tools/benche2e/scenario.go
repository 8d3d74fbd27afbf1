package main

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Arm is one side of a comparison.
type Arm struct {
	Name    string   // "write-back", "write-through", ...
	Targets []string // host:port; wrk's threads are spread over them
	Path    string   // request path
	Script  string   // wrk Lua body defining request() (and more); "" for a plain GET of Path
	// Before runs before each round (prime caches, note where the round starts); may be nil.
	Before func(ctx context.Context, env *Env) error
	// Ops returns the operations the round achieved (e.g. posts persisted, after waiting for the
	// drain); it runs inside the round's CPU accounting. nil: wrk's 2xx responses.
	Ops func(ctx context.Context, env *Env, r WrkResult) (int64, error)
	// Extra, when set, adds lines about the round (e.g. batch sizes, ack→commit lag).
	Extra func(ctx context.Context, env *Env) (map[string]float64, error)
}

// Scenario compares arm A with arm B, interleaved A B A B at each connection count.
type Scenario struct {
	Name  string
	Unit  string // what one op is, for the report ("persisted post", "page")
	A, B  func(ctx context.Context, env *Env) (Arm, error)
	Conns []int // default: the run's --conns
	// After runs once both arms were measured at every connection count (extra rounds); may be nil.
	After func(ctx context.Context, env *Env, o options, res map[int][2][]Round) error
}

// Round is the measurement of one arm in one round.
type Round struct {
	Wrk      WrkResult
	Ops      int64
	Elapsed  time.Duration            // load plus drain
	Machine  time.Duration            // busy CPU of the whole machine over Elapsed
	Procs    map[string]time.Duration // CPU by process group over Elapsed
	Capacity time.Duration            // CPUs × Elapsed, less Steal
	Steal    time.Duration            // time the hypervisor kept our CPUs from running (not in Machine)
	Extra    map[string]float64
}

// runRound measures one round of arm at conns connections for d.
func runRound(ctx context.Context, env *Env, o options, arm Arm, conns int, d time.Duration) (Round, error) {
	if arm.Before != nil {
		if err := arm.Before(ctx, env); err != nil {
			return Round{}, fmt.Errorf("%s: before the round: %w", arm.Name, err)
		}
	}
	groups := env.groups()
	s0, err := sampleCPU(groups)
	if err != nil {
		return Round{}, err
	}
	w, err := runWrk(ctx, env.Work, arm.Targets, arm.Path, arm.Script, o.threads, conns, d)
	if err != nil {
		return Round{}, fmt.Errorf("%s: %w", arm.Name, err)
	}
	ops := w.OK()
	if arm.Ops != nil {
		if ops, err = arm.Ops(ctx, env, w); err != nil {
			return Round{}, fmt.Errorf("%s: counting ops: %w", arm.Name, err)
		}
	}
	s1, err := sampleCPU(groups)
	if err != nil {
		return Round{}, err
	}
	r := Round{Wrk: w, Ops: ops, Elapsed: s1.at.Sub(s0.at), Machine: s1.machine.busy - s0.machine.busy,
		Capacity: s1.machine.total - s0.machine.total, Steal: s1.machine.steal - s0.machine.steal,
		Procs: map[string]time.Duration{}}
	for g := range groups {
		r.Procs[g] = s1.procs[g] - s0.procs[g]
	}
	r.Procs["wrk (client)"] = w.CPU
	if arm.Extra != nil {
		if r.Extra, err = arm.Extra(ctx, env); err != nil {
			return Round{}, fmt.Errorf("%s: %w", arm.Name, err)
		}
	}
	return r, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

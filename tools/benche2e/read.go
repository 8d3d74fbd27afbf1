package main

// The read scenarios (docs/benchmarks.md#reads):
//
//   - read-warm: a warm first page of 10 from postsvcd against tools/httpbaseline serving the
//     very bytes of such a page, with the same wrk script (the ceiling of the HTTP stack). After
//     the pairs, one round at half the median postsvcd rate gives the p99 at half load.
//   - read-cold: pages that need the database merge: a first page of a user whose list is not
//     cached (the round's users are evicted from the cache before it, each read once), against a
//     page below what a full cached list holds (the cache can never prove it, so every read
//     merges). The ratio compares two kinds of cold pages, not a page with its baseline.
//
// Both run their own two postsvcd instances, started from --bin with postsvc-1's command line
// (so the measured binary is the one just built), over the cluster's shards and database. The
// users they read are seeded straight into MariaDB, at user ids no other scenario writes to.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/postsvc"
)

const (
	warmUserBase  = 900_000_000 // read-warm: warmUsers users with 12 posts each
	warmUsers     = 1000
	coldUserBase  = 910_000_000 // read-cold, first pages: coldUsers users with 11 posts each
	coldUsers     = 120000      // more than a round reads: a second read of a user would be warm
	deepUserBase  = 920_000_000 // read-cold, deep pages: deepUsers users with deepPosts posts each
	deepUsers     = 10
	deepPosts     = 1100
	deepListMax   = 1000 // postsvcd's --list-max default: pages below it are never cached
	pageLimit     = 10
	seedBatchRows = 2000
)

// readLua reads the first page of a random user of [base, base+users).
const readLua = `
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end
function request()
  local uid = %d + math.random(0, %d)
  return wrk.format("GET", "/api/v1/posts/" .. uid .. "?limit=%d")
end
`

// coldLua reads every user of [base, base+users) once, the threads taking turns (thread i reads
// users i, i+threads, ...), so that no read of a round finds a page an earlier one cached.
const coldLua = `
local n = 0
function request()
  local uid = %d + ((n * %d + (tid or 1) - 1) %% %d)
  n = n + 1
  return wrk.format("GET", "/api/v1/posts/" .. uid .. "?limit=%d")
end
`

// deepLua reads a page below what the cache holds: a random user and a random cursor of deepFs.
const deepLua = `
local fs = {%s}
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end
function request()
  local i = math.random(0, %d)
  local uid, f = %d + (i %% %d), fs[i + 1]
  return wrk.format("GET", "/api/v1/posts/" .. uid .. "?limit=%d&f=" .. f)
end
`

func readWarmScenario() Scenario {
	var targets []string
	var baseline string
	return Scenario{
		Name: "read-warm",
		Unit: "page",
		A: func(ctx context.Context, env *Env) (Arm, error) {
			settle, err := readerSettle(env)
			if err != nil {
				return Arm{}, err
			}
			settled := time.Now().Add(settle)
			if targets, err = startReaders(ctx, env); err != nil {
				return Arm{}, err
			}
			if err := seedUsers(ctx, env, warmUserBase, warmUsers, 12); err != nil {
				return Arm{}, err
			}
			if err := warmUp(ctx, targets, warmUserBase, warmUsers, settled); err != nil {
				return Arm{}, err
			}
			return Arm{Name: "postsvcd", Targets: targets, Path: "/",
				Script: fmt.Sprintf(readLua, warmUserBase, warmUsers-1, pageLimit)}, nil
		},
		B: func(ctx context.Context, env *Env) (Arm, error) {
			addr, err := startBaseline(ctx, env, targets[0], warmUserBase, "httpbaseline")
			if err != nil {
				return Arm{}, err
			}
			baseline = addr
			return Arm{Name: "httpbaseline", Targets: []string{addr}, Path: "/",
				Script: fmt.Sprintf(readLua, warmUserBase, warmUsers-1, pageLimit)}, nil
		},
		After: func(ctx context.Context, env *Env, o options, res map[int][2][]Round) error {
			return halfLoadRounds(ctx, env, o, res, targets, baseline)
		},
	}
}

func readColdScenario() Scenario {
	var targets []string
	return Scenario{
		Name: "read-cold",
		Unit: "page",
		A: func(ctx context.Context, env *Env) (Arm, error) {
			var err error
			if targets, err = startReaders(ctx, env); err != nil {
				return Arm{}, err
			}
			if err := seedUsers(ctx, env, coldUserBase, coldUsers, 11); err != nil {
				return Arm{}, err
			}
			return Arm{Name: "cold first page", Targets: targets, Path: "/",
				Script: fmt.Sprintf(coldLua, coldUserBase, 2, coldUsers, pageLimit),
				Before: func(ctx context.Context, env *Env) error { return evict(ctx, env, coldUserBase, coldUsers) },
				Ops: func(ctx context.Context, env *Env, r WrkResult) (int64, error) {
					if r.Requests > coldUsers {
						fmt.Fprintf(env.Log, "  warning: the round read %d pages of %d cold users; the rest were warm (raise coldUsers)\n", r.Requests, coldUsers)
					}
					return r.OK(), nil
				}}, nil
		},
		B: func(ctx context.Context, env *Env) (_ Arm, err error) {
			if err := seedUsers(ctx, env, deepUserBase, deepUsers, deepPosts); err != nil {
				return Arm{}, err
			}
			ids := make([][]uint64, deepUsers)
			for u := range ids {
				if ids[u], err = postIDs(ctx, env, deepUserBase+u); err != nil {
					return Arm{}, err
				}
			}
			var fs []string
			for i := range deepPosts - deepListMax - pageLimit {
				for u := range deepUsers {
					fs = append(fs, strconv.Quote(strconv.FormatUint(ids[u][deepListMax+i], 10)))
				}
			}
			for u := range deepUsers { // the first deepListMax posts of each user fill its list
				if err := walk(ctx, targets[u%len(targets)], deepUserBase+u, deepListMax/pageLimit); err != nil {
					return Arm{}, err
				}
			}
			return Arm{Name: "page below cache", Targets: targets, Path: "/",
				Script: fmt.Sprintf(deepLua, strings.Join(fs, ","), len(fs)-1, deepUserBase, deepUsers, pageLimit)}, nil
		},
	}
}

// readerSettle is the --coverage-settle of the readers startReaders starts: postsvc-1's.
func readerSettle(env *Env) (time.Duration, error) {
	args, err := env.NodeArgs("postsvc-1")
	if err != nil {
		return 0, err
	}
	return coverageSettle(args[1:])
}

// coverageSettle is the --coverage-settle a postsvcd command line sets, else postsvcd's default.
func coverageSettle(args []string) (time.Duration, error) {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "coverage-settle" || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		return time.ParseDuration(val)
	}
	var c postsvc.Config
	c.RegisterFlags(flag.NewFlagSet("postsvcd", flag.ContinueOnError))
	return c.Settle, nil
}

// startReaders starts two postsvcd from --bin with postsvc-1's command line.
func startReaders(ctx context.Context, env *Env) ([]string, error) {
	bin, err := filepath.Abs(filepath.Join(env.Bin, "postsvcd"))
	if err != nil {
		return nil, err
	}
	var out []string
	for range 2 {
		addr, err := env.StartLikeWith(ctx, "postsvc-1", "postsvcd (reads)", bin)
		if err != nil {
			return nil, err
		}
		out = append(out, addr)
	}
	return out, nil
}

// seedUsers inserts perUser posts for each of users users from base, unless they are there. Ids
// are a day old (each base its own half hour), so no guidd id collides with them.
func seedUsers(ctx context.Context, env *Env, base, users, perUser int) error {
	var n int
	err := env.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE user_id BETWEEN ? AND ?", base, base+users-1).Scan(&n)
	if err != nil || n == users*perUser {
		return err
	}
	fmt.Fprintf(env.Log, "seeding %d posts of %d users from %d...\n", users*perUser, users, base)
	ms := time.Now().Add(-24*time.Hour).Sub(time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)).Milliseconds() -
		int64(base-warmUserBase)/10000*2000
	rows := make([]post.Post, 0, users*perUser)
	for u := range users {
		for k := range perUser {
			id := uint64(ms-int64(k))<<22 | uint64(1)<<21 | uint64(u)
			rows = append(rows, post.Post{ID: id, UserID: uint64(base + u), Contents: fmt.Sprintf("seeded %d", k), CreatedAt: postsvc.CreatedAt(id)})
		}
	}
	store := mysql.NewStore(env.DB)
	for b := range slices.Chunk(rows, seedBatchRows) {
		if err := store.Upsert(ctx, b); err != nil {
			return fmt.Errorf("seeding users from %d: %w", base, err)
		}
	}
	return nil
}

// postIDs returns uid's post ids, newest first.
func postIDs(ctx context.Context, env *Env, uid int) ([]uint64, error) {
	rows, err := env.DB.QueryContext(ctx, "SELECT post_id FROM posts WHERE user_id = ? ORDER BY post_id DESC", uid)
	if err != nil {
		return nil, fmt.Errorf("listing posts of %d: %w", uid, err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// warmUp reads every user's first page through every target until one whole pass, begun after
// settled, is served from the cache: a pass that needed no merge with the database
// (postsvc_db_fallbacks_total{reason="not_covered"} unchanged). A new postsvcd claims no coverage
// for --coverage-settle after it installs its ring (settled is when that ends), so its first
// passes merge, and a pass before settled can be clean only because markers written by earlier
// processes have not expired yet: when they do, the reads merge without renewing them, and
// measuring then would time the database.
func warmUp(ctx context.Context, targets []string, base, users int, settled time.Time) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, t := range targets {
		for {
			began := time.Now()
			before, err := notCovered(ctx, t)
			if err != nil {
				return err
			}
			for u := range users {
				if _, err := get(ctx, fmt.Sprintf("http://%s/api/v1/posts/%d?limit=%d", t, base+u, pageLimit)); err != nil {
					return err
				}
			}
			after, err := notCovered(ctx, t)
			if err != nil {
				return err
			}
			if after == before && !began.Before(settled) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: pages still merged with the database after 2 minutes", t)
			}
		}
	}
	return nil
}

// notCovered is target's count of reads merged with the database because the cache could not
// prove the page complete.
func notCovered(ctx context.Context, target string) (float64, error) {
	m, err := get(ctx, "http://"+target+"/metrics")
	if err != nil {
		return 0, err
	}
	const series = `postsvc_db_fallbacks_total{reason="not_covered"} `
	for _, line := range strings.Split(string(m), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, nil
}

// walk reads pages of uid down the cursor through target.
func walk(ctx context.Context, target string, uid, pages int) error {
	f := ""
	for range pages {
		b, err := get(ctx, fmt.Sprintf("http://%s/api/v1/posts/%d?limit=%d%s", target, uid, pageLimit, f))
		if err != nil {
			return err
		}
		_, next, ok := strings.Cut(string(b), `"next_id":"`)
		if !ok {
			return nil
		}
		id, _, _ := strings.Cut(next, `"`)
		f = "&f=" + id
	}
	return nil
}

// evict deletes the cached lists of users [base, base+users) on every cache shard.
func evict(ctx context.Context, env *Env, base, users int) error {
	for _, n := range env.State.Nodes {
		if nodeGroup(n.Name) != "cache redis" || n.Pid <= 0 {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: env.Addr(n.Name)})
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for u := range users {
				id := strconv.Itoa(base + u)
				p.Del(ctx, "pl:"+id, "plc:"+id, "plv:"+id)
			}
			return nil
		})
		c.Close()
		if err != nil {
			return fmt.Errorf("evicting users on %s: %w", n.Name, err)
		}
	}
	return nil
}

// startBaseline starts httpbaseline serving the bytes of user uid's first page from target, as
// process group name, with any extra flags.
func startBaseline(ctx context.Context, env *Env, target string, uid int, name string, flags ...string) (string, error) {
	page, err := get(ctx, fmt.Sprintf("http://%s/api/v1/posts/%d?limit=%d", target, uid, pageLimit))
	if err != nil {
		return "", err
	}
	body := filepath.Join(env.Work, "page.json")
	if err := os.WriteFile(body, page, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(env.Bin, "httpbaseline")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s missing: make build builds it", bin)
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	logf, err := os.Create(filepath.Join(env.Work, name+".log"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--body-file", body}, flags...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	env.extra = append(env.extra, &extraProc{name: name, cmd: cmd})
	return addr, waitReady(ctx, "http://"+addr+"/", logf.Name())
}

// halfLoadRounds reads warm pages at half the median postsvcd rate of the highest connection
// count (that many connections pacing themselves, pacedScript), interleaved with httpbaseline offered the same
// rate (A B A B, o.pairs pairs), and reports the latency of both: the baseline's is what this
// machine's scheduling costs any server at that load. Then the same against httpbaseline reading
// one key from a cache Redis before each answer (--redis): what a page that must check one value
// in Redis, as read-your-writes across postsvcds does, costs at that load at the least.
func halfLoadRounds(ctx context.Context, env *Env, o options, res map[int][2][]Round, targets []string, baseline string) error {
	half := medianRate(res[slices.Max(o.conns)][0]) / 2
	if half < 1 {
		return nil
	}
	conns := slices.Max(o.conns)
	script := pacedScript(fmt.Sprintf(readLua, warmUserBase, warmUsers-1, pageLimit), conns, half)
	arms := [2]Arm{{Name: "postsvcd", Targets: targets, Path: "/", Script: script},
		{Name: "httpbaseline", Targets: []string{baseline}, Path: "/", Script: script}}
	if err := pacedPairs(ctx, env, o, "warm pages at half load", "page", arms, conns, half); err != nil {
		return err
	}
	withGet, err := startBaseline(ctx, env, targets[0], warmUserBase, "httpbaseline+GET", "--redis", env.Addr("redis1"))
	if err != nil {
		return err
	}
	arms[1] = Arm{Name: "httpbaseline+GET", Targets: []string{withGet}, Path: "/", Script: script}
	return pacedPairs(ctx, env, o, "warm pages at half load, against one Redis GET per page", "page", arms, conns, half)
}

func medianOf(rs []Round, f func(Round) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

// get returns the body of a 200 answer to a GET of url.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = errors.New(resp.Status + ": " + string(b))
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return b, nil
}

#!/usr/bin/env bash
# loadgen.sh: what loadgen costs as a client, against wrk doing the same work, on a running
# cluster (make up, or any devcluster).
#
#   tools/bench/loadgen.sh                       # postsvcds at 127.0.0.1:8000,8001 (make up)
#   TARGETS=127.0.0.1:28000,127.0.0.1:28001 tools/bench/loadgen.sh
#
# Both clients POST short posts without a link for random users of 100 (wrk with benche2e's
# write.lua), write-only, with CONNS connections spread over the same postsvcds for DURATION
# seconds, interleaved A B A B (PAIRS pairs, at least 3). Reported per client: posts/s, the client's own CPU per post (its user and
# system time, as its parent shell counted it once it exited), the machine CPU per post
# (/proc/stat) and the median per-pair ratios. wrk is the baseline: a C client with no bookkeeping;
# loadgen also records every acknowledged id (what --verify checks) and its latencies.
set -euo pipefail
DURATION=${DURATION:-10}
PAIRS=${PAIRS:-3}
CONNS=${CONNS:-16}
TARGETS=${TARGETS:-127.0.0.1:8000,127.0.0.1:8001}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/loadgenbench.XXXXXX")
cleanup() {
	bench_autogroup_restore
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "loadgen.sh: wrk not found: apt-get install -y wrk" >&2; exit 1; }
((PAIRS >= 3)) || { echo "loadgen.sh: PAIRS must be at least 3" >&2; exit 1; }
IFS=, read -r -a targets <<<"$TARGETS"
for t in "${targets[@]}"; do
	curl -fsS -o /dev/null "http://$t/readyz" || { echo "loadgen.sh: postsvcd $t not ready (make up?)" >&2; exit 1; }
done
(cd "$ROOT" && go build -o "$WORK/loadgen" ./tools/loadgen)


# client_cpu_ticks prints the user + system ticks of the calling shell's waited-for children
# (fields 16 and 17 of /proc/<pid>/stat, cutime and cstime). It reads them with the read builtin:
# a command substitution would run in a subshell of its own and see none of them.
client_cpu_ticks() {
	local -a st
	read -r -a st <"/proc/$BASHPID/stat"
	CLIENT_TICKS=$((st[15] + st[16]))
}

# run_wrk / run_loadgen print "posts client_ticks machine_ticks". Each runs in a subshell of its
# own, so that the subshell's children are the client's processes (and a few awk runs, counted
# before the client starts and subtracted).
run_wrk() (
	local b0 c0 n=0 per=$((CONNS / ${#targets[@]})) i=0
	b0=$(bench_busy_ticks)
	client_cpu_ticks
	c0=$CLIENT_TICKS
	for t in "${targets[@]}"; do
		wrk -t1 -c"$per" -d"${DURATION}s" -s "$ROOT/tools/benche2e/write.lua" "http://$t" -- 100 >"$WORK/wrk.$i" &
		i=$((i + 1))
	done
	wait
	client_cpu_ticks
	local b1
	b1=$(bench_busy_ticks)
	for f in "$WORK"/wrk.*; do
		if grep -qE 'Non-2xx|Socket errors' "$f"; then
			echo "wrk: $(grep -E 'Non-2xx|Socket errors' "$f" | tr -s ' ')" >&2
		fi
		n=$((n + $(awk '/requests in/ {print $1}' "$f")))
	done
	rm -f "$WORK"/wrk.*
	echo "$n $((CLIENT_TICKS - c0)) $((b1 - b0))"
)
run_loadgen() (
	local b0 c0 b1 n
	b0=$(bench_busy_ticks)
	client_cpu_ticks
	c0=$CLIENT_TICKS
	"$WORK/loadgen" --targets "$TARGETS" --concurrency "$CONNS" --duration "${DURATION}s" --read-ratio 0 \
		--users 100 --json --log-level error >"$WORK/loadgen.json"
	client_cpu_ticks
	b1=$(bench_busy_ticks)
	n=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["writes"] + r["write_errors"])' "$WORK/loadgen.json")
	echo "$n $((CLIENT_TICKS - c0)) $((b1 - b0))"
)

bench_autogroup_off
echo "loadgen.sh: $(nproc) CPUs, $CONNS connections over $TARGETS, ${DURATION}s per run, $PAIRS interleaved pairs" >&2
: >"$WORK/pairs"
for ((i = 1; i <= PAIRS; i++)); do
	read -r wn wc wb < <(run_wrk)
	read -r ln lc lb < <(run_loadgen)
	awk -v d="$DURATION" -v wn="$wn" -v wc="$wc" -v wb="$wb" -v ln="$ln" -v lc="$lc" -v lb="$lb" -v i="$i" 'BEGIN {
		printf "pair %d: wrk %.0f posts/s, %.1f µs client CPU, %.1f µs machine CPU per post; loadgen %.0f posts/s, %.1f µs, %.1f µs\n",
			i, wn / d, wc * 10000 / wn, wb * 10000 / wn, ln / d, lc * 10000 / ln, lb * 10000 / ln > "/dev/stderr"
		print wn / d, wc * 10000 / wn, wb * 10000 / wn, ln / d, lc * 10000 / ln, lb * 10000 / ln
	}' >>"$WORK/pairs"
done

col() { bench_col_median "$WORK/pairs" "$1"; }
ratio() { bench_ratio_median "$WORK/pairs" "$1" "$2"; }
printf '\n%-32s %12s %12s %14s\n' "medians" "wrk" "loadgen" "loadgen/wrk"
printf '%-32s %12.0f %12.0f %14.2f\n' "posts/s" "$(col 1)" "$(col 4)" "$(ratio 4 1)"
printf '%-32s %12.1f %12.1f %14.2f\n' "client CPU µs per post" "$(col 2)" "$(col 5)" "$(ratio 5 2)"
printf '%-32s %12.1f %12.1f %14.2f\n' "machine CPU µs per post" "$(col 3)" "$(col 6)" "$(ratio 6 3)"

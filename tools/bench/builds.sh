#!/usr/bin/env bash
# builds.sh: two builds of postsvcd side by side, serving the same writes at the same time, on a
# running devcluster (make up, or any devcluster whose postsvc-1 and postsvc-2 it may restart).
#
#   tools/bench/builds.sh OLD_POSTSVCD NEW_POSTSVCD
#   DC_DIR=/tmp/prof-dc DC_BIN=/tmp/prof-bin PORTS=28000,28001 tools/bench/builds.sh old new
#
# For a change inside one daemon, what matters is that daemon's own CPU per request, and on this
# VM the machine's speed moves by 2-3x over minutes: rounds run one after the other (A B A B)
# differ by more than most changes do. So here both builds run at once, postsvc-1 one and
# postsvc-2 the other, each with its own wrk (CONNS connections, benche2e's write.lua) for
# DURATION seconds: both see the same machine, the same guidd, queue and cache. Each round swaps
# the builds' places, so a difference between the two nodes cancels out; ROUNDS (even, at least
# 6: three pairs of places). Reported per round: each build's requests, its own CPU per request
# (user + system ticks from /proc/<pid>/stat), the ratio NEW/OLD, and the machine's CPU per
# request over both (/proc/stat); then the median ratio. Run it with the same binary twice to
# see the noise floor (docs/benchmarks.md, "Two builds at once").
#
# It replaces postsvcd in DC_BIN for the run and puts the original back, restarting the two
# nodes, when it ends.
set -euo pipefail
OLD=$(realpath "${1:?usage: builds.sh OLD_POSTSVCD NEW_POSTSVCD}")
NEW=$(realpath "${2:?usage: builds.sh OLD_POSTSVCD NEW_POSTSVCD}")
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DC_DIR=${DC_DIR:-$ROOT/.devcluster}
DC_BIN=$(realpath "${DC_BIN:-$ROOT/bin}")
PORTS=${PORTS:-8000,8001}
IFS=, read -r -a ports <<<"$PORTS"
nodes=(postsvc-1 postsvc-2)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/buildsbench.XXXXXX")
cp "$DC_BIN/postsvcd" "$WORK/original"
dc() { "$DC_BIN/devcluster" "$@" --dir "$DC_DIR" >/dev/null; }

# place i bin: runs bin as node i, once it is ready. The binary is renamed into place, since the
# other node may be running the file it replaces.
place() {
	dc stop "${nodes[$1]}"
	cp "$2" "$DC_BIN/postsvcd.next"
	mv -f "$DC_BIN/postsvcd.next" "$DC_BIN/postsvcd"
	dc start "${nodes[$1]}"
	for _ in $(seq 200); do
		curl -fs -o /dev/null "http://127.0.0.1:${ports[$1]}/readyz" && return 0
		sleep 0.1
	done
	echo "builds.sh: ${nodes[$1]} not ready on port ${ports[$1]}" >&2
	exit 1
}
cleanup() {
	bench_autogroup_restore
	place 0 "$WORK/original" || true
	place 1 "$WORK/original" || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "builds.sh: wrk not found: apt-get install -y wrk" >&2; exit 1; }
((ROUNDS >= 6 && ROUNDS % 2 == 0)) || { echo "builds.sh: ROUNDS must be even and at least 6" >&2; exit 1; }
pid_on() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# load i seconds out: wrk against node i, its report in out.
load() { wrk -t1 -c"$CONNS" -d"$2s" -s "$ROOT/tools/benche2e/write.lua" "http://127.0.0.1:${ports[$1]}" >"$3"; }

bench_autogroup_off
echo "builds.sh: $(nproc) CPUs, $ROUNDS rounds of ${DURATION}s, $CONNS connections to each build" >&2
: >"$WORK/rounds"
for ((r = 1; r <= ROUNDS; r++)); do
	o=$(((r + 1) % 2)) n=$((r % 2)) # node of the old build, of the new
	place "$o" "$OLD"
	place "$n" "$NEW"
	po=$(pid_on "${ports[$o]}") pn=$(pid_on "${ports[$n]}")
	load "$o" 2 /dev/null & load "$n" 2 /dev/null # warm-up: connections, id blocks, pools
	wait
	to=$(ticks "$po") tn=$(ticks "$pn") b0=$(bench_busy_ticks)
	load "$o" "$DURATION" "$WORK/old.out" & load "$n" "$DURATION" "$WORK/new.out"
	wait
	b1=$(bench_busy_ticks) to=$(($(ticks "$po") - to)) tn=$(($(ticks "$pn") - tn))
	for f in old new; do
		if grep -qE 'Non-2xx|Socket errors' "$WORK/$f.out"; then
			echo "round $r, $f build: $(grep -E 'Non-2xx|Socket errors' "$WORK/$f.out" | tr -s ' ')" >&2
		fi
	done
	no=$(awk '/requests in/ { print $1 }' "$WORK/old.out") nn=$(awk '/requests in/ { print $1 }' "$WORK/new.out")
	awk -v r="$r" -v no="$no" -v nn="$nn" -v to="$to" -v tn="$tn" -v b="$((b1 - b0))" -v node="${nodes[$o]}" 'BEGIN {
		co = to * 10000 / no; cn = tn * 10000 / nn; m = b * 10000 / (no + nn)
		printf "round %d: old on %s %d req, %.1f µs/req; new %d req, %.1f µs/req; new/old %.3f; machine %.1f µs/req\n",
			r, node, no, co, nn, cn, cn / co, m > "/dev/stderr"
		print no, co, nn, cn, m
	}' >>"$WORK/rounds"
done

col() { bench_col_median "$WORK/rounds" "$1"; }
printf '\n%-36s %10s %10s %10s\n' "medians over $ROUNDS rounds" "old" "new" "new/old"
printf '%-36s %10.0f %10.0f %10.3f\n' "requests per round" "$(col 1)" "$(col 3)" "$(bench_ratio_median "$WORK/rounds" 3 1)"
printf '%-36s %10.1f %10.1f %10.3f\n' "postsvcd CPU µs per request" "$(col 2)" "$(col 4)" "$(bench_ratio_median "$WORK/rounds" 4 2)"
printf '%-36s %21.1f\n' "machine CPU µs per request (both)" "$(col 5)"

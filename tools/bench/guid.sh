#!/usr/bin/env bash
# guid.sh: guidd over HTTP against a bare fasthttp handler (tools/httpbaseline, the ceiling of the
# HTTP stack on this machine), side by side with wrk on loopback.
#
# It builds guidd and httpbaseline, starts a throwaway ZooKeeper (or uses GUID_BENCH_ZK=host:port),
# runs wrk against both for single IDs and for full batches, interleaved A B A B, prints the median
# per-pair ratios and cleans up. The baseline answers the same requests with a fixed body and no
# work: the ratio is how much of the HTTP stack's ceiling guidd reaches.
#
# Reported: req/s, p99 and the machine CPU per request (/proc/stat) of each side; autogroup is off
# for the run (tools/bench/lib.sh).
#
# Environment: DURATION (wrk seconds per run, default 10), PAIRS (interleaved baseline/guidd pairs,
# default 3, at least 3 for a median), THREADS (default 2), CONNS (default 64),
# GUID_BENCH_ZK (an existing ZooKeeper; a unique --zk-root is used so nothing is disturbed).
set -euo pipefail

DURATION=${DURATION:-10}
PAIRS=${PAIRS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/guidbench.XXXXXX")
PIDS=()

cleanup() {
	bench_autogroup_restore
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

need() { command -v "$1" >/dev/null || { echo "guid.sh: $1 not found${2:+ ($2)}" >&2; exit 1; }; }
need go
need wrk "apt-get install -y wrk"
need curl

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

wait_ok() { # url seconds
	local deadline=$((SECONDS + $2))
	until curl -fsS -o /dev/null "$1" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			echo "guid.sh: $1 not ready after $2 s; logs in $WORK:" >&2
			tail -n 20 "$WORK"/*.log >&2 || true
			exit 1
		fi
		sleep 0.2
	done
}

echo "building guidd and httpbaseline..." >&2
(cd "$ROOT" && go build -o "$WORK/guidd" ./guid/cmd/guidd && go build -o "$WORK/httpbaseline" ./tools/httpbaseline)

ZK=${GUID_BENCH_ZK:-}
if [[ -z $ZK ]]; then
	need java "apt-get install -y zookeeper"
	[[ -f /usr/share/java/zookeeper.jar ]] || { echo "guid.sh: /usr/share/java/zookeeper.jar missing (apt-get install -y zookeeper) or set GUID_BENCH_ZK" >&2; exit 1; }
	zkport=$(free_port)
	mkdir -p "$WORK/zk"
	printf 'tickTime=200\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\nforceSync=no\n' \
		"$WORK/zk" "$zkport" >"$WORK/zoo.cfg"
	cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar
	[[ -f /usr/share/java/slf4j-simple.jar ]] && cp=$cp:/usr/share/java/slf4j-simple.jar
	java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true \
		-Dzookeeper.admin.enableServer=false -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain \
		"$WORK/zoo.cfg" >"$WORK/zookeeper.log" 2>&1 &
	PIDS+=($!)
	ZK=127.0.0.1:$zkport
fi

gport=$(free_port)
bport=$(free_port)
"$WORK/guidd" --listen "127.0.0.1:$gport" --zk "$ZK" --zk-root "/guidbench-$$" --zk-session-timeout 4s \
	--log-format text >"$WORK/guidd.log" 2>&1 &
PIDS+=($!)
"$WORK/httpbaseline" --listen "127.0.0.1:$bport" >"$WORK/httpbaseline.log" 2>&1 &
PIDS+=($!)
wait_ok "http://127.0.0.1:$bport/" 30
wait_ok "http://127.0.0.1:$gport/readyz" 60

# bench name url: runs wrk and prints "name req/s p99 machine-CPU-µs-per-request"
bench() { bench_wrk "$1" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$2"; }

bench_autogroup_off
echo "wrk: ${THREADS} threads, ${CONNS} connections, ${DURATION}s per run, $(nproc) CPUs, ${PAIRS} interleaved pairs" >&2
# Each pair runs the baseline and guidd back to back (A B A B ...), so a burst of noise from the
# shared machine hits both sides of a pair; the ratio is the median of the per-pair ratios.
: >"$WORK/single" && : >"$WORK/batch"
for ((i = 1; i <= PAIRS; i++)); do
	read -r _ b1 _ b1cpu < <(bench baseline-single "http://127.0.0.1:$bport/")
	read -r _ g1 _ g1cpu < <(bench guidd-single "http://127.0.0.1:$gport/api/v1/guid")
	echo "$b1 $g1 $b1cpu $g1cpu" >>"$WORK/single"
	read -r _ bb _ bbcpu < <(bench baseline-batch "http://127.0.0.1:$bport/batch")
	read -r _ gb _ gbcpu < <(bench guidd-batch "http://127.0.0.1:$gport/api/v1/guid?count=4096")
	echo "$bb $gb $bbcpu $gbcpu" >>"$WORK/batch"
	echo "pair $i: single $b1 vs $g1 req/s ($b1cpu vs $g1cpu µs CPU), batch $bb vs $gb req/s ($bbcpu vs $gbcpu µs CPU)" >&2
done

# summary file: prints the medians of req/s and CPU per request of each side, and of the
# per-pair ratio guidd/baseline of req/s.
summary() {
	local c
	for c in 1 2 3 4; do bench_col_median "$1" $c; done | tr '\n' ' '
	bench_ratio_median "$1" 2 1
}
read -r b1 g1 b1cpu g1cpu r1 < <(summary "$WORK/single")
read -r bb gb bbcpu gbcpu rb < <(summary "$WORK/batch")
awk -v b1="$b1" -v g1="$g1" -v r1="$r1" -v bb="$bb" -v gb="$gb" -v rb="$rb" \
	-v b1cpu="$b1cpu" -v g1cpu="$g1cpu" -v bbcpu="$bbcpu" -v gbcpu="$gbcpu" 'BEGIN {
	printf "\n%-36s %14s %14s %12s\n", "medians", "httpbaseline", "guidd", "median ratio"
	printf "%-36s %14.0f %14.0f %12.2f\n", "single: requests/s", b1, g1, r1
	printf "%-36s %14.1f %14.1f\n", "single: machine CPU µs/request", b1cpu, g1cpu
	printf "%-36s %14.0f %14.0f %12.2f\n", "batch 4096: requests/s", bb, gb, rb
	printf "%-36s %14.0f %14.0f %12.2f\n", "batch 4096: IDs/s", bb * 4096, gb * 4096, rb
	printf "%-36s %14.1f %14.1f\n", "batch 4096: machine CPU µs/request", bbcpu, gbcpu
	printf "%-36s %14s %14.2f\n\n", "IDs/s vs one worker ceiling", "", gb * 4096 / 4096000
}'

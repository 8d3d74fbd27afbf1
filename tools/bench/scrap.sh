#!/usr/bin/env bash
# scrap.sh: scrapd over HTTP with wrk against a local fixture page, warm and cold cache, each
# against a baseline doing the same work by another route, interleaved A B A B.
#
#   tools/bench/scrap.sh [duration=10s] [connections=32] [threads=2]    (PAIRS=3 by default)
#
# Builds scrapd and tools/httpbaseline, serves one HTML page from a local Python server on
# 127.0.0.1, starts scrapd on 127.0.0.1 with --allow-cidr 127.0.0.1/32 (loopback fixtures only;
# never in production) and no reachable ZooKeeper (scrapd serves regardless), then runs PAIRS pairs:
#   warm: one URL, so all but the first request are cache hits; baseline: httpbaseline serving
#         the very bytes of that answer (the HTTP stack's ceiling: a hit adds only a map lookup);
#   cold: a fresh query string per request (wrk Lua counter), so each one is a full fetch and
#         extraction; baseline: wrk fetching the same fresh URLs from the fixture server directly
#         (the fetch a cold request cannot avoid; the Python server bounds both).
# Reported per side: req/s, p99 and machine CPU per request (/proc/stat), and the median per-pair
# ratios; autogroup is off for the run (tools/bench/lib.sh). Everything it starts is stopped on
# exit.
set -euo pipefail
duration=${1:-10s}
conns=${2:-32}
threads=${3:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
pairs=${PAIRS:-3}
((pairs >= 3)) || { echo "PAIRS must be at least 3" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
source "$root/tools/bench/lib.sh"
work=$(mktemp -d)
pids=()
cleanup() {
  bench_autogroup_restore
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

(cd "$root" && go build -o "$work/scrapd" ./scrap/cmd/scrapd && go build -o "$work/httpbaseline" ./tools/httpbaseline)
mkdir -p "$work/site"
cat >"$work/site/page.html" <<'HTML'
<!doctype html><html><head><title>bench</title>
<meta property="og:title" content="Bench page"><meta property="og:description" content="A page for benchmarks">
<meta property="og:image" content="/img.png"><link rel="icon" href="/favicon.ico">
</head><body><p>hello</p></body></html>
HTML
fport=$(free_port)
python3 -m http.server "$fport" --bind 127.0.0.1 --directory "$work/site" >"$work/fixture.log" 2>&1 &
pids+=($!)
sport=$(free_port)
"$work/scrapd" --listen "127.0.0.1:$sport" --zk 127.0.0.1:1 --allow-cidr 127.0.0.1/32 --robots=false \
  --cache-size 1000000 --log-level error >"$work/scrapd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$fport/page.html"
wait_http "http://127.0.0.1:$sport/healthz"

target="http%3A%2F%2F127.0.0.1%3A$fport%2Fpage.html"
warm_url="http://127.0.0.1:$sport/api/v1/scrap?url=$target"
curl -fsS -o "$work/preview.json" "$warm_url"
bport=$(free_port)
"$work/httpbaseline" --listen "127.0.0.1:$bport" --body-file "$work/preview.json" >"$work/httpbaseline.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$bport/"

# cold_lua file prefix: a wrk script asking for a fresh URL per request: prefix, then a counter
# and a random number (scrapd's url parameter, or the fixture page's own query).
cold_lua() {
  cat >"$1" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "$2" .. n .. "-" .. math.random(1e9))
end
LUA
}
cold_lua "$work/cold-scrapd.lua" "/api/v1/scrap?url=$target%3Fn%3D"
cold_lua "$work/cold-direct.lua" "/page.html?n="

bench_autogroup_off
echo "wrk: $threads threads, $conns connections, $duration per run, $(nproc) CPUs, $pairs interleaved pairs" >&2
args=(-t"$threads" -c"$conns" -d"$duration")
: >"$work/warm" && : >"$work/cold"
for ((i = 1; i <= pairs; i++)); do
  read -r _ wa wap99 wacpu < <(bench_wrk scrapd-warm "${args[@]}" "$warm_url")
  read -r _ wb wbp99 wbcpu < <(bench_wrk httpbaseline "${args[@]}" "http://127.0.0.1:$bport/")
  echo "$wa $wb $wacpu $wbcpu $wap99 $wbp99" >>"$work/warm"
  read -r _ ca cap99 cacpu < <(bench_wrk scrapd-cold "${args[@]}" -s "$work/cold-scrapd.lua" "http://127.0.0.1:$sport")
  read -r _ cb cbp99 cbcpu < <(bench_wrk fixture-direct "${args[@]}" -s "$work/cold-direct.lua" "http://127.0.0.1:$fport")
  echo "$ca $cb $cacpu $cbcpu $cap99 $cbp99" >>"$work/cold"
  echo "pair $i: warm $wa vs $wb req/s (p99 $wap99 vs $wbp99, $wacpu vs $wbcpu µs CPU); cold $ca vs $cb req/s (p99 $cap99 vs $cbp99, $cacpu vs $cbcpu µs CPU)" >&2
done

med() { bench_col_median "$1" "$2"; }
ratio() { bench_ratio_median "$1" 1 2; }
printf '\n%-34s %14s %14s %12s\n' "medians" "scrapd" "baseline" "median ratio"
printf '%-34s %14.0f %14.0f %12.2f\n' "warm: req/s (vs httpbaseline)" "$(med "$work/warm" 1)" "$(med "$work/warm" 2)" "$(ratio "$work/warm")"
printf '%-34s %14.1f %14.1f\n' "warm: machine CPU µs/request" "$(med "$work/warm" 3)" "$(med "$work/warm" 4)"
printf '%-34s %14.0f %14.0f %12.2f\n' "cold: req/s (vs direct fetch)" "$(med "$work/cold" 1)" "$(med "$work/cold" 2)" "$(ratio "$work/cold")"
printf '%-34s %14.1f %14.1f\n' "cold: machine CPU µs/request" "$(med "$work/cold" 3)" "$(med "$work/cold" 4)"

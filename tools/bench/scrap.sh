#!/usr/bin/env bash
# scrap.sh: scrapd over HTTP with wrk against a local fixture page, cold and warm cache.
#
#   tools/bench/scrap.sh [duration=10s] [connections=32] [threads=2]
#
# Builds scrapd, serves one HTML page from a local Python server on 127.0.0.1, starts scrapd on
# 127.0.0.1 with --allow-cidr 127.0.0.1/32 (loopback fixtures only; never in production) and no
# reachable ZooKeeper (scrapd serves regardless), then runs wrk twice:
#   warm: one URL, so all but the first request are cache hits;
#   cold: a fresh query string per request (wrk Lua counter), so each one is a full fetch.
# Everything it starts is stopped on exit. wrk prints requests/s and the latency distribution (p99).
set -euo pipefail
duration=${1:-10s}
conns=${2:-32}
threads=${3:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

(cd "$root" && go build -o "$work/scrapd" ./scrap/cmd/scrapd)
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
echo "== warm cache: one URL =="
wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:$sport/api/v1/scrap?url=$target"

cat >"$work/cold.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/scrap?url=$target%3Fn%3D" .. n .. "-" .. math.random(1e9))
end
LUA
echo "== cold cache: a new URL per request (full fetch each) =="
wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/cold.lua" "http://127.0.0.1:$sport"

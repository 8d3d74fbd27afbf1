#!/usr/bin/env bash
# Installs what the tests and the local cluster need from Debian's packages: ZooKeeper (with a
# Java runtime), Redis, MariaDB, Chromium (the browser tests of the demo page and the cluster view
# run it headless) and, for `make up`, the monitoring tests and the benchmarks, Prometheus (with
# promtool), the Redis, MySQL and host exporters (docs/monitoring.md) and wrk.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

want=(zookeeper redis-server mariadb-server chromium prometheus wrk
	prometheus-redis-exporter prometheus-mysqld-exporter prometheus-node-exporter)

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The packages must also have left their programs where we run them from.
[ -f /usr/share/java/zookeeper.jar ] || [[ " ${missing[*]} " == *" zookeeper "* ]] || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo sh -c "$cmd"
	else
		echo "missing packages: ${missing[*]}" >&2
		echo "install them with:  sudo sh -c '$cmd'" >&2
		exit 1
	fi
else
	echo "installing: ${missing[*]}" >&2
	# policy-rc.d keeps the packages' services from starting: tests and devcluster run their own.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	sh -c "$cmd"
fi

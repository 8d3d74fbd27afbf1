#!/bin/bash
# STAND-IN for the zkServer.sh of the official zookeeper image (see ../README.md), which runs the
# server in the foreground with the configuration in $ZOO_CONF_DIR. Debian's own zkServer.sh reads
# /etc/zookeeper and logs to files, so this one starts the JVM itself, logging to the console.
# Only start-foreground is implemented.
set -euo pipefail

if [[ "${1:-}" != start-foreground ]]; then
	echo "zkServer.sh (stand-in): only start-foreground is implemented" >&2
	exit 2
fi
exec java "-Xmx${ZK_SERVER_HEAP:-1000}m" -Dzookeeper.log.dir="$ZOO_LOG_DIR" \
	-Dzookeeper.root.logger=INFO,CONSOLE -Dlog4j.configuration="file:$ZOO_CONF_DIR/log4j.properties" \
	-cp "$ZOO_CONF_DIR:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar" \
	org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZOO_CONF_DIR/zoo.cfg"

#!/bin/bash
# STAND-IN entrypoint for the official zookeeper image (see ../README.md): writes /conf/zoo.cfg
# from the same ZOO_* variables with the same defaults, for a standalone server, then runs the
# command. Clustering (ZOO_MY_ID, ZOO_SERVERS) is not implemented: our compose file has one server.
set -euo pipefail

if [[ ! -f "$ZOO_CONF_DIR/zoo.cfg" ]]; then
	{
		echo "dataDir=$ZOO_DATA_DIR"
		echo "dataLogDir=$ZOO_DATA_LOG_DIR"
		echo "tickTime=${ZOO_TICK_TIME:-2000}"
		echo "initLimit=${ZOO_INIT_LIMIT:-5}"
		echo "syncLimit=${ZOO_SYNC_LIMIT:-2}"
		echo "autopurge.snapRetainCount=${ZOO_AUTOPURGE_SNAPRETAINCOUNT:-3}"
		echo "autopurge.purgeInterval=${ZOO_AUTOPURGE_PURGEINTERVAL:-0}"
		echo "maxClientCnxns=${ZOO_MAX_CLIENT_CNXNS:-60}"
		echo "standaloneEnabled=${ZOO_STANDALONE_ENABLED:-true}"
		echo "admin.enableServer=${ZOO_ADMINSERVER_ENABLED:-true}"
		echo "clientPort=2181"
		if [[ -n "${ZOO_4LW_COMMANDS_WHITELIST:-}" ]]; then
			echo "4lw.commands.whitelist=$ZOO_4LW_COMMANDS_WHITELIST"
		fi
		if [[ -n "${ZOO_CFG_EXTRA:-}" ]]; then
			tr ' ' '\n' <<<"$ZOO_CFG_EXTRA"
		fi
	} >"$ZOO_CONF_DIR/zoo.cfg"
	# The log4j setup that zkServer.sh (stand-in) points at: the console, as upstream does.
	cp /etc/zookeeper/conf/log4j.properties "$ZOO_CONF_DIR/"
fi
exec "$@"

#!/bin/sh
# STAND-IN entrypoint for the official redis image (see ../README.md). The official redis-server is
# built with protected mode off, so that other containers can connect; Debian's is not, so this
# passes --protected-mode no first (a later --protected-mode in the command still wins).
set -eu

case "${1:-}" in
-*|*.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
	shift
	set -- redis-server --protected-mode no "$@"
fi
exec "$@"

#!/bin/bash
# STAND-IN entrypoint for the official mariadb image (see ../README.md). On an empty data
# directory it initialises the server the way the official entrypoint documents, for these
# variables only (the MYSQL_* spellings work too):
#   MARIADB_ROOT_PASSWORD, MARIADB_ROOT_HOST (default %)    root's password and remote account
#   MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD        a database and a user with ALL on it
#   MARIADB_REPLICATION_USER, MARIADB_REPLICATION_PASSWORD  without MARIADB_MASTER_HOST: create
#       that user with REPLICATION REPLICA; with it: CHANGE MASTER TO that host
#       (MARIADB_MASTER_PORT, default 3306) as that user, then START REPLICA
#   /docker-entrypoint-initdb.d/*.sql, *.sql.gz, *.sh       run in name order, as root, into
#       MARIADB_DATABASE when one is set
# As in the official image, system-account statements are not binlogged, while the database,
# user, replication user and init files are (a replica receives them). Initialisation runs on a
# temporary server with networking off and the command's own options; then the real server
# starts. Not implemented: random or empty root passwords, password hashes, time zone tables,
# the healthcheck user and healthcheck.sh, upgrades, secrets in *_FILE variables.
set -euo pipefail

note() { echo "standin-entrypoint: $*" >&2; }
env_or() { local a="MARIADB_$1" b="MYSQL_$1"; echo "${!a:-${!b:-${2:-}}}"; }
sql_string() { local s=${1//\\/\\\\}; echo "'${s//\'/\\\'}'"; }

SOCKET=/run/mysqld/mysqld.sock

temp_sql() { mariadb --protocol=socket --socket="$SOCKET" -uroot "$@"; }

start_temp_server() {
	"$@" --user=mysql --skip-networking --socket="$SOCKET" --skip-slave-start &
	TEMP_PID=$!
	for _ in $(seq 60); do
		if mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1; then return 0; fi
		kill -0 "$TEMP_PID" 2>/dev/null || { note "temporary server died"; exit 1; }
		sleep 1
	done
	note "temporary server did not answer within 60 s"
	exit 1
}

stop_temp_server() {
	temp_sql -e 'SHUTDOWN'
	wait "$TEMP_PID" || true
}

setup_sql() {
	local root_pw root_host db user pw repl_user repl_pw master
	root_pw=$(env_or ROOT_PASSWORD)
	[[ -n "$root_pw" ]] || { note "set MARIADB_ROOT_PASSWORD (this stand-in does not make one up)"; exit 1; }
	root_host=$(env_or ROOT_HOST %)
	db=$(env_or DATABASE) user=$(env_or USER) pw=$(env_or PASSWORD)
	repl_user=$(env_or REPLICATION_USER) repl_pw=$(env_or REPLICATION_PASSWORD)
	master=$(env_or MASTER_HOST)
	cat <<-SQL
		SET @orig_sql_log_bin = @@SESSION.SQL_LOG_BIN;
		SET @@SESSION.SQL_LOG_BIN = 0;
		DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost'));
		FLUSH PRIVILEGES;
		ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_pw");
	SQL
	if [[ "$root_host" != localhost ]]; then
		echo "CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$root_pw");"
		echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
	fi
	echo "SET @@SESSION.SQL_LOG_BIN = @orig_sql_log_bin;"
	[[ -z "$db" ]] || echo "CREATE DATABASE IF NOT EXISTS \`$db\`;"
	if [[ -n "$user" && -n "$pw" ]]; then
		echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$pw");"
		[[ -z "$db" ]] || echo "GRANT ALL ON \`$db\`.* TO $(sql_string "$user")@'%';"
	fi
	if [[ -n "$repl_user" && -z "$master" ]]; then
		echo "CREATE USER $(sql_string "$repl_user")@'%' IDENTIFIED BY $(sql_string "$repl_pw");"
		echo "GRANT REPLICATION REPLICA ON *.* TO $(sql_string "$repl_user")@'%';"
	fi
	if [[ -n "$repl_user" && -n "$master" ]]; then
		echo "CHANGE MASTER TO MASTER_HOST=$(sql_string "$master"), MASTER_USER=$(sql_string "$repl_user"), MASTER_PASSWORD=$(sql_string "$repl_pw"), MASTER_PORT=$(env_or MASTER_PORT 3306), MASTER_CONNECT_RETRY=10;"
		echo "START REPLICA;"
	fi
}

init_files() {
	local db f
	db=$(env_or DATABASE)
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh) note "running $f"; . "$f" ;;
		*.sql) note "running $f"; temp_sql ${db:+"$db"} <"$f" ;;
		*.sql.gz) note "running $f"; gunzip -c "$f" | temp_sql ${db:+"$db"} ;;
		*) [[ ! -e "$f" ]] || note "ignoring $f" ;;
		esac
	done
}

initialise() {
	note "initialising an empty data directory"
	mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
		--auth-root-authentication-method=normal >/dev/null
	start_temp_server "$@"
	setup_sql | temp_sql
	# root has its password now; the client reads it from here for the rest of initialisation.
	export MYSQL_PWD
	MYSQL_PWD=$(env_or ROOT_PASSWORD)
	init_files
	stop_temp_server
	unset MYSQL_PWD
	note "initialisation done"
}

if [[ "${1:-}" == -* ]]; then
	set -- mariadbd "$@"
fi
if [[ "$1" == mariadbd || "$1" == mysqld ]]; then
	mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld /var/lib/mysql
	if [[ ! -d /var/lib/mysql/mysql ]]; then
		initialise "$@"
	fi
	set -- "$@" --user=mysql
fi
exec "$@"

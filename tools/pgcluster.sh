#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# pgcluster.sh: a throwaway PostgreSQL 15 cluster for development in DIR
# (e.g. var/pg): Unix socket only (no TCP) in a directory only its owner
# can enter, trust auth on that socket, superuser role bvchat, no system
# service. As root, initdb and postgres run as the `postgres` user (they
# refuse root), which then owns DIR; if that user cannot reach DIR, the
# cluster lives in /var/tmp/bvchat-pg-HASH (DIR/base.path says so).
# Not for production: see docs/operations.md. Usage: see usage() below.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROLE=bvchat

usage() {
	cat >&2 <<-'EOF'
		usage: tools/pgcluster.sh COMMAND DIR PORT [ARGS…]
		  init            create the cluster unless DIR already holds one
		  start           start it (idempotent) and wait until it accepts
		  stop            fast shutdown (idempotent)
		  status          exit 0 when running, 3 when not
		  conninfo [DB]   print a libpq conninfo for database DB (bvchat)
		  createdb DB     create database DB unless it exists
		  psql [ARGS…]    psql on the cluster (database bvchat)
		PORT names the socket file (.s.PGSQL.PORT); nothing listens on TCP.
	EOF
	exit 2
}

(($# >= 3)) || usage
cmd=$1
dir=$2
port=$3
shift 3
[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
	{ echo "pgcluster: bad port '$port'" >&2; exit 2; }
[[ -x $PGBIN/initdb ]] ||
	{ echo "pgcluster: $PGBIN/initdb missing; run tools/deps.sh" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
hash=$(printf '%s' "$dir" | sha256sum | cut -c1-12)

if [[ $(id -u) -eq 0 ]]; then
	owner=postgres
	id -u "$owner" >/dev/null 2>&1 ||
		{ echo "pgcluster: no 'postgres' user; run tools/deps.sh" >&2; exit 1; }
	as_owner() { runuser -u "$owner" -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

# Where the cluster lives: fixed at init, recorded in DIR/base.path.
if [[ -f $dir/base.path ]]; then
	base=$(<"$dir/base.path")
elif as_owner test -x "$dir" && as_owner test -r "$dir"; then
	base=$dir
elif [[ $owner != "$(id -un)" ]] && as_owner test -x "$(dirname "$dir")"; then
	# DIR itself was made by root with a restrictive umask: give it away.
	chown "$owner:" "$dir"
	base=$dir
else
	base=/var/tmp/bvchat-pg-$hash
	echo "pgcluster: user $owner cannot reach $dir; keeping the cluster" \
		"in $base instead" >&2
fi
data=$base/data
log=$base/postgres.log
sock=$base/run
# sun_path holds 108 bytes including ".s.PGSQL.PORT" and a NUL.
if ((${#sock} + 20 > 107)); then
	sock=/tmp/bvchat-pg-$hash
fi

conninfo() {
	echo "host=$sock port=$port user=$ROLE dbname=${1:-bvchat}"
}

running() {
	[[ -f $data/PG_VERSION ]] &&
		as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

do_init() {
	if [[ -f $data/PG_VERSION ]]; then
		return 0
	fi
	mkdir -p "$base"
	[[ $base == "$dir" ]] || echo "$base" >"$dir/base.path"
	chown "$owner:" "$base"
	chmod 0700 "$base"
	echo "pgcluster: creating a PostgreSQL cluster in $data"
	as_owner "$PGBIN/initdb" -D "$data" -U "$ROLE" -E UTF8 \
		--locale=C.UTF-8 --auth-local=trust --auth-host=reject \
		>"$base/initdb.log" 2>&1 ||
		{ cat "$base/initdb.log" >&2; exit 1; }
	as_owner tee -a "$data/postgresql.conf" >/dev/null <<-EOF

		# bvchat development cluster (tools/pgcluster.sh).
		listen_addresses = ''
		unix_socket_permissions = 0700
		include_if_exists = 'bvchat-run.conf'
	EOF
}

do_start() {
	[[ -f $data/PG_VERSION ]] ||
		{ echo "pgcluster: no cluster in $data; run init first" >&2; exit 1; }
	if running; then
		wait_ready
		return 0
	fi
	mkdir -p "$sock"
	chown "$owner:" "$sock"
	chmod 0700 "$sock"
	# Port and socket may differ from one start to the next.
	as_owner tee "$data/bvchat-run.conf" >/dev/null <<-EOF
		port = $port
		unix_socket_directories = '$sock'
	EOF
	if ! as_owner "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 \
		start >/dev/null; then
		echo "pgcluster: PostgreSQL did not start; the end of $log:" >&2
		tail -n 20 "$log" >&2 || true
		exit 1
	fi
	wait_ready
}

wait_ready() {
	local i
	for ((i = 0; i < 60; i++)); do
		if "$PGBIN/pg_isready" -q -h "$sock" -p "$port" -U "$ROLE" \
			-d postgres; then
			return 0
		fi
		sleep 0.5
	done
	echo "pgcluster: PostgreSQL is running but not accepting connections" \
		"on $sock; see $log" >&2
	exit 1
}

do_stop() {
	if running; then
		as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop \
			>/dev/null
	fi
}

psql_() {
	"$PGBIN/psql" -X -v ON_ERROR_STOP=1 "$(conninfo "${DB:-bvchat}")" "$@"
}

case $cmd in
init) do_init ;;
start) do_start ;;
stop) do_stop ;;
status)
	if running; then
		echo "running: $(conninfo)"
	else
		echo "stopped"
		exit 3
	fi
	;;
conninfo) conninfo "${1:-bvchat}" ;;
createdb)
	db=${1:?createdb needs a database name}
	[[ $db =~ ^[a-z_][a-z0-9_]*$ ]] ||
		{ echo "pgcluster: bad database name '$db'" >&2; exit 2; }
	if [[ -z $(DB=postgres psql_ -tA -c \
		"SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
		DB=postgres psql_ -q -c "CREATE DATABASE $db"
		echo "pgcluster: created database $db"
	fi
	;;
psql) psql_ "$@" ;;
*) usage ;;
esac

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# fiksio.sh: a local FIKS IO in DIR the way KS's own local set-up is
# (docs/fiks.md "Local FIKS IO"): Debian's RabbitMQ with the exchange
# fiks-io.meldinger, one quorum queue per account (3 deliveries, then the
# dead-letter exchange) and the HTTP auth backend pointed at
# bvfiks-devserver, which is the HTTP half (send, katalog, token,
# dokumentlager) and turns dead letters into Fiks IO's receipts. Everything
# (Erlang cookie, Mnesia, logs, PID files) lives in DIR; the node has its own
# name, epmd and distribution ports, so several can run side by side. As
# root the broker runs as the `rabbitmq` user. Loopback only. Not for
# production. Usage: see usage() below.
set -euo pipefail

RMQBIN=${RMQBIN:-/usr/lib/rabbitmq/bin}
EPMD=${EPMD:-$(command -v epmd || echo /usr/bin/epmd)}

usage() {
	cat >&2 <<-'EOF'
		usage: tools/fiksio.sh COMMAND DIR [OPTIONS]
		  start           start the broker and the development server
		  stop            stop both (by PID file); idempotent
		  status          exit 0 when both run, 3 when not
		  broker-stop     stop only the broker (tests: a broker restart)
		  broker-start    start only the broker again, same ports
		options of start (remembered in DIR/fiksio.env for later commands):
		  --amqp-port N   AMQP listener on 127.0.0.1 (5673)
		  --amqps-port N  also AMQP over TLS on 127.0.0.1 (0: none), with a
		                  CA and server certificate made in DIR/rabbitmq/tls;
		                  clients trust DIR/amqps-ca.crt
		  --http-port M   the development server's HTTP port (8089)
		  --epmd-port P   this node's own epmd (4370)
		  --dist-port Q   this node's Erlang distribution port (25673)
		  --accounts F    the accounts file (JSON; docs/fiks.md), DIR/accounts.json
		  --devserver B   the bvfiks-devserver binary
		  --token-ttl S   lifetime of the tokens the server issues (3600)
		  --timeout S     how long start waits for readiness (60)
	EOF
	exit 2
}

(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
hash=$(printf '%s' "$dir" | sha256sum | cut -c1-12)

amqp_port=5673 http_port=8089 epmd_port=4370 dist_port=25673 amqps_port=0
accounts=$dir/accounts.json token_ttl=3600 timeout=60
devserver=${BVFIKS_DEVSERVER:-}
if [[ -f $dir/fiksio.env ]]; then
	# shellcheck source=/dev/null
	. "$dir/fiksio.env"
fi
while (($#)); do
	case $1 in
	--amqp-port) amqp_port=$2 ;;
	--amqps-port) amqps_port=$2 ;;
	--http-port) http_port=$2 ;;
	--epmd-port) epmd_port=$2 ;;
	--dist-port) dist_port=$2 ;;
	--accounts) accounts=$2 ;;
	--devserver) devserver=$2 ;;
	--token-ttl) token_ttl=$2 ;;
	--timeout) timeout=$2 ;;
	*) usage ;;
	esac
	shift 2 || usage
done
for p in "$amqp_port" "$http_port" "$epmd_port" "$dist_port"; do
	[[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) ||
		{ echo "fiksio: bad port '$p'" >&2; exit 2; }
done
[[ $amqps_port =~ ^[0-9]+$ ]] && ((amqps_port < 65536)) ||
	{ echo "fiksio: bad port '$amqps_port'" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ && $token_ttl =~ ^[0-9]+$ ]] || usage

if [[ -z $devserver ]]; then
	root=$(cd "$(dirname "$0")/.." && pwd -P)
	for c in "$root/build/fiks/bvfiks-devserver" \
		"$(command -v bvfiks-devserver || true)"; do
		[[ -n $c && -x $c ]] && { devserver=$c; break; }
	done
fi

if [[ $(id -u) -eq 0 ]]; then
	owner=rabbitmq
	id -u "$owner" >/dev/null 2>&1 ||
		{ echo "fiksio: no 'rabbitmq' user; run tools/deps.sh" >&2; exit 1; }
	as_owner() {
		setpriv --reuid="$owner" --regid="$owner" --init-groups \
			--inh-caps=-all -- "$@"
	}
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

rmq=$dir/rabbitmq
node=fiksio-$hash@localhost

alive() { # PIDFILE [COMM]: 0 when the process it names runs
	local pid
	[[ -f $1 ]] || return 1
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ -z ${2:-} ]] || grep -q "$2" "/proc/$pid/comm" 2>/dev/null
}

spawn() { # PIDFILE LOG CMD…: CMD in its own session, in the background.
	# setsid forks when we lead a process group (job control), so $! may
	# not be the program: the shell writes its own PID, then execs it.
	local pidfile=$1 log=$2
	shift 2
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # $$ and $@ are the inner shell's
	setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
		</dev/null >>"$log" 2>&1 &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.02
	done
	echo "fiksio: could not start $pidfile (see $log)" >&2
	exit 1
}

stop_pid() { # PIDFILE COMM: TERM, wait up to 30 s, then KILL
	local pid i
	alive "$1" "$2" || { rm -f "$1"; return 0; }
	pid=$(<"$1")
	kill -TERM "$pid" 2>/dev/null || true
	# A test may have stopped it (SIGSTOP): it must run to end.
	kill -CONT "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "fiksio: $2 ($pid) ignored SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

# The AMQP listener opens last in RabbitMQ's boot, after the definitions
# are loaded: a Connection.Start in answer to the protocol header means
# the broker is ready.
amqp_ready() {
	local reply
	reply=$(timeout 3 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/'"$amqp_port"' || exit 1
		printf "AMQP\0\0\x09\x01" >&3
		head -c 7 <&3 | od -An -tx1' 2>/dev/null) || return 1
	[[ $reply == " 01 00 00 00 00 "* ]]
}

# The TLS listener's files, made once per DIR and again when the server
# certificate has less than a day left: a CA (EC P-256) and a server
# certificate it signs for localhost and 127.0.0.1. Only the test broker's;
# clients trust DIR/amqps-ca.crt. Not for production.
tls_files() {
	local t=$rmq/tls
	if [[ -s $t/server.crt && -s $dir/amqps-ca.crt ]] &&
		openssl x509 -checkend 86400 -noout -in "$t/server.crt" >/dev/null; then
		return 0
	fi
	mkdir -p "$t"
	(
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout "$t/ca.key" -out "$t/ca.crt" -days 30 \
			-subj "/CN=fiksio test CA $hash" \
			-addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout "$t/server.key" -out "$t/server.csr" \
			-subj /CN=localhost
		printf '%s\n' basicConstraints=CA:FALSE \
			keyUsage=critical,digitalSignature \
			extendedKeyUsage=serverAuth \
			subjectAltName=DNS:localhost,IP:127.0.0.1 >"$t/server.ext"
		openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" \
			-CAkey "$t/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
			-days 30 -extfile "$t/server.ext" -out "$t/server.crt"
	) >"$rmq/log/tls.log" 2>&1 ||
		{ echo "fiksio: making the TLS certificates failed:" >&2; cat "$rmq/log/tls.log" >&2; exit 1; }
	rm -f "$t/server.csr" "$t/server.ext"
	cp "$t/ca.crt" "$dir/amqps-ca.crt"
	chmod 0644 "$dir/amqps-ca.crt"
}

# The TLS listener opens next to the plain one; accepting is enough here.
amqps_ready() {
	((amqps_port == 0)) ||
		timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$amqps_port" 2>/dev/null
}

password_hash() { # rabbit_password_hashing_sha256: b64(salt + sha256(salt+pw))
	# Binary through files, not shell variables; openssl only (no xxd).
	local t
	t=$(mktemp -d)
	openssl rand -out "$t/salt" 4
	printf '%s' "$1" >"$t/pw"
	cat "$t/salt" "$t/pw" | openssl dgst -sha256 -binary >"$t/digest"
	cat "$t/salt" "$t/digest" | base64 -w0
	rm -rf "$t"
}

write_broker_config() {
	local secret qs="" bs="" k q
	mkdir -p "$rmq/home" "$rmq/mnesia" "$rmq/log"
	if [[ ! -f $dir/admin.secret ]]; then
		(umask 077; openssl rand -hex 24 >"$dir/admin.secret")
	fi
	secret=$(<"$dir/admin.secret")
	# Queues of the accounts known now; the development server declares
	# the same (idempotently) for accounts added later.
	if [[ -f $accounts ]]; then
		while read -r k; do
			[[ $k =~ ^[0-9a-f-]{36}$ ]] || continue
			q=fiksio.konto.$k
			qs+=',{"name":"'$q'","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum","x-delivery-limit":2,"x-dead-letter-exchange":"fiks-io.dlx"}}'
			bs+=',{"source":"fiks-io.meldinger","vhost":"/","destination":"'$q'","destination_type":"queue","routing_key":"'$q'","arguments":{}}'
		done < <(grep -o '"konto"[[:space:]]*:[[:space:]]*"[^"]*"' "$accounts" |
			sed 's/.*"\([^"]*\)"$/\1/')
	fi
	cat >"$rmq/definitions.json" <<-EOF
		{"rabbit_version":"3.10.8",
		 "users":[{"name":"fiksio-admin","password_hash":"$(password_hash "$secret")","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],"limits":{}}],
		 "vhosts":[{"name":"/"}],
		 "permissions":[{"user":"fiksio-admin","vhost":"/","configure":".*","write":".*","read":".*"}],
		 "exchanges":[
		  {"name":"fiks-io.meldinger","vhost":"/","type":"direct","durable":true,"auto_delete":false,"internal":false,"arguments":{}},
		  {"name":"fiks-io.dlx","vhost":"/","type":"fanout","durable":true,"auto_delete":false,"internal":false,"arguments":{}}],
		 "queues":[{"name":"fiks-io.dlq","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum"}}$qs],
		 "bindings":[{"source":"fiks-io.dlx","vhost":"/","destination":"fiks-io.dlq","destination_type":"queue","routing_key":"","arguments":{}}$bs]}
	EOF
	cat >"$rmq/rabbitmq.conf" <<-EOF
		# tools/fiksio.sh: a local FIKS IO broker; rewritten on every start.
		listeners.tcp.1 = 127.0.0.1:$amqp_port
		load_definitions = $rmq/definitions.json
		loopback_users = none
		auth_backends.1 = internal
		auth_backends.2 = http
		auth_http.http_method = post
		auth_http.user_path = http://127.0.0.1:$http_port/fiks-io/authorization/api/v1/user
		auth_http.vhost_path = http://127.0.0.1:$http_port/fiks-io/authorization/api/v1/vhost
		auth_http.resource_path = http://127.0.0.1:$http_port/fiks-io/authorization/api/v1/resource
		auth_http.topic_path = http://127.0.0.1:$http_port/fiks-io/authorization/api/v1/topic
		log.file.level = warning
		log.console = false
		management_agent.disable_metrics_collector = true
		vm_memory_high_watermark.relative = 0.2
		disk_free_limit.absolute = 50MB
	EOF
	if ((amqps_port > 0)); then
		tls_files
		# Server authentication only, as Fiks IO: clients send no
		# certificate; they log in as on the plain port.
		cat >>"$rmq/rabbitmq.conf" <<-EOF
			listeners.ssl.1 = 127.0.0.1:$amqps_port
			ssl_options.cacertfile = $rmq/tls/ca.crt
			ssl_options.certfile = $rmq/tls/server.crt
			ssl_options.keyfile = $rmq/tls/server.key
			ssl_options.verify = verify_none
			ssl_options.fail_if_no_peer_cert = false
		EOF
	fi
	echo '[rabbitmq_auth_backend_http].' >"$rmq/enabled_plugins"
	if [[ $owner != "$(id -un)" ]]; then
		chown "$owner:" "$dir"
		chown -R "$owner:" "$rmq"
		chown "$owner:" "$dir/admin.secret"
	fi
	chmod 0700 "$rmq"
}

broker_env() {
	benv=(env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
		HOME="$rmq/home" \
		RABBITMQ_CONF_ENV_FILE=/nonexistent \
		RABBITMQ_NODENAME="$node" \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="$amqp_port" \
		RABBITMQ_DIST_PORT="$dist_port" \
		RABBITMQ_CONFIG_FILE="$rmq/rabbitmq.conf" \
		RABBITMQ_ADVANCED_CONFIG_FILE="$rmq/advanced.config" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$rmq/enabled_plugins" \
		RABBITMQ_MNESIA_BASE="$rmq/mnesia" \
		RABBITMQ_LOG_BASE="$rmq/log" \
		RABBITMQ_PID_FILE="$rmq/beam.pid" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1)
}

broker_start() {
	local i
	if alive "$rmq/beam.pid" beam; then
		return 0
	fi
	[[ -x $RMQBIN/rabbitmq-server ]] ||
		{ echo "fiksio: no $RMQBIN/rabbitmq-server; run tools/deps.sh" >&2; exit 1; }
	write_broker_config
	broker_env
	if ! alive "$rmq/epmd.pid" epmd; then
		# Our own epmd in the foreground, so that it has a PID to stop.
		spawn "$rmq/epmd.pid" "$rmq/log/epmd.log" "${benv[@]}" \
			setpriv --reuid="$(id -u "$owner")" \
			--regid="$(id -g "$owner")" --clear-groups -- \
			"$EPMD" -port "$epmd_port" -address 127.0.0.1
	fi
	rm -f "$rmq/beam.pid"
	spawn "$rmq/server.pid" "$rmq/log/server.out" "${benv[@]}" \
		setpriv --reuid="$(id -u "$owner")" \
		--regid="$(id -g "$owner")" --clear-groups -- \
		"$RMQBIN/rabbitmq-server"
	for ((i = 0; i < timeout * 10; i++)); do
		if ! alive "$rmq/server.pid"; then
			echo "fiksio: RabbitMQ exited during start; the end of its log:" >&2
			tail -n 30 "$rmq/log/server.out" "$rmq"/log/*.log >&2 || true
			broker_stop
			exit 1
		fi
		if [[ -s $rmq/beam.pid ]] && amqp_ready && amqps_ready; then
			return 0
		fi
		sleep 0.1
	done
	echo "fiksio: RabbitMQ not ready on 127.0.0.1:$amqp_port after ${timeout}s" >&2
	tail -n 30 "$rmq"/log/*.log >&2 || true
	broker_stop
	exit 1
}

broker_stop() {
	# SIGTERM to the Erlang VM is an orderly rabbit shutdown; the
	# rabbitmq-server script that waits on it then exits too.
	stop_pid "$rmq/beam.pid" beam
	stop_pid "$rmq/server.pid" rabbitmq-server
	stop_pid "$rmq/epmd.pid" epmd
}

dev_start() {
	local i
	if alive "$dir/devserver.pid" bvfiks-dev; then
		return 0
	fi
	[[ -n $devserver && -x $devserver ]] ||
		{ echo "fiksio: no bvfiks-devserver; build it or pass --devserver" >&2; exit 1; }
	[[ -f $accounts ]] || echo '{"accounts":[]}' >"$accounts"
	mkdir -p "$dir/dokumentlager"
	spawn "$dir/devserver.pid" "$dir/devserver.log" "$devserver" --port "$http_port" --amqp-port "$amqp_port" \
		--amqp-secret-file "$dir/admin.secret" --accounts "$accounts" \
		--dokumentlager "$dir/dokumentlager" --token-ttl "$token_ttl"
	for ((i = 0; i < timeout * 10; i++)); do
		if ! alive "$dir/devserver.pid"; then
			echo "fiksio: bvfiks-devserver exited; the end of its log:" >&2
			tail -n 20 "$dir/devserver.log" >&2 || true
			exit 1
		fi
		if curl -fsS -m 2 -o /dev/null \
			"http://127.0.0.1:$http_port/healthz" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "fiksio: bvfiks-devserver not healthy after ${timeout}s" >&2
	stop_pid "$dir/devserver.pid" bvfiks-dev
	exit 1
}

save_env() {
	cat >"$dir/fiksio.env" <<-EOF
		amqp_port=$amqp_port http_port=$http_port epmd_port=$epmd_port dist_port=$dist_port
		amqps_port=$amqps_port
		accounts='$accounts' token_ttl=$token_ttl timeout=$timeout
		devserver='$devserver'
	EOF
}

case $cmd in
start)
	save_env
	broker_start
	dev_start
	echo "fiksio: FIKS IO on http://127.0.0.1:$http_port, amqp://127.0.0.1:$amqp_port ($dir)"
	((amqps_port == 0)) ||
		echo "fiksio: amqps://127.0.0.1:$amqps_port, CA $dir/amqps-ca.crt"
	;;
stop)
	stop_pid "$dir/devserver.pid" bvfiks-dev
	broker_stop
	;;
broker-start) broker_start ;;
broker-stop) broker_stop ;;
status)
	if alive "$rmq/beam.pid" beam && alive "$dir/devserver.pid" bvfiks-dev; then
		echo "running: http://127.0.0.1:$http_port amqp://127.0.0.1:$amqp_port"
	else
		echo "stopped"
		exit 3
	fi
	;;
*) usage ;;
esac

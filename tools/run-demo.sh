#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# run-demo.sh: what `make run` does after building. Starts (or reuses) the
# development PostgreSQL in var/pg, creates and migrates database bvchat,
# seeds the tenant "Demo kommune" once (key: var/demo-tenant.key), runs
# bvchat-relay in the foreground on 127.0.0.1. Ctrl-C or SIGTERM drains the
# relay and stops PostgreSQL; var/ is kept for the next run. Also runs
# bvchat-notifier with a local SMTP sink (var/mail): Elisa is told by
# e-mail after a minute when a message reaches none of her devices, or by
# web push once her widget has subscribed (VAPID key var/vapid.pem). Not a
# production setup (docs/operations.md). Environment: BUILD (build),
# BV_PORT (8480), BV_PG_PORT (5488, names the socket file).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD:-build}
port=${BV_PORT:-8480}
pgport=${BV_PG_PORT:-5488}
pgdir=var/pg
key=var/demo-tenant.key
relay=$build/relay/bvchat-relay
pgc() { tools/pgcluster.sh "$1" "$pgdir" "$pgport" "${@:2}"; }

[[ -x $relay ]] || { echo "run: $relay is missing; run make build" >&2; exit 1; }

relay_pid=
pg_started=
fiks_started=
archiver_pid=
peer_pid=
notifier_pid=
smtp_pid=
# Stops a child we started, by PID: TERM, then (after 10 s) KILL.
stop_child() {
	local pid=$1 what=$2 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	echo "run: stopping $what"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local status=$? i
	# Finish stopping even if Ctrl-C is pressed again.
	trap - EXIT
	trap '' INT TERM
	stop_child "$notifier_pid" "bvchat-notifier"
	stop_child "$smtp_pid" "the local SMTP sink"
	stop_child "$archiver_pid" "bvchat-archiver"
	stop_child "$peer_pid" "the test archive"
	if [[ -n $fiks_started ]]; then
		echo "run: stopping the local FIKS IO"
		tools/fiksio.sh stop var/fiks || true
	fi
	if [[ -n $relay_pid ]] && kill -0 "$relay_pid" 2>/dev/null; then
		echo "run: stopping the relay (it drains its connections)"
		kill -TERM "$relay_pid" 2>/dev/null || true
		# shutdown_timeout_ms bounds the drain; give it that and a bit.
		for ((i = 0; i < 150; i++)); do
			kill -0 "$relay_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$relay_pid" 2>/dev/null; then
			echo "run: the relay did not stop in 15 s; killing it" >&2
			kill -KILL "$relay_pid" 2>/dev/null || true
		fi
		wait "$relay_pid" 2>/dev/null || true
	fi
	if [[ -n $pg_started ]]; then
		echo "run: stopping PostgreSQL"
		pgc stop || true
	fi
	echo "run: stopped; data kept in var/ (make run again to go on," \
		"make distclean to start from scratch)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p var
# One make run per var/: a second one would stop the first one's database.
exec 9>var/run.lock
if ! flock -n 9; then
	echo "run: another make run is using var/ already; stop it first" >&2
	exit 1
fi
pgc init
pg_started=1
pgc start
pgc createdb bvchat
db=$(pgc conninfo bvchat)

"$relay" --database "$db" --migrate

# The demo tenant: created once. A key whose tenant is gone (var/pg was
# removed) is set aside and a new tenant made.
tenant=
if [[ -f $key ]]; then
	tenant=$(sed -n 's/.*"tenant": *"\([0-9a-f-]*\)".*/\1/p' "$key")
	if [[ -z $tenant || -z $(pgc psql -tA -c \
		"SELECT 1 FROM tenants WHERE id = '$tenant'") ]]; then
		stale=$key.stale-$(date +%Y%m%d%H%M%S)
		echo "run: $key names no tenant in this database; moved to $stale"
		mv "$key" "$stale"
		tenant=
	fi
fi
if [[ -z $tenant ]]; then
	tenant=$("$relay" --database "$db" admin tenant-create \
		--name "Demo kommune" --key-out "$key")
	echo "run: created tenant \"Demo kommune\" ($tenant), key in $key"
fi

# The widget (docs/widget.md) from the WebAssembly build: its frame on
# 127.0.0.1, the municipality's demo page on localhost (another origin to
# the browser, as kommune.no is to the relay).
widget=$build/wasm/widget
widget_opts=()
# Invite codes are hashed with this key (made once; never in the database).
invite_key=var/invite.key
if [[ ! -s $invite_key ]]; then
	(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$invite_key")
fi
if [[ -f $widget/index.html ]]; then
	widget_opts=(--widget_dir "$(cd "$widget" && pwd)"
		--widget_origins "http://127.0.0.1:$port"		--widget_embed_origins "http://localhost:$port"
		--invite_key_file "$PWD/$invite_key")
else
	echo "run: $widget is missing (tools/wasm-build.sh); no widget" >&2
fi
# Web push (docs/operations.md "Web Push keys"): the demo's VAPID key,
# made once in var/vapid.pem (readable only by you). The relay hands its
# public half to clients in the challenge, so the widget's "Varsle meg"
# subscribes with the browser's own push service; bvchat-notifier signs
# each push with it. Where no push service is reachable (no internet), the
# browser refuses the subscription and Elisa keeps getting e-mail.
notifier=$build/relay/bvchat-notifier
vapid_key=var/vapid.pem
vapid_subject=mailto:drift@demo-kommune.invalid
vapid_public=
relay_push_opts=()
setup_vapid() {
	[[ -x $notifier ]] || return 1
	if [[ ! -s $vapid_key ]]; then
		(umask 077 && openssl ecparam -name prime256v1 -genkey -noout \
			-out "$vapid_key.tmp" 2>/dev/null) || return 1
		mv "$vapid_key.tmp" "$vapid_key"
		echo "run: made the demo's VAPID key in $vapid_key"
	fi
	printf 'webpush_vapid_key %s\nwebpush_subject %s\n' \
		"$PWD/$vapid_key" "$vapid_subject" >var/webpush.conf
	vapid_public=$("$notifier" -c var/webpush.conf --print-vapid-public |
		sed -n 's/^webpush_vapid_public //p')
	[[ -n $vapid_public ]]
}
if setup_vapid; then
	relay_push_opts=(--webpush_vapid_public "$vapid_public")
else
	vapid_public=
	echo "run: no VAPID key ($vapid_key); the widget offers no web push" >&2
fi
"$relay" --database "$db" --listen 127.0.0.1 --port "$port" \
	"${widget_opts[@]}" "${relay_push_opts[@]}" &
relay_pid=$!

# Wait until it answers, then say what to do; give up if it exits.
healthy=
for ((i = 0; i < 100; i++)); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
		healthy=1
		break
	fi
	if ! kill -0 "$relay_pid" 2>/dev/null; then
		wait "$relay_pid" && rc=0 || rc=$?
		relay_pid=
		echo "run: the relay exited ($rc) before it was ready (port" \
			"$port in use? set BV_PORT)" >&2
		exit 1
	fi
	sleep 0.1
done

if [[ -z $healthy ]]; then
	echo "run: /healthz does not answer 200 yet; see the relay's log above" >&2
fi

# The Elisa case (docs/cases.md): every person is a bvchat profile in
# var/NAME, enrolled once; their accounts and the case are kept in
# var/elisa-case.env, so a second make run finds them again.
cli=$build/client-lib/bvchat
case_env=var/elisa-case.env
adm() { "$relay" --database "$db" admin "$@"; }
seed_case() {
	local p acct tok
	[[ -x $cli ]] || { echo "run: $cli is missing; no demo case" >&2; return 0; }
	[[ -f $case_env ]] && return 0
	: >"$case_env.tmp"
	for p in elisa marthe randi arvid camilla kari arkiv; do
		if [[ -f var/$p/store.db ]]; then
			# Enrolled by hand before (README): keep it.
			acct=$("$cli" --profile "var/$p" whoami |
				sed -n 's/^account //p')
		else
			tok=$("$relay" admin issue-token --key "$key")
			acct=$("$cli" --profile "var/$p" \
				--relay "127.0.0.1:$port" enroll --token "$tok" |
				sed -n 's/^account //p')
		fi
		[[ -n $acct ]] || { echo "run: could not enroll var/$p" >&2; return 1; }
		echo "${p^^}=$acct" >>"$case_env.tmp"
	done
	# shellcheck disable=SC1090
	source "$case_env.tmp"
	adm tenant-set --tenant "$tenant" --office-days mon-fri --open 08:00 \
		--close 15:30 --out-of-hours-phone "+47 800 00 000" >/dev/null
	adm archive-set --tenant "$tenant" --account "$ARKIV"
	CASE=$(adm case-create --tenant "$tenant" --case-number 2026/0417)
	adm roster-add --case "$CASE" --account "$ELISA" --role child --name "Elisa (17)"
	adm roster-add --case "$CASE" --account "$MARTHE" --role parent --name Marthe
	adm roster-add --case "$CASE" --account "$RANDI" --role foster_parent --name Randi
	adm roster-add --case "$CASE" --account "$ARVID" --role foster_parent --name Arvid
	adm roster-add --case "$CASE" --account "$CAMILLA" --role caseworker --name Camilla
	adm roster-add --case "$CASE" --account "$KARI" --role caseworker --name Kari
	adm protect --case "$CASE" --person "$RANDI" --from "$MARTHE"
	adm protect --case "$CASE" --person "$ARVID" --from "$MARTHE"
	for p in "$ELISA" "$MARTHE" "$RANDI" "$ARVID"; do
		adm conversation-create --case "$CASE" --by "$p" --kind team \
			--members "$p" >/dev/null
	done
	echo "CASE=$CASE" >>"$case_env.tmp"
	mv "$case_env.tmp" "$case_env"
	echo "run: seeded the Elisa case ($CASE); accounts in $case_env"
}
if [[ -n $healthy ]] && ! seed_case; then
	echo "run: the demo case is incomplete; make distclean to start over" >&2
fi

# Journaling (docs/fiks.md): a local FIKS IO in var/fiks (RabbitMQ and the
# development server), the test archive on one FIKS IO account and
# bvchat-archiver, the municipality's archive device var/arkiv, on the
# other. Accounts and keys are made once and kept in var/fiks.
fiks_amqp=${BV_FIKS_AMQP_PORT:-5673}
fiks_http=${BV_FIKS_HTTP_PORT:-8089}
keygen=$build/fiks/bvfiks-keygen
archive_peer=$build/fiks/bvfiks-archive-peer
archiver=$build/client-lib/bvchat-archiver
fiks_accounts() {
	local who konto iid pw sep=
	[[ -f var/fiks/accounts.env ]] && return 0
	mkdir -p var/fiks
	: >var/fiks/accounts.env.tmp
	printf '{"accounts": [' >var/fiks/accounts.json.tmp
	for who in archiver archive; do
		konto=$(cat /proc/sys/kernel/random/uuid)
		iid=$(cat /proc/sys/kernel/random/uuid)
		pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
		"$keygen" --key "var/fiks/$who.key" --cert "var/fiks/$who.crt" \
			--cn "bvchat demo $who" >/dev/null
		echo "${who^^}_KONTO=$konto" >>var/fiks/accounts.env.tmp
		printf '%s{"konto": "%s", "integration_id": "%s", ' "$sep" \
			"$konto" "$iid" >>var/fiks/accounts.json.tmp
		sep=,
		printf '"integration_password": "%s", "client_id": "demo-%s", ' \
			"$pw" "$who" >>var/fiks/accounts.json.tmp
		printf '"navn": "demo %s", "cert": "%s"}' "$who" \
			"$PWD/var/fiks/$who.crt" >>var/fiks/accounts.json.tmp
		cat >"var/fiks/$who.conf" <<-CONF
			# FIKS IO account of the demo's $who (fiks_config, docs/fiks.md)
			api_url http://127.0.0.1:$fiks_http
			token_url http://127.0.0.1:$fiks_http/token
			amqp_host 127.0.0.1
			amqp_port $fiks_amqp
			integration_id $iid
			integration_password $pw
			client_id demo-$who
			account_id $konto
			key_path $PWD/var/fiks/$who.key
			cert_path $PWD/var/fiks/$who.crt
		CONF
		chmod 600 "var/fiks/$who.conf"
	done
	printf ']}\n' >>var/fiks/accounts.json.tmp
	mv var/fiks/accounts.json.tmp var/fiks/accounts.json
	mv var/fiks/accounts.env.tmp var/fiks/accounts.env
}
start_journaling() {
	[[ -x $archiver && -x $archive_peer && -x $keygen ]] || {
		echo "run: FIKS IO programs missing; no journaling" >&2
		return 1
	}
	[[ -f $case_env ]] || return 1
	fiks_accounts
	# shellcheck disable=SC1091
	source var/fiks/accounts.env
	tools/fiksio.sh start var/fiks --amqp-port "$fiks_amqp" \
		--http-port "$fiks_http" --devserver "$build/fiks/bvfiks-devserver"
	fiks_started=1
	mkdir -p var/arkiv-peer
	"$archive_peer" --config var/fiks/archive.conf \
		--db var/arkiv-peer/journal.db --sender-cert var/fiks/archiver.crt \
		>>var/arkiv-peer/peer.log 2>&1 &
	peer_pid=$!
	"$archiver" --profile var/arkiv --relay "127.0.0.1:$port" \
		--fiks var/fiks/archiver.conf --archive-account "$ARCHIVE_KONTO" \
		--archive-cert var/fiks/archive.crt \
		--quiet-seconds "${BV_JOURNAL_QUIET_S:-60}" run \
		>>var/arkiv/archiver.log 2>&1 &
	archiver_pid=$!
	echo "run: journaling: bvchat-archiver (var/arkiv/archiver.log) to the" \
		"test archive (var/arkiv-peer/peer.log) over local FIKS IO"
}
if [[ -n $healthy ]] && ! start_journaling; then
	echo "run: journaling is not running; see above" >&2
fi
# Notifications (docs/operations.md "Notifications"): bvchat-notifier
# sends e-mail to a local SMTP sink that writes each message into
# var/mail. Elisa's address is registered as the municipality would, and
# the tenant waits one minute (window one minute, no quiet hours), so a
# message Camilla writes while Elisa's widget and terminal are closed
# gives a neutral e-mail a minute later. Once Elisa turns on "Varsle meg"
# in a browser that reaches its push service, she gets a web push (signed
# with var/vapid.pem) instead of the e-mail.
smtp_sink=$build/tests/support/bvtest-smtp-sink
smtp_port=${BV_SMTP_PORT:-2525}
start_notifier() {
	[[ -x $notifier && -x $smtp_sink ]] || {
		echo "run: $notifier or $smtp_sink is missing" >&2
		return 1
	}
	[[ -f $case_env ]] || return 1
	# shellcheck disable=SC1090
	source "$case_env"
	mkdir -p var/mail
	"$smtp_sink" --port "$smtp_port" --dir var/mail \
		>>var/mail/sink.log 2>&1 &
	smtp_pid=$!
	adm notify-contact --account "$ELISA" --email elisa@demo.invalid \
		>/dev/null
	adm notify-tenant --tenant "$tenant" --wait-minutes 1 \
		--window-minutes 1 --quiet-start 00:00 --quiet-end 00:00 \
		>/dev/null
	cat >var/notifier.conf <<-CONF
		# bvchat-notifier for make run (tools/run-demo.sh writes this)
		notify_poll_ms 1000
		smtp_url smtp://127.0.0.1:$smtp_port
		smtp_from varsel@demo-kommune.invalid
	CONF
	if [[ -n $vapid_public ]]; then
		cat var/webpush.conf >>var/notifier.conf
		echo "webpush_vapid_public $vapid_public" >>var/notifier.conf
	fi
	"$notifier" -c var/notifier.conf --database "$db" \
		>>var/notifier.log 2>&1 &
	notifier_pid=$!
	sleep 0.3
	kill -0 "$notifier_pid" 2>/dev/null || {
		notifier_pid=
		echo "run: bvchat-notifier exited; see var/notifier.log" >&2
		return 1
	}
	kill -0 "$smtp_pid" 2>/dev/null || {
		smtp_pid=
		echo "run: the SMTP sink exited (port $smtp_port in use? set" \
			"BV_SMTP_PORT); see var/mail/sink.log" >&2
		return 1
	}
}
notify_says="  Notifications: not running"
if [[ -n $healthy ]] && start_notifier; then
	notify_says="  Notifications: bvchat-notifier (var/notifier.log); Elisa is told by e-mail
                 1 minute after a message none of her devices has picked up
                 (close her widget and terminal, then let Camilla write):
                 ls var/mail/   (one .eml file per e-mail, body in base64)"
	if [[ -n $vapid_public ]]; then
		notify_says+="
                 Web push: in the chat as its own page
                 (http://127.0.0.1:$port/widget/index.html), \"Varsle meg\" subscribes
                 with the browser's push service (needs internet; offline the
                 browser refuses and e-mail stays her channel)"
	fi
else
	echo "run: notifications are not running; see above" >&2
fi

# A fresh invite code for Elisa's widget at every start (single use,
# valid 72 hours): the widget becomes another device of her account.
widget_says="  Widget:        not built"
if [[ ${#widget_opts[@]} -gt 0 && -f $case_env ]]; then
	# shellcheck disable=SC1090
	source "$case_env"
	code=$("$relay" --database "$db" --invite_key_file "$invite_key" admin \
		invite --account "$ELISA" 2>/dev/null | head -n 1 || true)
	widget_says="  Widget:        http://localhost:$port/widget/demo/ (a phone-sized window),
                 press Chat, type Elisa's invite code ${code:-(none: see the log)};
                 Camilla answers in a terminal:
                 $cli --profile var/camilla --relay 127.0.0.1:$port chat"
fi

cat <<EOF

  bvchat-relay is running on ws://127.0.0.1:$port/v1 (subprotocol bvchat.v1)

  Demo tenant:   Demo kommune ($tenant)
  Health:        curl http://127.0.0.1:$port/healthz
  Metrics:       curl http://127.0.0.1:$port/metrics
  Enroll token:  $relay admin issue-token --key $key
                 (valid 10 minutes; --account UUID for another device)
  Database:      tools/pgcluster.sh psql $pgdir $pgport
                 conninfo "$db"
  Counts:        $relay --database "$db" admin stats
  Elisa case:    profiles var/{elisa,marthe,randi,arvid,camilla,kari,arkiv},
                 accounts in $case_env;
                 $relay --database "$db" admin case-show --case CASE
$widget_says
$notify_says
  Case file:     a conversation is journaled after ${BV_JOURNAL_QUIET_S:-60} s of quiet;
                 $archive_peer --db var/arkiv-peer/journal.db list
                 $archiver --profile var/arkiv status
                 $cli --profile var/elisa history --conversation C

  Press Ctrl-C to stop the relay and PostgreSQL (data stays in var/).

EOF

wait "$relay_pid" && rc=0 || rc=$?
relay_pid=
exit "$rc"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench.sh: runs bvchat-bench against a real relay and PostgreSQL on this
# machine, loopback only (docs/performance.md), and the client benchmarks:
# bvchat-crypto-bench (no relay) and bvchat-e2e-bench (libbvchat clients
# through the relay). Builds the optimised tree,
# makes a throwaway cluster (tools/pgcluster.sh, synchronous_commit=on),
# migrates, creates a tenant, starts relays and runs the scenarios; prints
# each run and the median per scenario. Stops what it started, by PID, and
# removes its scratch directory. It asserts no timings: figures only.
#
# usage: tools/bench.sh [--runs N] [--quick] [--same-db] [--json FILE]
#                       [SCENARIO…]
#   SCENARIO   throughput | latency | idle | idle-throughput | crypto | e2e |
#              e2e-latency | attach | e2e-latency-attach (default: all)
#   --runs N   runs per scenario, the median is reported (3)
#   --quick    shorter runs, 1,000 idle connections, fewer client
#              messages (a smoke test)
#   --same-db  every run uses one database (default: a fresh database per
#              run, so runs do not inherit each other's table statistics)
#   --json F   also append every run's JSON result line to F
# Environment: BV_BENCH_BUILD (build tree, build-bench), BV_BENCH_KEEP=1
# keeps the scratch directory (logs, database) for a look afterwards,
# BV_BENCH_STORE_DIR puts the client benchmarks' stores there instead of
# the scratch directory (e.g. /dev/shm: the client without fsync costs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

runs=3
quick=0
same_db=0
json_out=
scenarios=()
while (($#)); do
	case $1 in
	--runs)
		runs=${2:?--runs needs a number}
		shift
		;;
	--quick) quick=1 ;;
	--same-db) same_db=1 ;;
	--json)
		json_out=${2:?--json needs a file}
		shift
		;;
	throughput | latency | idle | idle-throughput | crypto | e2e | \
		e2e-latency | attach | e2e-latency-attach)
		scenarios+=("$1")
		;;
	-h | --help)
		sed -n '/^# usage:/,/^# keeps/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "bench: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
((${#scenarios[@]})) ||
	scenarios=(throughput latency idle idle-throughput crypto e2e
		e2e-latency attach e2e-latency-attach)
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: bad --runs" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench: needs jq" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: needs curl" >&2; exit 1; }

# Durations: every run stays well under 30 s on a shared machine.
# Enrolling 10,000 devices takes the relay ~20 s here, so the run with idle
# connections measures for less time.
if ((quick)); then
	warmup=1 duration=3 idle_n=1000 idle_duration=3
	crypto_args=(--setups 10 --messages 50 --fanout-messages 10)
else
	warmup=2 duration=10 idle_n=10000 idle_duration=5
	crypto_args=()
fi
pairs=10
size=300
rate=2000
# A phone photo; the largest file that fits the relay's default
# max_blob_bytes (25 MiB of ciphertext) with room for its overhead.
photo=3145728
big_file=20971520

build=${BV_BENCH_BUILD:-build-bench}
echo "bench: building $build (RelWithDebInfo: -O2 -DNDEBUG)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	>"/tmp/bvchat-bench-configure.$$.log" 2>&1 || {
	cat "/tmp/bvchat-bench-configure.$$.log" >&2
	exit 1
}
rm -f "/tmp/bvchat-bench-configure.$$.log"
cmake --build "$build" -j "${BV_JOBS:-2}" --target bvchat-relay bvchat-bench \
	bvchat-crypto-bench bvchat-e2e-bench >/dev/null
relay_bin=$root/$build/relay/bvchat-relay
bench_bin=$root/$build/tests/bench/bvchat-bench
crypto_bin=$root/$build/tests/bench/bvchat-crypto-bench
e2e_bin=$root/$build/tests/bench/bvchat-e2e-bench

scratch=$(mktemp -d /tmp/bvchat-bench.XXXXXX)
chmod 0755 "$scratch"
store_dir=${BV_BENCH_STORE_DIR:-$scratch}
pgdir=$scratch/pg
relay_pid=
bench_pid=
load_pid=
pg_started=0

cleanup() {
	local rc=$?
	load_stop
	if [[ -n $bench_pid ]]; then
		kill -INT "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	relay_stop
	if ((pg_started)); then
		tools/pgcluster.sh stop "$pgdir" "$pgport" || true
	fi
	if [[ ${BV_BENCH_KEEP:-0} == 1 ]]; then
		echo "bench: kept $scratch"
	else
		# pgcluster.sh may have put the cluster elsewhere (base.path).
		if [[ -f $pgdir/base.path ]]; then
			rm -rf "$(<"$pgdir/base.path")"
		fi
		rm -rf "$scratch"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port on 127.0.0.1 that nothing listens on, below the ephemeral
# range: 10,000 client connections occupy a third of that range.
free_port() {
	local p n lo
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	((lo > 12000)) || lo=32768
	for ((n = 0; n < 200; n++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# The background load of e2e-latency-attach: stopped with SIGINT, its
# result not wanted (it measured nothing of its own).
load_stop() {
	if [[ -n $load_pid ]]; then
		kill -INT "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
		load_pid=
	fi
}

# uploads: the relay's count of attachments stored so far.
uploads() {
	curl -sf "http://127.0.0.1:$rport/metrics" | awk '
		$1 == "bvchat_blob_uploads_total{result=\"ok\"}" { n = $2 }
		END { print n + 0 }'
}

relay_stop() {
	if [[ -n $relay_pid ]]; then
		kill -TERM "$relay_pid" 2>/dev/null || true
		wait "$relay_pid" 2>/dev/null || true
		relay_pid=
	fi
}

# Starts a relay on a new port; tries three ports before giving up.
relay_start() {
	local n try
	relay_stop
	for ((try = 0; try < 3; try++)); do
		rport=$(free_port)
		"$relay_bin" --database "$conninfo" --listen 127.0.0.1 \
			--port "$rport" --sends_per_minute 0 --log_level warn \
			>>"$scratch/relay.log" 2>&1 &
		relay_pid=$!
		for ((n = 0; n < 100; n++)); do
			if curl -sf "http://127.0.0.1:$rport/healthz" \
				>/dev/null 2>&1; then
				return 0
			fi
			kill -0 "$relay_pid" 2>/dev/null || break
			sleep 0.1
		done
		relay_stop
	done
	echo "bench: the relay did not become healthy; its log:" >&2
	tail -n 30 "$scratch/relay.log" >&2
	exit 1
}

# ---------------------------------------------------------------- setup
pgport=$(free_port)
tools/pgcluster.sh init "$pgdir" "$pgport" >/dev/null
tools/pgcluster.sh start "$pgdir" "$pgport"
pg_started=1
# Durable commits are the point: make the defaults explicit.
DB=postgres tools/pgcluster.sh psql "$pgdir" "$pgport" -q -c \
	"ALTER SYSTEM SET synchronous_commit = on" -c \
	"ALTER SYSTEM SET fsync = on" -c "SELECT pg_reload_conf()" >/dev/null
pgbase=$pgdir
[[ -f $pgdir/base.path ]] && pgbase=$(<"$pgdir/base.path")
pg_pid=$(head -n 1 "$pgbase/data/postmaster.pid")

# new_db: a new database, migrated, with one tenant whose key is $key.
n_db=0
new_db() {
	n_db=$((n_db + 1))
	local db=bench_$n_db
	tools/pgcluster.sh createdb "$pgdir" "$pgport" "$db" >/dev/null
	conninfo=$(tools/pgcluster.sh conninfo "$pgdir" "$pgport" "$db")
	"$relay_bin" --database "$conninfo" --migrate \
		>>"$scratch/relay.log" 2>&1
	key=$scratch/tenant-$n_db.key
	"$relay_bin" --database "$conninfo" admin tenant-create \
		--name "Bench kommune" --key-out "$key" >/dev/null
	db_used=0
}
new_db

echo "== machine"
echo "cpus: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' \
	/proc/cpuinfo | head -n 1)"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' \
	/proc/meminfo)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
DB=postgres tools/pgcluster.sh psql "$pgdir" "$pgport" -At -F ' = ' -c \
	"SELECT 'server_version', current_setting('server_version') UNION ALL
	 SELECT name, setting || coalesce(unit, '') FROM pg_settings
	 WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method',
	                'shared_buffers', 'commit_delay', 'wal_buffers',
	                'full_page_writes', 'max_wal_size', 'autovacuum',
	                'autovacuum_naptime')" |
	sed 's/^/postgresql: /'
echo "relay: $("$relay_bin" --version), --sends_per_minute 0, other limits" \
	"default"
echo "client stores: $store_dir ($(stat -f -c %T "$store_dir"))"
if ((same_db)); then
	echo "database: one for every run"
else
	echo "database: a fresh one for every run"
fi

results=$scratch/results.jsonl
: >"$results"

# run LABEL ARGS…: one bench run against the current relay.
# BIN (default: bvchat-bench) runs instead, for the e2e scenario.
run() {
	local label=$1 line status
	shift
	"${BIN:-$bench_bin}" --url "127.0.0.1:$rport" --key "$key" \
		--database "$conninfo" \
		--relay-pid "$relay_pid" --db-pid "$pg_pid" --label "$label" \
		--json "$@" >"$scratch/run.out" 2>"$scratch/run.err" &
	bench_pid=$!
	status=0
	wait "$bench_pid" || status=$?
	bench_pid=
	grep -v '^{' "$scratch/run.out" || true
	# Group commit as the relay saw it (whole run: warm-up and drain too).
	curl -sf "http://127.0.0.1:$rport/metrics" | awk '
		$1 == "bvchat_sends_total" { s = $2 }
		$1 == "bvchat_deliveries_acked_total" { a = $2 }
		$1 == "bvchat_db_commit_rounds_total" { r = $2 }
		END { if (s > 0 && r > 0) printf "  relay metrics    %d sends + %d acks" \
			" in %d commit rounds (%.1f per round)\n", s, a, r,
			(s + a) / r }' || true
	line=$(grep '^{' "$scratch/run.out" | tail -n 1 || true)
	if [[ -n $line ]]; then
		echo "$line" >>"$results"
		[[ -z $json_out ]] || echo "$line" >>"$json_out"
	fi
	if ((status != 0)); then
		echo "bench: run '$label' failed (exit $status):" >&2
		cat "$scratch/run.err" >&2
		echo "bench: the end of the relay's log:" >&2
		tail -n 20 "$scratch/relay.log" >&2
	fi
}

# run_crypto: one bvchat-crypto-bench run (no relay, no database); its
# stores go to the scratch directory, on the same disk as PostgreSQL's,
# unless BV_BENCH_STORE_DIR says otherwise.
run_crypto() {
	local line status=0
	"$crypto_bin" --dir "$store_dir" --label crypto --json \
		"${crypto_args[@]}" >"$scratch/run.out" 2>"$scratch/run.err" ||
		status=$?
	grep -v '^{' "$scratch/run.out" || true
	line=$(grep '^{' "$scratch/run.out" | tail -n 1 || true)
	if [[ -n $line ]]; then
		echo "$line" >>"$results"
		[[ -z $json_out ]] || echo "$line" >>"$json_out"
	fi
	if ((status != 0)); then
		echo "bench: run 'crypto' failed (exit $status):" >&2
		cat "$scratch/run.err" >&2
	fi
}

for s in "${scenarios[@]}"; do
	echo
	echo "== $s ($runs runs)"
	for ((k = 1; k <= runs; k++)); do
		if [[ $s == crypto ]]; then
			run_crypto
			continue
		fi
		if ((db_used && !same_db)); then
			new_db
		fi
		db_used=1
		relay_start
		case $s in
		throughput)
			run "$s" --pairs "$pairs" --size "$size" --inflight 10 \
				--warmup "$warmup" --duration "$duration"
			;;
		latency)
			run "$s" --pairs "$pairs" --size "$size" --rate "$rate" \
				--warmup "$warmup" --duration "$duration"
			;;
		idle)
			run "$s" --pairs 0 --idle "$idle_n" --hold 2
			;;
		idle-throughput)
			run "$s" --pairs "$pairs" --size "$size" --inflight 10 \
				--idle "$idle_n" --warmup 1 \
				--duration "$idle_duration"
			;;
		e2e)
			# libbvchat clients: 100-byte texts, stores on the
			# same disk as PostgreSQL.
			BIN=$e2e_bin run "$s" --pairs "$pairs" --size 100 \
				--inflight 10 --warmup "$warmup" \
				--duration "$duration" --dir "$store_dir" \
				--relay-bin "$relay_bin"
			;;
		e2e-latency)
			# 5 texts/s per sender, at times unrelated to the
			# clients' 100 ms tick: the latency a user sees.
			BIN=$e2e_bin run "$s" --pairs "$pairs" --size 100 \
				--rate 50 --warmup "$warmup" \
				--duration "$duration" --dir "$store_dir" \
				--relay-bin "$relay_bin"
			;;
		attach)
			# Two senders, one photo each in flight: encrypt,
			# spool, upload, send; the receiver fetches and
			# decrypts it.
			BIN=$e2e_bin run "$s" --pairs 2 --inflight 1 \
				--attach "$photo" --warmup "$warmup" \
				--duration "$duration" --dir "$store_dir" \
				--relay-bin "$relay_bin"
			;;
		e2e-latency-attach)
			# e2e-latency while another process keeps a
			# 20 MiB file going up and down through the same
			# relay and database: do texts wait for files?
			"$e2e_bin" --url "127.0.0.1:$rport" --key "$key" \
				--database "$conninfo" --pairs 1 --inflight 1 \
				--attach "$big_file" --warmup 0 --duration 600 \
				--dir "$store_dir" --relay-bin "$relay_bin" \
				--label attach-load >"$scratch/load.out" \
				2>"$scratch/load.err" &
			load_pid=$!
			before=$(uploads)
			BIN=$e2e_bin run "$s" --pairs "$pairs" --size 100 \
				--rate 50 --warmup "$warmup" \
				--duration "$duration" --dir "$store_dir" \
				--relay-bin "$relay_bin"
			echo "  files meanwhile  $(($(uploads) - before))" \
				"uploads of $big_file bytes by the load"
			load_stop
			;;
		esac
	done
done
relay_stop

# ---------------------------------------------------------------- summary
echo
echo "== medians over $runs runs (ok runs only)"
jq -rs '
	def median: sort | if length == 0 then null
		else .[(length - 1) / 2 | floor] end;
	def f(x): if x == null then "-" else (x * 10 | round / 10 | tostring) end;
	map(select(.ok)) | group_by(.label)[] |
	if .[0].label == "crypto" then
	  "crypto: runs \(length), per operation the median over runs" +
	  " of p50 us (cpu p50 us):" +
	  (. as $runs | [.[0].ops | keys_unsorted[]] | map(. as $k |
	    "\n  \($k): \(f($runs | map(.ops[$k].p50_us) | median))" +
	    " (\(f($runs | map(.ops[$k].cpu_p50_us) | median)))") |
	    join(""))
	elif .[0].label == "attach" then
	  "attach: runs \(length), \(.[0].attach)-byte files" +
	  ", MB/s \(f(map(.att_mb_per_s) | median))" +
	  ", files/s \(f(map(.msgs_per_s) | median))" +
	  ", send to fetched p50 \(f(map(.p50_ms) | median)) ms" +
	  ", p90 \(f(map(.p90_ms) | median)) ms" +
	  ", sent (stored by the relay) p50 \(f(map(.sent_p50_ms) | median)) ms" +
	  ", bench CPU \(f(map(.bench_cpu_us_per_msg) | median)) us/file" +
	  ", relay CPU \(f(map(.relay_cpu_us_per_msg) | median)) us/file" +
	  ", PostgreSQL CPU \(f(map(.db_cpu_us_per_msg) | median)) us/file"
	elif (.[0].label | startswith("e2e")) then
	  "\(.[0].label): runs \(length)" +
	  ", texts/s \(f(map(.msgs_per_s) | median))" +
	  ", p50 \(f(map(.p50_ms) | median)) ms" +
	  ", p90 \(f(map(.p90_ms) | median)) ms" +
	  ", p99 \(f(map(.p99_ms) | median)) ms" +
	  ", sent p50 \(f(map(.sent_p50_ms) | median)) ms" +
	  ", first text p50 \(f(map(.first_text_p50_ms) | median)) ms" +
	  ", bench CPU \(f(map(.bench_cpu_us_per_msg) | median)) us/text" +
	  ", relay CPU \(f(map(.relay_cpu_us_per_msg) | median)) us/text" +
	  ", PostgreSQL CPU \(f(map(.db_cpu_us_per_msg) | median)) us/text" +
	  ", out of order \(f(map(.out_of_order) | median))"
	else
	"\(.[0].label): runs \(length)" +
	(if .[0].pairs > 0 then
	  ", msg/s \(f(map(.msgs_per_s) | median))" +
	  ", p50 \(f(map(.p50_ms) | median)) ms" +
	  ", p99 \(f(map(.p99_ms) | median)) ms" +
	  ", max \(f(map(.max_ms) | median)) ms" +
	  ", relay CPU \(f(map(.relay_cpu_us_per_msg) | median)) us/msg" +
	  ", PostgreSQL CPU \(f(map(.db_cpu_us_per_msg) | median)) us/msg" +
	  ", bench CPU \(f(map(.bench_cpu_us_per_msg) | median)) us/msg" +
	  ", other processes \(f(map(.others_cpu_pct) | median))% of a core"
	 else "" end) +
	(if .[0].idle > 0 then
	  ", idle \(.[0].idle): relay RSS \(f(map(.relay_rss_idle_kb / 1024) | median)) MB" +
	  " (\(f(map(.relay_kb_per_idle_conn) | median)) KB/connection)"
	 else "" end) +
	", relay peak RSS \(f(map(.relay_rss_peak_kb / 1024) | median)) MB"
	end
' "$results"
# The client's end-to-end throughput against the relay's with opaque bodies,
# both medians of this invocation (same machine, same minutes).
jq -rs '
	def median: sort | if length == 0 then null
		else .[(length - 1) / 2 | floor] end;
	map(select(.ok)) |
	(map(select(.label == "e2e") | .msgs_per_s) | median) as $e |
	(map(select(.label == "throughput") | .msgs_per_s) | median) as $t |
	if $e != null and $t != null and $t > 0 then
	  "e2e / throughput: \($e | round) / \($t | round) texts/s =" +
	  " \($e / $t * 1000 | round / 10)%"
	else empty end
' "$results"
# Texts while files stream, against texts alone (same invocation).
jq -rs '
	def median: sort | if length == 0 then null
		else .[(length - 1) / 2 | floor] end;
	map(select(.ok)) |
	def p(l; k): map(select(.label == l) | .[k]) | median;
	if p("e2e-latency"; "p50_ms") != null and
	   p("e2e-latency-attach"; "p50_ms") != null then
	  "texts during file transfers / texts alone: p50 " +
	  "\(p("e2e-latency-attach"; "p50_ms") * 10 | round / 10) / " +
	  "\(p("e2e-latency"; "p50_ms") * 10 | round / 10) ms, p99 " +
	  "\(p("e2e-latency-attach"; "p99_ms") * 10 | round / 10) / " +
	  "\(p("e2e-latency"; "p99_ms") * 10 | round / 10) ms"
	else empty end
' "$results"
failed=$(jq -s 'map(select(.ok | not)) | length' "$results")
((failed == 0)) || echo "bench: $failed runs failed (see above)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# deps.sh: installs the Debian 12 packages bvchat needs to build, test and
# run, and only those that are missing (checked with dpkg-query), so a
# machine that has them all is never touched and needs no network.
# apt-get update runs at most once; through sudo when not root.
# Usage: tools/deps.sh [--check]   (--check: list what is missing, exit 1)
set -euo pipefail

packages=(
	build-essential cmake pkg-config git
	# clang for the fuzz drivers, with its sanitizer and libFuzzer runtime.
	clang libclang-rt-14-dev clang-format
	# lws on its libuv event library (docs/architecture.md, decision 6).
	libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
	libjansson-dev libsodium-dev libpq-dev libcmocka-dev uthash-dev
	# libbvchat: Signal sessions, its crypto provider, the local store.
	libsignal-protocol-c-dev libssl-dev libsqlite3-dev
	# The server for make run and the integration tests' own clusters.
	postgresql-15 postgresql-client-15
	# curl: make run's health check and the README's examples.
	valgrind curl ca-certificates
	# jq: tools/bench.sh reads bvchat-bench --json results.
	jq
	# tzdata: bvchat-archiver writes transcripts in the municipality's time.
	tzdata
	# python3: tools/check-sql.py (make test).
	python3
	# FIKS IO (fiks/, docs/fiks.md): packages, CMS, HTTP, AMQP, XSDs, and
	# the local FIKS IO: RabbitMQ and the development server's HTTP.
	libzip-dev libcurl4-openssl-dev librabbitmq-dev libxml2-dev libxml2-utils
	libmicrohttpd-dev rabbitmq-server amqp-tools
	# Web Push (relay/webpush.c: libssl-dev, libcurl4-openssl-dev above;
	# its test push service: libmicrohttpd-dev): the openssl command
	# makes the VAPID key (docs/operations.md) and its unit test runs it.
	openssl
	# The WebAssembly build (make wasm, web-widget/README.md): emcc, and
	# dpkg-source to unpack the source packages tools/wasm-src.sh fetches.
	emscripten dpkg-dev
	# The widget's browser test: Debian's chromium, driven by
	# playwright-core from npm (tests/web).
	chromium
)
# node and npm run emscripten's tools and the browser test. A machine may
# have them from elsewhere (nodesource's nodejs carries its own npm and
# conflicts with Debian's npm package): only what is missing is asked for.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

# One dpkg-query for all; a package it has never heard of prints nothing.
declare -A installed=()
while read -r name status; do
	[[ $status == installed ]] && installed[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' \
	"${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
	[[ -n ${installed[$p]:-} ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	exit 0
fi
if [[ ${1:-} == --check ]]; then
	echo "missing Debian packages: ${missing[*]}"
	exit 1
fi

echo "deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null; then
	sudo=(sudo)
else
	echo "deps: not root and no sudo; as root run:" >&2
	echo "  apt-get install ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
}
# A fresh machine's package lists may be empty or stale: update once, and
# only when the first attempt fails.
if ! apt_install; then
	"${sudo[@]}" apt-get update -q
	apt_install
fi

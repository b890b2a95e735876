#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# run.sh: builds the web build's node tests with emcc (-sENVIRONMENT=node)
# into a temporary directory and runs them with node: test_uv_web (the
# libuv stand-in's timers and close) and test_conn_web (the browser
# transport and its JS library against a mock bvwTransport). No browser,
# no relay. Usage: tests/web/run.sh [uv|conn ...]; exit 0 when all pass,
# 77 when emcc or node is missing (skipped), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v emcc >/dev/null || ! command -v node >/dev/null; then
	echo "web tests: emcc or node not found, skipped"
	exit 77
fi
# Debian's emcc finds its node modules (acorn…) only through NODE_PATH.
if [[ -d /usr/share/nodejs ]]; then
	export NODE_PATH=${NODE_PATH:+$NODE_PATH:}/usr/share/nodejs
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Synchronous wasm compilation: emscripten 3.1.6 would fetch() the .wasm
# file on node >= 18, which fails for a path.
cflags=(-O1 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra
	-sENVIRONMENT=node -sEXIT_RUNTIME=1 -sWASM_ASYNC_COMPILATION=0
	-Iweb-widget/compat -Iclient-lib/src -Icommon)

build_uv() {
	emcc "${cflags[@]}" tests/web/test_uv_web.c \
		web-widget/compat/uv_web.c -o "$out/test_uv_web.js"
}

build_conn() {
	emcc "${cflags[@]}" tests/web/test_conn_web.c \
		client-lib/src/conn_web.c web-widget/compat/uv_web.c \
		--js-library web-widget/src/conn_web.lib.js \
		--pre-js tests/web/mock_transport.js -o "$out/test_conn_web.js"
}

tests=("$@")
((${#tests[@]})) || tests=(uv conn)
rc=0
for t in "${tests[@]}"; do
	case $t in
	uv) name=test_uv_web ;;
	conn) name=test_conn_web ;;
	*)
		echo "web tests: unknown test $t (uv, conn)"
		exit 2
		;;
	esac
	echo "# $name"
	if ! "build_$t"; then
		echo "web tests: $name: build failed"
		rc=1
		continue
	fi
	if ! node "$out/$name.js"; then
		echo "web tests: $name: FAILED"
		rc=1
	fi
done
exit $rc

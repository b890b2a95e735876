#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# build.sh: configures (CMake) and builds one build tree. Configuring again
# with the same options is cheap and rebuilds nothing, so this always does.
# It does not install packages (tools/deps.sh) or run tests (tools/test.sh).
#
# usage: tools/build.sh normal|asan [DIR]
#   normal  DIR=build       RelWithDebInfo, -Werror
#   asan    DIR=build-asan  Debug, AddressSanitizer + UBSan, -Werror
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:?usage: tools/build.sh normal|asan [DIR]}
case $kind in
normal)
	dir=${2:-build}
	# The widget (libbvchat for the browser) is built beside it, in
	# $dir/wasm; its tests and the browser test run from this tree. DIR
	# may be absolute (/tmp/b-…) or relative to the repository.
	[[ $dir == /* ]] && wasm=$dir/wasm || wasm=$PWD/$dir/wasm
	opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBV_WERROR=ON -DBV_SANITIZE=
		-DBV_WASM_DIR="$wasm")
	;;
asan)
	dir=${2:-build-asan}
	opts=(-DCMAKE_BUILD_TYPE=Debug -DBV_WERROR=ON
		-DBV_SANITIZE=address,undefined)
	;;
*)
	echo "usage: tools/build.sh normal|asan [DIR]" >&2
	exit 2
	;;
esac

jobs=${BV_JOBS:-$(nproc)}
# Called from make: the inner make needs neither our flags nor "Entering
# directory" lines; -j is given explicitly.
unset MAKEFLAGS MFLAGS MAKELEVEL
mkdir -p "$dir"
# Quiet when all is well; the whole story when not.
cmake -S . -B "$dir" "${opts[@]}" >"$dir/configure.log" 2>&1 || {
	cat "$dir/configure.log" >&2
	echo "build: configuring $dir failed" >&2
	exit 1
}
cmake --build "$dir" -j "$jobs"
if [[ $kind == normal ]]; then
	tools/wasm-build.sh "$dir/wasm"
fi

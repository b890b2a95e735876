#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# wasm-build.sh: builds libbvchat for the browser (web-widget/CMakeLists.txt,
# emscripten) in build/wasm, from the Debian source packages that
# tools/wasm-src.sh fetches into build/wasm-src; with --test it then runs
# that project's tests under node (ctest). A built tree is not configured
# again: its own build re-runs CMake when a CMakeLists.txt changes.
# It does not install packages (tools/deps.sh does: emscripten, dpkg-dev).
#
# usage: tools/wasm-build.sh [--test] [DIR]   (DIR: build/wasm)
set -euo pipefail
cd "$(dirname "$0")/.."

run_tests=0
if [[ ${1:-} == --test ]]; then
	run_tests=1
	shift
fi
dir=${1:-build/wasm}
src=$PWD/build/wasm-src
jobs=${BV_JOBS:-$(nproc)}
# Called from make: the inner make needs neither our flags nor "Entering
# directory" lines; -j is given explicitly.
unset MAKEFLAGS MFLAGS MAKELEVEL

tools/wasm-src.sh "$src"
mkdir -p "$dir"
if [[ ! -f $dir/CMakeCache.txt ]]; then
	emcmake cmake -S web-widget -B "$dir" -DBV_WASM_SRC="$src" \
		-DBV_WERROR=ON >"$dir/configure.log" 2>&1 || {
		cat "$dir/configure.log" >&2
		echo "wasm-build: configuring $dir failed" >&2
		exit 1
	}
fi
cmake --build "$dir" -j "$jobs"
if ((run_tests)); then
	ctest --test-dir "$dir" --output-on-failure -j "$jobs"
fi

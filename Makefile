# SPDX-License-Identifier: GPL-3.0-or-later
# The front door. `make run` and `make test` do all the set-up on a fresh
# Debian 12 machine (packages, build, a throwaway PostgreSQL in var/); the
# work itself is in tools/*.sh so it can be read and run on its own.
# CMake does the building: this file only calls it.

SHELL := /bin/bash

.PHONY: all deps build run test check-format check-sql format bench wasm wasm-test clean \
	distclean help

all: build

help:
	@echo "make run        build, start PostgreSQL in var/ and the relay on 127.0.0.1:8480"
	@echo "make test       both builds (normal, ASan+UBSan), format and SQL checks, every test"
	@echo "make build      build/ only"
	@echo "make format     clang-format every C file in place"
	@echo "make bench      the benchmarks of docs/performance.md (about 6 minutes)"
	@echo "make wasm       libbvchat for the browser (emscripten) in build/wasm"
	@echo "make wasm-test  that, and its tests under node"
	@echo "make clean      remove build trees (var/ stays)"
	@echo "make distclean  also stop and remove the demo database in var/"

deps:
	@tools/deps.sh

build: deps
	@tools/build.sh normal build

run: build
	@tools/run-demo.sh

test: deps
	@tools/test.sh

check-format:
	@tools/check-format.sh

check-sql:
	@tools/check-sql.py

format:
	@tools/c-files.sh | xargs -r clang-format -i
	@echo "format: done"

bench: deps
	@tools/bench.sh

# The WebAssembly build (web-widget/README.md): its own CMake project, on
# Debian source packages fetched into build/wasm-src.
wasm: deps
	@tools/wasm-build.sh

wasm-test: deps
	@tools/wasm-build.sh --test

clean:
	rm -rf build build-asan

distclean: clean
	@if [ -d var/pg ]; then tools/pgcluster.sh stop var/pg 5488 || true; fi
	@base=$$(cat var/pg/base.path 2>/dev/null || true); \
	case "$$base" in /var/tmp/bvchat-pg-*) rm -rf "$$base" ;; esac
	rm -rf var

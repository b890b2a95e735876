#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# test.sh: what `make test` does after installing packages. Builds build/
# (RelWithDebInfo) and build-asan/ (AddressSanitizer + UBSan) at the same
# time, checks the C formatting and the SQL statements' parameter counts,
# runs ctest in both trees at the same time (one test at a time in each:
# two cores; 15 minutes at most per test unless it sets its own TIMEOUT),
# and ends with one line
# "tests: N passed, M failed" counting both trees' tests and the
# two checks. Exit 0 only when everything passed. The integration tests
# start their own PostgreSQL clusters; nothing here starts one.
set -euo pipefail
cd "$(dirname "$0")/.."

trees=(build build-asan)
kinds=(normal asan)
logdir=$(mktemp -d /tmp/bvchat-test.XXXXXX)
pids=()

# Each background job gets its own process group (set -m), so Ctrl-C or
# SIGTERM here can stop a whole build or ctest run, not just its shell.
set -m
stop_jobs() {
	local p
	for p in "${pids[@]}"; do
		[[ $p == 0 ]] || kill -TERM -- "-$p" 2>/dev/null || true
	done
}
trap 'rm -rf "$logdir"' EXIT
trap 'stop_jobs; exit 130' INT
trap 'stop_jobs; exit 143' TERM

# Sanitizer reports are fatal and come with a stack; leaks count too.
# Later options win, so the caller's own settings (if any) come last.
asan=halt_on_error=1:abort_on_error=0:detect_leaks=1:print_stacktrace=1
asan+=:detect_stack_use_after_return=1
export ASAN_OPTIONS=$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:report_error_type=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
export LSAN_OPTIONS=suppressions=$PWD/tools/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}
export CTEST_OUTPUT_ON_FAILURE=1

# Both trees build at once, each line tagged with its tree.
for i in 0 1; do
	(
		set -o pipefail
		tools/build.sh "${kinds[$i]}" "${trees[$i]}" 2>&1 |
			sed -u "s/^/[${trees[$i]}] /"
	) &
	pids+=($!)
done
built=()
for i in 0 1; do
	if wait "${pids[$i]}"; then
		built[$i]=1
	else
		built[$i]=0
		echo "make test: building ${trees[$i]} FAILED" >&2
	fi
done

passed=0
failed=0
for check in tools/check-format.sh tools/check-sql.py; do
	if "$check"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done

# ctest in both trees at once. Sanitized code runs slower: its waits get
# more time (BVT_TIMEOUT_SCALE, read by tests/support).
# The browser test's packages (web-widget/package-lock.json: playwright-core
# and axe-core, no browser download); from npm's cache after the first time.
if ! (cd web-widget && npm ci --no-audit --no-fund --prefer-offline \
	--loglevel=error); then
	echo "make test: npm ci in web-widget failed; web.widget will fail" >&2
fi

pids=()
for i in 0 1; do
	if [[ ${built[$i]} != 1 ]]; then
		pids+=(0)
		continue
	fi
	(
		scale=1
		[[ ${trees[$i]} == build-asan ]] && scale=3
		cd "${trees[$i]}"
		BVT_TIMEOUT_SCALE=${BVT_TIMEOUT_SCALE:-$scale} \
			ctest --output-on-failure -j1 --timeout 900 2>&1 |
			tee "$logdir/${trees[$i]}.log" |
			sed -u "s/^/[${trees[$i]}] /"
	) &
	pids+=($!)
done
for i in 0 1; do
	tree=${trees[$i]}
	if [[ ${built[$i]} != 1 ]]; then
		failed=$((failed + 1))
		continue
	fi
	wait "${pids[$i]}" || true
	# "100% tests passed, 0 tests failed out of 12"
	line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' \
		"$logdir/$tree.log" | tail -n 1 || true)
	if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
		f=${BASH_REMATCH[1]}
		n=${BASH_REMATCH[2]}
		passed=$((passed + n - f))
		failed=$((failed + f))
		echo "[$tree] $((n - f)) passed, $f failed"
	elif grep -q 'No tests were found' "$logdir/$tree.log"; then
		echo "[$tree] no tests"
	else
		echo "[$tree] ctest did not finish" >&2
		failed=$((failed + 1))
	fi
done

echo "tests: $passed passed, $failed failed"
((failed == 0))

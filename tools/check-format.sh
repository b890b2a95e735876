#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# check-format.sh: checks every C source and header of the repository
# (tracked, or new and not ignored) against .clang-format without changing
# anything. Exit 0 when all are formatted, 1 when not (the diff is shown).
# `make format` fixes them.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t files < <(tools/c-files.sh)
if ((${#files[@]} == 0)); then
	echo "format: no C files found"
	exit 1
fi
bad=()
for f in "${files[@]}"; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		bad+=("$f")
	fi
done
if ((${#bad[@]} == 0)); then
	echo "format: ok, ${#files[@]} files match .clang-format"
	exit 0
fi
for f in "${bad[@]}"; do
	echo "--- $f (as clang-format wants it: +)"
	clang-format "$f" | diff -u "$f" - | sed -n '3,40p' || true
done
echo "format: FAILED, ${#bad[@]} of ${#files[@]} files differ from" \
	".clang-format: ${bad[*]} (run make format)"
exit 1

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# c-files.sh: prints the repository's own C sources and headers, one per
# line: tracked files plus new ones git does not ignore (so build trees,
# var/ and generated files are left out). Without git: a find that skips
# the same places.
set -euo pipefail
cd "$(dirname "$0")/.."

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files --cached --others --exclude-standard -- '*.c' '*.h' |
		while IFS= read -r f; do
			# Tracked but deleted in the work tree: nothing to check.
			[[ -f $f ]] && printf '%s\n' "$f"
		done | sort -u
else
	find . \( -path ./build -o -path './build-*' -o -path ./var \
		-o -path ./node_modules -o -path ./.git \) -prune -o \
		-type f \( -name '*.c' -o -name '*.h' \) -print |
		sed 's|^\./||' | sort
fi

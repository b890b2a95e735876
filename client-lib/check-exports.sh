#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# check-exports.sh: checks what a built libbvchat.so exports (ctest
# client-lib-exports). Fails when it defines a dynamic symbol that is not
# bv_client_*, or when a function declared in bvchat.h is missing from it.
# The header is read through the C preprocessor, so comments that name
# functions do not count. Does not check signatures or the soname.
#
# usage: check-exports.sh NM CC LIBRARY HEADER
set -eu

nm=$1
cc=$2
lib=$3
header=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bvchat-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# "0000000000012340 T bv_client_new@@BVCHAT_0"; the version node itself
# shows up as an absolute symbol (type A) and is no export.
"$nm" -D --defined-only "$lib" >"$tmp/nm"
awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" |
	sort -u >"$tmp/exported"
if [ ! -s "$tmp/exported" ]; then
	echo "check-exports: $lib exports nothing" >&2
	exit 1
fi

"$cc" -E -P -x c "$header" |
	grep -o 'bv_client_[A-Za-z0-9_]*[[:space:]]*(' |
	sed 's/[[:space:]]*($//' | sort -u >"$tmp/declared"
if [ ! -s "$tmp/declared" ]; then
	echo "check-exports: no bv_client_ functions found in $header" >&2
	exit 1
fi

rc=0
extra=$(grep -v '^bv_client_' "$tmp/exported" || true)
if [ -n "$extra" ]; then
	echo "check-exports: $lib exports symbols outside the public API:" >&2
	echo "$extra" | sed 's/^/  /' >&2
	rc=1
fi
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
	echo "check-exports: declared in bvchat.h but not exported:" >&2
	echo "$missing" | sed 's/^/  /' >&2
	rc=1
fi
if [ $rc -eq 0 ]; then
	echo "check-exports: $(wc -l <"$tmp/exported") bv_client_ symbols," \
		"all $(wc -l <"$tmp/declared") declared functions exported"
fi
exit $rc

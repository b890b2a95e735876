#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# wasm-src.sh: fetches the Debian 12 source packages that the WebAssembly
# build (web-widget/CMakeLists.txt) compiles, and unpacks each into DIR,
# reachable as DIR/<package> whatever its version. Nothing is vendored.
#
# apt-get downloads and checks every file against the signed bookworm index
# (debian-archive-keyring); dpkg-source then unpacks, checking the files
# against the .dsc. A package already unpacked is skipped after checking its
# files against its .dsc again, so a second run needs no network.
# A deb-src entry for bookworm main is added (through sudo when not root),
# and apt-get update run once, only when the sources are not known yet.
#
# usage: tools/wasm-src.sh DIR
set -euo pipefail

dir=${1:?usage: tools/wasm-src.sh DIR}

# package:upstream version. The Debian revision is whatever bookworm has
# (it carries Debian's security fixes); the upstream version is pinned,
# because the build knows each tree's files.
packages=(
	libsignal-protocol-c:2.3.3 # GPL-3.0
	libsodium:1.0.18           # ISC
	jansson:2.14               # MIT
	mbedtls:2.28.3             # Apache-2.0, only AES is compiled
	cmocka:1.1.5               # Apache-2.0, only for the wasm unit test
)
srcfile=/etc/apt/sources.list.d/bvchat-deb-src.sources

if [[ $(id -u) -eq 0 ]]; then
	sudo=()
	# Files in DIR may not be readable by _apt; as root, apt would warn
	# and fetch unsandboxed anyway.
	apt_opts=(-o APT::Sandbox::User=root)
elif command -v sudo >/dev/null; then
	sudo=(sudo)
	apt_opts=()
else
	sudo=(false)
	apt_opts=()
fi

# The files a .dsc lists (name, sha256), checked in the .dsc's directory.
dsc_check() {
	local dsc=$1
	(cd "$(dirname "$dsc")" &&
		sed -n '/^Checksums-Sha256:/,/^[^ ]/{/^ /p}' "$(basename "$dsc")" |
		awk '{print $1 "  " $3}' | sha256sum --quiet --strict -c -)
}

# The newest bookworm version of source package $1 with upstream version $2,
# or nothing.
src_version() {
	local v best=
	while read -r v; do
		# dpkg's order, not sort(1)'s.
		if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done < <(apt-cache showsrc --only-source "$1" 2>/dev/null |
		awk -v up="$2" '$1 == "Version:" && index($2, up "-") == 1 {
			print $2 }')
	echo "$best"
}

updated=0
apt_update() {
	((updated)) && return 0
	if [[ ${sudo[0]:-} == false ]]; then
		echo "wasm-src: not root and no sudo; as root run: apt-get update" >&2
		exit 1
	fi
	echo "wasm-src: apt-get update"
	"${sudo[@]}" apt-get update -q >/dev/null
	updated=1
}

ensure_deb_src() {
	[[ -f $srcfile ]] && return 0
	if [[ ${sudo[0]:-} == false ]]; then
		echo "wasm-src: not root and no sudo; as root create $srcfile" >&2
		exit 1
	fi
	echo "wasm-src: adding $srcfile"
	printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" \
		"Suites: bookworm" "Components: main" \
		"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
		"${sudo[@]}" tee "$srcfile" >/dev/null
	apt_update
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
for entry in "${packages[@]}"; do
	pkg=${entry%%:*}
	up=${entry#*:}
	tree=$pkg-$up
	stamp=$dir/$pkg.ok # holds the name of the .dsc that was unpacked
	if [[ -f $stamp && -d $dir/$tree && -L $dir/$pkg ]]; then
		dsc=$dir/$(cat "$stamp")
		if [[ -f $dsc ]] && dsc_check "$dsc"; then
			continue
		fi
		echo "wasm-src: $pkg: files differ from $(basename "$dsc"), fetching again"
	fi

	ensure_deb_src
	ver=$(src_version "$pkg" "$up")
	if [[ -z $ver ]]; then
		apt_update
		ver=$(src_version "$pkg" "$up")
	fi
	if [[ -z $ver ]]; then
		echo "wasm-src: no source package $pkg $up-* in the apt lists" >&2
		exit 1
	fi
	echo "wasm-src: $pkg $ver"
	rm -f "$stamp"
	# apt checks each download against the signed index's hashes.
	(cd "$dir" && apt-get source "${apt_opts[@]}" -q --download-only \
		"$pkg=$ver" >/dev/null)
	dsc=$dir/${pkg}_${ver#*:}.dsc
	dsc_check "$dsc"
	rm -rf "${dir:?}/$tree"
	# Without --no-check (which apt-get source would pass): dpkg-source
	# checks the files against the .dsc, and its signature when a keyring
	# with the uploader's key is installed (debian-keyring).
	(cd "$dir" && dpkg-source -q -x "$(basename "$dsc")" "$tree" \
		>/dev/null 2>"$dir/$pkg.unpack.log") || {
		cat "$dir/$pkg.unpack.log" >&2
		echo "wasm-src: unpacking $pkg failed" >&2
		exit 1
	}
	rm -f "$dir/$pkg.unpack.log"
	ln -sfn "$tree" "$dir/$pkg"
	basename "$dsc" >"$stamp"
done

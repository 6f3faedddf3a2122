#!/bin/sh
# Prints the path of the Linux 6.12 bzImage that the kernel lab boots, and
# makes sure it exists. The configuration is config-fragment, or the
# fragment VMIG_KERNEL_FRAGMENT names (config-fragment-kvm: the same with
# KVM, for run-kvm.sh). In this order:
#   1. $VMIG_TEST_KERNEL, when set (used as it is);
#   2. <repo>/../shared/kernel/bzImage, when its sha256 is the known one and
#      it was built from the same config fragment as ours; it is also copied
#      into the cache, so that a clone elsewhere on this machine finds it;
#   3. the cache: ${XDG_CACHE_HOME:-$HOME/.cache}/vmig/kernel/<key>/bzImage,
#      where <key> is the kernel version and a hash of config-fragment;
#   4. a build from Debian's linux-source-6.12 with config-fragment (13 to 33
#      minutes on 2 cores), which is then cached.
# Progress goes to stderr; stdout gets the path only.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
fragment=${VMIG_KERNEL_FRAGMENT:-$here/config-fragment}
[ -f "$fragment" ] || { echo "get-kernel: $fragment: no such file" >&2; exit 1; }
fragment=$(cd "$(dirname "$fragment")" && pwd)/$(basename "$fragment")
shared="$top/../shared/kernel"
# The bzImage in ../shared, as its README records it.
shared_sha=b2d379874cbd1f9001e317ab228ae33bcd11d56475b8718afd480f7e741285bd
src_pkg=linux-source-6.12
cache_root="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/vmig/kernel"

say() {
	echo "get-kernel: $*" >&2
}

die() {
	say "$*"
	exit 1
}

sha256() {
	sha256sum "$1" | cut -d' ' -f1
}

# The version a bzImage says it is: the x86 boot header holds, at 0x20e,
# the offset (from 0x200) of a string that starts with the release.
bzimage_version() {
	off=$(od -A n -t u2 -j 526 -N 2 "$1" | tr -d ' ')
	[ -n "$off" ] || return 1
	dd if="$1" bs=1 skip=$((off + 512)) count=64 2>/dev/null |
		tr '\0' '\n' | head -n 1 | cut -d' ' -f1
}

# The upstream version of the installed kernel source package, or nothing.
source_version() {
	dpkg-query -W -f='${Status} ${Version}\n' "$src_pkg" 2>/dev/null |
		sed -n 's/^install ok installed \([0-9.]*\).*/\1/p'
}

frag_hash=$(sha256 "$fragment" | cut -c1-16)

# Copies a bzImage into the cache under its key (atomically) and prints
# the cached path.
cache_put() {
	dir="$cache_root/$1-$frag_hash"
	mkdir -p "$dir"
	if [ ! -f "$dir/bzImage" ] || ! cmp -s "$2" "$dir/bzImage"; then
		cp "$2" "$dir/bzImage.tmp.$$"
		cp "$fragment" "$dir/config-fragment"
		mv -f "$dir/bzImage.tmp.$$" "$dir/bzImage"
	fi
	echo "$dir/bzImage"
}

# 1. The caller's kernel.
if [ -n "${VMIG_TEST_KERNEL:-}" ]; then
	[ -f "$VMIG_TEST_KERNEL" ] ||
		die "VMIG_TEST_KERNEL=$VMIG_TEST_KERNEL: no such file"
	echo "$VMIG_TEST_KERNEL"
	exit 0
fi

# 2. The shared copy, if it is the one we know and fits our fragment.
if [ -f "$shared/bzImage" ]; then
	if [ "$(sha256 "$shared/bzImage")" != "$shared_sha" ]; then
		say "ignoring $shared/bzImage: its sha256 is not the known one"
	elif [ -f "$shared/config-fragment" ] &&
	     ! cmp -s "$shared/config-fragment" "$fragment"; then
		say "ignoring $shared/bzImage: built from another config fragment"
	else
		ver=$(bzimage_version "$shared/bzImage") ||
			die "$shared/bzImage: no version in its boot header"
		cache_put "$ver" "$shared/bzImage"
		exit 0
	fi
fi

# 3. The cache: the installed source's version, or else any version built
# from this fragment (the newest), since the source is not installed yet.
ver=$(source_version)
if [ -n "$ver" ]; then
	if [ -f "$cache_root/$ver-$frag_hash/bzImage" ]; then
		echo "$cache_root/$ver-$frag_hash/bzImage"
		exit 0
	fi
else
	# shellcheck disable=SC2012
	hit=$(ls -td "$cache_root"/*-"$frag_hash"/bzImage 2>/dev/null |
		head -n 1 || true)
	if [ -n "$hit" ]; then
		echo "$hit"
		exit 0
	fi
fi

# 4. Build it, with the recipe of shared/kernel/README.md.
say "no cached kernel: building one from $src_pkg (13 to 33 minutes on 2 cores)"
# (flex, bison and the rest of the recipe's tools come with the default
# list of install-deps.sh.)
"$top/scripts/install-deps.sh" "$src_pkg" >&2
ver=$(source_version)
[ -n "$ver" ] || die "$src_pkg is not installed"
tarball="/usr/src/$src_pkg.tar.xz"
[ -f "$tarball" ] || die "$tarball: missing"

work=$(mktemp -d "${TMPDIR:-/tmp}/vmig-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
log="$work/build.log"
say "building in $work (log: $log)"
tar xf "$tarball" -C "$work"
ksrc="$work/$src_pkg"
[ -d "$ksrc" ] || die "$tarball did not give $src_pkg/"
if ! (
	cd "$ksrc" &&
	make x86_64_defconfig &&
	make kvm_guest.config &&
	scripts/kconfig/merge_config.sh -m .config "$fragment" &&
	make olddefconfig &&
	make -j"$(nproc)" bzImage
) >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "the kernel build failed"
fi
# merge_config.sh drops options whose dependencies are missing without
# failing: check that what the fragment asks for is there.
missing=$(grep '^CONFIG_.*=y$' "$fragment" | while read -r opt; do
	grep -qx "$opt" "$ksrc/.config" || printf ' %s' "$opt"
done)
[ -z "$missing" ] || die "the built kernel lacks:$missing"
cache_put "$ver" "$ksrc/arch/x86/boot/bzImage"
